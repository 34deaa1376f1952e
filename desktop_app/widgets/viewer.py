"""The internal viewer: a document's extracted text, scrolled to the passage, span marked.

``Hit.start/end`` are offsets into the text the engine extracted, so the viewer
shows that text (parsed on the bridge's side lane, never on the GUI thread):
plain text and Markdown as written, HTML/DOCX/EPUB as their text blocks, PDF as
the extracted text of each page (not the rendered page).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor, QFont, QPalette, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)


class DocumentViewer(QDialog):
    """Shows one document; :meth:`show_document` marks and centres a span.

    Non-modal, reused for every source; "Open" and "Show in folder" emit requests.
    """

    sig_open = Signal(str)
    sig_reveal = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Source")
        self.setAccessibleName("Document viewer")
        self.resize(760, 620)
        self.path = ""
        self.span: tuple[int, int] | None = None
        self.heading = QLabel(self)
        self.heading.setWordWrap(True)
        self.heading.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.text = QPlainTextEdit(self)
        self.text.setReadOnly(True)
        self.text.setAccessibleName("Document text")
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.WidgetWidth)
        self.text.setFont(QFont(self.text.font().family(), self.text.font().pointSize() + 1))
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.hide)
        self.open_button = QPushButton("Open in default application", self)
        self.open_button.setAccessibleName("Open the file in its default application")
        self.open_button.clicked.connect(lambda: self.sig_open.emit(self.path))
        self.reveal_button = QPushButton("Show in folder", self)
        self.reveal_button.setAccessibleName("Show the file's folder")
        self.reveal_button.clicked.connect(lambda: self.sig_reveal.emit(self.path))
        for button in (self.reveal_button, self.open_button):
            buttons.addButton(button, QDialogButtonBox.ButtonRole.ActionRole)
        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(self.text, 1)
        layout.addWidget(buttons)

    def show_loading(self, path: str) -> None:
        self.path = path
        self.setWindowTitle(Path(path).name)
        self.heading.setText(f"<b>{Path(path).name}</b><br>Opening…")
        self.text.clear()
        self.show()
        self.raise_()

    def show_document(self, path: str, document: Any, span: tuple[int, int] | None) -> None:
        """Show ``document.text`` and highlight ``text[span[0]:span[1]]``, centred."""
        self.path = path
        text: str = document.text
        self.setWindowTitle(Path(path).name)
        self.text.setPlainText(text)
        where = [str(Path(path).parent)]
        self.span = None
        if span is not None:
            start, end = max(0, span[0]), min(len(text), span[1])
            self.span = (start, end)
            page = document.page_at(start)
            where.append(f"page {page}" if page else f"line {text.count(chr(10), 0, start) + 1}")
            if document.kind == "pdf":
                where.append("extracted text")
            self._mark(_utf16(text, start), _utf16(text, end))
        self.heading.setText(f"<b>{Path(path).name}</b><br>{' · '.join(where)}")
        self.show()
        self.raise_()

    def highlighted_text(self) -> str:
        """The text under the highlight (tests, screen readers)."""
        selections = self.text.extraSelections()
        return selections[0].cursor.selectedText() if selections else ""

    def _mark(self, start: int, end: int) -> None:
        cursor = QTextCursor(self.text.document())
        cursor.setPosition(start)
        cursor.setPosition(end, QTextCursor.MoveMode.KeepAnchor)
        selection = QTextEdit.ExtraSelection()
        selection.cursor = cursor
        fmt = QTextCharFormat()
        mark = QColor(self.palette().color(QPalette.ColorRole.Highlight))
        mark.setAlpha(110)
        fmt.setBackground(mark)
        selection.format = fmt
        self.text.setExtraSelections([selection])
        caret = QTextCursor(self.text.document())
        caret.setPosition(start)
        self.text.setTextCursor(caret)
        self.text.centerCursor()


def _utf16(text: str, offset: int) -> int:
    """Qt counts UTF-16 units, Python code points: they differ past the BMP (emoji).

    >>> _utf16("a\U0001f600b", 2)
    3
    """
    return len(text[:offset].encode("utf-16-le")) // 2
