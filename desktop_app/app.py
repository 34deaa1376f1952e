"""Start the desktop application: ``main(argv) -> exit code``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from desktop_app.bridge import EngineBridge, default_data_dir
from desktop_app.main_window import MainWindow

APP_NAME = "Kenning"


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kenning", description="Kenning's desktop window.")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where the index lives (default: the platform's user data dir)",
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
    app = existing if isinstance(existing, QApplication) else QApplication([sys.argv[0], *args])
    app.setApplicationName(APP_NAME)
    app.setOrganizationName(APP_NAME)
    app.setApplicationDisplayName(APP_NAME)
    options = parse_args(args if existing else app.arguments()[1:])
    data_dir = options.data_dir.expanduser() if options.data_dir else default_data_dir()

    bridge = EngineBridge(data_dir)
    window = MainWindow(bridge)
    window.show()  # the engine starts behind the visible window
    _close_on_signals(window)
    try:
        return app.exec()
    finally:
        bridge.shutdown()


def _close_on_signals(window: MainWindow) -> None:
    """Ctrl+C or SIGTERM close the window, so the index is saved on the way out."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: window.close())
    # Python runs signal handlers only between bytecodes: wake it up now and then.
    timer = QTimer(window)
    timer.timeout.connect(lambda: None)
    timer.start(300)
