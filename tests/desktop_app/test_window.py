"""The main window driven like a person would: add a folder, search, open, remove."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt

from desktop_app.bridge import EngineBridge
from desktop_app.error_dialog import ErrorDialog
from desktop_app.main_window import MainWindow

INDEX_TIMEOUT_MS = 120_000
QUERY = "when do I see the dentist"
FILES_TO_PAUSE = 400


def _indexed(window: MainWindow, folder: Path, files: int) -> bool:
    row = window.folders.folder_row(folder)
    return row is not None and row["State"] == "Ready" and row["Files"] == str(files)


def _search(qtbot: Any, window: MainWindow, query: str) -> list[Any]:
    window.search_box.clear()
    qtbot.keyClicks(window.search_box, query)
    with qtbot.waitSignal(
        window.bridge.sig_search_results,
        timeout=60_000,
        check_params_cb=lambda q, _hits: q == query,
    ) as blocker:
        qtbot.keyClick(window.search_box, Qt.Key.Key_Return)
    hits: list[Any] = blocker.args[1]
    return hits


def test_add_folder_search_and_remove(qtbot: Any, window: MainWindow, notes: Path) -> None:
    window.add_folder(notes)
    qtbot.waitUntil(lambda: _indexed(window, notes, 3), timeout=INDEX_TIMEOUT_MS)
    assert window.folders.folder_row(notes)["Chunks"] != "0"  # type: ignore[index]

    hits = _search(qtbot, window, QUERY)

    assert Path(hits[0].path).name == "dentist.md"
    assert window.pages.currentWidget() is window.splitter
    first = window.results.model().index(0, 0)
    assert "dentist.md" in first.data()
    assert "Tuesday at 3pm" in first.data()
    assert "Tuesday at 3pm" in window.preview.toPlainText()  # the first hit is selected
    assert window.open_button.isEnabled()

    window.folders.tree.setCurrentItem(window.folders.tree.topLevelItem(0))
    qtbot.mouseClick(window.folders.remove_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.folders.folder_row(notes) is None, timeout=30_000)
    qtbot.waitUntil(lambda: window.pages.currentWidget() is window.hint)

    assert _search(qtbot, window, QUERY) == []


def test_missing_folder_shows_a_readable_error(
    qtbot: Any, window: MainWindow, tmp_path: Path, monkeypatch: Any
) -> None:
    shown: list[ErrorDialog] = []
    monkeypatch.setattr(ErrorDialog, "exec", lambda self: shown.append(self) or 0)

    with qtbot.waitSignal(window.bridge.sig_error, timeout=30_000):
        window.add_folder(tmp_path / "no-such-folder")

    assert len(shown) == 1
    dialog = shown[0]
    assert dialog.windowTitle() == "Could not add the folder"
    assert "no-such-folder" in dialog.message.text()
    assert "Traceback" not in dialog.message.text()
    assert "FolderNotFoundError" in dialog.details.toPlainText()
    assert dialog.details.isHidden()  # details wait behind "Show details"


def test_shortcuts_and_accessible_names(qtbot: Any, window: MainWindow) -> None:
    assert window.add_action.shortcut().toString() == "Ctrl+O"
    assert window.focus_action.shortcut().toString() == "Ctrl+L"
    assert window.cancel_action.shortcut().toString() == "Esc"
    window.activateWindow()
    window.results.setFocus()
    window.focus_action.trigger()
    qtbot.waitUntil(window.search_box.hasFocus)
    controls = [
        window.search_box,
        window.results,
        window.preview,
        window.open_button,
        window.reveal_button,
        window.folders.tree,
        window.folders.add_button,
        window.folders.remove_button,
        window.progress.cancel_button,
        window.progress.pause_button,
        window.progress.bar,
        window.question_box,
        window.transcript,
        window.sources,
        window.ask_page.ask_button,
        window.ask_page.stop_button,
        window.ask_page.correct_button,
        window.ask_page.conversations,
        window.ask_page.new_button,
        window.welcome.add_button,
        window.welcome.samples_button,
        window.viewer.text,
        window.learned.tree,
        window.learned.forget_button,
        window.learned.rollback_button,
        window.sync_label,
    ]
    assert [c for c in controls if not c.accessibleName()] == []
    assert window.ask_action.shortcut().toString() == "Ctrl+K"
    assert window.correct_action.shortcut().toString() == "Ctrl+E"
    window.ask_action.trigger()
    qtbot.waitUntil(window.question_box.hasFocus)


def test_first_run_welcome_offers_the_sample_notes(qtbot: Any, window: MainWindow) -> None:
    qtbot.waitUntil(lambda: window.main_pages.currentWidget() is window.welcome, timeout=30_000)
    assert window.welcome.samples_button.isVisibleTo(window)
    qtbot.mouseClick(window.welcome.samples_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.main_pages.currentWidget() is window.tabs, timeout=60_000)
    assert len(window.folders._items) == 1


def test_window_geometry_is_remembered(qtbot: Any, tmp_path: Path, settings: QSettings) -> None:
    first = MainWindow(EngineBridge(tmp_path / "unused", poll_status=False), settings)
    qtbot.addWidget(first)
    first.resize(640, 480)
    first.close()

    second = MainWindow(EngineBridge(tmp_path / "unused", poll_status=False), settings)
    qtbot.addWidget(second)
    assert (second.width(), second.height()) == (640, 480)


def test_new_settings_are_saved_and_the_engine_restarts_and_reindexes(
    qtbot: Any, window: MainWindow, notes: Path, tmp_path: Path
) -> None:
    import dataclasses

    from desktop_app.bridge import default_settings, load_settings

    window.add_folder(notes)
    qtbot.waitUntil(lambda: _indexed(window, notes, 3), timeout=INDEX_TIMEOUT_MS)
    old = default_settings()
    new = dataclasses.replace(old, max_chunk_tokens=120, ignore_patterns=("garden.md",))

    with qtbot.waitSignal(window.bridge.sig_ready, timeout=60_000):
        window.apply_settings(old, new, window.bridge.data_dir)
        # Returned before the old engine closed: the GUI thread never waited on it.
        assert window.bridge.is_restarting and not window.bridge.is_ready
        window.bridge.search("basil")  # held for the new engine, not lost

    assert load_settings(tmp_path / "config.toml") == new
    assert window.bridge.config == new
    # Re-indexed from scratch with the new ignore pattern: garden.md is left out.
    qtbot.waitUntil(lambda: _indexed(window, notes, 2), timeout=INDEX_TIMEOUT_MS)
    assert [Path(hit.path).name for hit in _search(qtbot, window, "basil")] != ["garden.md"]


def test_pause_holds_indexing_and_resume_finishes_it(
    qtbot: Any, window: MainWindow, tmp_path: Path
) -> None:
    many = tmp_path / "many"
    many.mkdir()
    # Enough files that indexing is still going when the click lands (60 could finish
    # between the button showing and the click on an idle machine).
    for n in range(FILES_TO_PAUSE):
        (many / f"note{n:03d}.md").write_text(f"# Note {n}\n\nThe bicycle number {n} needs oil.\n")
    window.add_folder(many)
    qtbot.waitUntil(window.progress.pause_button.isVisible, timeout=30_000)
    qtbot.mouseClick(window.progress.pause_button, Qt.MouseButton.LeftButton)
    assert window.progress.pause_button.text() == "Resume"
    qtbot.waitUntil(lambda: window.progress.label.text().startswith("Paused"), timeout=10_000)
    row = window.folders.folder_row(many)
    held = row["Files"] if row else "0"
    qtbot.wait(1500)
    row = window.folders.folder_row(many)
    assert (row["Files"] if row else "0") == held  # nothing indexed while paused
    assert int(held) < FILES_TO_PAUSE

    qtbot.mouseClick(window.progress.pause_button, Qt.MouseButton.LeftButton)
    assert window.progress.pause_button.text() == "Pause"
    qtbot.waitUntil(lambda: _indexed(window, many, FILES_TO_PAUSE), timeout=INDEX_TIMEOUT_MS)


def test_ask_about_one_file_only_from_a_result_card(
    qtbot: Any, window: MainWindow, notes: Path
) -> None:
    window.add_folder(notes)
    qtbot.waitUntil(lambda: _indexed(window, notes, 3), timeout=INDEX_TIMEOUT_MS)
    hits = _search(qtbot, window, "water the basil")
    assert Path(hits[0].path).name == "garden.md"

    menu = window.results.menu_for(window.results.model().index(0, 0))
    assert menu is not None
    only_file = next(a for a in menu.actions() if a.text() == "Ask about this file only…")
    only_file.trigger()
    assert window.ask_page.scope_bar.isVisibleTo(window)
    assert "garden.md" in window.ask_page.scope_label.text()
    qtbot.waitUntil(window.question_box.hasFocus)

    def ask(question: str) -> Any:
        window.question_box.setText(question)
        with qtbot.waitSignal(window.bridge.sig_answer_done, timeout=300_000) as done:
            qtbot.keyClick(window.question_box, Qt.Key.Key_Return)
        qtbot.waitUntil(lambda: not window.ask_page.stop_button.isEnabled())
        return done.args[1]

    scoped = ask("When is the dentist appointment?")
    assert {Path(h.path).name for h in scoped.sources} == {"garden.md"}
    assert "Tuesday" not in scoped.text  # the dentist note was not asked

    qtbot.mouseClick(window.ask_page.scope_clear, Qt.MouseButton.LeftButton)
    assert not window.ask_page.scope_bar.isVisibleTo(window)
    everywhere = ask("When is the dentist appointment?")
    assert Path(everywhere.sources[0].path).name == "dentist.md"


def test_summarise_a_file_from_a_result_card(qtbot: Any, window: MainWindow, notes: Path) -> None:
    window.add_folder(notes)
    qtbot.waitUntil(lambda: _indexed(window, notes, 3), timeout=INDEX_TIMEOUT_MS)
    hits = _search(qtbot, window, "water the basil")
    menu = window.results.menu_for(window.results.model().index(0, 0))
    assert menu is not None
    action = next(a for a in menu.actions() if a.text() == "Summarise this file")
    with qtbot.waitSignal(window.bridge.sig_summary, timeout=120_000) as done:
        action.trigger()
    path, summary = done.args
    assert Path(path) == Path(hits[0].path) and summary is not None and summary.sentences
    turn = window.transcript.turns[-1]
    assert turn.state == "summary" and turn.question == f"Summary of {Path(path).name}"
    shown = window.transcript.toPlainText()
    assert all(s.text[:30] in shown for s in summary.sentences)
