"""The status bar's indexing progress: task, done/total, current file, ETA, Pause, Cancel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QToolButton, QWidget


def format_eta(seconds: float | None) -> str:
    """A rough time left.

    >>> format_eta(75)
    'about 1 min 15 s left'
    """
    if seconds is None:
        return ""
    seconds = round(seconds)
    if seconds < 60:
        return f"about {seconds} s left"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"about {minutes} min {rest} s left"
    return f"about {minutes // 60} h {minutes % 60} min left"


def describe_progress(progress: Any) -> str:
    """One line for a progress snapshot: task, counts, current file, ETA."""
    parts = [progress.task]
    if progress.total:
        parts.append(f"{progress.done}/{progress.total}")
    elif progress.done:
        parts.append(str(progress.done))
    if progress.current:
        parts.append(Path(progress.current).name)
    if eta := format_eta(progress.eta_seconds):
        parts.append(eta)
    return " · ".join(parts)


def describe_idle(status: Any) -> str:
    """One line for an idle engine: what is indexed."""
    if not status.folders:
        return "No folders yet: add one to start"
    folders = len(status.folders)
    text = (
        f"{folders} folder{'s' * (folders != 1)} · {status.files} files · "
        f"{status.chunks} passages indexed"
    )
    if status.errors:
        text += f" · {len(status.errors)} skipped"
    return text + describe_learning(status)


def describe_learning(status: Any) -> str:
    """ " · 3 corrections waiting to be learned (next round in about 40 s)", or ""."""
    waiting = getattr(status, "corrections_waiting", 0)
    if not waiting:
        return ""
    text = f" · {waiting} correction{'s' * (waiting != 1)} waiting to be learned"
    due = getattr(status, "next_learning_in", None)
    if due is not None:
        text += " (next round starting)" if due < 1 else f" (next round in about {due:.0f} s)"
    return text


class IndexingProgress(QWidget):
    """Shows what the engine is doing; Cancel emits ``sig_cancel_requested``."""

    sig_cancel_requested = Signal()
    sig_pause_requested = Signal(bool)  # True: pause, False: resume

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.label = QLabel("Starting…", self)
        self.label.setAccessibleName("Indexing status")
        self.bar = QProgressBar(self)
        self.bar.setAccessibleName("Indexing progress")
        self.bar.setFixedWidth(160)
        self.bar.setTextVisible(False)
        self.bar.hide()
        self.cancel_button = QToolButton(self)
        self.cancel_button.setText("Cancel")
        self.cancel_button.setAccessibleName("Cancel indexing")
        self.cancel_button.setToolTip("Stop indexing (Esc); it picks up again on the next sync")
        self.cancel_button.clicked.connect(self.sig_cancel_requested)
        self.cancel_button.hide()
        self.pause_button = QToolButton(self)
        self.pause_button.setText("Pause")
        self.pause_button.setCheckable(True)
        self.pause_button.setAccessibleName("Pause indexing")
        self.pause_button.setToolTip("Hold indexing after the current file; search keeps working")
        self.pause_button.toggled.connect(self._pause_toggled)
        self.pause_button.hide()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 4, 0)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.bar)
        layout.addWidget(self.pause_button)
        layout.addWidget(self.cancel_button)

    def _pause_toggled(self, paused: bool) -> None:
        self._label_pause_button(paused)
        self.sig_pause_requested.emit(paused)

    def _label_pause_button(self, paused: bool) -> None:
        self.pause_button.setText("Resume" if paused else "Pause")
        self.pause_button.setAccessibleName("Resume indexing" if paused else "Pause indexing")

    def show_status(self, status: Any) -> None:
        progress = status.progress
        busy = progress is not None or status.busy or status.queued > 0
        paused = status.paused
        if progress is not None:
            text = describe_progress(progress)
            if paused:
                text = "Paused · " + text
            if status.queued:
                text += f" · {status.queued} more queued"
        elif busy:
            text = "Preparing the index…"
        else:
            text = describe_idle(status)
        if self.label.text() != text:
            self.label.setText(text)
        if progress is not None and progress.total:
            self.bar.setRange(0, progress.total)
            self.bar.setValue(min(progress.done, progress.total))
        else:
            self.bar.setRange(0, 0)  # busy indicator
        self.bar.setVisible(busy)
        self.cancel_button.setVisible(busy)
        self.pause_button.setVisible(busy or paused)
        if self.pause_button.isChecked() != paused:
            self.pause_button.blockSignals(True)  # the engine's state, not a new request
            self.pause_button.setChecked(paused)
            self._label_pause_button(paused)
            self.pause_button.blockSignals(False)

    def show_message(self, text: str) -> None:
        self.label.setText(text)
