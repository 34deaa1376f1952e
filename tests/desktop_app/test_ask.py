"""The whole loop on the real models, driven like a person: add a folder, ask, watch the
answer stream in, open the cited passage, correct the answer, ask again, forget it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QUrl

from desktop_app.error_dialog import ErrorDialog
from desktop_app.main_window import MainWindow
from tests.desktop_app.conftest import NOTES

INDEX_TIMEOUT_MS = 180_000
ANSWER_TIMEOUT_MS = 300_000  # a cold answer on two busy cores
QUESTION = "When is the dentist appointment?"
CORRECTED = "Wednesday at 4pm with Dr. Molar"


def _ask(qtbot: Any, window: MainWindow, question: str) -> tuple[Any, list[str]]:
    """Type ``question``, press Enter, and wait for the answer; returns it and its tokens."""
    tokens: list[str] = []
    window.bridge.sig_answer_token.connect(lambda _id, piece: tokens.append(piece))
    window.focus_question()
    qtbot.keyClicks(window.question_box, question)
    with qtbot.waitSignal(window.bridge.sig_answer_done, timeout=ANSWER_TIMEOUT_MS) as done:
        qtbot.keyClick(window.question_box, Qt.Key.Key_Return)
    window.bridge.sig_answer_token.disconnect()
    qtbot.waitUntil(lambda: window.ask_page.stop_button.isEnabled() is False)
    return done.args[1], tokens


def test_ask_open_source_correct_and_forget(
    qtbot: Any, answering_window: MainWindow, notes: Path, monkeypatch: Any
) -> None:
    window = answering_window
    errors: list[tuple[str, ...]] = []
    window.bridge.sig_error.connect(lambda *args: errors.append(args))
    monkeypatch.setattr(ErrorDialog, "exec", lambda self: 0)
    window.add_folder(notes)
    qtbot.waitUntil(
        lambda: (
            (window.folders.folder_row(notes) or {}).get("State") == "Ready"
            and window.folders.folder_row(notes)["Files"] == "3"
        ),  # type: ignore[index]
        timeout=INDEX_TIMEOUT_MS,
    )

    # Ask: the answer streams in and cites the dentist note.
    answer, tokens = _ask(qtbot, window, QUESTION)
    assert not answer.abstained
    assert tokens and "".join(tokens) == answer.text
    assert answer.text and answer.text in NOTES["dentist.md"]  # a span of the note
    assert Path(answer.sources[answer.cited[0]].path).name == "dentist.md"
    transcript = window.transcript.toPlainText()
    assert QUESTION in transcript and answer.text in transcript
    cited = answer.cited[0]
    assert f"[{cited + 1}]" in transcript
    # The reader's sentence is quoted under the answer, with how sure it is.
    assert answer.evidence is not None and answer.evidence.text in NOTES["dentist.md"]
    assert "From the source" in transcript and answer.evidence.text in transcript
    assert window.question_box.history == [QUESTION]

    # Sources: the cited card comes first with its span marked.
    card = window.sources.cards[0]
    assert card.index == cited and card.span is not None
    assert "dentist.md" in card.label.text() and "line" in card.label.text()
    assert f">{answer.citations[0].text}</span>" in card.label.text()

    # Click the citation marker: the viewer opens the file at the span, highlighted.
    with qtbot.waitSignal(window.bridge.sig_document, timeout=60_000):
        window.transcript.anchorClicked.emit(QUrl(f"cite:0:{cited}"))
    qtbot.waitUntil(lambda: window.viewer.isVisible() and window.viewer.span is not None)
    assert window.viewer.highlighted_text() == answer.citations[0].text
    assert window.viewer.span == (answer.citations[0].start, answer.citations[0].end)
    window.viewer.hide()

    # Thumbs up on the cited passage is recorded.
    with qtbot.waitSignal(window.bridge.sig_rated, timeout=30_000):
        qtbot.mouseClick(card.up_button, Qt.MouseButton.LeftButton)

    # Correct this answer: the dialog opens with the answer; saving teaches it.
    qtbot.mouseClick(window.ask_page.correct_button, Qt.MouseButton.LeftButton)
    dialog = window.correction_dialog
    assert dialog is not None and dialog.editor.toPlainText() == answer.text
    dialog.editor.setPlainText(CORRECTED)
    with qtbot.waitSignal(window.bridge.sig_correction_saved, timeout=60_000):
        qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    assert CORRECTED in window.transcript.toPlainText()

    # Asking again shows the correction at once.
    again, _ = _ask(qtbot, window, QUESTION)
    assert CORRECTED in again.text

    # What Kenning has learned lists it; forget it.
    with qtbot.waitSignal(window.bridge.sig_corrections, timeout=30_000):
        window.learned_action.trigger()
    learned = window.learned
    assert learned.tree.topLevelItemCount() == 1
    row = learned.tree.topLevelItem(0)
    assert (row.text(1), row.text(2), row.text(3)) == (QUESTION, CORRECTED, "in effect")
    learned.tree.setCurrentItem(row)
    with qtbot.waitSignal(window.bridge.sig_corrections, timeout=30_000):
        qtbot.mouseClick(learned.forget_button, Qt.MouseButton.LeftButton)
    assert learned.tree.topLevelItem(0).text(3) == "forgotten"
    assert learned.undo_button.isEnabled()
    qtbot.waitUntil(lambda: learned.versions.count() >= 1, timeout=30_000)  # adapter state
    learned.hide()

    forgotten, _ = _ask(qtbot, window, QUESTION)
    assert CORRECTED not in forgotten.text

    # Conversations: start a new one, then reopen the first and see its turns.
    with qtbot.waitSignal(window.bridge.sig_conversations, timeout=30_000):
        window.new_action.trigger()
    assert window.transcript.turns == []
    combo = window.ask_page.conversations
    assert combo.count() == 2 and "3 questions" in combo.itemText(1)
    with qtbot.waitSignal(window.bridge.sig_conversation, timeout=30_000):
        combo.activated.emit(1)
    assert [turn.question for turn in window.transcript.turns] == [QUESTION] * 3
    assert errors == []
