"""The span reader learns from corrections: versioned LoRA rounds on labelled readings.

A correction whose answer occurs in a retrieved passage is a labelled example
for the reader: that question, that passage, that span. :class:`ReaderLearning`
keeps these examples (``examples.json``), and a round (on the engine's writer)
trains the shipped reader's LoRA and head on all of them, repeated, mixed with
the shipped replay sample of third-party training questions so that nothing
else drifts. Each round starts from the shipped weights, so the result depends
only on the corrections in effect: forgetting one and retraining removes its
effect exactly, and with no examples left the shipped reader serves again.

A version is a LoRA (and head) on top of the shipped reader; it records the
shipped weights' hash, so a version learned on another release's reader is not
served (the next round retrains on the new one).

Layout under ``root`` (``data_dir/reader``)::

    examples.json        format_version, examples by correction id
    current.json         the version answers use (0: the shipped reader)
    v0001/ ...           reader.json + peft's adapter files, written whole then renamed
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from engine.errors import ModelNotAvailableError
from engine.reader.model import (
    ADAPTER_NAME,
    CONFIG_NAME,
    REPLAY_NAME,
    ReaderConfig,
    SpanReader,
)
from engine.reader.training import Example, TrainConfig, encode, train

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
EXAMPLES_FILE = "examples.json"
CURRENT_FILE = "current.json"
# Each correction's window is repeated this often per round, and as many replay
# windows join them (at least MIN_REPLAY). The retrained reader (2026-12-02) is surer
# of what the passage says: 6 repeats, one epoch at 5e-4 no longer moved it to a
# person's correction in the test; 12, two epochs at 1e-3 do. bench_reader_learning's
# figures are from the first reader and the weaker round, not yet rerun.
REPEATS = 12
MIN_REPLAY = 16
ROUND = TrainConfig(epochs=2.0, batch_size=8, learning_rate=1e-3, warmup=0.0, seed=0)


@dataclass(frozen=True)
class LabelledReading:
    """A correction turned into a reader example (the answer found in a passage)."""

    correction_id: int
    question: str
    context: str
    answer: str
    answer_start: int


def find_example(
    correction_id: int, question: str, answer: str, passages: list[str]
) -> LabelledReading | None:
    """The first passage holding ``answer`` (case-insensitive) as a labelled reading.

    >>> find_example(3, "Who?", "ada lovelace", ["Nothing.", "It was Ada Lovelace."])
    LabelledReading(correction_id=3, question='Who?', context='It was Ada Lovelace.', \
answer='Ada Lovelace', answer_start=7)
    >>> find_example(3, "Who?", "Babbage", ["It was Ada Lovelace."]) is None
    True
    """
    wanted = " ".join(answer.split()).lower()
    if not wanted:
        return None
    for text in passages:
        at = text.lower().find(wanted)
        if at >= 0:
            return LabelledReading(correction_id, question, text, text[at : at + len(wanted)], at)
    return None


class ReaderLearning:
    """Corrections as reader examples, and the versioned readers trained on them.

    Args:
        root: ``data_dir/reader``.
        shipped: The shipped reader's folder (its weights are every round's start).
        device: Torch device for rounds.
    """

    def __init__(self, root: Path, shipped: Path, *, device: str = "cpu") -> None:
        self.root = root
        self.shipped = shipped
        self.device = device
        self._lock = threading.Lock()
        self._shipped_id: str | None = None

    @property
    def shipped_id(self) -> str:
        """sha256 of the shipped reader's weights (which release a version builds on)."""
        if self._shipped_id is None:
            try:
                weights = ReaderConfig.load(self.shipped / CONFIG_NAME).weights
                digest = hashlib.sha256((self.shipped / weights).read_bytes()).hexdigest()
            except (OSError, ModelNotAvailableError):
                digest = "missing"
            self._shipped_id = digest
        return self._shipped_id

    # -- examples --------------------------------------------------------------------
    def examples(self) -> dict[int, LabelledReading]:
        try:
            raw = json.loads((self.root / EXAMPLES_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if raw.get("format_version") != FORMAT_VERSION:
            return {}
        return {int(r["correction_id"]): LabelledReading(**r) for r in raw["examples"]}

    def add(self, reading: LabelledReading) -> None:
        with self._lock:
            found = self.examples()
            found[reading.correction_id] = reading
            self._write_examples(found)

    def drop(self, correction_ids: set[int]) -> None:
        """Forget examples for good (forgotten corrections); see :meth:`retire`."""
        with self._lock:
            found = self.examples()
            if correction_ids & set(found):
                self._write_examples({k: v for k, v in found.items() if k not in correction_ids})
            self.retire(correction_ids)

    def retire(self, correction_ids: set[int]) -> None:
        """The serving reader falls back at once if it learned one of these corrections.

        Their examples stay: a superseded correction comes back into effect when the
        newer one is forgotten, and the next round learns it again.
        """
        version = self.current()
        if version and correction_ids & set(self.learned(version)):
            self.set_current(0)

    def pending(self, active: set[int]) -> bool:
        """Whether the serving reader learned other corrections than those in effect."""
        wanted = set(self.examples()) & active
        return wanted != set(self.learned(self.current()))

    # -- versions --------------------------------------------------------------------
    def current(self) -> int:
        try:
            raw = json.loads((self.root / CURRENT_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return 0
        version = int(raw.get("version", 0))
        return version if version and self._builds_on_shipped(self.folder(version)) else 0

    def set_current(self, version: int) -> None:
        """Serve ``version`` (0: the shipped reader) from now on; atomic."""
        if version and not (self.folder(version) / ADAPTER_NAME).is_file():
            raise ValueError(f"no reader version {version}")
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".{CURRENT_FILE}.tmp"
        tmp.write_text(json.dumps({"format_version": FORMAT_VERSION, "version": version}))
        os.replace(tmp, self.root / CURRENT_FILE)

    def folder(self, version: int) -> Path:
        """A learned version's folder (its adapter); version 0 has none."""
        return self.root / f"v{version:04d}"

    def versions(self) -> list[int]:
        """Learned versions on disk that build on the shipped reader in use, oldest first."""
        return sorted(
            int(p.name[1:])
            for p in self.root.glob("v[0-9]*")
            if p.name[1:].isdigit() and self._builds_on_shipped(p)
        )

    def _builds_on_shipped(self, folder: Path) -> bool:
        """Whether ``folder`` holds a whole version learned on the shipped reader in use
        (read on every answer: one folder, not all of them)."""
        if not (folder / ADAPTER_NAME).is_file():
            return False
        try:
            config = ReaderConfig.load(folder / CONFIG_NAME)
        except ModelNotAvailableError:
            return False
        return config.training.get("shipped") == self.shipped_id

    def learned(self, version: int) -> list[int]:
        """Correction ids a version was trained on (none for the shipped reader)."""
        if not version:
            return []
        try:
            config = ReaderConfig.load(self.folder(version) / CONFIG_NAME)
        except Exception:
            return []
        return [int(i) for i in config.training.get("corrections", [])]

    def load(self, version: int) -> SpanReader:
        """The reader of ``version`` (0: the shipped one), ready to answer."""
        adapter = self.folder(version) if version else None
        return SpanReader.load(self.shipped, adapter=adapter, device=self.device)

    # -- a round ---------------------------------------------------------------------
    def learn(
        self,
        active: set[int],
        *,
        checkpoint: Callable[[], None] | None = None,
        on_step: Callable[[int, int, float], None] | None = None,
    ) -> int:
        """Train a reader on the examples of the corrections in effect; returns its version.

        Nothing to learn (no example in effect) serves the shipped reader (0).
        Runs on the calling thread (the engine's writer); ``checkpoint`` may pause
        or cancel between steps, and nothing is saved when it raises.
        """
        examples = {k: v for k, v in self.examples().items() if k in active}
        if not examples:
            self.set_current(0)
            return 0
        if not self.pending(active):
            return self.current()
        started = time.perf_counter()
        reader = SpanReader.load(self.shipped, device=self.device, trainable=True)
        labelled = [
            Example(e.question, e.context, e.answer, e.answer_start) for e in examples.values()
        ]
        replay = self._replay(max(MIN_REPLAY, REPEATS * len(labelled)))
        cfg = reader.config
        features = encode(
            reader.tokenizer,
            labelled * REPEATS + replay,
            max_length=cfg.max_length,
            stride=cfg.stride,
        )
        losses = train(reader.model, features, ROUND, on_step=on_step, checkpoint=checkpoint)
        version = max(self.versions(), default=0) + 1
        training = {
            "shipped": self.shipped_id,
            "corrections": sorted(examples),
            "windows": len(features),
            "loss": sum(losses) / max(1, len(losses)),
            "seconds": round(time.perf_counter() - started, 2),
            "created_at": time.time(),
            "round": asdict(ROUND),
        }
        self._save(reader.model, replace(cfg, training=training), version)
        self.set_current(version)
        return version

    def _replay(self, count: int) -> list[Example]:
        try:
            raw = json.loads((self.shipped / REPLAY_NAME).read_text(encoding="utf-8"))
            rows = [Example(**r) for r in raw["examples"]]
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("the reader's replay set is missing; learning without replay")
            return []
        return [rows[i % len(rows)] for i in range(count)] if rows else []

    def _save(self, model: Any, config: ReaderConfig, version: int) -> None:
        """Adapter files and reader.json into a temp folder, renamed to ``vNNNN`` whole."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.root))
        try:
            model.peft_config["default"].base_model_name_or_path = config.base_model
            model.save_pretrained(str(tmp), safe_serialization=True)
            config.save(tmp / CONFIG_NAME)
            os.replace(tmp, self.folder(version))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _write_examples(self, found: dict[int, LabelledReading]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        payload = {
            "format_version": FORMAT_VERSION,
            "examples": [asdict(v) for v in found.values()],
        }
        tmp = self.root / f".{EXAMPLES_FILE}.tmp"
        tmp.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, self.root / EXAMPLES_FILE)
