"""Start the desktop application: ``main(argv) -> exit code``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPalette
from PySide6.QtWidgets import QApplication

from desktop_app import platform_check
from desktop_app.bridge import EngineBridge, default_data_dir, load_settings
from desktop_app.main_window import MainWindow

APP_NAME = "Kenning"
ICONS = Path(__file__).resolve().parents[1] / "resources" / "icons"


def app_icon() -> QIcon:
    """Kenning's icon at every size shipped, so high-DPI screens get a sharp one."""
    icon = QIcon()
    for png in sorted(ICONS.glob("kenning-*.png")):
        icon.addFile(str(png))
    return icon


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kenning", description="Kenning's desktop window.")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where the index lives (default: the platform's user data dir)",
    )
    parser.add_argument(
        "--quit-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="close the window this long after the engine is ready (smoke tests, packaging)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Open the main window and run until it closes.

    Args:
        argv: Arguments after the program name; ``sys.argv[1:]`` by default. Qt's
            own options (``-platform``, ...) go to Qt, the rest to the parser.

    Returns:
        The process exit code.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    existing = QApplication.instance()
    if existing is None:
        problem = platform_check.check(args)
        if problem is not None:
            print(problem.report(), file=sys.stderr)
            return platform_check.EXIT_NO_DISPLAY
    app = existing if isinstance(existing, QApplication) else QApplication([sys.argv[0], *args])
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(APP_NAME)
    app.setApplicationDisplayName(APP_NAME)
    app.setWindowIcon(app_icon())
    options = parse_args(args if existing else app.arguments()[1:])
    follow_system_theme(app)
    saved_dir = QSettings().value("engine/data_dir")
    if options.data_dir:
        data_dir = options.data_dir.expanduser()
    elif saved_dir:
        data_dir = Path(str(saved_dir)).expanduser()
    else:
        data_dir = default_data_dir()
    try:
        config = load_settings()
    except Exception:  # a broken settings file must not keep the window from opening
        logging.getLogger(__name__).exception("ignoring unreadable settings")
        config = None

    bridge = EngineBridge(data_dir, config)
    window = MainWindow(bridge)
    window.show()  # the engine starts behind the visible window
    if options.quit_after is not None:
        _quit_when_ready(bridge, window, options.quit_after)
    _close_on_signals(window)
    try:
        return app.exec()
    finally:
        bridge.shutdown()


def follow_system_theme(app: QApplication) -> None:
    """Use the platform's light or dark scheme, and follow it when it changes.

    Native styles already do; where Qt falls back to Fusion (many Linux
    desktops) a dark palette is applied by hand when the system asks for dark.
    High-DPI scaling of icons and fonts is on by default in Qt 6.
    """
    hints = QGuiApplication.styleHints()

    def apply() -> None:
        if app.style().name().lower() != "fusion":
            return
        dark = hints.colorScheme() == Qt.ColorScheme.Dark
        app.setPalette(dark_palette() if dark else app.style().standardPalette())

    hints.colorSchemeChanged.connect(lambda _scheme: apply())
    apply()


def dark_palette() -> QPalette:
    """A dark Fusion palette with readable contrast."""
    palette = QPalette()
    roles = {
        QPalette.ColorRole.Window: "#2b2b2b",
        QPalette.ColorRole.WindowText: "#e6e6e6",
        QPalette.ColorRole.Base: "#1f1f1f",
        QPalette.ColorRole.AlternateBase: "#2b2b2b",
        QPalette.ColorRole.Text: "#e6e6e6",
        QPalette.ColorRole.Button: "#353535",
        QPalette.ColorRole.ButtonText: "#e6e6e6",
        QPalette.ColorRole.Highlight: "#3d7bd9",
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: "#7fb2ff",
        QPalette.ColorRole.PlaceholderText: "#9a9a9a",
        QPalette.ColorRole.ToolTipBase: "#353535",
        QPalette.ColorRole.ToolTipText: "#e6e6e6",
        QPalette.ColorRole.Midlight: "#444444",
    }
    for role, color in roles.items():
        palette.setColor(role, QColor(color))
    return palette


def _quit_when_ready(bridge: EngineBridge, window: MainWindow, seconds: float) -> None:
    """Print "kenning: ready" once the engine has started, then close the window.

    The frozen build's test and bench use it to prove the window opens and the
    engine starts and shuts down cleanly, and to time launch-to-usable.
    """

    def ready() -> None:
        print("kenning: ready", flush=True)
        QTimer.singleShot(int(seconds * 1000), window.close)

    bridge.sig_ready.connect(ready)


def _close_on_signals(window: MainWindow) -> None:
    """Ctrl+C or SIGTERM close the window, so the index is saved on the way out."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: window.close())
    # Python runs signal handlers only between bytecodes: wake it up now and then.
    timer = QTimer(window)
    timer.timeout.connect(lambda: None)
    timer.start(300)
