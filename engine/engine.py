"""The engine facade: the one object the GUI, the CLI and the benchmarks call.

All writes run on one worker thread in the order they were asked for; searches
run on the caller's thread beside it (SQLite WAL readers, a locked vector index).
"""

from __future__ import annotations

import functools
import logging
import queue
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar

import numpy as np

from engine.adaptation.adapter import (
    AdapterStatus,
    AdapterVersion,
    TrainingCancelled,
    TrainSettings,
)
from engine.adaptation.consolidation import ConsolidationScheduler, GeneratorAdaptation
from engine.adaptation.corrections import Correction, CorrectionStore
from engine.adaptation.feedback import FeedbackBoosts, apply_boosts
from engine.adaptation.memory import CorrectionMemory, MemoryMatch
from engine.adaptation.reader_learning import ReaderLearning, find_example
from engine.adaptation.recall import accept, recall, recalled_answer
from engine.answer_log import AnswerLog
from engine.answering import Answer, Strategy, answer_from_hits, condense_query
from engine.chunk_store import ChunkStore
from engine.config import EngineConfig, default_cache_dir
from engine.data_lock import DataDirLock
from engine.embedding import Embedder, select_device
from engine.errors import (
    EngineClosedError,
    EngineError,
    FolderNotFoundError,
    FolderRefusedError,
    StoreDamagedError,
    StoreError,
)
from engine.generation import Generator, TokenCallback
from engine.indexing import CancelFlag, Cancelled, Indexer, IndexStats
from engine.integrity import BACKUP_SUFFIX, move_aside
from engine.progress import Progress
from engine.reader import SpanReader, bundled_reader_path
from engine.reader.answers import read_answer
from engine.retrieval import Hit, SearchMode
from engine.retrieval import search as hybrid_search
from engine.scanning import refused_folder
from engine.status import FolderStatus, Status
from engine.vector_index import USearchIndex
from engine.watching import EVENT_GRACE_SECONDS, ChangeSet, FolderWatcher, apply_change_set

log = logging.getLogger(__name__)

STORE_FILE = "kenning.sqlite3"
INDEX_FILE = "vectors.usearch"
# Layout of the vector index file; a different one is rebuilt from the store.
INDEX_FORMAT = 1
ANSWERS_FILE = "answers.sqlite3"
CORRECTIONS_FILE = "corrections.sqlite3"
ADAPTERS_DIR = "adapters"
READER_DIR = "reader"
# More hits than anyone reads; a larger limit (10**12 tried to allocate 21.8 TiB) is cut.
MAX_SEARCH_LIMIT = 1000


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _pauses_training(
    method: Callable[Concatenate[Engine, _P], _R],
) -> Callable[Concatenate[Engine, _P], _R]:
    """Adapter training waits between steps while the wrapped call runs (answers first)."""

    @functools.wraps(method)
    def wrapper(self: Engine, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        self._last_question = time.monotonic()
        with self._adaptation.pause.hold():
            return method(self, *args, **kwargs)

    return wrapper


@dataclass
class _Job:
    describe: str
    run: Callable[[threading.Event], None]
    folder: Path | None = None


class Engine:
    """Index folders, keep them searchable, answer searches.

    Args:
        data_dir: Where the store, the vector index and caches live.
        config: Settings; the defaults work offline with the bundled models.
        embedder: An already loaded embedder to share (tests, benchmarks); by
            default the configured model is loaded on first use.
        generator: An already loaded answer model to share (tests, benchmarks); by
            default the configured one is loaded on the first :meth:`ask`.
        reader: An already loaded span reader to share; by default the configured
            one (the bundled reader) is loaded on the first :meth:`ask`.

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
        self.config = config or EngineConfig()
        try:
            self.store = self._open_store()
        except BaseException:
            self._lock.release()
            raise
        self._learning_damage: StoreDamagedError | None = None  # corrections unreadable
        self._embedder = embedder
        self._embedder_lock = threading.Lock()
        self._generator = generator
        self._generator_lock = threading.Lock()
        self._shipped_reader = reader
        self._reader = reader
        self._reader_version = 0  # the learned version self._reader holds (0: shipped)
        self._reader_lock = threading.Lock()
        shipped = (
            Path(self.config.reader_model).expanduser()
            if self.config.reader_model
            else bundled_reader_path()
        )
        self._reader_learning = ReaderLearning(
            self.data_dir / READER_DIR,
            reader.path if reader else shipped,
            device=select_device(self.config.device),
        )
        self._reader_round_queued = False
        self._answer_log: AnswerLog | None = None
        # Learning from corrections (engine.adaptation): opened on first use.
        self._adapt_lock = threading.RLock()
        self._correction_store: CorrectionStore | None = None
        self._memory: CorrectionMemory | None = None
        self._feedback: FeedbackBoosts | None = None
        # Called (with no arguments) after a correction is recorded or forgotten, on the
        # caller's thread: the hook for background work such as adapter retraining.
        self.on_corrections_changed: list[Callable[[], None]] = []
        self._index: USearchIndex | None = None
        self._index_ready = threading.Event()
        self._index_dirty = False
        self._last_save = time.monotonic()
        self.progress = Progress()
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        self._idle = threading.Condition()
        self._pending = 0  # queued + running jobs
        self._running: _Job | None = None
        self._cancel = CancelFlag()  # also pauses indexing (pause_indexing)
        self._closed = False
        self._startup_error: BaseException | None = None
        self.last_stats = IndexStats()
        self.live_stats = IndexStats()  # totals of every change set the watcher handed over
        self.totals = IndexStats()  # totals of all indexing work: syncs and change sets
        self._worker = threading.Thread(target=self._work, name="kenning-engine", daemon=True)
        self._worker.start()
        self._watcher = FolderWatcher(
            debounce=self.config.debounce_seconds,
            on_changes=self._submit_changes,
            on_reappeared=self._submit_sync,
            on_pending=self._hold,
            on_error=lambda folder, reason: self.store.record_error(folder, None, reason),
            ignore_patterns=self.config.ignore_patterns,
            exclude=(self.data_dir.resolve(),),
        )
        self._watcher.start()
        self._init_adaptation()  # layer 2 (generator adaptation): after the worker starts
        self._submit(_Job("Opening the index", self._open_index))
        for folder in self.store.folders():
            # Watch before the start-up sync, so nothing changed during it is missed.
            self._watcher.watch(folder.path)
            self._submit_sync(folder.path)

    # -- context manager -----------------------------------------------------------------
    def _open_store(self) -> ChunkStore:
        """The chunk store; a damaged one is moved aside and rebuilt from the files.

        Everything in it is derived from the folders' files, so the damaged copy is
        kept (``kenning.sqlite3.damaged-<time>``) and the folders it still lists are
        indexed again into a new store; the vector index goes with it (its keys
        are the old store's ids). Status lists what happened.
        """
        path = self.data_dir / STORE_FILE
        try:
            return ChunkStore(path)
        except StoreDamagedError as damaged:
            kept = move_aside(path)
            (self.data_dir / INDEX_FILE).unlink(missing_ok=True)
            log.error("%s Rebuilding it from the files; the damaged copy is %s", damaged, kept)
            store = ChunkStore(path)
            for folder in damaged.folders:
                store.add_folder(folder)
            store.record_error(
                path,
                None,
                f"the search index was damaged ({damaged.detail}); it is rebuilt from your "
                f"files, the damaged copy is kept as {kept.name}",
            )
            return store

    def __enter__(self) -> Engine:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- public API ----------------------------------------------------------------------
    @property
    def embedder(self) -> Embedder:
        """The embedding model, loaded on first use (a few seconds on CPU)."""
        with self._embedder_lock:
            if self._embedder is None:
                cfg = self.config
                self._embedder = Embedder(
                    cfg.embedding_model, device=cfg.device, threads=cfg.torch_threads
                )
            return self._embedder

    @property
    def generator(self) -> Generator:
        """The answer model, loaded on first use (dequantized once, then cached)."""
        with self._generator_lock:
            if self._generator is None:
                cfg = self.config
                self._generator = Generator(
                    cfg.generator_model,
                    cache_root=default_cache_dir(),
                    device=cfg.device,
                    dtype=cfg.generator_dtype,
                    threads=cfg.torch_threads,
                )
            return self._generator

    @property
    def reader(self) -> SpanReader:
        """The span reader, loaded on first use (under a second once torch is imported).

        Raises:
            ModelNotAvailableError: its files are missing, corrupt or of another format.
        """
        learning = self._reader_learning
        version = self.reader_version
        with self._reader_lock:
            if self._reader is None or version != self._reader_version:
                if version == 0 and self._shipped_reader is not None:
                    self._reader = self._shipped_reader
                else:
                    self._reader = learning.load(version)
                    if version == 0:
                        self._shipped_reader = self._reader
                self._reader_version = version
            return self._reader

    @property
    def reader_version(self) -> int:
        """The learned reader version answers use (0: the shipped reader)."""
        return self._reader_learning.current() if self.config.reader_learning else 0

    def reader_versions(self) -> list[int]:
        """Every learned reader version on disk, oldest first."""
        return self._reader_learning.versions()

    def rollback_reader(self, version: int) -> None:
        """Answer with learned reader ``version`` from now on (0: the shipped reader).

        Raises:
            ValueError: no such version.
        """
        self._check_open()
        self._reader_learning.set_current(version)

    def _teach_reader(self, correction: Correction) -> None:
        """Turn a correction into a reader example if a retrieved passage holds its answer,
        then queue a reader round on the writer."""
        if not self.config.reader_learning:
            return
        if self._index_ready.is_set() and self._startup_error is None:
            hits = self.search(correction.question, limit=self.config.answer_passages)
            example = find_example(
                correction.id, correction.question, correction.answer, [h.text for h in hits]
            )
            if example is not None:
                self._reader_learning.add(example)
        self._queue_reader_round()

    def _queue_reader_round(self) -> None:
        """One queued reader round at a time; it learns whatever is in effect when it runs."""
        with self._idle:
            if self._reader_round_queued:
                return
            self._reader_round_queued = True

        def run(cancel: threading.Event) -> None:
            self._reader_round_queued = False
            active = {c.id for c in self._corrections_store().active()}
            if not self._reader_learning.pending(active):
                return
            self.progress.begin("Teaching the reader your corrections")

            def checkpoint() -> None:
                self._adaptation.pause.checkpoint(cancel)  # answers first; cancel stops

            def on_step(step: int, steps: int, loss: float) -> None:
                self.progress.set_total(steps)
                self.progress.advance(1, f"step {step} of {steps}")

            try:
                self._reader_learning.learn(active, checkpoint=checkpoint, on_step=on_step)
            except TrainingCancelled as exc:
                raise Cancelled from exc

        self._submit(_Job("Teaching the reader your corrections", run))

    def warm_up(self) -> None:
        """Load the embedding and answer models now instead of on first use.

        The desktop app calls this on a worker thread right after start, so the
        first question does not wait for a model load (seconds; a first run
        dequantizes the bundled model in a child process) and the imports are
        over before the person starts working. Raises what loading raises
        (:class:`ModelNotAvailableError` for a missing or broken model).
        """
        self.embedder  # noqa: B018 - the property loads the model
        cfg = self.config
        if cfg.answer_strategy == Strategy.READER.value:
            self.reader  # noqa: B018
        if cfg.answer_strategy != Strategy.READER.value or cfg.reader_rescore_weight > 0:
            self.generator  # noqa: B018

    @_pauses_training
    def ask(
        self,
        question: str,
        *,
        on_token: TokenCallback | None = None,
        conversation_id: str | None = None,
    ) -> Answer:
        """Answer from the indexed documents, citing the passage, or say they do not say.

        Args:
            question: Free text.
            on_token: Receives the answer text as it is produced.
            conversation_id: Follow-ups in one conversation may lean on the last turn.

        Returns:
            The answer, its sources and citations; stored under ``answer_id``.

        Raises:
            ModelNotAvailableError: the answer model is missing or broken.
        """
        self._check_open()
        question = clean_text(question)
        cfg = self.config
        started = time.perf_counter()
        log_ = self._answers()
        previous = log_.last_turn(conversation_id) if conversation_id else None
        query = condense_query(question, *(previous or (None, "")))
        learning = self._learning_usable()
        memory_on = cfg.use_correction_memory and learning
        match = self._correction_memory().lookup(question) if memory_on else None
        hits = self.search(query, limit=cfg.answer_passages)
        retrieved = time.perf_counter()
        if match is not None:
            answer = _corrected_answer(question, hits, match)
            if on_token is not None:
                on_token(answer.text)
        elif learning and (recalled := self._recall(question, hits, on_token)) is not None:
            answer = recalled  # the adapted generator remembers a correction (layer 2)
        elif cfg.answer_strategy == Strategy.READER.value:
            answer = read_answer(
                self.reader,
                question,
                hits,
                on_token=on_token,
                threshold=cfg.reader_threshold,
                generator=self.generator if cfg.reader_rescore_weight > 0 else None,
                rescore_weight=cfg.reader_rescore_weight,
            )
        else:
            answer = answer_from_hits(
                self.generator,
                question,
                hits,
                budget=cfg.answer_context_tokens,
                max_new_tokens=cfg.max_new_tokens,
                min_similarity=cfg.abstain_similarity,
                max_uncovered=cfg.abstain_uncovered,
                strategy=Strategy(cfg.answer_strategy),
                sentences=cfg.answer_sentences,
                on_token=on_token,
            )
        answer.retrieval_query = query
        answer.conversation_id = conversation_id
        answer.timings["retrieve"] = retrieved - started
        answer.timings["total"] = time.perf_counter() - started
        log_.record(answer)
        return answer

    def _answers(self) -> AnswerLog:
        with self._generator_lock:
            if self._answer_log is None:
                self._answer_log = AnswerLog(self.data_dir / ANSWERS_FILE)
            return self._answer_log

    # -- learning from corrections (issue 5) ---------------------------------------------
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
        corrected answer are rated helpful for the question (retrieval feedback).

        Args:
            question: The question as asked.
            corrected_answer: What the answer should have been.
            answer_id: The logged answer being corrected, if any.

        Raises:
            ValueError: the question or the answer is blank.
        """
        self._check_open()
        store = self._corrections_store()
        memory = self._correction_memory()
        shown = self._answers().correction_of(answer_id) if answer_id else None
        with self._adapt_lock:
            older = [m.correction.id for m in memory.same_fact(question)]
            if shown is not None and shown not in older:
                # Correcting an answer that came from a correction replaces that one,
                # however differently the question was worded this time.
                current = store.get(shown)
                if current is not None and current.in_effect:
                    older.append(shown)
            correction = store.add(question, corrected_answer, answer_id=answer_id)
            if older:
                store.supersede(older, correction.id)
                memory.remove(older)
            self._cache_vectors([correction], memory.add([correction]))
        self._rate_from_correction(correction)
        if older:
            self._reader_learning.retire(set(older))
        self._teach_reader(correction)
        self._corrections_changed()
        return correction

    def rate_source(self, answer_id: str, chunk_id: int, helpful: bool) -> None:
        """Say whether a passage shown with an answer helped; similar later questions
        rank it higher (helpful) or lower (not).

        Raises:
            KeyError: no logged answer has this id.
        """
        self._check_open()
        record = self._answers().get(answer_id)
        if record is None:
            raise KeyError(answer_id)
        question = str(record["question"])
        rating = self._corrections_store().add_rating(
            question, chunk_id, helpful, answer_id=answer_id
        )
        self._feedback_boosts().add([rating])

    def corrections(self) -> list[Correction]:
        """Every correction, oldest first, forgotten and superseded ones included (see
        :attr:`Correction.forgotten` and :attr:`Correction.superseded_by`)."""
        self._check_open()
        return self._corrections_store().all()

    def forget_correction(self, correction_id: int) -> Correction:
        """Undo a correction in every layer; an older one it had replaced comes back.

        Raises:
            KeyError: no correction has this id.
        """
        self._check_open()
        store = self._corrections_store()
        memory = self._correction_memory()
        with self._adapt_lock:
            before = {c.id for c in store.active()}
            forgotten = store.forget(correction_id)
            memory.remove([correction_id])
            self._remember([c for c in store.active() if c.id not in before])
            self._feedback_boosts().drop_correction(correction_id)
        # The serving reader falls back at once if it learned this correction; a round
        # retrains on what is still in effect (an older correction back in effect too).
        self._reader_learning.drop({correction_id})
        if self.config.reader_learning:
            self._queue_reader_round()
        self._corrections_changed()
        return forgotten

    def _corrections_store(self) -> CorrectionStore:
        """The corrections; raises :class:`StoreDamagedError` (kept untouched) if damaged."""
        with self._adapt_lock:
            if self._learning_damage is not None:
                raise self._learning_damage
            if self._correction_store is None:
                try:
                    self._correction_store = CorrectionStore(self.data_dir / CORRECTIONS_FILE)
                except StoreDamagedError as damaged:
                    self._learning_damage = self._explain_damaged_corrections(damaged)
                    raise self._learning_damage from damaged
            return self._correction_store

    def _explain_damaged_corrections(self, damaged: StoreDamagedError) -> StoreDamagedError:
        backup = Path(str(damaged.path) + BACKUP_SUFFIX)
        if backup.is_file():
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(backup.stat().st_mtime))
            advice = (
                f"Your last good copy is {backup.name} from {when}: close Kenning and copy "
                f"it over {damaged.path.name} to get your corrections back."
            )
        else:
            advice = "There is no backup copy yet (one is made at each clean shutdown)."
        explained = StoreDamagedError(
            damaged.path,
            damaged.what,
            f"{damaged.detail}. It is left as it is; search and answers work without it. {advice}",
        )
        self.store.record_error(damaged.path, None, explained.detail)
        log.error("%s", explained)
        return explained

    def _learning_usable(self) -> bool:
        """Whether the corrections open: search and answers go on without them if not."""
        try:
            self._corrections_store()
        except StoreError:
            return False
        return True

    def _correction_memory(self) -> CorrectionMemory:
        with self._adapt_lock:
            if self._memory is None:
                self._memory = CorrectionMemory(self.embedder)
                self._remember(self._corrections_store().active())
            return self._memory

    def _remember(self, corrections: list[Correction]) -> None:
        """Put corrections into the memory, from cached embeddings where there are any."""
        assert self._memory is not None
        dim = 3 * self.embedder.dim
        cached = self._corrections_store().load_vectors(self.embedder.model_id)
        known = [c for c in corrections if len(cached.get(c.id, b"")) == 4 * dim]
        missing = [c for c in corrections if len(cached.get(c.id, b"")) != 4 * dim]
        if known:
            rows = np.stack([np.frombuffer(cached[c.id], dtype=np.float32) for c in known])
            self._memory.add(known, vectors=rows)
        self._cache_vectors(missing, self._memory.add(missing))

    def _cache_vectors(self, corrections: list[Correction], rows: np.ndarray) -> None:
        if corrections:
            self._corrections_store().save_vectors(
                self.embedder.model_id,
                [
                    (c.id, row.astype(np.float32).tobytes())
                    for c, row in zip(corrections, rows, strict=True)
                ],
            )

    def _feedback_boosts(self) -> FeedbackBoosts:
        with self._adapt_lock:
            if self._feedback is None:
                cfg = self.config
                feedback = FeedbackBoosts(
                    self.embedder,
                    weight=cfg.feedback_weight,
                    min_similarity=cfg.feedback_min_similarity,
                )
                feedback.add(self._corrections_store().ratings())
                self._feedback = feedback
            return self._feedback

    def _rate_from_correction(self, correction: Correction) -> None:
        """Rate the passages that contain the corrected answer as helpful for its question."""
        if not self._index_ready.is_set() or self._startup_error is not None:
            return  # the index is still opening: this correction gets no derived ratings
        wanted = _normalize(correction.answer)
        if not wanted:
            return
        hits = self.search(correction.question, limit=self.config.candidates, feedback=False)
        holding = [hit for hit in hits if wanted in _normalize(hit.text)][:3]
        ratings = [
            self._corrections_store().add_rating(
                correction.question, hit.chunk_id, True, correction_id=correction.id
            )
            for hit in holding
        ]
        self._feedback_boosts().add(ratings)

    def _corrections_changed(self) -> None:
        for listener in list(self.on_corrections_changed):
            try:
                listener()
            except Exception:
                log.exception("a corrections listener failed")

    # -- generator adaptation (issue 5, layer 2) ------------------------------------------
    def _init_adaptation(self) -> None:
        cfg = self.config
        settings = TrainSettings(
            rank=cfg.adapter_rank,
            alpha=2 * cfg.adapter_rank,
            learning_rate=cfg.adapter_learning_rate,
            epochs=cfg.adapter_epochs,
            replay_ratio=cfg.adapter_replay_ratio,
            seed=cfg.adapter_seed,
        )
        self._adaptation = GeneratorAdaptation(
            self.data_dir / ADAPTERS_DIR,
            lambda: self.generator,
            lambda: self._corrections_store().active(),
            settings=settings,
            progress=self.progress,
        )
        self._consolidation_queued: bool = False
        self._last_question: float = time.monotonic()
        self._adapter_scheduler = ConsolidationScheduler(
            self._adaptation.pending,
            self.consolidate,
            lambda: self._consolidation_queued or self._adaptation.status().state != "idle",
            after=cfg.adapter_auto_after,
            idle_seconds=cfg.adapter_idle_seconds,
            last_activity=lambda: self._last_question,
        )
        self._adapter_scheduler.start()

    def consolidate(self, *, wait: bool = False) -> None:
        """Teach the answer model the pending corrections: one LoRA round on the writer.

        Args:
            wait: Block until the round (and any work queued before it) is done.
        """
        self._check_open()
        with self._idle:  # one queued round at a time: it learns whatever is pending then
            queued = self._consolidation_queued
            self._consolidation_queued = True
        if not queued:

            def run(cancel: threading.Event) -> None:
                self._consolidation_queued = False
                try:
                    self._adaptation.consolidate(cancel)
                except TrainingCancelled as exc:
                    raise Cancelled from exc

            self._submit(_Job("Learning from corrections", run))
        if wait:
            self.wait_until_idle(timeout=24 * 3600)

    def adapter_status(self) -> AdapterStatus:
        """Whether the answer model is training, paused or idle; its version; what it lacks."""
        self._check_open()
        return self._adaptation.status()

    def adapter_versions(self) -> list[AdapterVersion]:
        """Every saved adapter version, oldest first (version 0, the base model, is implied)."""
        self._check_open()
        return self._adaptation.versions()

    def rollback_adapter(self, version: int) -> None:
        """Answer with adapter ``version`` from now on (0: the base model).

        Raises:
            ValueError: no such version.
        """
        self._check_open()
        self._adaptation.rollback(version)

    def _recall(
        self, question: str, hits: list[Hit], on_token: TokenCallback | None
    ) -> Answer | None:
        """The adapted generator's closed-book answer when its gate passes, else None."""
        cfg = self.config
        adapted = self._adaptation.adapted() if cfg.use_generator_recall else None
        if adapted is None:
            return None
        if cfg.use_correction_memory:
            margin, floor = cfg.recall_min_margin, cfg.recall_min_logp
        else:
            margin, floor = cfg.recall_alone_min_margin, cfg.recall_alone_min_logp
        recalled = recall(adapted, self.generator, question, min_logp=floor)
        if not accept(recalled, min_margin=margin, min_logp=floor):
            return None
        version = self._adaptation.serving_version
        return recalled_answer(question, recalled, hits, version=version, on_token=on_token)

    def add_folder(self, path: Path | str) -> None:
        """Index a folder recursively in the background; returns at once.

        Raises:
            FolderNotFoundError: ``path`` is empty or not an existing directory.
            FolderRefusedError: the root or a system directory (see
                :func:`engine.scanning.refused_folder`).
        """
        self._check_open()
        if not str(path).strip():
            raise FolderNotFoundError("No folder given (an empty path)")
        folder = Path(path).expanduser().resolve()
        if not folder.is_dir():
            raise FolderNotFoundError(f"Not a folder: {folder}")
        refusal = refused_folder(folder)
        if refusal:
            raise FolderRefusedError(refusal)
        self.store.add_folder(folder)
        self._watcher.watch(folder)
        self._submit_sync(folder)

    def remove_folder(self, path: Path | str) -> None:
        """Forget a folder and every chunk indexed from it (in the background)."""
        self._check_open()
        folder = Path(path).expanduser().resolve()
        self._watcher.unwatch(folder)

        def run(cancel: threading.Event) -> None:
            record = self.store.get_folder(folder)
            if record is not None:
                self._indexer().remove_folder(record)

        self._submit(_Job(f"Removing {folder}", run, folder))

    def resync(self) -> None:
        """Re-scan every folder for changes made behind the engine's back."""
        for folder in self.store.folders():
            self._submit_sync(folder.path)

    def search(
        self,
        query: str,
        limit: int = 10,
        *,
        mode: SearchMode | str = SearchMode.HYBRID,
        fusion: str | None = None,
        feedback: bool = True,
    ) -> list[Hit]:
        """The passages that best match ``query``, best first.

        Args:
            query: Free text.
            limit: Most hits to return.
            mode: "hybrid" (default), "dense" or "bm25".
            fusion: Override the configured fusion ("convex" or "rrf") for this call.
            feedback: Apply the boosts from rated passages of similar questions.
        """
        self._check_open()
        query = clean_text(query)
        limit = max(1, min(limit, MAX_SEARCH_LIMIT))
        index = self._wait_for_index()
        boosts: dict[int, float] = {}
        if feedback and query.strip() and self._learning_usable() and len(self._feedback_boosts()):
            boosts = self._feedback_boosts().boosts(self.embedder.embed_query(query))
        try:
            hits = self._search(query, limit, index, boosts, mode, fusion)
        except sqlite3.DatabaseError as exc:  # damage that appeared after open
            raise StoreError(
                f"The search index {self.store.path} is damaged ({exc}). Restart Kenning: "
                "it checks the file at start and rebuilds it from your files."
            ) from exc
        if not boosts:
            return hits
        extra = self.store.get_chunks(k for k, v in boosts.items() if v > 0)
        return apply_boosts(hits, boosts, extra.values())[:limit]

    def _search(
        self,
        query: str,
        limit: int,
        index: USearchIndex,
        boosts: dict[int, float],
        mode: SearchMode | str,
        fusion: str | None,
    ) -> list[Hit]:
        return hybrid_search(
            query,
            store=self.store,
            index=index,
            embedder=self.embedder,
            limit=max(limit, self.config.candidates) if boosts else limit,
            mode=SearchMode(mode),
            candidates=self.config.candidates,
            fusion=fusion or self.config.fusion,
            dense_weight=self.config.dense_weight,
            rrf_k=self.config.rrf_k,
        )

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
            waiting = self._adaptation.pending() if self._correction_store else 0
            if not waiting:
                return True
            if (before is not None and waiting >= before) or time.monotonic() >= deadline:
                return False
            before = waiting
            self.consolidate()

    def wait_until_idle(self, timeout: float = 60.0) -> bool:
        """Block until no work is queued or running; False if ``timeout`` passed with work left.

        Changes the watcher has seen but not yet handed over count as queued work.
        While folders are watched it waits at least a moment, so a file written
        just before the call has time to reach the watcher. A learning round the
        scheduler has not started yet is not queued work: to wait for corrections
        to be learned, use :meth:`wait_until_learned`.
        """
        now = time.monotonic()
        deadline = now + timeout
        grace_end = now + EVENT_GRACE_SECONDS if self._watcher.folders else now
        with self._idle:
            while self._pending or time.monotonic() < grace_end:
                now = time.monotonic()
                if now >= deadline:
                    # A timeout shorter than the grace (a progress loop polling every
                    # 0.5 s) must still see idle: only pending work makes it False.
                    return not self._pending
                wait = deadline - now if self._pending else grace_end - now
                self._idle.wait(min(wait, deadline - now))
        return True

    def cancel(self) -> None:
        """Stop the running job and drop the queued ones (a later sync catches up)."""
        dropped = 0
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is None:
                self._jobs.put(None)
                break
            dropped += 1
        self._cancel.set()
        with self._idle:
            self._pending -= dropped
            self._idle.notify_all()

    def pause_indexing(self) -> None:
        """Hold indexing after the file in progress until :meth:`resume_indexing`.

        Changes that arrive meanwhile queue up and are indexed on resume; search
        and answers keep working on what is indexed. Cancel and close end a pause.
        """
        self._cancel.pause()

    def resume_indexing(self) -> None:
        """Continue indexing where :meth:`pause_indexing` held it."""
        self._cancel.resume()

    @property
    def indexing_paused(self) -> bool:
        return self._cancel.paused

    def status(self) -> Status:
        """Folders, counts, queued work, progress and every skipped file with its reason."""
        self._check_open()
        running = self._running
        queued_folders = set()
        with self._jobs.mutex:
            for job in list(self._jobs.queue):
                if job is not None and job.folder is not None:
                    queued_folders.add(job.folder)
        folders = []
        for rec in self.store.folders():
            files, chunks = self.store.counts(rec.id)
            if not rec.path.is_dir():
                state = "missing"
            elif running is not None and running.folder == rec.path:
                state = "indexing"
            elif rec.path in queued_folders:
                state = "queued"
            else:
                state = "ready"
            errors = tuple(self.store.errors(rec.id))
            folders.append(FolderStatus(rec.path, files, chunks, rec.synced_at, state, errors))
        files, chunks = self.store.counts()
        return Status(
            folders=tuple(folders),
            files=files,
            chunks=chunks,
            vectors=len(self._index) if self._index is not None else 0,
            queued=max(0, self._pending - (1 if running else 0)),
            busy=running is not None,
            progress=self.progress.snapshot(),
            errors=tuple(self.store.errors()),
            paused=self._cancel.paused,
            **self._learning_status(),
        )

    def _learning_status(self) -> dict[str, Any]:
        """Corrections waiting for the answer model, and when their round starts.

        Nothing is opened for it: before the first correction is touched, nothing waits.
        """
        if self._correction_store is None or self._consolidation_queued:
            return {}
        try:
            waiting = self._adaptation.pending()
            due = self._adapter_scheduler.due_in() if waiting else None
        except Exception:  # a store closing under a status poll: report nothing
            return {}
        return {"corrections_waiting": waiting, "next_learning_in": due}

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
        self._watcher.stop()  # first: no change set may arrive after the worker's last job
        self._adapter_scheduler.stop()
        self.cancel()  # also ends a pause
        self._jobs.put(None)
        self._worker.join(timeout)
        if self._worker.is_alive():
            running = self._running
            log.warning(
                "closing without waiting for the writer (%s)",
                running.describe if running else "starting",
            )
            self.store.close_between_writes(timeout=1.0)
        else:
            if self._index is not None and self._index_dirty:
                self._save_index()
            self.store.close()
        if self._answer_log is not None:
            self._answer_log.close()
        if self._correction_store is not None:
            try:  # a clean shutdown leaves a copy the person can restore from
                self._correction_store.backup()
            except (OSError, sqlite3.Error) as exc:
                log.warning("could not back up the corrections: %s", exc)
            self._correction_store.close()
        self._lock.release()

    # -- worker --------------------------------------------------------------------------
    def _submit_sync(self, folder: Path) -> None:
        def run(cancel: threading.Event) -> None:
            record = self.store.get_folder(folder)
            if record is None:
                return
            if not folder.is_dir():
                log.warning("folder missing: %s", folder)
                return
            self.last_stats = self._indexer().sync_folder(record, self.progress, cancel)
            self.totals.add(self.last_stats)

        self._submit(_Job(f"Indexing {folder}", run, folder))

    def _submit_changes(self, changes: ChangeSet) -> None:
        """Queue a change set from the watcher as one job on the worker."""
        folder = changes.folder

        def run(cancel: threading.Event) -> None:
            record = self.store.get_folder(folder)
            if record is None:
                return  # removed meanwhile
            if not folder.is_dir():
                self._watcher.mark_lost(folder)  # a full sync on its return catches up
                return
            stats = IndexStats()
            rules = self._watcher.rules(folder)
            try:
                retry = apply_change_set(
                    self._indexer(), record, changes, rules, self.progress, cancel, stats
                )
            finally:
                self.last_stats = stats
                self.live_stats.add(stats)
                self.totals.add(stats)
            for path in retry:
                self._watcher.requeue(folder, path)

        self._submit(_Job(f"Updating {folder}", run, folder))

    def _hold(self, delta: int) -> None:
        """Count a folder with changes not yet handed over as queued work (+1), or stop (-1)."""
        with self._idle:
            self._pending = max(0, self._pending + delta)
            self._idle.notify_all()

    def _submit(self, job: _Job) -> None:
        with self._idle:
            self._pending += 1
        self._jobs.put(job)

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            self._cancel.clear()
            self._running = job
            try:
                job.run(self._cancel)
            except Cancelled:
                log.info("cancelled: %s", job.describe)
            except EngineError as exc:
                log.error("%s failed: %s", job.describe, exc)
            except Exception:
                log.exception("%s failed", job.describe)
            finally:
                self._running = None
                self.progress.end()
                if self._jobs.empty() and self._index_dirty:
                    self._save_index()
                with self._idle:
                    self._pending = max(0, self._pending - 1)
                    self._idle.notify_all()

    def _open_index(self, cancel: threading.Event) -> None:
        """Load the vector index and make it agree with the store (crash repair)."""
        try:
            embedder = self.embedder
        except BaseException as exc:
            self._startup_error = exc  # searches re-raise it instead of waiting forever
            self._index_ready.set()
            raise
        path = self.data_dir / INDEX_FILE
        # The vector index is derived data: one made by another embedding model or in
        # another format is rebuilt from the stored chunk texts, without re-parsing.
        model_changed = self.store.get_meta("embedding_model") not in (None, embedder.model_id)
        model_changed |= self.store.get_meta("index_format") not in (None, str(INDEX_FORMAT))
        index = USearchIndex(embedder.dim)
        if path.exists() and not model_changed:
            try:
                index = USearchIndex.load(path, embedder.dim)
            except ValueError as exc:
                log.warning("%s; rebuilding it from the stored chunk texts", exc)
        self.store.set_meta("embedding_model", embedder.model_id)
        self.store.set_meta("index_format", str(INDEX_FORMAT))
        self._index = index
        self._index_ready.set()
        self._indexer().repair(self.progress, cancel)

    def _indexer(self) -> Indexer:
        if self._index is None:
            raise EngineError("the vector index is not open")
        return Indexer(
            self.store,
            self._index,
            lambda: self.embedder,
            self.config,
            on_index_changed=self._mark_dirty,
        )

    def _mark_dirty(self) -> None:
        self._index_dirty = True
        if time.monotonic() - self._last_save > self.config.index_save_interval:
            self._save_index()

    def _save_index(self) -> None:
        if self._index is None:
            return
        self._index_dirty = False
        self._index.save(self.data_dir / INDEX_FILE)
        self._last_save = time.monotonic()

    def _wait_for_index(self) -> USearchIndex:
        if not self._index_ready.wait(timeout=600):
            raise EngineError("the vector index did not open in time")
        if self._startup_error is not None:
            raise self._startup_error
        assert self._index is not None
        return self._index

    def _check_open(self) -> None:
        if self._closed:
            raise EngineClosedError("the engine is closed")


def _corrected_answer(question: str, hits: list[Hit], match: MemoryMatch) -> Answer:
    """An answer taken from the person's correction, with the nearest passages as sources."""
    return Answer(
        question=question,
        text=match.correction.answer,
        sources=hits,
        cited=[],
        citations=[],
        abstained=False,
        answer_id=uuid.uuid4().hex,
        correction=match.correction,
    )


def clean_text(text: str) -> str:
    """``text`` with undecodable bytes (lone surrogates from a non-UTF-8 terminal or
    file name) replaced: the tokenizer and SQLite reject them with a traceback."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text


def _normalize(text: str) -> str:
    """Lower case, punctuation dropped, spaces collapsed: for containment tests."""
    return " ".join("".join(ch if ch.isalnum() else " " for ch in text.lower()).split())
