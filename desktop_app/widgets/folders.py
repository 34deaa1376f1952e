"""The folders panel: indexed folders with their counts, state and skipped files."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QPushButton,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

PathRole = Qt.ItemDataRole.UserRole + 1
STATE_LABELS = {
    "ready": "Ready",
    "indexing": "Indexing…",
    "queued": "Queued",
    "missing": "Folder missing",
}
COLUMNS = ("Folder", "Files", "Chunks", "State", "Updated")


def ago(stamp: float | None, now: float | None = None) -> str:
    """A short age for a sync time.

    >>> ago(100.0, now=160.0)
    '1 min ago'
    """
    if stamp is None:
        return "never"
    seconds = max(0.0, (now if now is not None else time.time()) - stamp)
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    return time.strftime("%Y-%m-%d", time.localtime(stamp))


class FoldersPanel(QWidget):
    """Lists the folders of the last ``Status``; emits add and remove requests.

    Updated in place on every status poll, so selection and expanded rows survive.
    """

    sig_add_requested = Signal()  # the window asks for a folder with a file dialog
    sig_remove_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tree = QTreeWidget(self)
        self.tree.setAccessibleName("Indexed folders")
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderLabels(list(COLUMNS))
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.setUniformRowHeights(True)
        header = self.tree.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in range(1, len(COLUMNS)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.tree.itemSelectionChanged.connect(self._update_buttons)

        self.add_button = QPushButton("Add folder…", self)
        self.add_button.setAccessibleName("Add folder")
        self.add_button.setToolTip("Index a folder and keep it up to date (Ctrl+O)")
        self.add_button.clicked.connect(self.sig_add_requested)
        self.remove_button = QPushButton("Remove", self)
        self.remove_button.setAccessibleName("Remove folder")
        self.remove_button.setToolTip("Forget the selected folder and its index")
        self.remove_button.setEnabled(False)
        self.remove_button.clicked.connect(self._remove_selected)

        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.tree)
        layout.addLayout(buttons)
        self._items: dict[str, QTreeWidgetItem] = {}
        self._errors: dict[str, tuple[Any, ...]] = {}

    def sizeHint(self) -> QSize:
        return QSize(380, 400)  # room for a folder name beside the four count columns

    # -- rendering -----------------------------------------------------------------------
    def show_status(self, status: Any) -> None:
        """Bring the rows in line with ``status.folders``."""
        seen = set()
        for folder in status.folders:
            key = str(folder.path)
            seen.add(key)
            item = self._items.get(key)
            if item is None:
                item = QTreeWidgetItem(self.tree)
                item.setData(0, PathRole, key)
                item.setText(0, Path(key).name or key)
                item.setToolTip(0, key)
                for column in (1, 2):
                    item.setTextAlignment(column, Qt.AlignmentFlag.AlignRight)
                item.setExpanded(True)  # skipped files show up without a click
                self._items[key] = item
            self._set_texts(
                item,
                {
                    1: str(folder.files),
                    2: str(folder.chunks),
                    3: STATE_LABELS.get(folder.state, folder.state),
                    4: ago(folder.synced_at),
                },
            )
            self._show_errors(key, item, tuple(folder.errors))
        for key in set(self._items) - seen:
            item = self._items.pop(key)
            self._errors.pop(key, None)
            self.tree.takeTopLevelItem(self.tree.indexOfTopLevelItem(item))
        self._update_buttons()

    def folder_row(self, path: str | Path) -> dict[str, str] | None:
        """What the row of ``path`` shows, by column name (tests, accessibility)."""
        item = self._items.get(str(path))
        if item is None:
            return None
        return {name: item.text(i) for i, name in enumerate(COLUMNS)}

    def selected_folder(self) -> str | None:
        item = self.tree.currentItem()
        while item is not None and item.parent() is not None:
            item = item.parent()
        return item.data(0, PathRole) if item is not None else None

    @staticmethod
    def _set_texts(item: QTreeWidgetItem, texts: dict[int, str]) -> None:
        for column, text in texts.items():
            if item.text(column) != text:  # untouched cells are not repainted
                item.setText(column, text)

    def _show_errors(self, key: str, item: QTreeWidgetItem, errors: tuple[Any, ...]) -> None:
        if self._errors.get(key) == errors:
            return
        self._errors[key] = errors
        item.takeChildren()
        if not errors:
            return
        group = QTreeWidgetItem(item, [f"Skipped files ({len(errors)})"])
        group.setFirstColumnSpanned(True)
        root = Path(key)
        for error in errors:
            path = Path(error.path)
            shown = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
            child = QTreeWidgetItem(group, [f"{shown}: {error.reason}"])
            child.setFirstColumnSpanned(True)
            child.setToolTip(0, f"{path}\n{error.reason}")

    # -- requests ------------------------------------------------------------------------
    def _remove_selected(self) -> None:
        folder = self.selected_folder()
        if folder is not None:
            self.sig_remove_requested.emit(folder)

    def _update_buttons(self) -> None:
        self.remove_button.setEnabled(self.selected_folder() is not None)
