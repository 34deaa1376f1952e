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

A call is a :class:`~desktop_app.lanes.LaneJob`: a function of the engine run on a
lane, a callback for its result, and optionally one for values it yields while it
runs (streamed answer tokens), all delivered on the GUI thread. The threads, the
queues and the delivery are :class:`~desktop_app.lanes.Lanes`, which knows nothing
of Kenning; this module says which call runs on which lane and which signal follows.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from desktop_app.lanes import LaneJob, Lanes, Report

if TYPE_CHECKING:
    from engine import Engine, EngineConfig
    from engine.embedding import Embedder
    from engine.generation import Generator
    from engine.reader.answer_log import AnswerLog

log = logging.getLogger(__name__)

STATUS_INTERVAL_MS = 500  # how often the folders panel and status bar refresh
SEARCH_LIMIT = 20  # passages shown per search
LANES = ("index", "answer", "side")


def default_data_dir() -> Path:
    """Where the engine keeps its store unless ``--data-dir`` says otherwise."""
    from engine.config import default_data_dir as engine_default

    return engine_default()


def missing_embedders() -> dict[str, str]:
    """Named embedding models that cannot be chosen here, each with how to install it.

    Settings grey these out instead of letting a person pick a model whose restart
    would fail; the check finds the wheels without importing them.
    """
    from engine.multilingual import INSTALL_HINT, MULTILINGUAL_MODEL, multilingual_available

    return {} if multilingual_available() else {MULTILINGUAL_MODEL: INSTALL_HINT}


class AnswerStopped(Exception):
    """Raised inside the token callback to abandon an answer the person stopped."""


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
    sig_summary = Signal(str, object)  # path, Summary (None when it failed)
    sig_document = Signal(str, object)  # path, ParsedDocument
    sig_conversations = Signal(object)  # list[dict]: id, question, created_at, turns
    sig_conversation = Signal(str, object)  # conversation id, list[dict] turns
    sig_correction_saved = Signal(str)  # question
    sig_corrections = Signal(object)  # list[Correction]
    sig_learning = Signal(object)  # dict: status (AdapterStatus), versions
    sig_rated = Signal(int, bool)  # chunk id, helpful
    sig_models_ready = Signal(float)  # seconds the warm-up took

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
        self._held: list[LaneJob] = []  # jobs for lanes that wait on the engine to start
        self._answer_log: AnswerLog | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(STATUS_INTERVAL_MS)
        self._timer.timeout.connect(self.refresh_status)
        self._poll_status = poll_status
        self._ending: list[Lanes] = []  # old lanes whose threads are still finishing
        self._lanes = self._make_lanes()

    def _make_lanes(self) -> Lanes:
        """Lanes around a new engine on the current data dir and settings."""
        data_dir, config = self.data_dir, self.config
        embedder, generator = self._embedder, self._generator

        def open_engine() -> Engine:
            from engine import Engine

            return Engine(data_dir, config, embedder=embedder, generator=generator)

        def close_engine(engine: Engine, seconds: float | None) -> None:
            engine.close(timeout=seconds)

        lanes = Lanes(
            LANES,
            open_engine,
            close_engine,
            _describe,
            opening="starting Kenning",
            not_open="Kenning did not start.",
            thread_prefix="kenning",
        )
        lanes.sig_yielded.connect(self._on_yielded)
        lanes.sig_returned.connect(self._on_returned)
        lanes.sig_errored.connect(self._on_errored)
        lanes.sig_opened.connect(self._on_started)
        lanes.sig_open_failed.connect(self._on_start_failed)
        return lanes

    @Slot()
    def _reap_ended(self) -> None:
        # ``finished`` comes just before the thread ends: a short wait sees it end.
        ended = [lanes for lanes in self._ending if lanes.wait_ended(100)]
        for lanes in ended:
            lanes.dispose()
        self._ending = [lanes for lanes in self._ending if lanes not in ended]

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker threads and create the engine; returns at once.

        The engine package is imported here, on the GUI thread (~0.2 s): PySide6
        6.12's import hook crashed the process ("none_dealloc") when a worker
        thread imported it while the GUI thread ran Python slots.
        """
        if self._lanes.started or self._closed:
            return
        import engine  # noqa: F401

        self._lanes.start()

    @property
    def is_ready(self) -> bool:
        return self._ready

    @property
    def is_restarting(self) -> bool:
        """Between :meth:`restart` and the moment the new engine's lanes start."""
        return self._restarting

    @property
    def is_running(self) -> bool:
        """Whether the engine's lanes are running (the engine opening, open or closing)."""
        return self._lanes.started

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
            return not self._lanes.running
        self._closed = True
        self._timer.stop()
        for stop in self._stops.values():
            stop.set()  # a streaming answer gives up at its next token
        if not self._lanes.started:
            return True
        self.cancel()  # the running job stops at its next step instead of finishing
        # The side lane's calls are short writes (a correction, a rating): let the one
        # running finish. Then the engine closes on its own lane, even while the answer
        # lane is still loading a model: closing touches the stores, never the models.
        deadline = None if timeout is None else time.monotonic() + timeout
        stopped = self._lanes.stop(deadline, finish_first=("side",))
        if self._answer_log is not None and not self._lanes.is_running("side"):
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
        self.cancel()  # the running indexing job stops at its next step
        self._lanes.sig_retired.connect(self._reopen)
        if not self._lanes.retire():
            self._lanes.sig_retired.disconnect(self._reopen)
            self._reopen()

    @Slot()
    def _reopen(self) -> None:
        """Open the engine of :meth:`restart` once the old lanes are gone."""
        old = self._lanes
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
        if old.running:
            # Dropping the last reference to a running QThread is a qFatal (seen in
            # the restart test on a loaded machine): keep the old set until it ends.
            log.warning("old lanes still running at restart; kept until they end")
            self._ending.append(old)
            old.sig_retired.connect(self._reap_ended)
        else:
            old.dispose()
        if self._closed:
            return
        self._lanes = self._make_lanes()
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

        self._submit(LaneJob("Search failed", run, done))

    def add_folder(self, path: Path | str) -> None:
        """Add a folder and index it in the background; errors arrive as ``sig_error``."""
        folder = str(path)

        def done(_result: Any) -> None:
            self.sig_folder_added.emit(folder)
            self.refresh_status()

        self._submit(LaneJob("Could not add the folder", lambda e, _r: e.add_folder(folder), done))

    def remove_folder(self, path: Path | str) -> None:
        """Forget a folder and everything indexed from it."""
        folder = str(path)

        def done(_result: Any) -> None:
            self.sig_folder_removed.emit(folder)
            self.refresh_status()

        self._submit(
            LaneJob("Could not remove the folder", lambda e, _r: e.remove_folder(folder), done)
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

        self._submit(LaneJob("Could not re-index", run, lambda _n: self.refresh_status()))

    def cancel(self) -> None:
        """Stop the running indexing job and drop the queued ones.

        Engine.cancel only sets a flag and empties a queue, so it is called from here
        directly: queued behind a long call on the worker it would come too late.
        """
        engine = self._lanes.context
        if engine is not None:
            engine.cancel()
        self.refresh_status()

    def set_indexing_paused(self, paused: bool) -> None:
        """Hold indexing after the current file, or let it go on.

        Like :meth:`cancel` this only flips a flag (no waiting), so it is called
        directly rather than queued behind the long call it is meant to hold.
        """
        engine = self._lanes.context
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
        self._submit(
            LaneJob("Could not read the index status", _status, self._on_status, quiet=True)
        )

    # -- requests: answers ---------------------------------------------------------------
    def ask(
        self, question: str, conversation_id: str | None = None, *, within: str | None = None
    ) -> int:
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
                    within=within,
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
        self._submit(LaneJob("Could not answer", run, done, token, lane="answer", on_error=failed))
        return ask_id

    def summarize(self, path: str, sentences: int = 5) -> None:
        """Summarise the file (or folder) ``path``; ``sig_summary`` follows, in every case."""

        def run(engine: Engine, _report: Report) -> Any:
            return engine.summarize(path, sentences=sentences)

        self._submit(
            LaneJob(
                "Could not summarise",
                run,
                lambda summary: self.sig_summary.emit(path, summary),
                lane="answer",
                on_error=lambda: self.sig_summary.emit(path, None),
            )
        )

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
            from engine.library.parsing import parse_file

            return parse_file(Path(target), max_bytes=engine.config.max_file_bytes)

        self._submit(
            LaneJob(
                "Could not open the file",
                run,
                lambda doc: self.sig_document.emit(target, doc),
                lane="side",
            )
        )

    def list_conversations(self) -> None:
        """``sig_conversations`` with every conversation, the latest first."""
        self._submit(
            LaneJob(
                "Could not read the conversations",
                lambda e, _r: self._answers(e).conversations(),
                self.sig_conversations.emit,
                lane="side",
            )
        )

    def load_conversation(self, conversation_id: str) -> None:
        """``sig_conversation(id, turns)`` with the turns of one conversation, oldest first."""
        self._submit(
            LaneJob(
                "Could not open the conversation",
                lambda e, _r: self._answers(e).turns(conversation_id),
                lambda turns: self.sig_conversation.emit(conversation_id, turns),
                lane="side",
            )
        )

    def _answers(self, engine: Engine) -> AnswerLog:
        """A reader of the engine's answer log (its own connection, on the side lane)."""
        if self._answer_log is None:
            from engine.reader.answer_log import AnswerLog
            from engine.reader.answering import ANSWERS_FILE

            self._answer_log = AnswerLog(engine.data_dir / ANSWERS_FILE)
        return self._answer_log

    # -- requests: learning --------------------------------------------------------------
    def record_correction(self, question: str, answer: str, answer_id: str | None) -> None:
        """Teach the engine the right answer; ``sig_correction_saved(question)`` follows."""

        def run(engine: Engine, _report: Report) -> Any:
            return engine.record_correction(question, answer, answer_id=answer_id)

        def done(_result: Any) -> None:
            self.sig_correction_saved.emit(question)
            self.list_corrections()

        self._submit(LaneJob("Could not save the correction", run, done, lane="side"))

    def rate_source(self, answer_id: str, chunk_id: int, helpful: bool) -> None:
        """Record a thumbs up or down for a source of an answer."""

        def run(engine: Engine, _report: Report) -> Any:
            return engine.rate_source(answer_id, chunk_id, helpful)

        self._submit(
            LaneJob(
                "Could not save the rating",
                run,
                lambda _r: self.sig_rated.emit(chunk_id, helpful),
                lane="side",
            )
        )

    def list_corrections(self) -> None:
        """``sig_corrections`` with every correction, and ``sig_learning`` with the adapter."""
        self._submit(
            LaneJob(
                "Could not read what Kenning has learned",
                lambda e, _r: e.corrections(),
                self.sig_corrections.emit,
                lane="side",
            )
        )
        self.refresh_learning()

    def refresh_learning(self) -> None:
        """``sig_learning`` with the adapter's state and versions."""

        def run(engine: Engine, _report: Report) -> Any:
            return {"status": engine.adapter_status(), "versions": engine.adapter_versions()}

        self._submit(
            LaneJob("Could not read the adapter state", run, self.sig_learning.emit, lane="side")
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
            LaneJob(
                title,
                lambda e, _r: getattr(e, name)(*args),
                lambda _r: self.list_corrections(),
                lane="side",
            )
        )

    # -- plumbing ------------------------------------------------------------------------
    def _submit(self, job: LaneJob) -> None:
        if self._closed:
            return
        job.lane = job.lane or "index"
        if self._restarting:
            self._held.append(job)  # for the new engine, once it is up
            return
        if not self._lanes.started:
            self.start()
        if job.lane != "index" and not self._ready:
            self._held.append(job)  # other lanes need the engine the index lane creates
            return
        self._lanes.submit(job)

    @Slot()
    def _on_started(self) -> None:
        if self._closed:
            return
        self._ready = True
        self.sig_ready.emit()
        held, self._held = self._held, []
        for job in held:
            self._lanes.submit(job)
        if self._poll_status:
            self._timer.start()
        self.refresh_status()
        if self._warm_up:
            self._submit(
                LaneJob(
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
            job.lane = "index"
            self._lanes.submit(job)  # each fails with "Kenning did not start"
        self.sig_error.emit("Kenning could not start", message, details)

    def _on_status(self, status: Any) -> None:
        self._status_pending = False
        self._quiet_failing = False
        self.sig_status.emit(status)

    @Slot(object, object)
    def _on_yielded(self, job: LaneJob, value: Any) -> None:
        if not self._closed and job.on_yield is not None:
            job.on_yield(value)

    @Slot(object, object)
    def _on_returned(self, job: LaneJob, result: Any) -> None:
        if not self._closed and job.on_result is not None:
            job.on_result(result)

    @Slot(object, str, str)
    def _on_errored(self, job: LaneJob, message: str, details: str) -> None:
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


def _source_lines(engine: Engine, answer: Any) -> dict[int, int]:
    """Line numbers for "line 12" on the source cards of unpaged files: the line of
    the cited span where the answer cites the source, else of the passage's start.

    Parses each file again (they are few and small next to generating the
    answer); a file that cannot be read just gets no line number.
    """
    from engine.library.parsing import parse_file

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
    return engine.warm_up()  # the heap is frozen after it: see engine.models.load_quietly


def _status(engine: Engine, _report: Report) -> Any:
    return engine.status()
