"""The one error dialog: a readable message up front, the details to copy behind a button."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QStyle,
    QVBoxLayout,
    QWidget,
)


class ErrorDialog(QDialog):
    """Shows ``message``; "Show details" reveals ``details`` (a traceback, say) to copy.

    Args:
        title: What failed, as the window title and headline ("Could not add the folder").
        message: What happened, in words a person reads.
        details: Technical details for a bug report; hidden until asked for.
    """

    def __init__(
        self, title: str, message: str, details: str = "", parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.setAccessibleName(title)
        self.setMinimumWidth(440)

        icon = QLabel(self)
        size = self.style().pixelMetric(QStyle.PixelMetric.PM_MessageBoxIconSize)
        icon.setPixmap(
            self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning).pixmap(size)
        )
        icon.setAlignment(Qt.AlignmentFlag.AlignTop)
        self.headline = QLabel(f"<b>{html.escape(title)}</b>", self)
        self.message = QLabel(message, self)
        self.message.setTextFormat(Qt.TextFormat.PlainText)
        self.message.setWordWrap(True)
        self.message.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.message.setAccessibleName("Error message")
        text = QVBoxLayout()
        text.addWidget(self.headline)
        text.addWidget(self.message)
        top = QHBoxLayout()
        top.addWidget(icon)
        top.addLayout(text, 1)

        self.details = QPlainTextEdit(details, self)
        self.details.setReadOnly(True)
        self.details.setAccessibleName("Error details")
        self.details.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.details.setMinimumHeight(160)
        self.details.hide()

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        buttons.accepted.connect(self.accept)
        self.details_button = QPushButton("Show details", self)
        self.details_button.setCheckable(True)
        self.details_button.setAccessibleName("Show error details")
        self.details_button.toggled.connect(self._toggle_details)
        self.copy_button = QPushButton("Copy details", self)
        self.copy_button.setAccessibleName("Copy error details")
        self.copy_button.clicked.connect(self.copy_details)
        for button in (self.details_button, self.copy_button):
            buttons.addButton(button, QDialogButtonBox.ButtonRole.ActionRole)
            button.setVisible(bool(details))

        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.details, 1)
        layout.addWidget(buttons)

    def copy_details(self) -> None:
        """Put the title, message and details on the clipboard, ready for a report."""
        text = f"{self.windowTitle()}\n{self.message.text()}\n\n{self.details.toPlainText()}"
        QGuiApplication.clipboard().setText(text)

    def _toggle_details(self, shown: bool) -> None:
        self.details.setVisible(shown)
        self.details_button.setText("Hide details" if shown else "Show details")
        self.adjustSize()
