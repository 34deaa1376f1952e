"""The sources of an answer: one card per passage, the supporting span marked.

A card shows the file name, its folder, the page or line, the score, and a
snippet in which the exact span the answer cites is highlighted. Its buttons
ask the window to view, open or reveal the file and to rate the passage.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QScrollArea,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from desktop_app.widgets.results import muted_color, short_path

CONTEXT_CHARS = 140  # characters of the passage shown either side of the cited span
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s.*$", re.M)  # the card shows the file; headings add noise


def _flat(text: str) -> str:
    """Markdown heading lines dropped, whitespace runs collapsed (offsets no longer matter)."""
    return " ".join(_HEADING.sub(" ", text).split())


def span_snippet(text: str, start: int, end: int, mark_css: str) -> str:
    """HTML of ``text`` around ``text[start:end]``, that span highlighted.

    >>> span_snippet("The dentist is on Tuesday.", 18, 25, "#ff0")
    'The dentist is on <span style="background-color:#ff0">Tuesday</span>.'
    """
    start, end = max(0, start), min(len(text), end)
    left = max(0, start - CONTEXT_CHARS)
    right = min(len(text), end + CONTEXT_CHARS)
    if left:
        left = text.find(" ", left, start) + 1 or left
    before = ("…" if left else "") + _flat(text[left:start] + "x")[:-1]
    after = _flat("x" + text[end:right])[1:] + ("…" if right < len(text) else "")
    return (
        f"{html.escape(before)}"
        f'<span style="background-color:{mark_css}">{html.escape(text[start:end])}</span>'
        f"{html.escape(after)}"
    )


def plain_snippet(text: str, limit: int = 2 * CONTEXT_CHARS) -> str:
    """The start of a passage that supports no citation."""
    flat = _flat(text) or " ".join(text.split())
    return html.escape(flat if len(flat) <= limit else flat[:limit].rsplit(" ", 1)[0] + "…")


def cited_span(answer: Any, source: int) -> tuple[int, int] | None:
    """Document offsets of the span the answer cites in source ``source``, if any."""
    for citation in answer.citations:
        if citation.source == source:
            return int(citation.start), int(citation.end)
    return None


class SourceCard(QFrame):
    """One passage of an answer, with view/open/reveal and helpful/not helpful buttons."""

    sig_view = Signal(int)  # source index
    sig_open = Signal(str)  # path
    sig_reveal = Signal(str)  # path
    sig_rate = Signal(int, bool)  # source index, helpful

    def __init__(
        self, index: int, hit: Any, span: tuple[int, int] | None, line: int | None, parent: QWidget
    ) -> None:
        super().__init__(parent)
        self.index, self.hit, self.span = index, hit, span
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAccessibleName(f"Source {index + 1}: {Path(hit.path).name}")
        palette = self.palette()
        mark = palette.color(QPalette.ColorRole.Highlight)
        mark_css = f"rgba({mark.red()},{mark.green()},{mark.blue()},0.35)"
        muted = muted_color(palette)
        path = Path(hit.path)
        where = [short_path(path.parent)]
        if hit.page is not None:
            where.append(f"page {hit.page}")
        elif line is not None:
            where.append(f"line {line}")
        where.append(f"score {hit.score:.2f}")
        if span is not None:
            body = span_snippet(hit.text, span[0] - hit.start, span[1] - hit.start, mark_css)
        else:
            body = plain_snippet(hit.text)
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.TextFormat.RichText)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.label.setText(
            f"<b>[{index + 1}] {html.escape(path.name)}</b>"
            f"{' · cited' if span is not None else ''}<br>"
            f'<span style="color:{muted}">{html.escape(" · ".join(where))}</span>'
            f"<p>{body}</p>"
        )
        self.view_button = self._button("View", "Show the passage in the document", self._view)
        self.open_button = self._button(
            "Open",
            "Open the file in its default application",
            lambda: self.sig_open.emit(str(path)),
        )
        self.reveal_button = self._button(
            "Folder", "Show the file in its folder", lambda: self.sig_reveal.emit(str(path))
        )
        self.up_button = self._button("", "This passage helped", lambda: self._rate(True))
        self.down_button = self._button("", "This passage did not help", lambda: self._rate(False))
        icons = (QStyle.StandardPixmap.SP_DialogYesButton, QStyle.StandardPixmap.SP_DialogNoButton)
        for button, icon in zip((self.up_button, self.down_button), icons, strict=True):
            button.setCheckable(True)
            button.setIcon(self.style().standardIcon(icon))  # themed, drawn for any DPI
        buttons = QHBoxLayout()
        for button in (self.view_button, self.open_button, self.reveal_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        buttons.addWidget(self.up_button)
        buttons.addWidget(self.down_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.label)
        layout.addLayout(buttons)

    def _button(self, text: str, name: str, slot: Any) -> QToolButton:
        button = QToolButton(self)
        button.setText(text)
        button.setAccessibleName(name)
        button.setToolTip(name)
        button.clicked.connect(slot)
        return button

    def _view(self) -> None:
        self.sig_view.emit(self.index)

    def _rate(self, helpful: bool) -> None:
        (self.down_button if helpful else self.up_button).setChecked(False)
        (self.up_button if helpful else self.down_button).setChecked(True)
        self.sig_rate.emit(self.index, helpful)


class SourcesPanel(QScrollArea):
    """The cards of one answer's sources, best first; cited ones are marked."""

    sig_view = Signal(object, object)  # Hit, (start, end) document span or None
    sig_open = Signal(str)
    sig_reveal = Signal(str)
    sig_rate = Signal(object, bool)  # Hit, helpful

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Sources")
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setMinimumWidth(340)  # room for a card's five buttons
        self.cards: list[SourceCard] = []
        self.answer: Any = None
        self._empty = QLabel("The passages an answer uses appear here.", self)
        self._empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._empty.setWordWrap(True)
        self.setWidget(self._empty)

    def show_answer(self, answer: Any, lines: dict[int, int] | None = None) -> None:
        """Show ``answer.sources``; ``lines`` maps a source index to its line number."""
        self.answer = answer
        self.cards = []
        sources = list(answer.sources) if answer is not None else []
        if not sources:
            self._empty = QLabel("No passages for this answer." if answer is not None else "", self)
            self._empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
            self.setWidget(self._empty)
            return
        box = QWidget(self)
        layout = QVBoxLayout(box)
        order = sorted(range(len(sources)), key=lambda i: i not in answer.cited)
        for i in order:
            card = SourceCard(i, sources[i], cited_span(answer, i), (lines or {}).get(i), box)
            card.sig_view.connect(self.view)
            card.sig_open.connect(self.sig_open)
            card.sig_reveal.connect(self.sig_reveal)
            card.sig_rate.connect(lambda index, ok: self.sig_rate.emit(sources[index], ok))
            layout.addWidget(card)
            self.cards.append(card)
        layout.addStretch(1)
        self.setWidget(box)

    def view(self, index: int) -> None:
        """Ask to show source ``index`` in the viewer at its cited span (or the passage)."""
        if self.answer is None or not 0 <= index < len(self.answer.sources):
            return
        hit = self.answer.sources[index]
        span = cited_span(self.answer, index) or (int(hit.start), int(hit.end))
        for card in self.cards:
            if card.index == index:
                self.ensureWidgetVisible(card)
        self.sig_view.emit(hit, span)
