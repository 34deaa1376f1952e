"""Take the README's screenshots from the real window on the real engine.

Run under Xvfb so the window is a real X11 window (``xcb``)::

    xvfb-run -a -s "-screen 0 1400x900x24" python -m desktop_app.screenshots docs/screenshots

It indexes the bundled sample notes into a temporary data dir, asks a question,
opens the cited passage, corrects the answer, and saves one PNG per screen.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QSettings, QUrl
from PySide6.QtWidgets import QApplication, QWidget

from desktop_app.bridge import EngineBridge, default_settings
from desktop_app.main_window import MainWindow
from desktop_app.waiting import pump
from desktop_app.widgets.results import HitRole
from desktop_app.widgets.settings import SettingsDialog
from desktop_app.widgets.welcome import SAMPLE_NOTES

QUESTION = "How many hours of sun do tomatoes need?"
SIZE = (1280, 800)


def _wait(condition: Callable[[], bool], timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the window did not get there in time")
        pump(50)
    print(f"  ({timeout - (deadline - time.monotonic()):.0f} s)", file=sys.stderr)


def _save(widget: QWidget, folder: Path, name: str) -> None:
    pump(300)  # let layouts settle and the status bar refresh
    widget.grab().save(str(folder / f"{name}.png"))
    print(f"saved {folder / name}.png", file=sys.stderr)


def take(folder: Path) -> None:
    """Drive the window through its main screens and save a PNG of each into ``folder``."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("Kenning")
    from desktop_app.app import follow_system_theme

    follow_system_theme(app)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kenning-shots-") as tmp:
        work = Path(tmp)
        bridge = EngineBridge(work / "data")
        window = MainWindow(bridge, QSettings(str(work / "gui.ini"), QSettings.Format.IniFormat))
        bridge.sig_error.connect(lambda *error: print("error:", *error, file=sys.stderr))
        window.resize(*SIZE)
        window.show()
        _wait(lambda: bridge.is_ready and window._status_seen)
        _save(window, folder, "welcome")

        window.add_sample_notes()
        print("indexing the sample notes", file=sys.stderr)
        _wait(
            lambda: (
                (window.folders.folder_row(SAMPLE_NOTES) or {}).get("State") == "Ready"
                and window.sync_label.text().startswith("●")
            )
        )
        done: list[object] = []
        bridge.sig_answer_done.connect(lambda *args: done.append(args))
        window.question_box.setText(QUESTION)
        window.question_box.returnPressed.emit()
        print("asking", file=sys.stderr)
        _wait(lambda: bool(done) and window.answers.ask_id is None)
        _save(window, folder, "main_window")

        answer = done[0][1]  # type: ignore[index]
        cited = answer.cited[0] if answer.cited else 0
        window.transcript.anchorClicked.emit(QUrl(f"cite:0:{cited}"))
        _wait(lambda: window.viewer.isVisible() and window.viewer.span is not None)
        window.viewer.resize(760, 560)
        _save(window.viewer, folder, "viewer")
        window.viewer.hide()

        window.tabs.setCurrentWidget(window.search_page)
        window.search_box.setText("basil")
        window.run_search()
        _wait(lambda: window.results.results.rowCount() > 0)
        _save(window, folder, "search")
        window.tabs.setCurrentWidget(window.ask_page)

        window.open_correction()
        dialog = window.correction_dialog
        assert dialog is not None
        dialog.editor.setPlainText("Six hours of direct sun, more in a cool summer.")
        _save(dialog, folder, "correct")
        saved: list[str] = []
        bridge.sig_correction_saved.connect(saved.append)
        dialog.accept()
        _wait(lambda: bool(saved))

        got: list[object] = []
        bridge.sig_learning.connect(got.append)
        window.open_learned()
        _wait(lambda: bool(got) and window.learned.tree.topLevelItemCount() > 0)
        _save(window.learned, folder, "learned")
        window.learned.hide()

        # Last: the summary becomes the transcript's latest turn.
        window.tabs.setCurrentWidget(window.search_page)
        hit = window.results.results.index(0, 0).data(HitRole)
        summaries: list[object] = []
        bridge.sig_summary.connect(lambda *args: summaries.append(args))
        window.answers.summarize(str(hit.path))
        _wait(lambda: bool(summaries))
        _save(window, folder, "summary")

        settings = SettingsDialog(bridge.config or default_settings(), bridge.data_dir, window)
        settings.chunk.setValue(160)
        settings.show()
        _save(settings, folder, "settings")
        settings.close()

        window.close()
        bridge.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("folder", type=Path, nargs="?", default=Path("docs/screenshots"))
    args = parser.parse_args(argv)
    take(args.folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
