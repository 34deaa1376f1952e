"""The learning room: what a person's corrections and ratings change, and when.

:class:`Learning` holds the durable record (:mod:`~engine.learning.corrections`),
the exact correction memory, the retrieval feedback, the reader's learning from
corrections and the generator's adapter with its scheduler. A correction takes
effect at once in the memory and the feedback; the reader and the adapter learn
it in rounds on the engine's writer, after the library's work queued before them.

It reaches the library only through the two callables it is given (a search and a
readiness check) and the answer log only to look an answer up.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from engine.config import EngineConfig
from engine.embedding import Embedder
from engine.errors import StoreDamagedError, StoreError
from engine.generation import Generator, TokenCallback
from engine.integrity import BACKUP_SUFFIX
from engine.learning.adapter import AdapterStatus, AdapterVersion, TrainingCancelled, TrainSettings
from engine.learning.consolidation import ConsolidationScheduler, GeneratorAdaptation
from engine.learning.corrections import Correction, CorrectionStore
from engine.learning.feedback import FeedbackBoosts
from engine.learning.memory import CorrectionMemory, MemoryMatch
from engine.learning.reader_learning import (
    OWN_ANSWERS_PER_PASSAGE,
    LabelledReading,
    ReaderLearning,
    find_example,
)
from engine.learning.recall import accept, recall, recalled_answer
from engine.library.retrieval import Hit
from engine.reader import SpanReader
from engine.reader.answer import Answer
from engine.reader.answering import Answering
from engine.writer import Cancelled, Writer

log = logging.getLogger(__name__)

CORRECTIONS_FILE = "corrections.sqlite3"
ADAPTERS_DIR = "adapters"
READER_DIR = "reader"
# Keys of the one-at-a-time rounds on the writer (Writer.submit_once).
CONSOLIDATION = "adapter round"
READER_ROUND = "reader round"


class Search(Protocol):
    def __call__(self, query: str, limit: int, *, feedback: bool = ...) -> list[Hit]: ...


class Learning:
    """Corrections, ratings and the models' learning from them.

    Args:
        data_dir: Where the corrections, the adapters and the learned readers live.
        config: Memory, feedback, adapter and reader-learning settings.
        writer: Runs the learning rounds, after the library's queued work.
        embedder: Returns the embedding model (the memory and feedback embed questions).
        generator: Returns the answer model the adapter trains.
        search: The library's search (without feedback when asked), to find the
            passages that hold a corrected answer.
        searchable: Whether the library's index is open (before, corrections are
            recorded but get no derived ratings or reader examples).
        answers: Returns the answer log, to look up the answer a correction corrects.
        record_error: Shows a problem with the corrections file in status.
        shipped_reader: The reader's files the learned versions start from.
    """

    def __init__(
        self,
        data_dir: Path,
        config: EngineConfig,
        writer: Writer,
        *,
        embedder: Callable[[], Embedder],
        generator: Callable[[], Generator],
        search: Search,
        searchable: Callable[[], bool],
        answering: Callable[[], Answering],
        record_error: Callable[[Path, str], None],
        shipped_reader: Path,
        device: str,
    ) -> None:
        self.data_dir = data_dir
        self.config = config
        self._writer = writer
        self._embedder = embedder
        self._generator = generator
        self._search = search
        self._searchable = searchable
        self._answering = answering
        self._record_error = record_error
        self._lock = threading.RLock()
        self._store: CorrectionStore | None = None
        self._damage: StoreDamagedError | None = None  # corrections unreadable
        self._memory: CorrectionMemory | None = None
        self._feedback: FeedbackBoosts | None = None
        # Called (with no arguments) after a correction is recorded or forgotten, on the
        # caller's thread: the hook for background work such as adapter retraining.
        self.on_corrections_changed: list[Callable[[], None]] = []
        self.reader_learning = ReaderLearning(data_dir / READER_DIR, shipped_reader, device=device)
        settings = TrainSettings(
            rank=config.adapter_rank,
            alpha=2 * config.adapter_rank,
            learning_rate=config.adapter_learning_rate,
            epochs=config.adapter_epochs,
            replay_ratio=config.adapter_replay_ratio,
            seed=config.adapter_seed,
        )
        self.adaptation = GeneratorAdaptation(
            data_dir / ADAPTERS_DIR,
            generator,
            lambda: self.store().active(),
            settings=settings,
            progress=writer.progress,
        )
        self._last_question = time.monotonic()
        self._scheduler = ConsolidationScheduler(
            self.adaptation.pending,
            self.consolidate,
            lambda: writer.is_queued(CONSOLIDATION) or self.adaptation.status().state != "idle",
            after=config.adapter_auto_after,
            idle_seconds=config.adapter_idle_seconds,
            last_activity=lambda: self._last_question,
        )
        self._scheduler.start()

    # -- the record ----------------------------------------------------------------------
    def store(self) -> CorrectionStore:
        """The corrections; raises :class:`StoreDamagedError` (kept untouched) if damaged."""
        with self._lock:
            if self._damage is not None:
                raise self._damage
            if self._store is None:
                try:
                    self._store = CorrectionStore(self.data_dir / CORRECTIONS_FILE)
                except StoreDamagedError as damaged:
                    self._damage = self._explain_damage(damaged)
                    raise self._damage from damaged
            return self._store

    def usable(self) -> bool:
        """Whether the corrections open: search and answers go on without them if not."""
        try:
            self.store()
        except StoreError:
            return False
        return True

    def record_correction(
        self, question: str, corrected_answer: str, *, answer_id: str | None = None
    ) -> Correction:
        """Record a correction and put it into effect (see :meth:`Engine.record_correction`)."""
        store = self.store()
        memory = self.memory()
        shown = self._answering().log().correction_of(answer_id) if answer_id else None
        with self._lock:
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
            self.reader_learning.retire(set(older))
        self._teach_reader(correction)
        self._changed()
        return correction

    def rate_source(self, answer_id: str, chunk_id: int, helpful: bool) -> None:
        """Rate a passage shown with a logged answer (see :meth:`engine.Engine.rate_source`).

        Raises:
            KeyError: no logged answer has this id.
        """
        record = self._answering().log().get(answer_id)
        if record is None:
            raise KeyError(answer_id)
        rating = self.store().add_rating(
            str(record["question"]), chunk_id, helpful, answer_id=answer_id
        )
        self.feedback().add([rating])

    def forget_correction(self, correction_id: int) -> Correction:
        """Undo a correction in every layer; an older one it had replaced comes back.

        Raises:
            KeyError: no correction has this id.
        """
        store = self.store()
        memory = self.memory()
        with self._lock:
            before = {c.id for c in store.active()}
            forgotten = store.forget(correction_id)
            memory.remove([correction_id])
            self._remember([c for c in store.active() if c.id not in before])
            self.feedback().drop_correction(correction_id)
        # The serving reader falls back at once if it learned this correction; a round
        # retrains on what is still in effect (an older correction back in effect too).
        self.reader_learning.drop({correction_id})
        if self.config.reader_learning:
            self._queue_reader_round()
        self._changed()
        return forgotten

    # -- what takes effect at once ---------------------------------------------------------
    def memory(self) -> CorrectionMemory:
        """The exact correction memory, filled from the record on first use."""
        with self._lock:
            if self._memory is None:
                self._memory = CorrectionMemory(self._embedder())
                self._remember(self.store().active())
            return self._memory

    def lookup(self, question: str) -> MemoryMatch | None:
        """The correction that answers ``question`` (or a paraphrase of it), if any."""
        return self.memory().lookup(question)

    def feedback(self) -> FeedbackBoosts:
        """The ratings in effect, as ranking boosts for similar questions."""
        with self._lock:
            if self._feedback is None:
                cfg = self.config
                feedback = FeedbackBoosts(
                    self._embedder(),
                    weight=cfg.feedback_weight,
                    min_similarity=cfg.feedback_min_similarity,
                )
                feedback.add(self.store().ratings())
                self._feedback = feedback
            return self._feedback

    def boosts(self, query: str) -> dict[int, float]:
        """Ranking boosts for ``query`` from rated passages of similar questions."""
        if not query.strip() or not self.usable() or not len(self.feedback()):
            return {}
        return self.feedback().boosts(self._embedder().embed_query(query))

    def recall(
        self, question: str, hits: list[Hit], on_token: TokenCallback | None
    ) -> Answer | None:
        """The adapted generator's closed-book answer when its gate passes, else None."""
        cfg = self.config
        adapted = self.adaptation.adapted() if cfg.use_generator_recall else None
        if adapted is None:
            return None
        if cfg.use_correction_memory:
            margin, floor = cfg.recall_min_margin, cfg.recall_min_logp
        else:
            margin, floor = cfg.recall_alone_min_margin, cfg.recall_alone_min_logp
        recalled = recall(adapted, self._generator(), question, min_logp=floor)
        if not accept(recalled, min_margin=margin, min_logp=floor):
            return None
        version = self.adaptation.serving_version
        return recalled_answer(question, recalled, hits, version=version, on_token=on_token)

    # -- rounds on the writer --------------------------------------------------------------
    def asked(self) -> None:
        """A question came: the scheduler's idle time starts again."""
        self._last_question = time.monotonic()

    def consolidate(self) -> None:
        """Queue one LoRA round of the answer model on the writer (one at a time)."""

        def run(cancel: threading.Event) -> None:
            try:
                self.adaptation.consolidate(cancel)
            except TrainingCancelled as exc:
                raise Cancelled from exc

        # One queued round at a time: it learns whatever is pending when it runs.
        self._writer.submit_once(CONSOLIDATION, "Learning from corrections", run)

    def waiting(self) -> int:
        """Corrections the answer model has not learned yet (0 before any is opened)."""
        return self.adaptation.pending() if self._store is not None else 0

    def adapter_status(self) -> AdapterStatus:
        return self.adaptation.status()

    def adapter_versions(self) -> list[AdapterVersion]:
        return self.adaptation.versions()

    def rollback_adapter(self, version: int) -> None:
        self.adaptation.rollback(version)

    @property
    def reader_version(self) -> int:
        """The learned reader version answers use (0: the shipped reader)."""
        return self.reader_learning.current() if self.config.reader_learning else 0

    def load_reader(self, version: int) -> SpanReader:
        """Reader ``version`` from disk (0: the shipped one)."""
        return self.reader_learning.load(version)

    def status(self) -> dict[str, Any]:
        """Corrections waiting for the answer model, and when their round starts.

        Nothing is opened for it: before the first correction is touched, nothing waits.
        """
        if self._store is None or self._writer.is_queued(CONSOLIDATION):
            return {}
        try:
            waiting = self.adaptation.pending()
            due = self._scheduler.due_in() if waiting else None
        except Exception:  # a store closing under a status poll: report nothing
            return {}
        return {"corrections_waiting": waiting, "next_learning_in": due}

    def stop(self) -> None:
        """Stop scheduling rounds (the writer is stopped after this)."""
        self._scheduler.stop()

    def close(self) -> None:
        """Back the corrections up (a clean shutdown leaves a copy to restore) and close."""
        if self._store is None:
            return
        try:
            self._store.backup()
        except (OSError, sqlite3.Error) as exc:
            log.warning("could not back up the corrections: %s", exc)
        self._store.close()

    # -- helpers ---------------------------------------------------------------------------
    def _teach_reader(self, correction: Correction) -> None:
        """Turn a correction into a reader example if a retrieved passage holds its answer,
        then queue a reader round on the writer."""
        if not self.config.reader_learning:
            return
        if self._searchable():
            hits = self._search(correction.question, self.config.answer_passages)
            example = find_example(
                correction.id,
                correction.question,
                correction.answer,
                [h.text for h in hits],
                [(str(h.path), h.start, h.end) for h in hits],
            )
            if example is not None:
                self.reader_learning.add(example)
        self._queue_reader_round()

    def _queue_reader_round(self) -> None:
        """One queued reader round at a time; it learns whatever is in effect when it runs."""

        def run(cancel: threading.Event) -> None:
            active = {c.id for c in self.store().active()}
            if not self.reader_learning.pending(active):
                return
            progress = self._writer.progress
            progress.begin("Teaching the reader your corrections")

            def checkpoint() -> None:
                self.adaptation.pause.checkpoint(cancel)  # answers first; cancel stops

            def on_step(step: int, steps: int, loss: float) -> None:
                progress.set_total(steps)
                progress.advance(1, f"step {step} of {steps}")

            try:
                self.reader_learning.learn(
                    active, asked=self._asked_about, checkpoint=checkpoint, on_step=on_step
                )
            except TrainingCancelled as exc:
                raise Cancelled from exc

        self._writer.submit_once(READER_ROUND, "Teaching the reader your corrections", run)

    def _asked_about(self, example: LabelledReading) -> list[str]:
        """The person's questions whose answers cited ``example``'s passage, less those
        the correction memory answers, by the same test as ``Engine.ask`` (the gate, then
        the reader's check over the passage): a paraphrase of a corrected question must
        not replay the answer the person corrected, and another question about the
        passage, which the memory leaves to the reader, keeps its answer."""
        memory = self.memory()
        answering = self._answering()
        asked = answering.log().questions_citing(example.path, example.start, example.end)
        kept = []
        # The latest few only: the gate embeds each question, and the round keeps at
        # most OWN_ANSWERS_PER_PASSAGE of them.
        for question in asked[: 4 * OWN_ANSWERS_PER_PASSAGE]:
            match = memory.lookup(question)
            stored = match.correction.question if match else ""
            if not match or not answering.reads_alike_over(stored, question, example.context):
                kept.append(question)
        return kept

    def _explain_damage(self, damaged: StoreDamagedError) -> StoreDamagedError:
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
        self._record_error(damaged.path, explained.detail)
        log.error("%s", explained)
        return explained

    def _remember(self, corrections: list[Correction]) -> None:
        """Put corrections into the memory, from cached embeddings where there are any."""
        assert self._memory is not None
        embedder = self._embedder()
        dim = 3 * embedder.dim
        cached = self.store().load_vectors(embedder.model_id)
        known = [c for c in corrections if len(cached.get(c.id, b"")) == 4 * dim]
        missing = [c for c in corrections if len(cached.get(c.id, b"")) != 4 * dim]
        if known:
            rows = np.stack([np.frombuffer(cached[c.id], dtype=np.float32) for c in known])
            self._memory.add(known, vectors=rows)
        self._cache_vectors(missing, self._memory.add(missing))

    def _cache_vectors(self, corrections: list[Correction], rows: np.ndarray) -> None:
        if corrections:
            self.store().save_vectors(
                self._embedder().model_id,
                [
                    (c.id, row.astype(np.float32).tobytes())
                    for c, row in zip(corrections, rows, strict=True)
                ],
            )

    def _rate_from_correction(self, correction: Correction) -> None:
        """Rate the passages that contain the corrected answer as helpful for its question."""
        if not self._searchable():
            return  # the index is still opening: this correction gets no derived ratings
        wanted = _normalize(correction.answer)
        if not wanted:
            return
        hits = self._search(correction.question, self.config.candidates, feedback=False)
        holding = [hit for hit in hits if wanted in _normalize(hit.text)][:3]
        ratings = [
            self.store().add_rating(
                correction.question, hit.chunk_id, True, correction_id=correction.id
            )
            for hit in holding
        ]
        self.feedback().add(ratings)

    def _changed(self) -> None:
        for listener in list(self.on_corrections_changed):
            try:
                listener()
            except Exception:
                log.exception("a corrections listener failed")


def _normalize(text: str) -> str:
    """Lower case, punctuation dropped, spaces collapsed: for containment tests."""
    return " ".join("".join(ch if ch.isalnum() else " " for ch in text.lower()).split())
