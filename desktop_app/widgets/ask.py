"""The Ask page: a question box with history and the conversation as it streams in.

The transcript renders plain data: a list of :class:`Turn` (question, the text
streamed so far, and the finished ``Answer`` once it arrives). Citation markers
are links ``cite:TURN:SOURCE``; clicking one emits ``sig_citation_clicked``.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QKeyEvent, QPalette, QTextCursor
from PySide6.QtWidgets import QLineEdit, QTextBrowser, QWidget

from desktop_app.widgets.results import muted_color

HISTORY_LIMIT = 200  # questions remembered by the Up/Down history


class QuestionBox(QLineEdit):
    """A line edit with shell-like history: Up/Down walk it, Enter asks, Esc stops.

    Emits ``sig_ask(question)`` on Enter and ``sig_stop`` on Esc; the window
    decides what asking means. ``history`` can be saved and restored as a list.
    """

    sig_ask = Signal(str)
    sig_stop = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.history: list[str] = []
        self._position = 0  # == len(history) while editing a new question
        self._draft = ""
        self.setPlaceholderText("Ask a question about your documents  (Ctrl+K)")
        self.setAccessibleName("Question")
        self.setClearButtonEnabled(True)
        self.returnPressed.connect(self._submit)

    def set_history(self, questions: list[str]) -> None:
        self.history = list(questions)[-HISTORY_LIMIT:]
        self._position = len(self.history)

    def _submit(self) -> None:
        question = self.text().strip()
        if not question:
            return
        if not self.history or self.history[-1] != question:
            self.history.append(question)
            del self.history[:-HISTORY_LIMIT]
        self._position = len(self.history)
        self._draft = ""
        self.clear()
        self.sig_ask.emit(question)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        if key == Qt.Key.Key_Up and self.history:
            if self._position == len(self.history):
                self._draft = self.text()
            self._position = max(0, self._position - 1)
            self.setText(self.history[self._position])
        elif key == Qt.Key.Key_Down and self._position < len(self.history):
            self._position += 1
            at_end = self._position == len(self.history)
            self.setText(self._draft if at_end else self.history[self._position])
        elif key == Qt.Key.Key_Escape:
            self.sig_stop.emit()
        else:
            super().keyPressEvent(event)


@dataclass
class Turn:
    """One question and its answer as the transcript shows it.

    ``answer`` is the engine's ``Answer`` once it arrived; a turn reopened from the
    answer log has only ``text`` and ``cited_paths`` (sources are not stored).
    """

    question: str
    text: str = ""
    answer: Any = None
    state: str = "asking"  # asking, streaming, done, stopped, failed, corrected, summary
    cited_paths: list[str] = field(default_factory=list)
    corrected: str = ""
    answer_id: str | None = None
    created_at: float = field(default_factory=time.time)
    kind: str = "question"  # or "summary": "Summary of …", never corrected or stopped


class Transcript(QTextBrowser):
    """The conversation: questions, streamed answers and clickable citation markers."""

    sig_citation_clicked = Signal(int, int)  # turn index, source index

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.turns: list[Turn] = []
        self.setAccessibleName("Conversation")
        self.setOpenLinks(False)
        self.setPlaceholderText(
            "Ask a question below. Kenning answers from your folders and shows the passages "
            "it used; nothing leaves this computer."
        )
        self.anchorClicked.connect(self._anchor)

    def set_turns(self, turns: list[Turn]) -> None:
        self.turns = list(turns)
        self.refresh()

    def add_turn(self, question: str) -> Turn:
        turn = Turn(question)
        self.turns.append(turn)
        self.refresh()
        return turn

    def append_token(self, piece: str) -> None:
        """Add streamed text to the last turn without re-rendering the transcript."""
        if not self.turns:
            return
        turn = self.turns[-1]
        if turn.state == "asking":
            turn.state = "streaming"
            self.refresh()  # drop the "thinking" line once
        turn.text += piece
        cursor = self.textCursor()
        cursor.movePosition(QTextCursor.MoveOperation.End)
        cursor.insertText(piece)
        self.ensureCursorVisible()

    def finish(self, answer: Any) -> None:
        turn = self.turns[-1]
        turn.answer, turn.text, turn.state = answer, answer.text, "done"
        turn.answer_id = answer.answer_id
        self.refresh()

    def show_summary(self, turn: Turn, summary: Any) -> None:
        """``turn`` (a "Summary of …" request) gets its sentences, or fails (None)."""
        if summary is None:
            turn.state = "failed"
        else:
            turn.answer, turn.state, turn.text = summary, "summary", summary.text
        self.refresh()

    def end(self, state: str) -> None:
        """The last question ended without an answer: "stopped" or "failed"."""
        asked = [t for t in self.turns if t.kind == "question"]
        if asked and asked[-1].state in ("asking", "streaming"):
            asked[-1].state = state
            self.refresh()

    def refresh(self) -> None:
        muted = muted_color(self.palette())
        link = self.palette().color(QPalette.ColorRole.Link).name()
        parts = [_turn_html(n, turn, muted, link) for n, turn in enumerate(self.turns)]
        self.setHtml("".join(parts))
        self.moveCursor(QTextCursor.MoveOperation.End)
        self.ensureCursorVisible()

    def _anchor(self, url: QUrl) -> None:
        if url.scheme() != "cite":
            return
        try:
            turn, source = (int(x) for x in url.path().split(":"))
        except ValueError:
            return
        self.sig_citation_clicked.emit(turn, source)


def _turn_html(n: int, turn: Turn, muted: str, link: str) -> str:
    question = f'<p style="margin-top:12px"><b>{html.escape(turn.question)}</b></p>'
    if turn.state == "asking":
        return question + f'<p style="color:{muted}">Looking through your documents…</p>'
    if turn.state == "summary":
        return question + _summary_html(turn.answer, muted)
    answer = turn.answer
    text = html.escape(turn.text)
    if turn.state == "streaming":
        return question + f"<p>{text}"  # left open: tokens are appended after it
    if answer is not None and answer.abstained:
        text = f'<span style="color:{muted}">{text}</span>'
    markers = ""
    if answer is not None and not answer.abstained:
        cited = answer.cited or []
        markers = " ".join(
            f'<a href="cite:{n}:{i}" style="color:{link}">[{i + 1}]</a>' for i in cited
        )
        if not cited and answer.sources:
            markers = f'<span style="color:{muted}">(no passage cited)</span>'
    elif turn.cited_paths:
        markers = html.escape(", ".join(p.rsplit("/", 1)[-1] for p in turn.cited_paths))
    note = {
        "stopped": "Stopped.",
        "failed": "No answer: see the error message.",
    }.get(turn.state, "")
    extra = f' <span style="color:{muted}">{note}</span>' if note else ""
    if turn.corrected:
        extra += (
            f'<br><span style="color:{muted}">Corrected to:</span> '
            f"<i>{html.escape(turn.corrected)}</i>"
        )
    return question + f"<p>{text} {markers}{extra}</p>" + _evidence_html(answer, muted)


def _summary_html(summary: Any, muted: str) -> str:
    """A summary's sentences as a list, each with where it is (page, characters)."""
    if summary is None or not summary.sentences:
        return f'<p style="color:{muted}">No full sentences are indexed there to summarise.</p>'
    items = []
    for sentence in summary.sentences:
        where = Path(str(sentence.path)).name
        if sentence.page is not None:
            where += f", page {sentence.page}"
        items.append(
            f"<li>{html.escape(sentence.text)} "
            f'<span style="color:{muted}">({html.escape(where)})</span></li>'
        )
    capped = ""
    if summary.considered < summary.total:
        capped = (
            f'<p style="color:{muted}">From the first {summary.considered} of '
            f"{summary.total} sentences.</p>"
        )
    return "<ul>" + "".join(items) + "</ul>" + capped


def _evidence_html(answer: Any, muted: str) -> str:
    """The quoted sentence with the answer highlighted, and how sure the reader is.

    When the reader abstained, the closest sentence it found, so the person can
    judge for themselves.
    """
    evidence = getattr(answer, "evidence", None)
    if evidence is None:
        return ""
    text, a, b = evidence.text, evidence.answer_start, evidence.answer_end
    if a < b:
        quoted = (
            html.escape(text[:a])
            + f'<span style="background-color:#fff3a3;color:#000"><b>{html.escape(text[a:b])}'
            + "</b></span>"
            + html.escape(text[b:])
        )
    else:
        quoted = html.escape(text)
    if answer.abstained:
        lead = "The closest passage says:"
    else:
        words = getattr(answer, "certainty_label", "")
        lead = f"From the source ({words}):" if words else "From the source:"
    return f'<p style="margin-left:12px"><span style="color:{muted}">{lead}</span> “{quoted}”</p>'
