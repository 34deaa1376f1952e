"""Kenning's main window: search, results, folders and indexing progress.

The window wires widgets to the :class:`~desktop_app.bridge.EngineBridge`:
widgets emit requests, the window hands them to the bridge, and the bridge's
``sig_...`` signals come back to be rendered. Nothing here waits on the engine.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, QTimer, QUrl
from PySide6.QtGui import QAction, QCloseEvent, QDesktopServices, QDragEnterEvent, QDropEvent
from PySide6.QtGui import QKeySequence as Keys
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from desktop_app.bridge import EngineBridge
from desktop_app.error_dialog import ErrorDialog
from desktop_app.widgets.folders import FoldersPanel
from desktop_app.widgets.progress import IndexingProgress
from desktop_app.widgets.results import PassagePreview, ResultsView

SEARCH_DEBOUNCE_MS = 350  # search as you type once typing pauses this long
MIN_LIVE_QUERY = 3  # shorter queries search only on Enter


class MainWindow(QMainWindow):
    """The main window.

    Args:
        bridge: The engine bridge; the window starts it once shown, never shuts it down.
        settings: Where geometry and layout are remembered; the app's QSettings by default.
    """

    def __init__(self, bridge: EngineBridge, settings: QSettings | None = None) -> None:
        super().__init__()
        self.bridge = bridge
        self.settings = settings if settings is not None else QSettings()
        self.setWindowTitle("Kenning")
        self.setAcceptDrops(True)
        self._has_folders = False
        self._query = ""
        self._error_shown: tuple[str, str] | None = None

        self._build_search()
        self._build_folders_dock()
        self._build_status_bar()
        self._build_actions()
        self._wire_bridge()
        self._show_hint()
        self._restore_layout()

    # -- building ------------------------------------------------------------------------
    def _build_search(self) -> None:
        self.search_box = QLineEdit(self)
        self.search_box.setPlaceholderText("Search your notes and documents  (Ctrl+L)")
        self.search_box.setAccessibleName("Search")
        self.search_box.setClearButtonEnabled(True)
        self.search_box.returnPressed.connect(self.run_search)
        self.search_box.textEdited.connect(self._search_edited)
        self._debounce = QTimer(self, singleShot=True, interval=SEARCH_DEBOUNCE_MS)
        self._debounce.timeout.connect(self._live_search)

        self.results = ResultsView(self)
        self.results.sig_open_requested.connect(self.open_file)
        self.results.sig_hit_selected.connect(self._hit_selected)
        self.preview = PassagePreview(self)
        self.open_button = QPushButton("Open file", self)
        self.open_button.setAccessibleName("Open the file in its default application")
        self.open_button.clicked.connect(lambda: self._open_selected(folder=False))
        self.reveal_button = QPushButton("Show in folder", self)
        self.reveal_button.setAccessibleName("Show the file's folder")
        self.reveal_button.clicked.connect(lambda: self._open_selected(folder=True))
        preview_buttons = QHBoxLayout()
        preview_buttons.addStretch(1)
        preview_buttons.addWidget(self.reveal_button)
        preview_buttons.addWidget(self.open_button)
        preview_pane = QWidget(self)
        preview_layout = QVBoxLayout(preview_pane)
        preview_layout.setContentsMargins(0, 0, 0, 0)
        preview_layout.addWidget(self.preview, 1)
        preview_layout.addLayout(preview_buttons)
        self._hit_selected(None)

        self.splitter = QSplitter(Qt.Orientation.Horizontal, self)
        self.splitter.addWidget(self.results)
        self.splitter.addWidget(preview_pane)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)

        self.hint = QLabel(self)
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint.setWordWrap(True)
        self.hint.setAccessibleName("Hint")
        self.pages = QStackedWidget(self)
        self.pages.addWidget(self.hint)
        self.pages.addWidget(self.splitter)

        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.setContentsMargins(8, 8, 8, 0)
        layout.addWidget(self.search_box)
        layout.addWidget(self.pages, 1)
        self.setCentralWidget(central)

    def _build_folders_dock(self) -> None:
        self.folders = FoldersPanel(self)
        self.folders.sig_add_requested.connect(self.choose_folder)
        self.folders.sig_remove_requested.connect(self.remove_folder)
        self.folders_dock = QDockWidget("Folders", self)
        self.folders_dock.setObjectName("folders_dock")
        self.folders_dock.setWidget(self.folders)
        self.folders_dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
        )
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.folders_dock)

    def _build_status_bar(self) -> None:
        self.progress = IndexingProgress(self)
        self.progress.sig_cancel_requested.connect(self.bridge.cancel)
        self.statusBar().addWidget(self.progress, 1)

    def _build_actions(self) -> None:
        def action(text: str, shortcut: Keys | str | Keys.StandardKey, slot: Any) -> QAction:
            act = QAction(text, self)
            act.setShortcut(shortcut)
            act.triggered.connect(slot)
            self.addAction(act)  # shortcuts work even with the menu bar hidden
            return act

        self.add_action = action("&Add Folder…", Keys("Ctrl+O"), self.choose_folder)
        quit_action = action("&Quit", Keys.StandardKey.Quit, self.close)
        self.focus_action = action("&Find", Keys("Ctrl+L"), self.focus_search)
        self.cancel_action = action("&Cancel Indexing", Keys("Esc"), self.bridge.cancel)
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(self.add_action)
        file_menu.addSeparator()
        file_menu.addAction(quit_action)
        edit_menu = self.menuBar().addMenu("&Edit")
        edit_menu.addAction(self.focus_action)
        view_menu = self.menuBar().addMenu("&View")
        view_menu.addAction(self.folders_dock.toggleViewAction())
        index_menu = self.menuBar().addMenu("&Index")
        index_menu.addAction(self.cancel_action)

    def _wire_bridge(self) -> None:
        self.bridge.sig_ready.connect(self._engine_ready)
        self.bridge.sig_status.connect(self.show_status)
        self.bridge.sig_search_results.connect(self.show_results)
        self.bridge.sig_error.connect(self.show_error)

    # -- requests ------------------------------------------------------------------------
    def focus_search(self) -> None:
        self.search_box.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search_box.selectAll()

    def run_search(self) -> None:
        """Search for what the search box holds (Enter)."""
        self._debounce.stop()
        query = self.search_box.text().strip()
        if query:
            self.progress.show_message(f"Searching for “{query}”…")
            self.bridge.search(query)

    def choose_folder(self) -> None:
        """Ask for a folder with the platform's dialog and add it."""
        path = QFileDialog.getExistingDirectory(self, "Add a folder to Kenning")
        if path:
            self.add_folder(path)

    def add_folder(self, path: str | Path) -> None:
        self.progress.show_message(f"Adding {path}…")
        self.bridge.add_folder(path)

    def remove_folder(self, path: str | Path) -> None:
        self.progress.show_message(f"Removing {path}…")
        self.bridge.remove_folder(path)

    def open_file(self, path: str) -> None:
        """Open a result in its default application (an internal viewer comes later)."""
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(path)):
            self.show_error(
                "Could not open the file",
                f"No application opened {path}. It may have been moved or deleted.",
                "",
            )

    def _open_selected(self, *, folder: bool) -> None:
        hit = self.preview.hit
        if hit is not None:
            path = Path(hit.path)
            self.open_file(str(path.parent if folder else path))

    def _search_edited(self, text: str) -> None:
        if len(text.strip()) >= MIN_LIVE_QUERY:
            self._debounce.start()
        else:
            self._debounce.stop()

    def _live_search(self) -> None:
        if self.search_box.text().strip() != self._query:
            self.run_search()

    # -- rendering -----------------------------------------------------------------------
    def _engine_ready(self) -> None:
        self.progress.show_message("Ready")

    def show_status(self, status: Any) -> None:
        self.folders.show_status(status)
        self.progress.show_status(status)
        has_folders = bool(status.folders)
        if has_folders != self._has_folders:
            self._has_folders = has_folders
            self._show_hint()

    def show_results(self, query: str, hits: list[Any]) -> None:
        self._query = query
        self.results.set_results(query, hits)
        count = len(hits)
        self.progress.show_message(f"{count} passage{'s' * (count != 1)} for “{query}”")
        self._show_hint()

    def show_error(self, title: str, message: str, details: str) -> None:
        """Show an error once in a readable dialog; a repeat while it is open is dropped."""
        if self._error_shown == (title, message):
            return
        self._error_shown = (title, message)
        try:
            ErrorDialog(title, message, details, self).exec()
        finally:
            self._error_shown = None

    def _hit_selected(self, hit: Any) -> None:
        self.preview.show_hit(hit, self._query)
        self.open_button.setEnabled(hit is not None)
        self.reveal_button.setEnabled(hit is not None)

    def _show_hint(self) -> None:
        if self.results.results.rowCount() and self._has_folders:
            self.pages.setCurrentWidget(self.splitter)
            return
        if not self._has_folders:
            text = (
                "<h3>Add a folder to start</h3>"
                "<p>Kenning indexes your notes and documents on this computer<br>"
                "and finds the passages that answer your questions.</p>"
                "<p>Choose <b>File › Add Folder…</b> (Ctrl+O) or drop a folder here.</p>"
            )
        elif self._query:
            text = f"<h3>Nothing matches “{html.escape(self._query)}”</h3><p>Try other words.</p>"
        else:
            text = "<h3>Search your folders</h3><p>Type a question or keywords and press Enter.</p>"
        self.hint.setText(text)
        self.pages.setCurrentWidget(self.hint)

    # -- window events -------------------------------------------------------------------
    def showEvent(self, event: Any) -> None:
        super().showEvent(event)
        self.bridge.start()  # after the window is up: the engine loads behind it

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if _dropped_folders(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        folders = _dropped_folders(event.mimeData())
        for folder in folders:
            self.add_folder(folder)
        if folders:
            event.acceptProposedAction()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.settings.setValue("main_window/geometry", self.saveGeometry())
        self.settings.setValue("main_window/state", self.saveState())
        self.settings.setValue("main_window/splitter", self.splitter.saveState())
        self.settings.sync()
        super().closeEvent(event)

    def _restore_layout(self) -> None:
        geometry = self.settings.value("main_window/geometry")
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(1100, 700)
        state = self.settings.value("main_window/state")
        if state is not None:
            self.restoreState(state)
        splitter = self.settings.value("main_window/splitter")
        if splitter is not None:
            self.splitter.restoreState(splitter)


def _dropped_folders(mime: Any) -> list[str]:
    """The local folders in a drag's data."""
    if not mime.hasUrls():
        return []
    paths = (Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile())
    return [str(path) for path in paths if path.is_dir()]
