"""Quick ask from anywhere: a tray icon and a small ask window.

The tray icon (``QSystemTrayIcon``) stays in the panel while Kenning runs; its
menu opens :class:`QuickAsk`, a small always-on-top window with one question
line and the answer with the sentence it came from. It asks through the same
:class:`~desktop_app.bridge.EngineBridge` as the main window, so nothing waits
on the engine. Where the desktop has no tray (some Wayland and tiling setups)
nothing is shown and the window works as before.

From anywhere else: a desktop shortcut bound to ``kenning --quick-ask`` opens the
same window in the running Kenning (:mod:`desktop_app.single_instance` says why
that, not a global keyboard hook).
"""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QIcon
from PySide6.QtWidgets import QLabel, QMenu, QSystemTrayIcon, QVBoxLayout, QWidget

from desktop_app.bridge import EngineBridge
from desktop_app.widgets.ask import QuestionBox


class QuickAsk(QWidget):
    """One question, one answer: the small window the tray opens."""

    def __init__(self, bridge: EngineBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Tool | Qt.WindowType.WindowStaysOnTopHint)
        self.setWindowTitle("Ask Kenning")
        self.bridge = bridge
        self.ask_id: int | None = None
        self.question = QuestionBox(self)
        self.question.setAccessibleName("Quick question")
        self.question.sig_ask.connect(self.ask)
        self.question.sig_stop.connect(self.hide)
        self.answer = QLabel("Ask a question about your documents.", self)
        self.answer.setAccessibleName("Quick answer")
        self.answer.setWordWrap(True)
        self.answer.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.addWidget(self.question)
        layout.addWidget(self.answer, 1)
        self.resize(460, 160)
        bridge.sig_answer_token.connect(self._token)
        bridge.sig_answer_done.connect(self._done)
        bridge.sig_answer_ended.connect(self._ended)
        self._streamed = ""

    def open(self) -> None:
        """Show, raise and focus the question line."""
        self.show()
        self.raise_()
        self.activateWindow()
        self.question.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.question.selectAll()

    def ask(self, question: str) -> None:
        question = question.strip()
        if not question or self.ask_id is not None:
            return
        self._streamed = ""
        self.answer.setText("Reading your documents…")
        self.ask_id = self.bridge.ask(question)

    def _token(self, ask_id: int, piece: str) -> None:
        if ask_id == self.ask_id:
            self._streamed += piece
            self.answer.setText(html.escape(self._streamed))

    def _done(self, ask_id: int, answer: Any, _lines: Any) -> None:
        if ask_id != self.ask_id:
            return
        self.answer.setText(quick_answer_html(answer))

    def _ended(self, ask_id: int) -> None:
        if ask_id == self.ask_id:
            self.ask_id = None


def quick_answer_html(answer: Any) -> str:
    """The answer, how sure, and the quoted sentence with its file: what fits a small window."""
    text = html.escape(answer.text)
    parts = [f"<b>{text}</b>"]
    if answer.certainty_label:
        parts[0] += f" <i>({html.escape(answer.certainty_label)})</i>"
    evidence = answer.evidence
    if evidence is not None and answer.sources:
        name = html.escape(answer.sources[evidence.source].path.name)
        lead = "The closest passage says" if answer.abstained else "From"
        sentence = html.escape(evidence.text)
        parts.append(f"{lead} <i>{name}</i>: “{sentence}”")
    return "<br>".join(parts)


class Tray(QSystemTrayIcon):
    """The panel icon: Ask, Show Kenning, Quit."""

    def __init__(self, quick: QuickAsk, window: QWidget, icon: QIcon) -> None:
        super().__init__(icon, window)
        self.setToolTip("Kenning: ask your documents")
        self.quick = quick
        self.menu = QMenu(window)
        self.ask_action = QAction("Ask Kenning…", self.menu)
        self.ask_action.triggered.connect(self.quick.open)
        self.menu.addAction(self.ask_action)
        self.menu.addAction("Show Kenning", lambda: bring_up(window))
        self.menu.addSeparator()
        self.menu.addAction("Quit", window.close)
        self.setContextMenu(self.menu)
        self.activated.connect(self._activated)

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason == QSystemTrayIcon.ActivationReason.Trigger:
            self.quick.open()


def bring_up(window: QWidget) -> None:
    """Show ``window`` in front, restored if it was minimised."""
    if window.isMinimized():
        window.showNormal()
    window.show()
    window.raise_()
    window.activateWindow()


def install_tray(quick: QuickAsk, window: QWidget) -> Tray | None:
    """The tray icon when the desktop has a tray, else None (the window is enough)."""
    if not QSystemTrayIcon.isSystemTrayAvailable():
        return None
    tray = Tray(quick, window, window.windowIcon())
    tray.show()
    return tray
