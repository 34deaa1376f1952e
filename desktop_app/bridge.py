"""The one object between the window and the engine.

:class:`EngineBridge` lives on the GUI thread and owns a worker :class:`QThread`.
The engine is created on that thread (opening the store and loading the model
can take seconds; the window is already on screen), every facade call runs
there, and each result comes back to the GUI thread as a ``sig_...`` signal.
The GUI thread never waits on the engine, except in :meth:`EngineBridge.shutdown`.

This is the only module of ``desktop_app`` that imports ``engine``; widgets see
plain result objects (``Hit``, ``Status``) and never call the engine.

A call is a :class:`_Job`: a function of the engine run on the worker, a
callback for its result, and optionally one for values it yields while it runs
(streamed answer tokens, later), all delivered on the GUI thread.
"""

from __future__ import annotations

import itertools
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

if TYPE_CHECKING:
    from engine import Engine, EngineConfig
    from engine.embedding import Embedder

log = logging.getLogger(__name__)

STATUS_INTERVAL_MS = 500  # how often the folders panel and status bar refresh
SEARCH_LIMIT = 20  # passages shown per search


def default_data_dir() -> Path:
    """Where the engine keeps its store unless ``--data-dir`` says otherwise."""
    from engine.config import default_data_dir as engine_default

    return engine_default()


Report = Callable[[Any], None]


@dataclass(eq=False)
class _Job:
    """One facade call: ``run(engine, report)`` on the worker, callbacks on the GUI thread.

    Args:
        title: What the dialog says failed ("Could not add the folder").
        run: Runs on the worker thread; ``report(value)`` streams a value to ``on_yield``.
        on_result: Gets the return value, on the GUI thread.
        on_yield: Gets each reported value, on the GUI thread.
        quiet: Log failures; tell the person only the first time in a row (status polls).
    """

    title: str
    run: Callable[[Engine, Report], Any]
    on_result: Callable[[Any], None] | None = None
    on_yield: Callable[[Any], None] | None = None
    quiet: bool = False


class _EngineWorker(QObject):
    """Lives on the worker thread: creates the engine, runs jobs, closes it."""

    sig_started = Signal()
    sig_start_failed = Signal(str, str)  # message, details
    sig_yielded = Signal(object, object)  # job, value
    sig_returned = Signal(object, object)  # job, result
    sig_errored = Signal(object, str, str)  # job, message, details

    def __init__(
        self, data_dir: Path, config: EngineConfig | None, embedder: Embedder | None
    ) -> None:
        super().__init__()
        self._data_dir = data_dir
        self._config = config
        self._embedder = embedder
        self.engine: Engine | None = None  # read from the GUI thread only to cancel
        self._start_failure: tuple[str, str] | None = None

    @Slot()
    def start(self) -> None:
        try:
            from engine import Engine

            self.engine = Engine(self._data_dir, self._config, embedder=self._embedder)
        except Exception as exc:
            log.exception("could not start the engine")
            self._start_failure = _describe(exc, "starting Kenning")
            self.sig_start_failed.emit(*self._start_failure)
            return
        self.sig_started.emit()

    @Slot(object)
    def run_job(self, job: _Job) -> None:
        if self.engine is None:
            message, details = self._start_failure or ("", "")
            self.sig_errored.emit(job, f"Kenning did not start. {message}".strip(), details)
            return
        try:
            result = job.run(self.engine, lambda value: self.sig_yielded.emit(job, value))
        except Exception as exc:
            if not job.quiet:
                log.exception("%s", job.title)
            self.sig_errored.emit(job, *_describe(exc, job.title.lower()))
            return
        self.sig_returned.emit(job, result)

    @Slot()
    def close(self) -> None:
        try:
            if self.engine is not None:
                self.engine.close()
        except Exception:
            log.exception("closing the engine failed")
        finally:
            self.engine = None
            thread = self.thread()
            if thread is not None:
                thread.quit()


def _describe(exc: BaseException, doing: str) -> tuple[str, str]:
    """A readable message for a person, and details to copy into a report."""
    from engine import EngineError

    details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    if isinstance(exc, EngineError):
        return str(exc), details
    return (
        f"Kenning ran into an unexpected problem ({doing}). The details below help to report it.",
        details,
    )


class EngineBridge(QObject):
    """Runs engine calls off the GUI thread and re-emits their results as signals.

    Args:
        data_dir: The engine's data dir.
        config: Engine settings; None for the defaults.
        embedder: An already loaded embedder to share (tests).
        poll_status: Refresh ``sig_status`` every :data:`STATUS_INTERVAL_MS`.

    Call :meth:`start` once the window is up, and :meth:`shutdown` before quitting.
    """

    sig_ready = Signal()
    sig_search_results = Signal(str, object)  # query, list[Hit]
    sig_status = Signal(object)  # Status
    sig_error = Signal(str, str, str)  # title, message, details
    sig_folder_added = Signal(str)
    sig_folder_removed = Signal(str)

    _sig_start = Signal()
    _sig_submit = Signal(object)
    _sig_close = Signal()

    def __init__(
        self,
        data_dir: Path | str,
        config: EngineConfig | None = None,
        *,
        embedder: Embedder | None = None,
        poll_status: bool = True,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.data_dir = Path(data_dir)
        self._thread = QThread()
        self._thread.setObjectName("kenning-bridge")
        self._worker = _EngineWorker(self.data_dir, config, embedder)
        self._worker.moveToThread(self._thread)
        self._sig_start.connect(self._worker.start)
        self._sig_submit.connect(self._worker.run_job)
        self._sig_close.connect(self._worker.close)
        self._worker.sig_started.connect(self._on_started)
        self._worker.sig_start_failed.connect(self._on_start_failed)
        self._worker.sig_yielded.connect(self._on_yielded)
        self._worker.sig_returned.connect(self._on_returned)
        self._worker.sig_errored.connect(self._on_errored)
        self._search_ids = itertools.count(1)
        self._latest_search = 0
        self._status_pending = False
        self._quiet_failing = False
        self._ready = False
        self._closed = False
        self._timer = QTimer(self)
        self._timer.setInterval(STATUS_INTERVAL_MS)
        self._timer.timeout.connect(self.refresh_status)
        self._poll_status = poll_status

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker thread and create the engine on it; returns at once."""
        if self._thread.isRunning() or self._closed:
            return
        self._thread.start()
        self._sig_start.emit()

    @property
    def is_ready(self) -> bool:
        return self._ready

    def shutdown(self) -> None:
        """Stop indexing, close the engine on its thread and join the thread."""
        if self._closed:
            return
        self._closed = True
        self._timer.stop()
        if self._thread.isRunning():
            self.cancel()  # the running job stops at its next step instead of finishing
            self._sig_close.emit()
            self._thread.wait()

    # -- requests ------------------------------------------------------------------------
    def search(self, query: str) -> None:
        """Search; ``sig_search_results(query, hits)`` follows unless a newer search
        replaces this one before it starts."""
        query = query.strip()
        if not query:
            return
        search_id = next(self._search_ids)
        self._latest_search = search_id

        def run(engine: Engine, _report: Report) -> Any:
            if search_id != self._latest_search:
                return None  # superseded while it waited: as-you-type keystrokes
            return engine.search(query, SEARCH_LIMIT)

        def done(hits: Any) -> None:
            if hits is not None and search_id == self._latest_search:
                self.sig_search_results.emit(query, hits)

        self._submit(_Job("Search failed", run, done))

    def add_folder(self, path: Path | str) -> None:
        """Add a folder and index it in the background; errors arrive as ``sig_error``."""
        folder = str(path)

        def done(_result: Any) -> None:
            self.sig_folder_added.emit(folder)
            self.refresh_status()

        self._submit(_Job("Could not add the folder", lambda e, _r: e.add_folder(folder), done))

    def remove_folder(self, path: Path | str) -> None:
        """Forget a folder and everything indexed from it."""
        folder = str(path)

        def done(_result: Any) -> None:
            self.sig_folder_removed.emit(folder)
            self.refresh_status()

        self._submit(
            _Job("Could not remove the folder", lambda e, _r: e.remove_folder(folder), done)
        )

    def cancel(self) -> None:
        """Stop the running indexing job and drop the queued ones.

        Engine.cancel only sets a flag and empties a queue, so it is called from here
        directly: queued behind a long call on the worker it would come too late.
        """
        engine = self._worker.engine
        if engine is not None:
            engine.cancel()
        self.refresh_status()

    def refresh_status(self) -> None:
        """Ask for a fresh ``sig_status``; skipped while one is still on its way."""
        if self._status_pending or not self._ready or self._closed:
            return
        self._status_pending = True
        self._submit(_Job("Could not read the index status", _status, self._on_status, quiet=True))

    # -- plumbing ------------------------------------------------------------------------
    def _submit(self, job: _Job) -> None:
        if self._closed:
            return
        if not self._thread.isRunning():
            self.start()
        self._sig_submit.emit(job)

    @Slot()
    def _on_started(self) -> None:
        if self._closed:
            return
        self._ready = True
        self.sig_ready.emit()
        if self._poll_status:
            self._timer.start()
        self.refresh_status()

    @Slot(str, str)
    def _on_start_failed(self, message: str, details: str) -> None:
        if not self._closed:
            self.sig_error.emit("Kenning could not start", message, details)

    def _on_status(self, status: Any) -> None:
        self._status_pending = False
        self._quiet_failing = False
        self.sig_status.emit(status)

    @Slot(object, object)
    def _on_yielded(self, job: _Job, value: Any) -> None:
        if not self._closed and job.on_yield is not None:
            job.on_yield(value)

    @Slot(object, object)
    def _on_returned(self, job: _Job, result: Any) -> None:
        if not self._closed and job.on_result is not None:
            job.on_result(result)

    @Slot(object, str, str)
    def _on_errored(self, job: _Job, message: str, details: str) -> None:
        if job.on_result == self._on_status:
            self._status_pending = False
        if self._closed:
            return
        if job.quiet:
            if self._quiet_failing:
                log.debug("%s: %s", job.title, message)
                return
            self._quiet_failing = True
        self.sig_error.emit(job.title, message, details)


def _status(engine: Engine, _report: Report) -> Any:
    return engine.status()
