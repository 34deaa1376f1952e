"""The adapter's life in the engine: rounds, versions, rollback, forgetting, scheduling.

:class:`GeneratorAdaptation` is what :class:`engine.Engine` holds. Its
:meth:`~GeneratorAdaptation.consolidate` runs on the engine's single writer
thread (the engine schedules it there); everything else is cheap and may be
called from any thread.

Forgetting needs no hook into the correction store: whenever the adapter is
about to be used or reported, the correction ids the current version learned are
compared with the corrections still in effect. If one is gone (forgotten, or
superseded by a newer correction), answers fall back at once to the newest
version that never learned it (the base model if none), and the next round
retrains from there without it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from engine.generation import Generator
from engine.learning.adapter import (
    AdapterStatus,
    AdapterStore,
    AdapterVersion,
    Example,
    PauseGate,
    TrainSettings,
    adapted_view,
    lora_model,
    train_round,
)
from engine.learning.recall import ANCHOR_QUESTIONS, cached_base_answers
from engine.progress import Progress

log = logging.getLogger(__name__)


class CorrectionLike(Protocol):
    """What a round reads of a correction (:class:`engine.learning.Correction` fits)."""

    @property
    def id(self) -> int: ...
    @property
    def question(self) -> str: ...
    @property
    def answer(self) -> str: ...


class GeneratorAdaptation:
    """Versioned LoRA adapters of the answer model, trained on corrections.

    Args:
        root: The adapters folder (``data_dir/adapters``).
        generator: Returns the shared base generator (loaded lazily by the engine).
        corrections: Returns the corrections in effect, oldest first.
        settings: How rounds train (rank, rate, epochs, replay, seed).
        progress: Where rounds report steps done.
        anchor_questions: Unrelated prompts whose base answers are replayed.
    """

    def __init__(
        self,
        root: Path,
        generator: Callable[[], Generator],
        corrections: Callable[[], Sequence[CorrectionLike]],
        *,
        settings: TrainSettings,
        progress: Progress | None = None,
        anchor_questions: Sequence[str] = ANCHOR_QUESTIONS,
    ) -> None:
        self.store = AdapterStore(root)
        self.settings = settings
        self.pause = PauseGate()
        self._generator = generator
        self._corrections = corrections
        self._progress = progress
        self._anchor_questions = tuple(anchor_questions)
        self._anchors: list[Example] | None = None
        self._lock = threading.RLock()  # guards the serving model and the version it holds
        self._serving: Any = None  # LoRA model answers use (None until needed)
        self._serving_version = 0
        self._view: Generator | None = None
        self._training = False
        self._fraction = 0.0
        self.last_step_threads: set[int] = set()  # threads that ran the last round's steps

    # -- reading -------------------------------------------------------------------------
    def versions(self) -> list[AdapterVersion]:
        """Every saved version, oldest first."""
        return self.store.versions()

    def status(self) -> AdapterStatus:
        """State, progress of a running round, current version, trained vs pending."""
        active = {c.id for c in self._corrections()}
        version = self._reconcile(active)
        learned = set(self._meta(version).corrections) if version else set()
        state = "idle"
        if self._training:
            state = "paused" if self.pause.waiting else "training"
        return AdapterStatus(
            state=state,
            progress=self._fraction if self._training else 0.0,
            version=version,
            trained=len(active & learned),
            pending=len(active - learned),
        )

    def pending(self) -> int:
        """Corrections in effect that the current version has not learned."""
        return self.status().pending

    @property
    def serving_version(self) -> int:
        """The version :meth:`adapted` last returned (0: none)."""
        return self._serving_version if self._view is not None else 0

    def adapted(self) -> Generator | None:
        """A generator with the current adapter, or None while the base model is current."""
        active = {c.id for c in self._corrections()}
        with self._lock:
            version = self._reconcile(active)
            if version == 0:
                return None
            if self._serving is None or self._serving_version != version:
                self._load_serving(version)
            return self._view

    # -- writing -------------------------------------------------------------------------
    def rollback(self, version: int) -> None:
        """Make ``version`` current (0: the base model); later versions stay on disk.

        Raises:
            ValueError: no such version.
        """
        with self._lock:
            self.store.set_current(version)
            if version and self._serving is not None:
                self._load_serving(version)

    def consolidate(self, cancel: threading.Event | None = None) -> AdapterVersion | None:
        """Train one round on the pending corrections; None when nothing is pending.

        Continues from the current version, replaying what it learned; starts from
        the base model instead when the current version learned a correction no
        longer in effect. Runs on the calling thread (the engine's writer).

        Raises:
            TrainingCancelled: ``cancel`` was set; nothing was saved.
        """
        corrections = list(self._corrections())
        active = {c.id for c in corrections}
        parent = self._reconcile(active)
        learned_ids = set(self._meta(parent).corrections) if parent else set()
        new = [Example(c.question, c.answer, c.id) for c in corrections if c.id not in learned_ids]
        if not new:
            return None
        learned = [Example(c.question, c.answer, c.id) for c in corrections if c.id in learned_ids]
        generator = self._generator()
        model = lora_model(generator, self.settings)
        if parent:
            self.store.load_into(model, parent)
        self._training, self._fraction = True, 0.0
        if self._progress is not None:
            self._progress.begin(f"Learning {len(new)} corrections")
        try:
            # The base model's replay answers come from the round's own copy with the
            # adapter switched off: the shared generator's lock stays free for questions.
            with model.disable_adapter():
                anchors = self._anchor_examples(adapted_view(generator, model), cancel)
            result = train_round(
                model,
                generator,
                new,
                learned=learned,
                anchors=anchors,
                settings=self.settings,
                cancel=cancel,
                pause=self.pause,
                on_step=self._on_step,
            )
        finally:
            self._training = False
        self.last_step_threads = result.step_threads
        meta = AdapterVersion(
            version=self.store.next_version(),
            created_at=time.time(),
            parent=parent,
            corrections=tuple(
                sorted(learned_ids | {e.correction_id for e in new if e.correction_id})
            ),
            examples=result.examples,
            steps=result.steps,
            seconds=result.seconds,
            loss=result.loss,
            seed=self.settings.seed,
            base_model=generator.model_id,
        )
        with self._lock:
            self.store.save(model, meta)
            self.store.set_current(meta.version)
            self._serving, self._serving_version = model, meta.version
            self._view = adapted_view(generator, model)
        log.info(
            "adapter v%d: %d corrections, %.1f s",
            meta.version,
            len(meta.corrections),
            result.seconds,
        )
        return meta

    # -- internals -----------------------------------------------------------------------
    def _on_step(self, done: int, total: int) -> None:
        self._fraction = done / max(1, total)
        if self._progress is not None:
            self._progress.set_total(total)
            self._progress.advance(1)

    def _meta(self, version: int) -> AdapterVersion:
        for meta in self.store.versions():
            if meta.version == version:
                return meta
        raise ValueError(f"no adapter version {version}")

    def _reconcile(self, active: set[int]) -> int:
        """The current version, first rolled back past any that learned a gone correction."""
        with self._lock:
            version = self.store.current()
            if version == 0:
                return 0
            metas = {m.version: m for m in self.store.versions()}
            if version in metas and set(metas[version].corrections) <= active:
                return version
            safe = [v for v, m in metas.items() if v < version and set(m.corrections) <= active]
            fallback = max(safe, default=0)
            log.info("adapter v%d learned a forgotten correction; back to v%d", version, fallback)
            self.store.set_current(fallback)
            return fallback

    def _load_serving(self, version: int) -> None:
        generator = self._generator()
        if self._serving is None:
            self._serving = lora_model(generator, self.settings)
            self._view = adapted_view(generator, self._serving)
        assert self._view is not None
        with self._view._lock:  # never swap weights under a running decode
            self.store.load_into(self._serving, version)
        self._serving_version = version

    def _anchor_examples(self, base: Generator, cancel: threading.Event | None) -> list[Example]:
        """The base model's answers to the anchor prompts (decoded once per data folder)."""
        if self._anchors is None:
            path = self.store.root / "anchors.json"
            self._anchors = cached_base_answers(
                base,
                self._anchor_questions,
                path,
                between=lambda: self.pause.checkpoint(cancel),  # questions first; cancel
            )
        return self._anchors


class ConsolidationScheduler:
    """Starts rounds by itself: after ``after`` pending corrections, or after a quiet spell.

    Args:
        pending: Returns how many corrections the current adapter lacks.
        submit: Schedules a round (on the engine's writer); called at most once per
            ``poll`` seconds while ``busy`` says no round is queued or running.
        busy: Whether a round is already queued or running.
        after: Pending corrections that start a round (0: never by count).
        idle_seconds: A round starts when any correction is pending and nothing asked
            for this long (0: never by time).
        last_activity: Returns the monotonic time of the last question.
        poll: Seconds between checks.
    """

    def __init__(
        self,
        pending: Callable[[], int],
        submit: Callable[[], None],
        busy: Callable[[], bool],
        *,
        after: int,
        idle_seconds: float,
        last_activity: Callable[[], float],
        poll: float = 2.0,
    ) -> None:
        self._pending, self._submit, self._busy = pending, submit, busy
        self._after, self._idle, self._last = after, idle_seconds, last_activity
        self._poll = poll
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="kenning-adapter-scheduler", daemon=True
        )

    @property
    def enabled(self) -> bool:
        return self._after > 0 or self._idle > 0

    def start(self) -> None:
        if self.enabled:
            self._thread.start()

    def due_in(self) -> float | None:
        """Seconds until this scheduler starts a round by itself, or None if it will not.

        0 when the count threshold is met (the next poll starts it); otherwise the
        rest of the quiet spell, which a new question starts over.
        """
        if not self.enabled:
            return None
        pending = self._pending()
        if not pending:
            return None
        if self._after and pending >= self._after:
            return 0.0
        if self._idle:
            return max(0.0, self._idle - (time.monotonic() - self._last()))
        return None

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._poll):
            try:
                if self._busy():
                    continue
                pending = self._pending()
                quiet = time.monotonic() - self._last()
                if (self._after and pending >= self._after) or (
                    self._idle and pending and quiet >= self._idle
                ):
                    self._submit()
            except Exception:  # a closed store during shutdown: try again next time
                log.debug("adapter scheduler check failed", exc_info=True)
