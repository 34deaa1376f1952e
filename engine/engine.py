"""The engine facade: the one object the GUI, the CLI and the benchmarks call.

It composes the three rooms and the writer they share, and delegates:

* :class:`~engine.library.library.Library`: folders, indexing, the stores, search;
* :class:`~engine.reader.answering.Answering`: reading answers out of passages,
  the answer log;
* :class:`~engine.learning.learning.Learning`: corrections, the correction
  memory, feedback, and the models' learning rounds;
* :class:`~engine.writer.Writer`: the one thread every write runs on, in order.

What belongs to no single room lives here: :meth:`Engine.ask` (a correction, the
adapted generator's recall, or the reader, in that order), status, close.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Concatenate, ParamSpec, TypeVar

from engine.config import EngineConfig
from engine.data_lock import DataDirLock
from engine.embedding import Embedder, select_device
from engine.errors import EngineClosedError
from engine.generation import Generator, TokenCallback
from engine.learning.adapter import AdapterStatus, AdapterVersion
from engine.learning.corrections import Correction
from engine.learning.learning import Learning
from engine.library.chunk_store import ChunkStore
from engine.library.indexing import IndexStats
from engine.library.library import Library
from engine.library.retrieval import Hit, SearchMode, rescored
from engine.models import Models, load_quietly
from engine.progress import Progress
from engine.reader import SpanReader, bundled_reader_path
from engine.reader.answer import Answer
from engine.reader.answering import Answering, corrected_answer
from engine.reader.generator_answers import condense_query
from engine.reader.summary import Summary, document_sentences, summarize
from engine.status import Status
from engine.writer import Writer

log = logging.getLogger(__name__)

_P = ParamSpec("_P")
_R = TypeVar("_R")
# Passages read for "what do these files say about X" (Engine.summarize with about=).
SUMMARY_PASSAGES = 40


def _pauses_training(
    method: Callable[Concatenate[Engine, _P], _R],
) -> Callable[Concatenate[Engine, _P], _R]:
    """Learning rounds wait between steps while the wrapped call runs (answers first)."""

    @functools.wraps(method)
    def wrapper(self: Engine, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        self.learning.asked()
        with self.learning.adaptation.pause.hold():
            return method(self, *args, **kwargs)

    return wrapper


class Engine:
    """Index folders, keep them searchable, answer questions, learn from corrections.

    Args:
        data_dir: Where the stores, the vector index and the learned weights live.
        config: Settings; the defaults work offline with the bundled models.
        embedder: An already loaded embedder to share (tests, benchmarks); by
            default the configured model is loaded on first use.
        generator: An already loaded answer model to share (tests, benchmarks); by
            default the configured one is loaded when first needed.
        reader: An already loaded span reader to share; by default the configured
            one (the bundled reader) is loaded on the first :meth:`ask`.

    Raises:
        DataDirInUseError: another Kenning process has ``data_dir`` open.

    Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        data_dir: Path | str,
        config: EngineConfig | None = None,
        *,
        embedder: Embedder | None = None,
        generator: Generator | None = None,
        reader: SpanReader | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._lock = DataDirLock(self.data_dir)
        self._lock.acquire()  # before any store is opened: a second writer is refused
        self.config = cfg = config or EngineConfig()
        self._closed = False
        self.models = Models(cfg, embedder=embedder, generator=generator)
        self.progress = Progress()
        self.writer = Writer(self.progress, after_job=lambda empty: self.library.after_job(empty))
        try:
            self.library = Library(self.data_dir, cfg, self.writer, lambda: self.models.embedder)
        except BaseException:
            self.writer.stop()
            self._lock.release()
            raise
        shipped = Path(cfg.reader_model).expanduser() if cfg.reader_model else None
        self.learning = Learning(
            self.data_dir,
            cfg,
            self.writer,
            embedder=lambda: self.models.minilm,
            generator=lambda: self.models.generator,
            search=self.search,
            searchable=lambda: self.library.ready,
            answering=lambda: self.answering,
            record_error=self.library.record_error,
            shipped_reader=reader.path if reader else shipped or bundled_reader_path(),
            device=select_device(cfg.device),
        )
        self.answering = Answering(
            self.data_dir,
            cfg,
            generator=lambda: self.models.generator,
            version=lambda: self.learning.reader_version,
            load=self.learning.load_reader,
            shipped=reader,
        )
        self.library.start()

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- models ----------------------------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        """The embedding model, loaded on first use (a few seconds on CPU)."""
        return self.models.embedder

    @property
    def generator(self) -> Generator:
        """The answer model, loaded on first use (dequantized once, then cached)."""
        return self.models.generator

    @property
    def reader(self) -> SpanReader:
        """The span reader in effect (the shipped one or a learned version).

        Raises:
            ModelNotAvailableError: its files are missing, corrupt or of another format.
        """
        return self.answering.reader

    def warm_up(self) -> float:
        """Load the models answers need now instead of on first use; seconds it took.

        The desktop app calls this on a worker thread right after start, so the
        first question does not wait for a model load and the imports are over
        before the person starts working; the heap is frozen afterwards
        (:func:`engine.models.load_quietly`). Raises what loading raises
        (:class:`ModelNotAvailableError` for a missing or broken model).
        """

        def load() -> None:
            self.models.embedder  # noqa: B018 - the property loads the model
            if self.answering.needs_reader:
                self.answering.reader  # noqa: B018
            if self.answering.needs_generator:
                self.models.generator  # noqa: B018

        return load_quietly(load)

    # -- the library -----------------------------------------------------------------------
    @property
    def store(self) -> ChunkStore:
        """The chunk store (SQLite): everything a person reads."""
        return self.library.store

    @property
    def last_stats(self) -> IndexStats:
        return self.library.last_stats

    @property
    def live_stats(self) -> IndexStats:
        """Totals of every change set the watcher handed over."""
        return self.library.live_stats

    @property
    def totals(self) -> IndexStats:
        """Totals of all indexing work: syncs and change sets."""
        return self.library.totals

    def add_folder(self, path: Path | str) -> None:
        """Index a folder recursively in the background; returns at once.

        Raises:
            FolderNotFoundError: ``path`` is empty or not an existing directory.
            FolderRefusedError: the root or a system directory (see
                :func:`engine.library.scanning.refused_folder`).
        """
        self._check_open()
        self.library.add_folder(path)

    def remove_folder(self, path: Path | str) -> None:
        """Forget a folder and every chunk indexed from it (in the background)."""
        self._check_open()
        self.library.remove_folder(path)

    def resync(self) -> None:
        """Re-scan every folder for changes made behind the engine's back."""
        self.library.resync()

    def search(
        self,
        query: str,
        limit: int = 10,
        *,
        mode: SearchMode | str = SearchMode.HYBRID,
        fusion: str | None = None,
        feedback: bool = True,
        within: Path | str | None = None,
    ) -> list[Hit]:
        """The passages that best match ``query``, best first.

        Args:
            query: Free text.
            limit: Most hits to return (at most 1,000).
            mode: "hybrid" (default), "dense" or "bm25".
            fusion: Override the configured fusion ("convex" or "rrf") for this call.
            feedback: Apply the boosts from rated passages of similar questions.
            within: Search only this file, or the files under this folder.

        Raises:
            FolderNotFoundError: nothing is indexed at ``within``.
        """
        self._check_open()
        query = clean_text(query)
        boosts = self.learning.boosts(query) if feedback else None
        return self.library.search(
            query, limit, mode=mode, fusion=fusion, boosts=boosts, within=within
        )

    def pause_indexing(self) -> None:
        """Hold indexing after the file in progress until :meth:`resume_indexing`.

        Changes that arrive meanwhile queue up and are indexed on resume; search
        and answers keep working on what is indexed. Cancel and close end a pause.
        """
        self.writer.pause()

    def resume_indexing(self) -> None:
        """Continue indexing where :meth:`pause_indexing` held it."""
        self.writer.resume()

    @property
    def indexing_paused(self) -> bool:
        return self.writer.paused

    def cancel(self) -> None:
        """Stop the running job and drop the queued ones (a later sync catches up)."""
        self.writer.cancel()

    # -- answers ---------------------------------------------------------------------------
    @_pauses_training
    def ask(
        self,
        question: str,
        *,
        on_token: TokenCallback | None = None,
        conversation_id: str | None = None,
        within: Path | str | None = None,
    ) -> Answer:
        """Answer from the indexed documents, citing the passage, or say they do not say.

        A correction of the question (or a paraphrase) answers first, then the
        adapted generator when it recalls one, then the reader.

        Args:
            question: Free text.
            on_token: Receives the answer text as it is produced.
            conversation_id: Follow-ups in one conversation may lean on the last turn.
            within: Answer from this file only, or from the files under this folder
                (a correction of the question still answers first).

        Returns:
            The answer, its sources and citations; stored under ``answer_id``.

        Raises:
            ModelNotAvailableError: the answer model is missing or broken.
            FolderNotFoundError: nothing is indexed at ``within``.
        """
        self._check_open()
        question = clean_text(question)
        cfg = self.config
        started = time.perf_counter()
        answers = self.answering.log()
        previous = answers.last_turn(conversation_id) if conversation_id else None
        query = condense_query(question, *(previous or (None, "")))
        learning = self.learning.usable()
        match = self.learning.lookup(question) if cfg.use_correction_memory and learning else None
        # The reader's selection and abstention were calibrated on MiniLM's cosines.
        hits = rescored(
            self.search(query, limit=cfg.answer_passages, within=within),
            query,
            self.models.minilm,
            self.models.embedder,
        )
        retrieved = time.perf_counter()
        if match and self.answering.reads_alike(match.correction.question, question, hits):
            answer = corrected_answer(question, hits, match.correction)
            if on_token is not None:
                on_token(answer.text)
        elif learning and (recalled := self.learning.recall(question, hits, on_token)) is not None:
            answer = recalled  # the adapted generator remembers a correction (layer 2)
        else:
            answer = self.answering.answer(question, hits, on_token)
        answer.retrieval_query = query
        answer.conversation_id = conversation_id
        answer.timings["retrieve"] = retrieved - started
        answer.timings["total"] = time.perf_counter() - started
        answers.record(answer)
        return answer

    @_pauses_training
    def summarize(
        self, within: Path | str, *, sentences: int = 5, about: str | None = None
    ) -> Summary:
        """A file's summary, or what the files under a folder say ``about`` something.

        Extractive (:mod:`engine.reader.summary`): the most central sentences,
        repeats dropped, in reading order, each cited to its characters. With
        ``about``, sentences near it weigh more and only the passages search finds
        for it are read, so a large folder stays quick.

        Raises:
            FolderNotFoundError: nothing is indexed at ``within``.
        """
        self._check_open()
        if sentences < 1:
            raise ValueError("sentences must be at least 1")
        about = clean_text(about) if about else None
        if about:
            hits = self.search(about, limit=SUMMARY_PASSAGES, within=within)
            ids = [h.chunk_id for h in hits]
        else:
            ids = self.library.scope(within)
        return summarize(
            self.models.minilm,  # the summary's cut-offs were tuned on MiniLM's cosines
            document_sentences(self.library.chunks_in_order(ids)),
            count=sentences,
            about=about,
            subject=f"{within}" + (f", about {about}" if about else ""),
        )

    # -- learning --------------------------------------------------------------------------
    @property
    def on_corrections_changed(self) -> list[Callable[[], None]]:
        """Called (with no arguments) after a correction is recorded or forgotten."""
        return self.learning.on_corrections_changed

    def record_correction(
        self, question: str, corrected_answer: str, *, answer_id: str | None = None
    ) -> Correction:
        """Remember the person's answer to ``question``; the next :meth:`ask` uses it.

        Durable when this returns (SQLite, synchronous commit), and effective at once:
        the question is embedded into the exact correction memory before returning.
        An older correction of the same fact (same question, or same names and a
        near-certain gate match; see :meth:`CorrectionMemory.same_fact`) is superseded,
        and so is the correction that gave the answer ``answer_id`` names, if one did;
        other questions about the same subject stay in effect. Passages containing the
        corrected answer are rated helpful for the question (retrieval feedback), and
        the reader learns the correction when a retrieved passage holds its answer.

        Args:
            question: The question as asked.
            corrected_answer: What the answer should have been.
            answer_id: The logged answer being corrected, if any.

        Raises:
            ValueError: the question or the answer is blank.
        """
        self._check_open()
        return self.learning.record_correction(question, corrected_answer, answer_id=answer_id)

    def rate_source(self, answer_id: str, chunk_id: int, helpful: bool) -> None:
        """Say whether a passage shown with an answer helped; similar later questions
        rank it higher (helpful) or lower (not).

        Raises:
            KeyError: no logged answer has this id.
        """
        self._check_open()
        self.learning.rate_source(answer_id, chunk_id, helpful)

    def corrections(self) -> list[Correction]:
        """Every correction, oldest first, forgotten and superseded ones included (see
        :attr:`Correction.forgotten` and :attr:`Correction.superseded_by`)."""
        self._check_open()
        return self.learning.store().all()

    def forget_correction(self, correction_id: int) -> Correction:
        """Undo a correction in every layer; an older one it had replaced comes back.

        Raises:
            KeyError: no correction has this id.
        """
        self._check_open()
        return self.learning.forget_correction(correction_id)

    def consolidate(self, *, wait: bool = False) -> None:
        """Teach the answer model the pending corrections: one LoRA round on the writer.

        Args:
            wait: Block until the round (and any work queued before it) is done.
        """
        self._check_open()
        self.learning.consolidate()
        if wait:
            self.wait_until_idle(timeout=24 * 3600)

    def adapter_status(self) -> AdapterStatus:
        """Whether the answer model is training, paused or idle; its version; what it lacks."""
        self._check_open()
        return self.learning.adapter_status()

    def adapter_versions(self) -> list[AdapterVersion]:
        """Every saved adapter version, oldest first (version 0, the base model, is implied)."""
        self._check_open()
        return self.learning.adapter_versions()

    def rollback_adapter(self, version: int) -> None:
        """Answer with adapter ``version`` from now on (0: the base model).

        Raises:
            ValueError: no such version.
        """
        self._check_open()
        self.learning.rollback_adapter(version)

    @property
    def reader_version(self) -> int:
        """The learned reader version answers use (0: the shipped reader)."""
        return self.learning.reader_version

    def reader_versions(self) -> list[int]:
        """Every learned reader version on disk, oldest first."""
        return self.learning.reader_learning.versions()

    def rollback_reader(self, version: int) -> None:
        """Answer with learned reader ``version`` from now on (0: the shipped reader).

        Raises:
            ValueError: no such version.
        """
        self._check_open()
        self.learning.reader_learning.set_current(version)

    # -- waiting, status, closing ------------------------------------------------------------
    def wait_until_idle(self, timeout: float = 60.0) -> bool:
        """Block until no work is queued or running; False if ``timeout`` passed with work left.

        Changes the watcher has seen but not yet handed over count as queued work.
        While folders are watched it waits at least a moment, so a file written
        just before the call has time to reach the watcher. A learning round the
        scheduler has not started yet is not queued work: to wait for corrections
        to be learned, use :meth:`wait_until_learned`.
        """
        return self.writer.wait_until_idle(timeout, grace=self.library.watch_grace)

    def wait_until_learned(self, timeout: float = 3600.0) -> bool:
        """Block until the answer model and the reader have learned every correction.

        Unlike :meth:`wait_until_idle`, which returns once the queue is empty, this
        does not leave corrections waiting for a round the scheduler has not started
        yet (100 corrections, then ``wait_until_idle``, left the adapter answering 9%
        of them): it starts that round now and waits for it.

        Returns:
            True when nothing is left to learn; False at the timeout, or when a round
            ended without learning what was pending (its error is in the log).
        """
        self._check_open()
        deadline = time.monotonic() + timeout
        before: int | None = None
        while True:
            if not self.wait_until_idle(timeout=max(0.0, deadline - time.monotonic())):
                return False
            waiting = self.learning.waiting()
            if not waiting:
                return True
            if (before is not None and waiting >= before) or time.monotonic() >= deadline:
                return False
            before = waiting
            self.learning.consolidate()

    def status(self) -> Status:
        """Folders, counts, queued work, progress and every skipped file with its reason."""
        self._check_open()
        store = self.library.store
        files, chunks = store.counts()
        return Status(
            folders=self.library.folder_statuses(),
            files=files,
            chunks=chunks,
            vectors=self.library.vector_count(),
            queued=self.writer.queued,
            busy=self.writer.running is not None,
            progress=self.progress.snapshot(),
            errors=tuple(store.errors()),
            paused=self.writer.paused,
            backend=self.library.backend,
            backend_problem=self.library.backend_problem,
            **self.learning.status(),
        )

    def close(self, timeout: float | None = None) -> None:
        """Finish the running job's current step, save the index and release files.

        Args:
            timeout: Seconds to wait for the writer's current step; None waits for
                it. A writer still busy at the deadline is usually waiting for a
                model to load (the first job needs the embedder): then the stores
                are closed between two writes and the vector index is left unsaved,
                to be repaired from the store at the next open, as after a crash.
        """
        if self._closed:
            return
        self._closed = True
        self.library.stop_watching()  # first: no change set may arrive after the last job
        self.learning.stop()
        stopped = self.writer.stop(timeout)
        if not stopped:
            running = self.writer.running
            log.warning(
                "closing without waiting for the writer (%s)",
                running.describe if running else "starting",
            )
        self.library.close(writer_stopped=stopped)
        self.answering.close()
        self.learning.close()
        self._lock.release()

    def _check_open(self) -> None:
        if self._closed:
            raise EngineClosedError("the engine is closed")


def clean_text(text: str) -> str:
    """``text`` with undecodable bytes (lone surrogates from a non-UTF-8 terminal or
    file name) replaced: the tokenizer and SQLite reject them with a traceback.

    >>> clean_text("caf\\udce9") == "caf\\ufffd"
    True
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text
