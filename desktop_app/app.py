"""Start the desktop application: ``main(argv) -> exit code``."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import (
    QMessageLogContext,
    QSettings,
    Qt,
    QTimer,
    QtMsgType,
    qInstallMessageHandler,
)
from PySide6.QtGui import QColor, QGuiApplication, QIcon, QPalette
from PySide6.QtWidgets import QApplication

from desktop_app import platform_check
from desktop_app.bridge import EngineBridge, default_data_dir, load_settings
from desktop_app.main_window import MainWindow

APP_NAME = "Kenning"
# From a quit request (window closed, signal, display lost) to the process's end at
# the latest; closing the engine gets the first SHUTDOWN_SECONDS of it.
EXIT_SECONDS = 5.0
SHUTDOWN_SECONDS = 3.0
log = logging.getLogger(__name__)
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
    parser.add_argument(
        "--quick-ask",
        action="store_true",
        help="open the small ask window (in the running Kenning if there is one); "
        "bind a desktop shortcut to this",
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

    from desktop_app import single_instance

    request = "quick-ask" if options.quick_ask else "show"
    handed = single_instance.hand_over(data_dir, request)
    if handed:
        print(f"kenning: the running window took it ({request})", flush=True)
        return 0
    if handed is None:
        print(
            f"Kenning is already running on {data_dir} but did not answer; "
            "close it (or wait for it) and start again.",
            file=sys.stderr,
        )
        return 1
    server = single_instance.InstanceServer(data_dir)
    server.listen()

    bridge = EngineBridge(data_dir, config)
    window = MainWindow(bridge)
    window.show()  # the engine starts behind the visible window
    from desktop_app.tray import QuickAsk, bring_up, install_tray

    quick = QuickAsk(bridge)
    tray = install_tray(quick, window)  # quick ask from the panel, where there is one
    server.sig_request.connect(lambda r: quick.open() if r == "quick-ask" else bring_up(window))
    if options.quick_ask:
        QTimer.singleShot(0, quick.open)
    if options.quit_after is not None:
        _quit_when_ready(bridge, window, options.quit_after)
    exit_guard = ExitGuard(bridge, window)
    exit_guard.install()
    code = 1
    try:
        code = app.exec()
    finally:
        server.close()  # a start from now on opens its own window
        if tray is not None:
            tray.hide()
        exit_guard.finish(code)
    return code


class ExitGuard:
    """Kenning ends within :data:`EXIT_SECONDS` of being asked to, with its stores closed.

    Asked means: the window closed, SIGTERM, SIGINT or SIGHUP (a session logout),
    or the display connection lost. Two things kept the process alive before: the
    lanes were joined without a limit while the answer lane was still loading a
    model (7 s after SIGTERM), and a lost X11 connection made Qt call ``exit(1)``
    from inside its event loop, past every ``finally`` (the stores were never
    closed, and a process seen stuck there ignored SIGTERM). So the engine is
    closed first and the rest is not waited for; the display loss is caught in
    Qt's message handler, where Qt reports it just before exiting; and a timer
    thread ends the process if the GUI thread itself is stuck.
    """

    # Qt's words, just before it calls exit(1) (qxcbconnection.cpp, qwaylanddisplay.cpp).
    LOST_DISPLAY = ("The X11 connection broke", "The Wayland connection broke")

    def __init__(self, bridge: EngineBridge, window: MainWindow) -> None:
        self.bridge = bridge
        self.window = window
        self.asked_at: float | None = None
        self._previous_handler: object = None

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if signum is not None:
                signal.signal(signum, self._on_signal)
        # Python runs signal handlers only between bytecodes: wake it up now and then.
        timer = QTimer(self.window)
        timer.timeout.connect(lambda: None)
        timer.start(300)
        self._previous_handler = qInstallMessageHandler(self._on_qt_message)

    def time_left(self) -> float:
        """Seconds the engine may take to close."""
        if self.asked_at is None:
            return SHUTDOWN_SECONDS
        return max(0.5, SHUTDOWN_SECONDS - (time.monotonic() - self.asked_at))

    def finish(self, code: int) -> None:
        """Close the engine; end the process now if a lane is still busy loading a model."""
        if not self.bridge.shutdown(timeout=self.time_left()):
            log.info("a model was still loading at exit; not waiting for it")
            self._hard_exit(code)

    def _on_signal(self, signum: int, _frame: object) -> None:
        if self.asked_at is not None:
            return
        self.asked_at = time.monotonic()
        self._start_deadline(128 + signum)
        self.window.close()  # app.exec() returns, then finish() closes the engine

    def _on_qt_message(self, mode: QtMsgType, context: QMessageLogContext, message: str) -> None:
        print(message, file=sys.stderr, flush=True)  # what Qt's own handler would show
        if any(message.startswith(lost) for lost in self.LOST_DISPLAY) and self.asked_at is None:
            # Qt exits the process right after this message: close the stores first.
            self.asked_at = time.monotonic()
            self._start_deadline(1)
            self.bridge.shutdown(timeout=self.time_left())
            self._hard_exit(1)

    def _start_deadline(self, code: int) -> None:
        def expire() -> None:
            log.warning("still running %.0f s after being asked to quit; ending now", EXIT_SECONDS)
            self._hard_exit(code)

        timer = threading.Timer(EXIT_SECONDS, expire)
        timer.daemon = True
        timer.start()

    @staticmethod
    def _hard_exit(code: int) -> None:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


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
