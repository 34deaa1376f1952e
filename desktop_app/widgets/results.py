"""Search results: a list of passage cards and a preview of the selected passage.

Widgets here only render what the bridge delivered (``Hit`` objects, used by
their attributes) and emit requests; they never call the engine.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QPersistentModelIndex,
    QRectF,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QAbstractTextDocumentLayout, QPainter, QPalette, QTextDocument
from PySide6.QtWidgets import (
    QAbstractItemView,
    QListView,
    QMenu,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTextBrowser,
    QWidget,
)

HitRole = Qt.ItemDataRole.UserRole + 1
SNIPPET_CHARS = 280  # a card shows about three lines; the preview shows the whole passage
_STOPWORDS = frozenset(
    "a an and are as at be by did do does for from had has have how i in is it my of on or "
    "the to was what when where which who why will with you your".split()
)
_AnyIndex = QModelIndex | QPersistentModelIndex


def query_terms(query: str) -> list[str]:
    """The words of ``query`` worth highlighting.

    >>> query_terms("When is the dentist appointment?")
    ['dentist', 'appointment']
    """
    words = re.findall(r"\w+", query.lower())
    return [w for w in dict.fromkeys(words) if len(w) > 1 and w not in _STOPWORDS]


def highlight(text: str, terms: Sequence[str], color: str) -> str:
    """``text`` as HTML with every word starting with a query term marked.

    >>> highlight("Dentist on Friday", ["dentist"], "#ff0")
    '<span style="background-color:#ff0">Dentist</span> on Friday'
    """
    if not terms:
        return html.escape(text)
    pattern = re.compile(r"\b(" + "|".join(re.escape(t) for t in terms) + r")\w*", re.I)
    out, last = [], 0
    for match in pattern.finditer(text):
        out.append(html.escape(text[last : match.start()]))
        out.append(f'<span style="background-color:{color}">{html.escape(match[0])}</span>')
        last = match.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


_HEADING_LINE = re.compile(r"^\s{0,3}#{1,6}\s")


def snippet(text: str, terms: Sequence[str], limit: int = SNIPPET_CHARS) -> str:
    r"""At most ``limit`` characters of ``text``, starting near the first query term.

    Markdown heading lines are left out when there is more: the card shows the
    heading path already.

    >>> snippet("## Dentist\nOn Tuesday at 3pm.", ["tuesday"])
    'On Tuesday at 3pm.'
    """
    body = [line for line in text.splitlines() if not _HEADING_LINE.match(line)]
    flat = " ".join(" ".join(body).split()) or " ".join(text.split())
    if len(flat) <= limit:
        return flat
    lowered = flat.lower()
    first = min((i for i in (lowered.find(t) for t in terms) if i >= 0), default=0)
    start = max(0, min(first - limit // 4, len(flat) - limit))
    if start:
        start = flat.find(" ", start) + 1 or start
    cut = flat[start : start + limit].rsplit(" ", 1)[0]
    return ("…" if start else "") + cut + "…"


def muted_color(palette: QPalette) -> str:
    """A secondary-text colour halfway between text and background.

    ``PlaceholderText`` is often the text colour at half alpha, which ``name()``
    (no alpha) turns back into plain black in HTML.
    """
    text = palette.color(QPalette.ColorRole.Text)
    base = palette.color(QPalette.ColorRole.Base)
    red, green, blue = (
        (text.red() + base.red()) // 2,
        (text.green() + base.green()) // 2,
        (text.blue() + base.blue()) // 2,
    )
    return f"#{red:02x}{green:02x}{blue:02x}"


def short_path(path: Path) -> str:
    """``path`` with the home folder written as ``~``."""
    try:
        return "~/" + path.relative_to(Path.home()).as_posix()
    except ValueError:
        return str(path)


def location(hit: Any) -> str:
    """Page and heading of a hit, for the line under its file name."""
    parts = []
    if hit.page is not None:
        parts.append(f"page {hit.page}")
    if hit.heading_path:
        parts.append(" › ".join(hit.heading_path))
    return " · ".join(parts)


class ResultsModel(QAbstractListModel):
    """The hits of the last search, best first."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.hits: list[Any] = []
        self.query = ""
        self.terms: list[str] = []

    def set_results(self, query: str, hits: Sequence[Any]) -> None:
        self.beginResetModel()
        self.query, self.terms, self.hits = query, query_terms(query), list(hits)
        self.endResetModel()

    def rowCount(self, parent: _AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.hits)

    def data(self, index: _AnyIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self.hits):
            return None
        hit = self.hits[index.row()]
        if role == HitRole:
            return hit
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            where = location(hit)
            return f"{Path(hit.path).name}{', ' + where if where else ''}: {hit.text}"
        if role == Qt.ItemDataRole.ToolTipRole:
            similarity = f"\nsimilarity {hit.similarity:.2f}" if hit.similarity is not None else ""
            return f"{hit.path}{similarity}\nDouble-click to open"
        return None


class ResultDelegate(QStyledItemDelegate):
    """Paints a hit as a card: file name, folder · page/heading · score, snippet."""

    PADDING = 8

    def _document(self, option: QStyleOptionViewItem, index: _AnyIndex) -> QTextDocument:
        hit = index.data(HitRole)
        model = index.model()
        terms = model.terms if isinstance(model, ResultsModel) else []
        palette = option.palette
        muted = muted_color(palette)
        mark = palette.color(QPalette.ColorRole.Highlight)
        mark.setAlpha(70)
        mark_css = f"rgba({mark.red()},{mark.green()},{mark.blue()},0.3)"
        meta = [html.escape(short_path(Path(hit.path).parent))]
        if where := location(hit):
            meta.append(html.escape(where))
        meta.append(f"score {hit.score:.3f}")
        body = highlight(snippet(hit.text, terms), terms, mark_css)
        doc = QTextDocument()
        doc.setDefaultFont(option.font)
        doc.setDocumentMargin(0)
        doc.setHtml(
            f"<div><b>{html.escape(Path(hit.path).name)}</b></div>"
            f'<div style="color:{muted}; font-size:small">{" · ".join(meta)}</div>'
            f'<div style="margin-top:4px">{body}</div>'
        )
        return doc

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: _AnyIndex) -> None:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        opt.text = ""
        style = opt.widget.style() if opt.widget else None
        if style is not None:
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, opt.widget)
        doc = self._document(option, index)
        pad = self.PADDING
        doc.setTextWidth(option.rect.width() - 2 * pad)
        painter.save()
        painter.translate(option.rect.left() + pad, option.rect.top() + pad)
        ctx = QAbstractTextDocumentLayout.PaintContext()
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        ctx.palette.setColor(QPalette.ColorRole.Text, option.palette.color(role))
        clip = QRectF(0, 0, option.rect.width() - 2 * pad, option.rect.height() - 2 * pad)
        painter.setClipRect(clip)
        doc.documentLayout().draw(painter, ctx)
        painter.restore()
        painter.save()
        painter.setPen(option.palette.color(QPalette.ColorRole.Midlight))
        painter.drawLine(option.rect.bottomLeft(), option.rect.bottomRight())
        painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem, index: _AnyIndex) -> QSize:
        view = option.widget
        width = view.viewport().width() if isinstance(view, QListView) else 400
        doc = self._document(option, index)
        doc.setTextWidth(max(100, width - 2 * self.PADDING))
        return QSize(width, int(doc.size().height()) + 2 * self.PADDING + 1)


class ResultsView(QListView):
    """The result cards; emits ``sig_open_requested(path)`` on double-click or Enter."""

    sig_open_requested = Signal(str)
    sig_hit_selected = Signal(object)  # Hit, or None when the selection is cleared
    sig_ask_within = Signal(str)  # path: "Ask about this file only"
    sig_summarize = Signal(str)  # path: "Summarise this file"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.results = ResultsModel(self)
        self.setModel(self.results)
        self.setItemDelegate(ResultDelegate(self))
        self.setWordWrap(True)
        self.setUniformItemSizes(False)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setAccessibleName("Search results")
        self.activated.connect(self._open)
        self.selectionModel().currentChanged.connect(self._current_changed)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._menu)

    def menu_for(self, index: QModelIndex) -> QMenu | None:
        """The context menu of a result card (None off the cards)."""
        hit = index.data(HitRole) if index.isValid() else None
        if hit is None:
            return None
        path = str(hit.path)
        menu = QMenu(self)
        menu.addAction("Open file", lambda: self.sig_open_requested.emit(path))
        menu.addAction("Summarise this file", lambda: self.sig_summarize.emit(path))
        menu.addAction("Ask about this file only…", lambda: self.sig_ask_within.emit(path))
        folder = str(Path(path).parent)
        menu.addAction("Ask about its folder only…", lambda: self.sig_ask_within.emit(folder))
        return menu

    def _menu(self, position: Any) -> None:
        menu = self.menu_for(self.indexAt(position))
        if menu is not None:
            menu.exec(self.viewport().mapToGlobal(position))

    def set_results(self, query: str, hits: Sequence[Any]) -> None:
        self.results.set_results(query, hits)
        if hits:
            self.setCurrentIndex(self.results.index(0, 0))
        else:
            self.sig_hit_selected.emit(None)

    def _open(self, index: QModelIndex) -> None:
        hit = index.data(HitRole)
        if hit is not None:
            self.sig_open_requested.emit(str(hit.path))

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        self.sig_hit_selected.emit(current.data(HitRole) if current.isValid() else None)

    def resizeEvent(self, event: Any) -> None:
        super().resizeEvent(event)
        self.scheduleDelayedItemsLayout()  # card heights depend on the width


class PassagePreview(QTextBrowser):
    """The whole passage of the selected hit, query terms marked."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Passage preview")
        self.setOpenLinks(False)
        self.setPlaceholderText("Select a result to read its passage.")
        self.hit: Any = None

    def show_hit(self, hit: Any, query: str) -> None:
        self.hit = hit
        if hit is None:
            self.clear()
            return
        terms = query_terms(query)
        mark = self.palette().color(QPalette.ColorRole.Highlight)
        mark_css = f"rgba({mark.red()},{mark.green()},{mark.blue()},0.3)"
        muted = muted_color(self.palette())
        path = Path(hit.path)
        where = location(hit)
        paragraphs = "".join(_paragraph(p, terms, mark_css) for p in hit.text.split("\n\n"))
        self.setHtml(
            f"<h3>{html.escape(path.name)}</h3>"
            f'<p style="color:{muted}">{html.escape(short_path(path.parent))}'
            f"{' · ' + html.escape(where) if where else ''}</p>"
            f"{paragraphs}"
        )


def _paragraph(text: str, terms: Sequence[str], mark_css: str) -> str:
    """One paragraph of a passage as HTML; a Markdown heading line shows as bold."""
    text = text.strip()
    if not text:
        return ""
    if _HEADING_LINE.match(text) and "\n" not in text:
        return f"<p><b>{highlight(text.lstrip('#').strip(), terms, mark_css)}</b></p>"
    return f"<p>{highlight(text, terms, mark_css)}</p>"
