"""The one object between the window and the engine.

:class:`EngineBridge` lives on the GUI thread and owns worker :class:`QThread` s.
The engine is created on the first (opening the store and loading the model can
take seconds; the window is already on screen), and each result comes back to the
GUI thread as a ``sig_...`` signal. The GUI thread never waits on the engine,
except in :meth:`EngineBridge.shutdown`.

Calls run on one of three lanes, so a slow call never holds up an unrelated one:
``index`` (folders, searches, status polls: the thread that owns the engine),
``answer`` (``Engine.ask``, seconds of generation) and ``side`` (parsing a file
for the viewer, conversations, corrections). The engine allows this: searches and
asks run on the caller's thread beside its own writer, with a SQLite connection
per thread.

This is the only module of ``desktop_app`` that imports ``engine``; widgets see
plain result objects (``Hit``, ``Answer``, ``Status``) and never call the engine.

A call is a :class:`_Job`: a function of the engine run on a lane, a callback for
its result, and optionally one for values it yields while it runs (streamed
answer tokens), all delivered on the GUI thread.
"""

from __future__ import annotations

import gc
import itertools
import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

if TYPE_CHECKING:
    from engine import Engine, EngineConfig
    from engine.answer_log import AnswerLog
    from engine.embedding import Embedder
    from engine.generation import Generator

log = logging.getLogger(__name__)

STATUS_INTERVAL_MS = 500  # how often the folders panel and status bar refresh
SEARCH_LIMIT = 20  # passages shown per search
LANES = ("index", "answer", "side")

# Learning calls the engine gains with the corrections work (issue 5); until a
# method exists the bridge says so in words instead of failing with AttributeError.
LEARNING_METHODS = (
    "record_correction",
    "rate_source",
    "corrections",
    "forget_correction",
    "adapter_status",
    "adapter_versions",
    "rollback_adapter",
    "consolidate",
)


def default_data_dir() -> Path:
    """Where the engine keeps its store unless ``--data-dir`` says otherwise."""
    from engine.config import default_data_dir as engine_default

    return engine_default()


Report = Callable[[Any], None]


class AnswerStopped(Exception):
    """Raised inside the token callback to abandon an answer the person stopped."""


@dataclass(eq=False)
class _Job:
    """One facade call: ``run(engine, report)`` on a lane, callbacks on the GUI thread.

    Args:
        title: What the dialog says failed ("Could not add the folder").
        run: Runs on the lane's thread; ``report(value)`` streams a value to ``on_yield``.
        on_result: Gets the return value, on the GUI thread.
        on_yield: Gets each reported value, on the GUI thread.
        quiet: Log failures; tell the person only the first time in a row (status polls).
        lane: Which worker thread runs it (see the module docstring).
        on_error: Called on the GUI thread when it fails, before the error dialog.
    """

    title: str
    run: Callable[[Engine, Report], Any]
    on_result: Callable[[Any], None] | None = None
    on_yield: Callable[[Any], None] | None = None
    quiet: bool = False
    lane: str = "index"
    on_error: Callable[[], None] | None = None


class _Runner(QObject):
    """Runs jobs on its thread against the engine ``owner`` holds."""

    sig_yielded = Signal(object, object)  # job, value
    sig_returned = Signal(object, object)  # job, result
    sig_errored = Signal(object, str, str)  # job, message, details

    def __init__(self, owner: _EngineWorker | None = None) -> None:
        super().__init__()
        self._owner = owner

    def _engine(self) -> Engine | None:
        return self._owner.engine if self._owner is not None else None

    def _failure(self) -> tuple[str, str]:
        failure = self._owner.start_failure if self._owner is not None else None
        return failure or ("", "")

    @Slot(object)
    def run_job(self, job: _Job) -> None:
        engine = self._engine()
        if engine is None:
            message, details = self._failure() or ("", "")
            self.sig_errored.emit(job, f"Kenning did not start. {message}".strip(), details)
            return
        try:
            result = job.run(engine, lambda value: self.sig_yielded.emit(job, value))
        except Exception as exc:
            if not job.quiet:
                log.exception("%s", job.title)
            self.sig_errored.emit(job, *_describe(exc, job.title.lower()))
            return
        self.sig_returned.emit(job, result)


class _EngineWorker(_Runner):
    """The ``index`` lane: creates the engine, runs jobs, closes it."""

    sig_started = Signal()
    sig_start_failed = Signal(str, str)  # message, details

    def __init__(
        self,
        data_dir: Path,
        config: EngineConfig | None,
        embedder: Embedder | None,
        generator: Generator | None,
    ) -> None:
        super().__init__(None)
        self._data_dir = data_dir
        self._config = config
        self._embedder = embedder
        self._generator = generator
        self.engine: Engine | None = None  # read from other threads: cancel, other lanes
        self.start_failure: tuple[str, str] | None = None
        self.close_deadline: float | None = None  # monotonic; set before close() is sent

    def _engine(self) -> Engine | None:
        return self.engine

    def _failure(self) -> tuple[str, str]:
        return self.start_failure or ("", "")

    @Slot()
    def start(self) -> None:
        try:
            from engine import Engine

            self.engine = Engine(
                self._data_dir, self._config, embedder=self._embedder, generator=self._generator
            )
        except Exception as exc:
            log.exception("could not start the engine")
            self.start_failure = _describe(exc, "starting Kenning")
            self.sig_start_failed.emit(*self.start_failure)
            return
        self.sig_started.emit()

    @Slot()
    def close(self) -> None:
        try:
            if self.engine is not None:
                deadline = self.close_deadline
                left = None if deadline is None else max(0.5, deadline - time.monotonic())
                self.engine.close(timeout=left)
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


def _field(config: EngineConfig | None, name: str) -> Any:
    """A config field, None standing for the defaults (bundled models)."""
    return getattr(config, name) if config is not None else None


def _learning(engine: Engine, name: str) -> Callable[..., Any]:
    """The engine's learning method ``name``, or a readable error if this build lacks it."""
    from engine import EngineError

    method = getattr(engine, name, None)
    if method is None:
        raise EngineError(
            "Learning from corrections is not available in this version of Kenning yet "
            f"(the engine has no {name})."
        )
    return method  # type: ignore[no-any-return]


class EngineBridge(QObject):
    """Runs engine calls off the GUI thread and re-emits their results as signals.

    Args:
        data_dir: The engine's data dir.
        config: Engine settings; None for the defaults.
        embedder: An already loaded embedder to share (tests).
        generator: An already loaded answer model to share (tests).
        poll_status: Refresh ``sig_status`` every :data:`STATUS_INTERVAL_MS`.
        warm_up: Load the models on the ``answer`` lane as soon as the engine is up
            (``sig_models_ready`` follows), so the first question does not wait.

    Call :meth:`start` once the window is up, and :meth:`shutdown` before quitting.
    """

    sig_ready = Signal()
    sig_search_results = Signal(str, object)  # query, list[Hit]
    sig_status = Signal(object)  # Status
    sig_error = Signal(str, str, str)  # title, message, details
    sig_folder_added = Signal(str)
    sig_folder_removed = Signal(str)
    sig_answer_started = Signal(int, str)  # ask id, question
    sig_answer_token = Signal(int, str)  # ask id, piece of text
    sig_answer_done = Signal(int, object, object)  # ask id, Answer, {source: line}
    sig_answer_ended = Signal(int)  # ask id: finished, failed or stopped (buttons reset)
    sig_document = Signal(str, object)  # path, ParsedDocument
    sig_conversations = Signal(object)  # list[dict]: id, question, created_at, turns
    sig_conversation = Signal(str, object)  # conversation id, list[dict] turns
    sig_correction_saved = Signal(str)  # question
    sig_corrections = Signal(object)  # list[Correction]
    sig_learning = Signal(object)  # dict: status, versions (None where unavailable)
    sig_rated = Signal(int, bool)  # chunk id, helpful
    sig_models_ready = Signal(float)  # seconds the warm-up took

    _sig_start = Signal()
    _sig_close = Signal()

    def __init__(
        self,
        data_dir: Path | str,
        config: EngineConfig | None = None,
        *,
        embedder: Embedder | None = None,
        generator: Generator | None = None,
        poll_status: bool = True,
        warm_up: bool = True,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self._warm_up = warm_up
        self.data_dir = Path(data_dir)
        self.config = config
        self._embedder = embedder
        self._generator = generator
        self._search_ids = itertools.count(1)
        self._ask_ids = itertools.count(1)
        self._latest_search = 0
        self._stops: dict[int, threading.Event] = {}
        self._status_pending = False
        self._quiet_failing = False
        self._ready = False
        self._closed = False
        self._restarting = False  # between restart() and the new engine's lanes
        self._restart_to: tuple[EngineConfig | None, Path | str] = (config, self.data_dir)
        self._retiring: list[QThread] = []
        self._held: list[_Job] = []  # jobs for lanes that wait on the engine to start
        self._answer_log: AnswerLog | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(STATUS_INTERVAL_MS)
        self._timer.timeout.connect(self.refresh_status)
        self._poll_status = poll_status
        self._threads: dict[str, QThread] = {}
        self._ending: list[QThread] = []  # old lanes' threads still finishing
        self._runners: dict[str, _Runner] = {}
        self._dispatch: dict[str, _Dispatch] = {}
        self._make_lanes()

    def _make_lanes(self) -> None:
        restarting = bool(self._threads)
        for lane, old_thread in self._threads.items():
            if old_thread.isRunning():
                # Dropping the last reference to a running QThread is a qFatal (seen
                # in the restart test on a loaded machine): keep it until it ends.
                log.warning("lane %s still running at restart; kept until it ends", lane)
                self._ending.append(old_thread)
                old_thread.finished.connect(self._reap_ended)
        old_dispatch = list(self._dispatch.values())
        old_worker: _EngineWorker | None = getattr(self, "_worker", None)
        worker = _EngineWorker(self.data_dir, self.config, self._embedder, self._generator)
        self._worker: _EngineWorker = worker
        self._runners = {"index": worker}
        for lane in LANES[1:]:
            self._runners[lane] = _Runner(worker)
        for lane, runner in self._runners.items():
            thread = QThread()
            thread.setObjectName(f"kenning-{lane}")
            runner.moveToThread(thread)
            runner.sig_yielded.connect(self._on_yielded)
            runner.sig_returned.connect(self._on_returned)
            runner.sig_errored.connect(self._on_errored)
            dispatch = _Dispatch(self)
            dispatch.sig_submit.connect(runner.run_job)
            self._dispatch[lane] = dispatch
            self._threads[lane] = thread
        if restarting:
            for old in old_dispatch:
                old.deleteLater()
        if old_worker is not None:
            self._sig_start.disconnect(old_worker.start)  # the old worker is gone
            self._sig_close.disconnect(old_worker.close)
        self._sig_start.connect(worker.start)
        self._sig_close.connect(worker.close)
        worker.sig_started.connect(self._on_started)
        worker.sig_start_failed.connect(self._on_start_failed)

    @Slot()
    def _reap_ended(self) -> None:
        # ``finished`` comes just before the thread ends: a short wait sees it end.
        self._ending = [t for t in self._ending if not t.wait(100)]

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker threads and create the engine; returns at once.

        The engine package is imported here, on the GUI thread (~0.2 s): PySide6
        6.12's import hook crashed the process ("none_dealloc") when a worker
        thread imported it while the GUI thread ran Python slots.
        """
        if self._threads["index"].isRunning() or self._closed:
            return
        import engine  # noqa: F401

        # No lower priority (nice) for the lanes: a descheduled worker holding the GIL
        # kept the GUI thread waiting longer (priority inversion on a busy machine).
        for thread in self._threads.values():
            thread.start()
        self._sig_start.emit()

    @property
    def is_ready(self) -> bool:
        return self._ready

    @property
    def is_restarting(self) -> bool:
        """Between :meth:`restart` and the moment the new engine's lanes start."""
        return self._restarting

    def shutdown(self, timeout: float | None = None) -> bool:
        """Stop indexing and answers, close the engine on its thread and join the threads.

        Args:
            timeout: Seconds to wait for the lanes; None waits as long as they take.
                A lane still loading a model (the warm-up cannot be interrupted) is
                left behind once the engine is closed: the window's exit must not
                wait on it (SIGTERM took 7 s while the embedder was loading).

        Returns:
            True when every lane has stopped; False when one was still busy at the
            deadline (the caller then ends the process without waiting for it).
        """
        if self._closed:
            return all(not t.isRunning() for t in self._threads.values())
        self._closed = True
        self._timer.stop()
        return self._stop_lanes(None if timeout is None else time.monotonic() + timeout)

    def _stop_lanes(self, deadline: float | None) -> bool:
        def wait(thread: QThread) -> bool:
            if deadline is None:
                return thread.wait()
            return thread.wait(max(0, int((deadline - time.monotonic()) * 1000)))

        for stop in self._stops.values():
            stop.set()  # a streaming answer gives up at its next token
        if not self._threads["index"].isRunning():
            return True
        self.cancel()  # the running job stops at its next step instead of finishing
        for lane in LANES[1:]:
            self._threads[lane].quit()  # each ends after its current call
        # The side lane's calls are short writes (a correction, a rating): let the one
        # running finish. Then the engine closes on its own lane, even while the answer
        # lane is still loading a model: closing touches the stores, never the models.
        stopped = wait(self._threads["side"])
        self._worker.close_deadline = None if deadline is None else deadline - 0.5
        self._sig_close.emit()
        stopped = wait(self._threads["index"]) and stopped
        if deadline is not None:  # nothing on the answer lane is saved: a moment is enough
            deadline = min(deadline, time.monotonic() + 1.0)
        stopped = wait(self._threads["answer"]) and stopped
        if self._answer_log is not None and not self._threads["side"].isRunning():
            self._answer_log.close()  # only the side lane uses it
            self._answer_log = None
        return stopped

    def restart(self, config: EngineConfig | None, data_dir: Path | str | None = None) -> None:
        """Close the engine and open a new one with ``config`` (and ``data_dir``); returns at once.

        The GUI thread does not wait: an answer in progress is stopped, indexing is
        cancelled, and the old lanes close the engine on their own threads. When the
        last of them has finished, new lanes open the new engine and ``sig_ready``
        follows. Calls made meanwhile wait for the new engine; a second restart
        before the first is done replaces its settings.
        """
        if self._closed:
            return
        self._restart_to = (config, data_dir if data_dir is not None else self.data_dir)
        if self._restarting:
            return
        self._timer.stop()
        self._ready = False
        self._restarting = True
        for stop in self._stops.values():
            stop.set()  # a streaming answer gives up at its next token
        running = [t for t in self._threads.values() if t.isRunning()]
        self._retiring = running
        if not running:
            self._reopen()
            return
        for thread in running:
            thread.finished.connect(self._on_lane_retired)
        self.cancel()  # the running indexing job stops at its next step
        for lane in LANES[1:]:
            self._threads[lane].quit()
        self._sig_close.emit()  # the index lane closes the engine, then quits its thread

    @Slot()
    def _on_lane_retired(self) -> None:
        if any(thread.isRunning() for thread in self._retiring):
            return
        self._reopen()

    def _reopen(self) -> None:
        """Open the engine of :meth:`restart` once the old lanes are gone."""
        for thread in self._retiring:
            thread.finished.disconnect(self._on_lane_retired)
            # ``finished`` is emitted just before the thread ends: dropping the last
            # reference a moment too early destroyed a running QThread (qFatal, seen
            # under load in the restart test). The wait returns at once otherwise.
            thread.wait()
        self._retiring = []
        if self._answer_log is not None:
            self._answer_log.close()  # the side lane that used it has finished
            self._answer_log = None
        config, data_dir = self._restart_to
        before = self.config
        if _field(before, "embedding_model") != _field(config, "embedding_model"):
            self._embedder = None  # a shared model is the wrong one now
        if _field(before, "generator_model") != _field(config, "generator_model"):
            self._generator = None
        self.config = config
        self.data_dir = Path(data_dir)
        self._status_pending = False  # a poll in flight died with the old lanes
        self._stops.clear()
        self._restarting = False
        if self._closed:
            return
        self._make_lanes()
        self.start()

    # -- requests: folders and search --------------------------------------------------
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

    def reindex(self) -> None:
        """Index every folder again from scratch, in the background.

        For settings that make the stored chunks or vectors stale (embedding
        model, chunk size, ignore patterns): each folder is removed and added
        again, queued on the engine's writer in that order.
        """

        def run(engine: Engine, _report: Report) -> Any:
            folders = [folder.path for folder in engine.status().folders]
            for folder in folders:
                engine.remove_folder(folder)
            # Removal is queued on the engine's writer; adding before it ran would
            # have the removal delete the fresh folder record again.
            engine.wait_until_idle(timeout=3600)
            for folder in folders:
                engine.add_folder(folder)
            return len(folders)

        self._submit(_Job("Could not re-index", run, lambda _n: self.refresh_status()))

    def cancel(self) -> None:
        """Stop the running indexing job and drop the queued ones.

        Engine.cancel only sets a flag and empties a queue, so it is called from here
        directly: queued behind a long call on the worker it would come too late.
        """
        engine = self._worker.engine
        if engine is not None:
            engine.cancel()
        self.refresh_status()

    def set_indexing_paused(self, paused: bool) -> None:
        """Hold indexing after the current file, or let it go on.

        Like :meth:`cancel` this only flips a flag (no waiting), so it is called
        directly rather than queued behind the long call it is meant to hold.
        """
        engine = self._worker.engine
        if engine is not None:
            if paused:
                engine.pause_indexing()
            else:
                engine.resume_indexing()
        self.refresh_status()

    def refresh_status(self) -> None:
        """Ask for a fresh ``sig_status``; skipped while one is still on its way."""
        if self._status_pending or not self._ready or self._closed:
            return
        self._status_pending = True
        self._submit(_Job("Could not read the index status", _status, self._on_status, quiet=True))

    # -- requests: answers ---------------------------------------------------------------
    def ask(self, question: str, conversation_id: str | None = None) -> int:
        """Answer ``question``; returns its ask id at once.

        ``sig_answer_started``, then ``sig_answer_token`` per piece of text, then
        ``sig_answer_done(id, Answer)`` follow, and ``sig_answer_ended(id)`` in every
        case (also after a failure or :meth:`stop_answer`).
        """
        ask_id = next(self._ask_ids)
        stop = threading.Event()
        self._stops[ask_id] = stop

        def on_token(piece: str, report: Report) -> None:
            if stop.is_set():
                raise AnswerStopped
            report(piece)

        def run(engine: Engine, report: Report) -> Any:
            if stop.is_set():
                return None
            try:
                answer = engine.ask(
                    question,
                    on_token=lambda piece: on_token(piece, report),
                    conversation_id=conversation_id,
                )
            except AnswerStopped:
                return None
            return answer, _source_lines(engine, answer)

        def token(piece: Any) -> None:
            if not stop.is_set():
                self.sig_answer_token.emit(ask_id, str(piece))

        def done(result: Any) -> None:
            if self._stops.pop(ask_id, None) is None:
                return  # stopped: sig_answer_ended went out then
            if result is not None:
                self.sig_answer_done.emit(ask_id, *result)
            self.sig_answer_ended.emit(ask_id)

        def failed() -> None:
            if self._stops.pop(ask_id, None) is not None:
                self.sig_answer_ended.emit(ask_id)

        self.sig_answer_started.emit(ask_id, question)
        self._submit(_Job("Could not answer", run, done, token, lane="answer", on_error=failed))
        return ask_id

    def stop_answer(self, ask_id: int | None = None) -> None:
        """Stop an answer (the latest one by default): no more tokens are shown.

        Generation stops at the next token the model produces; the extractive
        answer hands over its text in one piece at the end, so there it is only
        discarded. ``sig_answer_ended`` follows at once.
        """
        ids = [ask_id] if ask_id is not None else list(self._stops)
        for key in ids:
            stop = self._stops.pop(key, None)
            if stop is not None:
                stop.set()
                self.sig_answer_ended.emit(key)

    def load_document(self, path: Path | str) -> None:
        """Parse a file for the viewer; ``sig_document(path, ParsedDocument)`` follows."""
        target = str(path)

        def run(engine: Engine, _report: Report) -> Any:
            from engine.parsing import parse_file

            return parse_file(Path(target), max_bytes=engine.config.max_file_bytes)

        self._submit(
            _Job(
                "Could not open the file",
                run,
                lambda doc: self.sig_document.emit(target, doc),
                lane="side",
            )
        )

    def list_conversations(self) -> None:
        """``sig_conversations`` with every conversation, the latest first."""
        self._submit(
            _Job(
                "Could not read the conversations",
                lambda e, _r: self._answers(e).conversations(),
                self.sig_conversations.emit,
                lane="side",
            )
        )

    def load_conversation(self, conversation_id: str) -> None:
        """``sig_conversation(id, turns)`` with the turns of one conversation, oldest first."""
        self._submit(
            _Job(
                "Could not open the conversation",
                lambda e, _r: self._answers(e).turns(conversation_id),
                lambda turns: self.sig_conversation.emit(conversation_id, turns),
                lane="side",
            )
        )

    def _answers(self, engine: Engine) -> AnswerLog:
        """A reader of the engine's answer log (its own connection, on the side lane)."""
        if self._answer_log is None:
            from engine.answer_log import AnswerLog
            from engine.engine import ANSWERS_FILE

            self._answer_log = AnswerLog(engine.data_dir / ANSWERS_FILE)
        return self._answer_log

    # -- requests: learning --------------------------------------------------------------
    def record_correction(self, question: str, answer: str, answer_id: str | None) -> None:
        """Teach the engine the right answer; ``sig_correction_saved(question)`` follows."""

        def run(engine: Engine, _report: Report) -> Any:
            return _learning(engine, "record_correction")(question, answer, answer_id=answer_id)

        def done(_result: Any) -> None:
            self.sig_correction_saved.emit(question)
            self.list_corrections()

        self._submit(_Job("Could not save the correction", run, done, lane="side"))

    def rate_source(self, answer_id: str, chunk_id: int, helpful: bool) -> None:
        """Record a thumbs up or down for a source of an answer."""

        def run(engine: Engine, _report: Report) -> Any:
            return _learning(engine, "rate_source")(answer_id, chunk_id, helpful)

        self._submit(
            _Job(
                "Could not save the rating",
                run,
                lambda _r: self.sig_rated.emit(chunk_id, helpful),
                lane="side",
            )
        )

    def list_corrections(self) -> None:
        """``sig_corrections`` with every correction, and ``sig_learning`` with the adapter."""
        self._submit(
            _Job(
                "Could not read what Kenning has learned",
                lambda e, _r: list(_learning(e, "corrections")()),
                self.sig_corrections.emit,
                lane="side",
            )
        )
        self.refresh_learning()

    def refresh_learning(self) -> None:
        """``sig_learning`` with the adapter's state and versions (None where unavailable)."""

        def run(engine: Engine, _report: Report) -> Any:
            status = getattr(engine, "adapter_status", None)
            versions = getattr(engine, "adapter_versions", None)
            return {
                "status": status() if status is not None else None,
                "versions": list(versions()) if versions is not None else None,
            }

        self._submit(
            _Job("Could not read the adapter state", run, self.sig_learning.emit, lane="side")
        )

    def forget_correction(self, correction_id: Any) -> None:
        """Forget (or undo forgetting, as the engine defines it) one correction."""
        self._learning_then_list(
            "Could not forget the correction", "forget_correction", correction_id
        )

    def rollback_adapter(self, version: Any) -> None:
        """Go back to an earlier adapter version."""
        self._learning_then_list("Could not roll back", "rollback_adapter", version)

    def consolidate(self) -> None:
        """Train the adapter on the corrections now (in the engine's background)."""
        self._learning_then_list("Could not start training", "consolidate")

    def _learning_then_list(self, title: str, name: str, *args: Any) -> None:
        self._submit(
            _Job(
                title,
                lambda e, _r: _learning(e, name)(*args),
                lambda _r: self.list_corrections(),
                lane="side",
            )
        )

    # -- plumbing ------------------------------------------------------------------------
    def _submit(self, job: _Job) -> None:
        if self._closed:
            return
        if self._restarting:
            self._held.append(job)  # for the new engine, once it is up
            return
        if not self._threads["index"].isRunning():
            self.start()
        if job.lane != "index" and not self._ready:
            self._held.append(job)  # other lanes need the engine the index lane creates
            return
        self._dispatch[job.lane].sig_submit.emit(job)

    @Slot()
    def _on_started(self) -> None:
        if self._closed:
            return
        self._ready = True
        self.sig_ready.emit()
        held, self._held = self._held, []
        for job in held:
            self._dispatch[job.lane].sig_submit.emit(job)
        if self._poll_status:
            self._timer.start()
        self.refresh_status()
        if self._warm_up:
            self._submit(
                _Job(
                    "Could not load the models", _warm_up, self.sig_models_ready.emit, lane="answer"
                )
            )

    @Slot(str, str)
    def _on_start_failed(self, message: str, details: str) -> None:
        if self._closed:
            return
        self._ready = False
        held, self._held = self._held, []
        for job in held:
            self._dispatch["index"].sig_submit.emit(job)  # each fails with "Kenning did not start"
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
        if job.on_error is not None:
            job.on_error()
        if job.quiet:
            if self._quiet_failing:
                log.debug("%s: %s", job.title, message)
                return
            self._quiet_failing = True
        self.sig_error.emit(job.title, message, details)


class _Dispatch(QObject):
    """Lives on the GUI thread; its signal queues a job on one runner's thread."""

    sig_submit = Signal(object)


def _source_lines(engine: Engine, answer: Any) -> dict[int, int]:
    """Line numbers for "line 12" on the source cards of unpaged files: the line of
    the cited span where the answer cites the source, else of the passage's start.

    Parses each file again (they are few and small next to generating the
    answer); a file that cannot be read just gets no line number.
    """
    from engine.parsing import parse_file

    cited = {c.source: c.start for c in reversed(answer.citations)}
    lines: dict[int, int] = {}
    for i, hit in enumerate(answer.sources):
        if hit.page is not None:
            continue
        try:
            text = parse_file(Path(hit.path), max_bytes=engine.config.max_file_bytes).text
        except Exception:
            continue
        lines[i] = text.count("\n", 0, cited.get(i, hit.start)) + 1
    return lines


def load_settings(path: Path | None = None) -> EngineConfig:
    """The saved engine settings (defaults if none were saved)."""
    from engine.config import load_config

    return load_config(path)


def save_settings(config: EngineConfig, path: Path | None = None) -> None:
    """Save engine settings atomically where :func:`load_settings` reads them."""
    from engine.config import save_config

    save_config(config, path)


def default_settings() -> EngineConfig:
    from engine import EngineConfig

    return EngineConfig()


def _warm_up(engine: Engine, _report: Report) -> float:
    """Load the models with the cyclic garbage collector held off, then freeze the heap.

    Loading torch, transformers and two models allocates ~0.5 M long-lived objects,
    and each full (generation 2) collection walks all of them with the GIL held:
    the window froze for 85-250 ms at a time while the models loaded, and about
    once a minute afterwards (measured with ``gc.callbacks`` beside the bench's GUI
    timer; the gaps matched the collections to the millisecond). ``gc.freeze``
    moves what is loaded out of the collector's sight for good, so later full
    collections only walk objects made since.
    """
    started = time.perf_counter()
    gc.disable()
    try:
        engine.warm_up()
    finally:
        gc.freeze()
        gc.enable()
    return time.perf_counter() - started


def _status(engine: Engine, _report: Report) -> Any:
    return engine.status()
