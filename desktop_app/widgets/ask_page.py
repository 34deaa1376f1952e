"""The Ask tab: conversation picker, transcript, question row and the answer's sources."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from desktop_app.widgets.ask import QuestionBox, Transcript, Turn
from desktop_app.widgets.sources import SourcesPanel


def conversation_label(entry: dict[str, Any]) -> str:
    """One line for the conversation picker.

    >>> conversation_label({"question": "When is the dentist?", "turns": 2, "created_at": 0})
    'When is the dentist? (2 questions, 1970-01-01)'
    """
    question = str(entry.get("question") or "…")
    if len(question) > 60:
        question = question[:57] + "…"
    turns = int(entry.get("turns") or 0)
    day = time.strftime("%Y-%m-%d", time.gmtime(float(entry.get("created_at") or 0)))
    return f"{question} ({turns} question{'s' * (turns != 1)}, {day})"


class AskPage(QWidget):
    """Widgets of the Ask tab; the window wires them to the bridge."""

    sig_conversation_chosen = Signal(str)  # conversation id
    sig_new_conversation = Signal()
    sig_scope_cleared = Signal()  # "Ask all documents" on the scope bar

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.conversations = QComboBox(self)
        self.conversations.setAccessibleName("Conversations")
        self.conversations.setToolTip("Reopen an earlier conversation and continue it")
        self.conversations.setMinimumContentsLength(30)
        self.conversations.activated.connect(self._chosen)
        self.new_button = QPushButton("New conversation", self)
        self.new_button.setAccessibleName("New conversation")
        self.new_button.setToolTip("Start a new conversation (Ctrl+N)")
        self.new_button.clicked.connect(self.sig_new_conversation)
        top = QHBoxLayout()
        top.addWidget(self.conversations, 1)
        top.addWidget(self.new_button)

        self.transcript = Transcript(self)
        self.correct_button = QPushButton("Correct this answer…", self)
        self.correct_button.setAccessibleName("Correct this answer")
        self.correct_button.setToolTip("Write the right answer; Kenning remembers it (Ctrl+E)")
        self.correct_button.setEnabled(False)
        answer_row = QHBoxLayout()
        answer_row.addStretch(1)
        answer_row.addWidget(self.correct_button)

        self.question = QuestionBox(self)
        self.ask_button = QPushButton("Ask", self)
        self.ask_button.setAccessibleName("Ask")
        self.ask_button.setDefault(True)
        self.ask_button.clicked.connect(self.question.returnPressed)
        self.stop_button = QPushButton("Stop", self)
        self.stop_button.setAccessibleName("Stop the answer")
        self.stop_button.setToolTip("Stop the answer (Esc)")
        self.stop_button.setEnabled(False)
        self.stop_button.clicked.connect(self.question.sig_stop)
        # Shown while questions are asked of one file or folder only.
        self.scope_label = QLabel(self)
        self.scope_label.setAccessibleName("Asking about")
        self.scope_clear = QPushButton("Ask all documents", self)
        self.scope_clear.setAccessibleName("Ask all documents again")
        self.scope_clear.clicked.connect(self.sig_scope_cleared)
        self.scope_bar = QWidget(self)
        scope_row = QHBoxLayout(self.scope_bar)
        scope_row.setContentsMargins(0, 0, 0, 0)
        scope_row.addWidget(self.scope_label, 1)
        scope_row.addWidget(self.scope_clear)
        self.scope_bar.hide()
        question_row = QHBoxLayout()
        question_row.addWidget(self.question, 1)
        question_row.addWidget(self.ask_button)
        question_row.addWidget(self.stop_button)

        left = QWidget(self)
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addLayout(top)
        left_layout.addWidget(self.transcript, 1)
        left_layout.addLayout(answer_row)
        left_layout.addWidget(self.scope_bar)
        left_layout.addLayout(question_row)

        self.sources = SourcesPanel(self)
        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.sources)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setSizes([560, 380])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.splitter)
        self.show_conversations([])

    def show_scope(self, path: str | None) -> None:
        """Say which file or folder questions are asked of (None: all documents)."""
        self.scope_bar.setVisible(path is not None)
        if path is not None:
            self.scope_label.setText(f"Asking about {path} only")
            self.scope_label.setToolTip(path)

    def set_asking(self, asking: bool) -> None:
        self.stop_button.setEnabled(asking)
        self.ask_button.setEnabled(not asking)
        if asking:
            self.correct_button.setEnabled(False)

    def last_turn(self) -> Turn | None:
        """The latest question's turn (a summary shown since is not an answer to correct)."""
        asked = [t for t in self.transcript.turns if t.kind == "question"]
        return asked[-1] if asked else None

    def show_conversations(self, entries: list[dict[str, Any]], current: str | None = None) -> None:
        self.conversations.blockSignals(True)
        self.conversations.clear()
        self.conversations.addItem("Current conversation", "")
        for entry in entries:
            cid = str(entry["conversation_id"])
            if cid == current:
                self.conversations.setItemText(0, conversation_label(entry))
                self.conversations.setItemData(0, cid)
                continue
            self.conversations.addItem(conversation_label(entry), cid)
        self.conversations.setCurrentIndex(0)
        self.conversations.blockSignals(False)

    def _chosen(self, index: int) -> None:
        cid = self.conversations.itemData(index)
        if cid:
            self.sig_conversation_chosen.emit(str(cid))
