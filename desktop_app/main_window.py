"""Kenning's main window: ask, search, sources, folders, learning and indexing progress.

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
    QDialog,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from desktop_app import bridge as bridge_module
from desktop_app.answers import AnswerFlow
from desktop_app.bridge import EngineBridge
from desktop_app.error_dialog import ErrorDialog
from desktop_app.widgets.ask_page import AskPage
from desktop_app.widgets.folders import FoldersPanel
from desktop_app.widgets.learned import CorrectionDialog, LearnedDialog
from desktop_app.widgets.progress import IndexingProgress
from desktop_app.widgets.results import PassagePreview, ResultsView
from desktop_app.widgets.settings import SettingsDialog, changed_fields, needs_reindex
from desktop_app.widgets.viewer import DocumentViewer
from desktop_app.widgets.welcome import SAMPLE_NOTES, WelcomePage

SEARCH_DEBOUNCE_MS = 350  # search as you type once typing pauses this long
MIN_LIVE_QUERY = 3  # shorter queries search only on Enter


class MainWindow(QMainWindow):
    """The main window.

    Args:
        bridge: The engine bridge; the window starts it once shown, never shuts it down.
        settings: Where geometry and layout are remembered; the app's QSettings by default.
        config_path: Where the settings dialog saves engine settings; the user's
            config file by default.
    """

    def __init__(
        self,
        bridge: EngineBridge,
        settings: QSettings | None = None,
        *,
        config_path: Path | None = None,
    ) -> None:
        super().__init__()
        self.bridge = bridge
        self.settings = settings if settings is not None else QSettings()
        self.config_path = config_path
        self.setWindowTitle("Kenning")
        self.setAcceptDrops(True)
        self._has_folders = False
        self._status_seen = False
        self._query = ""
        self._error_shown: tuple[str, str] | None = None
        self.learned = LearnedDialog(self)
        self.viewer = DocumentViewer(self)

        self._build_search()
        self._build_ask()
        self._build_central()
        self._build_folders_dock()
        self._build_status_bar()
        self.answers = AnswerFlow(
            self,
            self.bridge,
            self.tabs,
            self.ask_page,
            self.viewer,
            self.learned,
            self.progress,
            self.settings,
        )
        self.results.sig_ask_within.connect(self.answers.set_scope)
        self.results.sig_summarize.connect(self.answers.summarize)
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

        self.search_page = QWidget(self)
        layout = QVBoxLayout(self.search_page)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.search_box)
        layout.addWidget(self.pages, 1)

    def _build_ask(self) -> None:
        self.ask_page = AskPage(self)
        self.question_box = self.ask_page.question
        self.transcript = self.ask_page.transcript
        self.sources = self.ask_page.sources
        self.question_box.set_history(_strings(self.settings.value("ask/history")))
        self.sources.sig_open.connect(self.open_file)
        self.sources.sig_reveal.connect(self.reveal_file)
        self.viewer.sig_open.connect(self.open_file)
        self.viewer.sig_reveal.connect(self.reveal_file)

    def _build_central(self) -> None:
        self.tabs = QTabWidget(self)
        self.tabs.setAccessibleName("Ask or search")
        self.tabs.addTab(self.ask_page, "&Ask")
        self.tabs.addTab(self.search_page, "&Search")
        self.welcome = WelcomePage(self)
        self.welcome.sig_add_folder.connect(self.choose_folder)
        self.welcome.sig_try_samples.connect(self.add_sample_notes)
        self.main_pages = QStackedWidget(self)
        self.main_pages.addWidget(self.tabs)
        self.main_pages.addWidget(self.welcome)
        central = QWidget(self)
        layout = QVBoxLayout(central)
        layout.setContentsMargins(8, 8, 8, 0)
        layout.addWidget(self.main_pages, 1)
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
        self.progress.sig_pause_requested.connect(self.bridge.set_indexing_paused)
        self.statusBar().addWidget(self.progress, 1)
        self.sync_label = QLabel(self)
        self.sync_label.setAccessibleName("Live sync")
        self.statusBar().addPermanentWidget(self.sync_label)

    def _build_actions(self) -> None:
        def action(text: str, shortcut: Keys | str | Keys.StandardKey, slot: Any) -> QAction:
            act = QAction(text, self)
            act.setShortcut(shortcut)
            act.triggered.connect(slot)
            self.addAction(act)  # shortcuts work even with the menu bar hidden
            return act

        self.add_action = action("&Add Folder…", Keys("Ctrl+O"), self.choose_folder)
        self.samples_action = action("Try the &Sample Notes", "", self.add_sample_notes)
        self.samples_action.setEnabled(SAMPLE_NOTES.is_dir())
        self.settings_action = action(
            "&Settings…", Keys.StandardKey.Preferences, self.open_settings
        )
        if self.settings_action.shortcut().isEmpty():
            self.settings_action.setShortcut(Keys("Ctrl+,"))
        quit_action = action("&Quit", Keys.StandardKey.Quit, self.close)
        self.focus_action = action("&Find", Keys("Ctrl+L"), self.focus_search)
        self.ask_action = action("As&k a Question", Keys("Ctrl+K"), self.focus_question)
        self.new_action = action("&New Conversation", Keys("Ctrl+N"), self.new_conversation)
        self.correct_action = action("&Correct This Answer…", Keys("Ctrl+E"), self.open_correction)
        self.learned_action = action(
            "What Kenning Has &Learned", Keys("Ctrl+Shift+L"), self.open_learned
        )
        self.cancel_action = action("&Stop / Cancel Indexing", Keys("Esc"), self.escape)
        file_menu = self.menuBar().addMenu("&File")
        file_menu.addAction(self.add_action)
        file_menu.addAction(self.samples_action)
        file_menu.addSeparator()
        file_menu.addAction(self.settings_action)
        file_menu.addSeparator()
        file_menu.addAction(quit_action)
        edit_menu = self.menuBar().addMenu("&Edit")
        edit_menu.addAction(self.focus_action)
        edit_menu.addAction(self.ask_action)
        answer_menu = self.menuBar().addMenu("A&nswer")
        answer_menu.addAction(self.new_action)
        answer_menu.addAction(self.correct_action)
        answer_menu.addAction(self.learned_action)
        view_menu = self.menuBar().addMenu("&View")
        view_menu.addAction(self.folders_dock.toggleViewAction())
        index_menu = self.menuBar().addMenu("&Index")
        index_menu.addAction(self.cancel_action)

    def _wire_bridge(self) -> None:
        self.bridge.sig_ready.connect(self._engine_ready)
        self.bridge.sig_models_ready.connect(self._models_ready)
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
        """Open a file (or folder) in its default application."""
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(path)):
            self.show_error(
                "Could not open the file",
                f"No application opened {path}. It may have been moved or deleted.",
                "",
            )

    def reveal_file(self, path: str) -> None:
        """Show the folder that holds ``path`` in the file manager."""
        self.open_file(str(Path(path).parent))

    # -- asking (see desktop_app.answers) ----------------------------------------------
    def focus_question(self) -> None:
        self.answers.focus_question()

    def ask(self, question: str) -> None:
        self.answers.ask(question)

    def stop_answer(self) -> None:
        self.answers.stop_answer()

    def escape(self) -> None:
        self.answers.escape()

    def new_conversation(self) -> None:
        self.answers.new_conversation()

    def open_correction(self) -> None:
        self.answers.open_correction()

    def open_learned(self) -> None:
        self.answers.open_learned()

    @property
    def correction_dialog(self) -> CorrectionDialog | None:
        return self.answers.correction_dialog

    # -- folders and settings ------------------------------------------------------------
    def add_sample_notes(self) -> None:
        """Index the sample notes that ship with Kenning."""
        if SAMPLE_NOTES.is_dir():
            self.add_folder(SAMPLE_NOTES)

    def open_settings(self) -> None:
        """Edit the engine settings; saving restarts the engine and re-indexes if needed."""
        config = self.bridge.config or bridge_module.default_settings()
        dialog = SettingsDialog(
            config, self.bridge.data_dir, self, missing=bridge_module.missing_embedders()
        )

        def finished(result: int) -> None:
            dialog.deleteLater()
            if result != QDialog.DialogCode.Accepted:
                return
            try:
                new, data_dir = dialog.values()
            except ValueError as exc:
                self.show_error("Could not save the settings", str(exc), "")
                return
            self.apply_settings(config, new, data_dir)

        dialog.finished.connect(finished)
        dialog.open()

    def apply_settings(self, old: Any, new: Any, data_dir: Path) -> None:
        """Save ``new``; restart the engine if anything changed; re-index if needed."""
        try:
            bridge_module.save_settings(new, self.config_path)
        except OSError as exc:
            self.show_error("Could not save the settings", str(exc), "")
            return
        moved = data_dir != self.bridge.data_dir
        if moved:
            self.settings.setValue("engine/data_dir", str(data_dir))
        if not changed_fields(old, new) and not moved:
            return
        self.progress.show_message("Restarting Kenning with the new settings…")
        self._status_seen = False
        self.bridge.restart(new, data_dir if moved else None)
        if needs_reindex(old, new):
            self.bridge.reindex()
            self.progress.show_message("Re-indexing every folder with the new settings…")

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
        self.progress.show_message("Ready; loading the models in the background…")
        self.bridge.list_conversations()

    def _models_ready(self, seconds: float) -> None:
        self.progress.show_message(f"Ready: models loaded in {seconds:.1f} s")

    def show_status(self, status: Any) -> None:
        self.folders.show_status(status)
        self.progress.show_status(status)
        has_folders = bool(status.folders)
        first = not self._status_seen
        self._status_seen = True
        if has_folders != self._has_folders or first:
            self._has_folders = has_folders
            self._show_hint()
        self._show_sync(status)

    def _show_sync(self, status: Any) -> None:
        remote = getattr(status, "backend", "local")
        problem = getattr(status, "backend_problem", None)
        if problem:
            text = "⚠ Library offline"
            tip = f"{problem}. Your changes are kept here and sent when it is back."
        elif not status.folders and remote == "local":
            text, tip = "", ""
        elif status.busy or status.queued or status.progress is not None:
            text, tip = "⟳ Syncing", "Kenning is bringing the index up to date"
        else:
            count = len(status.folders)
            text = "● Live"
            tip = f"Watching {count} folder{'s' * (count != 1)}: changes are indexed as they happen"
        if remote != "local" and not problem:
            text += " · shared"
            tip += f". The library is on {remote.removeprefix('Milvus at ')} (Milvus)."
        if self.sync_label.text() != text:
            self.sync_label.setText(text)
            self.sync_label.setToolTip(tip)

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
        welcome = self._status_seen and not self._has_folders
        self.main_pages.setCurrentWidget(self.welcome if welcome else self.tabs)
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
        self.settings.setValue("main_window/ask_splitter", self.ask_page.splitter.saveState())
        self.settings.setValue("main_window/tab", self.tabs.currentIndex())
        self.settings.setValue("ask/history", self.question_box.history)
        self.settings.sync()
        self.stop_answer()
        self.viewer.hide()
        self.learned.hide()
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
        ask_splitter = self.settings.value("main_window/ask_splitter")
        if ask_splitter is not None:
            self.ask_page.splitter.restoreState(ask_splitter)
        self.tabs.setCurrentIndex(int(str(self.settings.value("main_window/tab", 0) or 0)))


def _strings(value: Any) -> list[str]:
    """A QSettings list, which comes back as None, one str or a list."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _dropped_folders(mime: Any) -> list[str]:
    """The local folders in a drag's data."""
    if not mime.hasUrls():
        return []
    paths = (Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile())
    return [str(path) for path in paths if path.is_dir()]
