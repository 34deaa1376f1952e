"""Correcting answers and seeing what Kenning has learned from the corrections.

:class:`CorrectionDialog` edits one answer; :class:`LearnedDialog` lists the
corrections (date, question, answer) with forget and undo, and the adapter's
training state, versions and roll back. Both only emit requests.
"""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

CorrectionRole = Qt.ItemDataRole.UserRole + 1
COLUMNS = ("Date", "Question", "Answer", "State")


class CorrectionDialog(QDialog):
    """Edit an answer; accepted, :attr:`corrected` holds the new text."""

    def __init__(self, question: str, answer: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Correct this answer")
        self.setAccessibleName("Correct this answer")
        self.resize(520, 300)
        self.question = question
        label = QLabel(f"<b>{_escape(question)}</b><br>Write the right answer:", self)
        label.setWordWrap(True)
        self.editor = QPlainTextEdit(answer, self)
        self.editor.setAccessibleName("Corrected answer")
        self.editor.selectAll()
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.save_button = buttons.button(QDialogButtonBox.StandardButton.Save)
        self.editor.textChanged.connect(lambda: self.save_button.setEnabled(bool(self.corrected)))
        layout = QVBoxLayout(self)
        layout.addWidget(label)
        layout.addWidget(self.editor, 1)
        layout.addWidget(buttons)

    @property
    def corrected(self) -> str:
        return self.editor.toPlainText().strip()


class LearnedDialog(QDialog):
    """What Kenning has learned: corrections with forget/undo, and the adapter."""

    sig_refresh = Signal()
    sig_forget = Signal(object)  # correction id
    sig_undo = Signal(object)  # the forgotten Correction, to record again
    sig_rollback = Signal(object)  # adapter version
    sig_consolidate = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("What Kenning has learned")
        self.setAccessibleName("What Kenning has learned")
        self.resize(760, 520)
        self.corrections: list[Any] = []

        self.tree = QTreeWidget(self)
        self.tree.setAccessibleName("Corrections")
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setRootIsDecorated(False)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        header = self.tree.header()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(3, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.itemSelectionChanged.connect(self._update_buttons)
        self.empty = QLabel(
            "No corrections yet. Use “Correct this answer” under an answer to teach Kenning.",
            self,
        )
        self.empty.setWordWrap(True)
        self.forget_button = QPushButton("Forget", self)
        self.forget_button.setAccessibleName("Forget the selected correction")
        self.forget_button.clicked.connect(self._forget)
        self.undo_button = QPushButton("Undo forget", self)
        self.undo_button.setAccessibleName("Teach the forgotten correction again")
        self.undo_button.clicked.connect(self._undo)
        row = QHBoxLayout()
        row.addWidget(self.empty, 1)
        row.addWidget(self.undo_button)
        row.addWidget(self.forget_button)

        adapter = QGroupBox("Personal adapter", self)
        self.adapter_state = QLabel("Not available in this version yet.", adapter)
        self.adapter_state.setAccessibleName("Adapter state")
        self.adapter_state.setWordWrap(True)
        self.adapter_progress = QProgressBar(adapter)
        self.adapter_progress.setAccessibleName("Adapter training progress")
        self.adapter_progress.setRange(0, 100)
        self.adapter_progress.hide()
        self.versions = QComboBox(adapter)
        self.versions.setAccessibleName("Adapter versions")
        self.rollback_button = QPushButton("Roll back", adapter)
        self.rollback_button.setAccessibleName("Roll back to the selected adapter version")
        self.rollback_button.clicked.connect(self._rollback)
        self.train_button = QPushButton("Train now", adapter)
        self.train_button.setAccessibleName("Train the adapter on the corrections now")
        self.train_button.clicked.connect(self.sig_consolidate)
        adapter_row = QHBoxLayout()
        adapter_row.addWidget(QLabel("Version:", adapter))
        adapter_row.addWidget(self.versions, 1)
        adapter_row.addWidget(self.rollback_button)
        adapter_row.addWidget(self.train_button)
        adapter_layout = QVBoxLayout(adapter)
        adapter_layout.addWidget(self.adapter_state)
        adapter_layout.addWidget(self.adapter_progress)
        adapter_layout.addLayout(adapter_row)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.hide)
        refresh = buttons.addButton("Refresh", QDialogButtonBox.ButtonRole.ActionRole)
        refresh.clicked.connect(self.sig_refresh)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tree, 1)
        layout.addLayout(row)
        layout.addWidget(adapter)
        layout.addWidget(buttons)
        self.show_learning(None)
        self._update_buttons()

    def show_corrections(self, corrections: list[Any]) -> None:
        """List corrections newest first; forgotten and replaced ones say so."""
        selected = self.selected()
        self.corrections = sorted(corrections, key=lambda c: c.created_at, reverse=True)
        self.tree.clear()
        for correction in self.corrections:
            state = "forgotten" if correction.forgotten else "in effect"
            if getattr(correction, "superseded_by", None) is not None and not correction.forgotten:
                state = "replaced by a newer one"
            item = QTreeWidgetItem(
                self.tree,
                [
                    time.strftime("%Y-%m-%d %H:%M", time.localtime(correction.created_at)),
                    correction.question,
                    correction.answer,
                    state,
                ],
            )
            item.setData(0, CorrectionRole, correction)
            item.setToolTip(1, correction.question)
            item.setToolTip(2, correction.answer)
            if selected is not None and correction.id == selected.id:
                self.tree.setCurrentItem(item)
        self.empty.setVisible(not self.corrections)
        self._update_buttons()

    def show_learning(self, learning: dict[str, Any] | None) -> None:
        """The adapter: ``{"status": AdapterStatus | None, "versions": list | None}``."""
        status = (learning or {}).get("status")
        versions = (learning or {}).get("versions")
        available = status is not None
        if not available:
            self.adapter_state.setText(
                "The personal adapter is not available in this version of Kenning yet; "
                "corrections are still remembered and used."
            )
            self.adapter_progress.hide()
        else:
            state = str(getattr(status, "state", status))
            version = getattr(status, "version", None)
            progress = getattr(status, "progress", None)
            text = f"State: <b>{_escape(state)}</b>"
            if version is not None:
                text += " · base model" if version == 0 else f" · version {version}"
            trained, pending = getattr(status, "trained", None), getattr(status, "pending", None)
            if trained is not None and pending is not None:
                text += f" · {trained} correction{'s' * (trained != 1)} learned, {pending} pending"
            self.adapter_state.setText(text)
            training = state == "training" and isinstance(progress, int | float)
            self.adapter_progress.setVisible(training)
            if isinstance(progress, int | float) and training:
                self.adapter_progress.setValue(int(progress * 100))
        current = self.versions.currentData()
        self.versions.clear()
        if versions is not None:
            self.versions.addItem("0 · the base model, no corrections", 0)
        for entry in versions or []:
            number = int(getattr(entry, "version", entry))
            label = str(number)
            created = getattr(entry, "created_at", None)
            if created is not None:
                label += " · " + time.strftime("%Y-%m-%d %H:%M", time.localtime(created))
            learned = getattr(entry, "corrections", None)
            if learned is not None:
                label += f" · {len(learned)} corrections"
            self.versions.addItem(label, number)
        if current is not None and self.versions.findData(current) >= 0:
            self.versions.setCurrentIndex(self.versions.findData(current))
        elif status is not None and self.versions.findData(getattr(status, "version", -1)) >= 0:
            self.versions.setCurrentIndex(self.versions.findData(status.version))
        self.versions.setEnabled(versions is not None)
        self.rollback_button.setEnabled(bool(versions))
        self.train_button.setEnabled(available)

    def selected(self) -> Any:
        item = self.tree.currentItem()
        return item.data(0, CorrectionRole) if item is not None else None

    def _forget(self) -> None:
        correction = self.selected()
        if correction is not None and not correction.forgotten:
            self.sig_forget.emit(correction.id)

    def _undo(self) -> None:
        correction = self.selected()
        if correction is not None and correction.forgotten:
            self.sig_undo.emit(correction)

    def _rollback(self) -> None:
        version = self.versions.currentData()
        if version is not None:
            self.sig_rollback.emit(version)

    def _update_buttons(self) -> None:
        correction = self.selected()
        self.forget_button.setEnabled(correction is not None and not correction.forgotten)
        self.undo_button.setEnabled(correction is not None and bool(correction.forgotten))


def _escape(text: str) -> str:
    import html

    return html.escape(text)
