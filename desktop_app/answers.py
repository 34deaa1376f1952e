"""The Ask tab at work: asking, streaming, sources, the viewer, corrections, learning.

:class:`AnswerFlow` wires the Ask tab's widgets, the document viewer and the
"What Kenning has learned" dialog to the bridge, and keeps the conversation's
state (its id, the answer in progress). The main window owns the widgets and
hands them over; nothing here waits on the engine.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QSettings, Qt, QTimer
from PySide6.QtWidgets import QDialog, QTabWidget, QWidget

from desktop_app.bridge import EngineBridge
from desktop_app.widgets.ask import Turn
from desktop_app.widgets.ask_page import AskPage
from desktop_app.widgets.learned import CorrectionDialog, LearnedDialog
from desktop_app.widgets.progress import IndexingProgress
from desktop_app.widgets.viewer import DocumentViewer

LEARNING_POLL_MS = 2000  # adapter progress refresh while the learned view is open


class AnswerFlow(QObject):
    """Asks, streams and corrects answers in the Ask tab.

    Args:
        window: Parent of the dialogs it opens.
        bridge: The engine bridge.
        tabs: The window's tabs; asking shows the Ask tab.
        ask_page: The Ask tab's widgets.
        viewer: The document viewer for sources.
        learned: The "What Kenning has learned" dialog.
        progress: Where one-line messages go (the status bar).
        settings: Where the question history is remembered.
    """

    def __init__(
        self,
        window: QWidget,
        bridge: EngineBridge,
        tabs: QTabWidget,
        ask_page: AskPage,
        viewer: DocumentViewer,
        learned: LearnedDialog,
        progress: IndexingProgress,
        settings: QSettings,
    ) -> None:
        super().__init__(window)
        self.parent_window, self.bridge, self.tabs = window, bridge, tabs
        self.ask_page, self.viewer, self.learned = ask_page, viewer, learned
        self.progress, self.settings = progress, settings
        self.question_box = ask_page.question
        self.transcript = ask_page.transcript
        self.sources = ask_page.sources
        self.ask_id: int | None = None
        self.conversation_id: str | None = None
        self.scope: str | None = None  # the file or folder questions are asked of, if one
        self._summaries: dict[str, Turn] = {}  # path -> its "Summary of" turn, until done
        self.correction_dialog: CorrectionDialog | None = None
        self._view_request: tuple[str, tuple[int, int] | None] | None = None
        self._learning_timer = QTimer(self, interval=LEARNING_POLL_MS)
        self._learning_timer.timeout.connect(self._poll_learning)
        self._wire()

    def _wire(self) -> None:
        self.question_box.sig_ask.connect(self.ask)
        self.question_box.sig_stop.connect(self.stop_answer)
        self.ask_page.correct_button.clicked.connect(self.open_correction)
        self.ask_page.sig_new_conversation.connect(self.new_conversation)
        self.ask_page.sig_scope_cleared.connect(lambda: self.set_scope(None))
        self.ask_page.sig_conversation_chosen.connect(self.bridge.load_conversation)
        self.transcript.sig_citation_clicked.connect(self._citation_clicked)
        self.sources.sig_view.connect(self.view_source)
        self.sources.sig_rate.connect(self._rate)
        self.learned.sig_refresh.connect(self.bridge.list_corrections)
        self.learned.sig_forget.connect(self.bridge.forget_correction)
        self.learned.sig_undo.connect(
            lambda c: self.bridge.record_correction(c.question, c.answer, c.answer_id)
        )
        self.learned.sig_rollback.connect(self.bridge.rollback_adapter)
        self.learned.sig_consolidate.connect(self.bridge.consolidate)
        bridge = self.bridge
        bridge.sig_answer_token.connect(self._answer_token)
        bridge.sig_answer_done.connect(self._answer_done)
        bridge.sig_summary.connect(self._summary_done)
        bridge.sig_answer_ended.connect(self._answer_ended)
        bridge.sig_document.connect(self._document_loaded)
        bridge.sig_conversations.connect(self._show_conversations)
        bridge.sig_conversation.connect(self._conversation_loaded)
        bridge.sig_correction_saved.connect(self._correction_saved)
        bridge.sig_corrections.connect(self.learned.show_corrections)
        bridge.sig_learning.connect(self.learned.show_learning)
        bridge.sig_rated.connect(
            lambda _chunk, ok: self.progress.show_message(
                "Thanks: Kenning will prefer passages like this"
                if ok
                else "Thanks: Kenning will rank this passage lower"
            )
        )

    # -- asking --------------------------------------------------------------------------
    def focus_question(self) -> None:
        self.tabs.setCurrentWidget(self.ask_page)
        self.question_box.setFocus(Qt.FocusReason.ShortcutFocusReason)

    def set_scope(self, path: str | None) -> None:
        """Ask the next questions of ``path`` only (a file or folder; None: everything)."""
        self.scope = path
        self.ask_page.show_scope(path)
        if path is not None:
            self.focus_question()

    def summarize(self, path: str) -> None:
        """Summarise the file ``path`` into the transcript (its main sentences, cited)."""
        if self.ask_id is not None:  # the answer streams into the last turn: let it finish
            self.progress.show_message("Kenning is still answering: stop it with Esc first")
            return
        self.tabs.setCurrentWidget(self.ask_page)
        turn = self.transcript.add_turn(f"Summary of {Path(path).name}")
        turn.kind = "summary"
        self._summaries[path] = turn
        self.bridge.summarize(path)

    def _summary_done(self, path: str, summary: Any) -> None:
        turn = self._summaries.pop(path, None)
        if turn is not None:
            self.transcript.show_summary(turn, summary)

    def ask(self, question: str) -> None:
        """Ask ``question`` in the current conversation; the answer streams into the transcript."""
        question = question.strip()
        if not question:
            return
        if self.ask_id is not None:
            self.question_box.setText(question)  # kept for when the answer is done
            self.progress.show_message("Kenning is still answering: stop it with Esc first")
            return
        if self.conversation_id is None:
            self.conversation_id = uuid.uuid4().hex
        self.tabs.setCurrentWidget(self.ask_page)
        self.transcript.add_turn(question)
        self.sources.show_answer(None)
        self.ask_page.set_asking(True)
        self.ask_id = self.bridge.ask(question, self.conversation_id, within=self.scope)
        self.settings.setValue("ask/history", self.question_box.history)

    def stop_answer(self) -> None:
        """Stop the answer being written (Esc or Stop)."""
        if self.ask_id is not None:
            self.bridge.stop_answer(self.ask_id)

    def escape(self) -> None:
        """Esc: stop an answer if one is coming, else cancel indexing."""
        if self.ask_id is not None:
            self.stop_answer()
        else:
            self.bridge.cancel()

    def new_conversation(self) -> None:
        self.stop_answer()
        self.conversation_id = None
        self.transcript.set_turns([])
        self.sources.show_answer(None)
        self.ask_page.correct_button.setEnabled(False)
        self.bridge.list_conversations()
        self.focus_question()

    def _answer_token(self, ask_id: int, piece: str) -> None:
        if ask_id == self.ask_id:
            self.transcript.append_token(piece)

    def _answer_done(self, ask_id: int, answer: Any, lines: Any) -> None:
        if ask_id != self.ask_id:
            return
        self.transcript.finish(answer)
        self.sources.show_answer(answer, lines)
        self.ask_page.correct_button.setEnabled(True)
        seconds = answer.timings.get("total")
        took = f" in {seconds:.1f} s" if seconds else ""
        self.progress.show_message(
            "Not found in your documents" if answer.abstained else f"Answered{took}"
        )
        self.bridge.list_conversations()

    def _answer_ended(self, ask_id: int) -> None:
        if ask_id != self.ask_id:
            return
        self.ask_id = None
        turn = self.ask_page.last_turn()
        if turn is not None and turn.state in ("asking", "streaming"):
            self.transcript.end("stopped")
            self.progress.show_message("Stopped")
        self.ask_page.set_asking(False)
        self.ask_page.correct_button.setEnabled(turn is not None and turn.state == "done")

    def _show_conversations(self, entries: list[dict[str, Any]]) -> None:
        self.ask_page.show_conversations(entries, self.conversation_id)

    def _conversation_loaded(self, conversation_id: str, rows: list[dict[str, Any]]) -> None:
        """Reopen a stored conversation; asking next continues it."""
        self.stop_answer()
        self.conversation_id = conversation_id
        turns = [
            Turn(
                str(row["question"]),
                str(row["answer"]),
                state="done",
                cited_paths=[str(c["path"]) for c in row.get("citations") or []],
                answer_id=str(row["answer_id"]),
                created_at=float(row["created_at"]),
            )
            for row in rows
        ]
        self.transcript.set_turns(turns)
        self.sources.show_answer(None)
        self.ask_page.correct_button.setEnabled(bool(turns))
        self.bridge.list_conversations()

    def _citation_clicked(self, turn_index: int, source: int) -> None:
        turn = self.transcript.turns[turn_index]
        if turn.answer is None:
            return
        if self.sources.answer is not turn.answer:
            self.sources.show_answer(turn.answer)
        self.sources.view(source)

    # -- sources -------------------------------------------------------------------------
    def view_source(self, hit: Any, span: tuple[int, int] | None) -> None:
        """Open ``hit``'s file in the internal viewer at ``span`` (parsed off the GUI thread)."""
        path = str(hit.path)
        self._view_request = (path, span)
        self.viewer.show_loading(path)
        self.bridge.load_document(path)

    def _document_loaded(self, path: str, document: Any) -> None:
        if self._view_request is None or self._view_request[0] != path:
            return
        self.viewer.show_document(path, document, self._view_request[1])

    def _rate(self, hit: Any, helpful: bool) -> None:
        answer = self.sources.answer
        if answer is not None:
            self.bridge.rate_source(answer.answer_id, int(hit.chunk_id), helpful)

    # -- correcting ----------------------------------------------------------------------
    def open_correction(self) -> None:
        """Open the last answer for editing; saving teaches Kenning the corrected answer."""
        turn = self.ask_page.last_turn()
        if turn is None or turn.state != "done":
            return
        dialog = CorrectionDialog(turn.question, turn.corrected or turn.text, self.parent_window)
        self.correction_dialog = dialog

        def finished(result: int) -> None:
            self.correction_dialog = None
            if result == QDialog.DialogCode.Accepted and dialog.corrected:
                turn.corrected = dialog.corrected
                self.transcript.refresh()
                self.bridge.record_correction(turn.question, dialog.corrected, turn.answer_id)
            dialog.deleteLater()

        dialog.finished.connect(finished)
        dialog.open()

    def _correction_saved(self, question: str) -> None:
        self.progress.show_message(f"Kenning learned the answer to “{question}”")

    def open_learned(self) -> None:
        """Show what Kenning has learned: corrections and the adapter."""
        self.learned.show()
        self.learned.raise_()
        self.bridge.list_corrections()
        self._learning_timer.start()

    def _poll_learning(self) -> None:
        if self.learned.isVisible():
            self.bridge.refresh_learning()
        else:
            self._learning_timer.stop()
