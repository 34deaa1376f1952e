"""The span reader learns from corrections: versioned LoRA rounds on labelled readings.

A correction whose answer occurs in a retrieved passage is a labelled example
for the reader: that question, that passage, that span. :class:`ReaderLearning`
keeps these examples (``examples.json``), and a round (on the engine's writer)
trains the shipped reader's LoRA and head on all of them, repeated, mixed with
the shipped replay sample of third-party training questions so that nothing
else drifts, and with the shipped reader's own answers to the person's other
questions about the corrected passages (from the answer history), so that what
is learned is the corrected question's answer and not the passage's. The round
is gentle and spends more passes only on corrections the reader does not give
back yet (:func:`train_round`). Each round starts from the shipped weights, so
the result depends only on the corrections in effect (and on the questions
asked): forgetting one and retraining removes its effect exactly, and with no
examples left the shipped reader serves again.

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
import re
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from engine.errors import ModelNotAvailableError
from engine.learning.memory import normalized_question
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
# Each correction's window (and each replayed own answer) is repeated this often per
# round, and as many replay windows join them (at least MIN_REPLAY). Chosen on the
# calibration split (bench/tune_reader_round.py, 2026-12-04): with the own answers
# replayed, the gentle round (4 repeats, one epoch at 5e-4) kept the corrected
# paragraphs' never-asked questions where they were (0.511 -> 0.517; 0.572 -> 0.594
# on another seed) while 8 repeats at 1e-3 lowered them (0.457) and 12 repeats, two
# epochs at 1e-3 more (0.496 with own answers, 0.505 without); the stronger rounds
# learn the corrected questions themselves better (0.915-0.969 against 0.714-0.745),
# which the correction memory answers anyway.
REPEATS = 4
MIN_REPLAY = 16
# At most this many of the person's other questions per corrected passage are replayed
# with the shipped reader's answers (the latest asked first).
OWN_ANSWERS_PER_PASSAGE = 8
# Passes of a round at most: the first over every correction, the rest over those the
# reader does not give back yet (see train_round).
MAX_PASSES = 4
ROUND = TrainConfig(epochs=1.0, batch_size=8, learning_rate=5e-4, warmup=0.0, seed=0)


@dataclass(frozen=True)
class LabelledReading:
    """A correction turned into a reader example (the answer found in a passage)."""

    correction_id: int
    question: str
    context: str
    answer: str
    answer_start: int
    # Where the passage is (file, character range): the person's other questions about
    # it are found by their answers' citations. Empty for examples saved before.
    path: str = ""
    start: int = -1
    end: int = -1


def find_example(
    correction_id: int,
    question: str,
    answer: str,
    passages: list[str],
    places: list[tuple[str, int, int]] | None = None,
) -> LabelledReading | None:
    """The first passage holding ``answer`` (case-insensitive) as a labelled reading.

    ``places`` gives each passage's (path, start, end), kept with the reading.

    >>> found = find_example(
    ...     3, "Who?", "ada lovelace", ["Nothing.", "It was Ada Lovelace."],
    ...     [("a.md", 0, 8), ("b.md", 40, 60)],
    ... )
    >>> found.context, found.answer, found.answer_start, found.path, found.start
    ('It was Ada Lovelace.', 'Ada Lovelace', 7, 'b.md', 40)
    >>> find_example(3, "Who?", "Babbage", ["It was Ada Lovelace."]) is None
    True
    """
    wanted = " ".join(answer.split()).lower()
    if not wanted:
        return None
    for n, text in enumerate(passages):
        at = text.lower().find(wanted)
        if at >= 0:
            place = places[n] if places else ("", -1, -1)
            return LabelledReading(
                correction_id, question, text, text[at : at + len(wanted)], at, *place
            )
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
        asked: Callable[[LabelledReading], list[str]] | None = None,
        checkpoint: Callable[[], None] | None = None,
        on_step: Callable[[int, int, float], None] | None = None,
    ) -> int:
        """Train a reader on the examples of the corrections in effect; returns its version.

        Nothing to learn (no example in effect) serves the shipped reader (0).
        Runs on the calling thread (the engine's writer); ``checkpoint`` may pause
        or cancel between steps, and nothing is saved when it raises.

        Args:
            asked: The person's other questions about an example's passage (from the
                answer history); the shipped reader's own answers to them join the
                round (see :meth:`own_answers`).
        """
        examples = {k: v for k, v in self.examples().items() if k in active}
        if not examples:
            self.set_current(0)
            return 0
        if not self.pending(active):
            return self.current()
        started = time.perf_counter()
        labelled = [
            Example(e.question, e.context, e.answer, e.answer_start) for e in examples.values()
        ]
        reader = SpanReader.load(self.shipped, device=self.device, trainable=True)
        own = self.own_answers(list(examples.values()), asked, reader) if asked else []
        done = train_round(
            reader, labelled, own, self._replay_rows(), checkpoint=checkpoint, on_step=on_step
        )
        version = max(self.versions(), default=0) + 1
        training = {
            "shipped": self.shipped_id,
            "corrections": sorted(examples),
            "own_answers": len(own),
            "windows": done.windows,
            "passes": done.passes,
            "unlearned": done.unlearned,
            "loss": sum(done.losses) / max(1, len(done.losses)),
            "seconds": round(time.perf_counter() - started, 2),
            "created_at": time.time(),
            "round": asdict(ROUND),
        }
        self._save(reader.model, replace(reader.config, training=training), version)
        self.set_current(version)
        return version

    def own_answers(
        self,
        examples: list[LabelledReading],
        asked: Callable[[LabelledReading], list[str]],
        teacher: SpanReader,
    ) -> list[Example]:
        """The shipped reader's answers to the other questions asked about the corrected
        passages, as examples (self-distillation).

        ``teacher`` is the round's reader before it trains: the shipped weights under a
        fresh LoRA, which changes nothing yet (its second matrix starts at zero), so
        they are read without loading the reader twice.

        A round on the corrections alone teaches the passage as much as the question:
        on the calibration split it lowered F1 on the corrected paragraphs' other
        questions (0.572 -> 0.505 for the ones never asked). Replaying what the shipped
        reader answered to the questions the person did ask about those passages keeps
        the passage's other answers where they were, so what is learned is the
        corrected question's (there, 0.572 -> 0.594 on the never-asked ones:
        ``bench/tune_reader_round.py``). A corrected question itself (any correction's,
        in any case or spacing) is never replayed.
        """
        corrected = {normalized_question(e.question) for e in examples}
        pairs: list[tuple[str, str]] = []
        for example in examples:
            if not example.path:
                continue
            questions = [q for q in asked(example) if normalized_question(q) not in corrected]
            pairs += [(q, example.context) for q in questions[:OWN_ANSWERS_PER_PASSAGE]]
        if not pairs:
            return []
        teacher.model.eval()  # no dropout while reading; train() switches it back
        out = []
        for question, context in pairs:
            best = teacher.read(question, [context]).best
            if best is None:
                out.append(Example(question, context, "", -1))
            else:
                out.append(Example(question, context, best.text, best.start))
        return out

    def _replay_rows(self) -> list[Example]:
        """The shipped replay sample of third-party training questions."""
        try:
            raw = json.loads((self.shipped / REPLAY_NAME).read_text(encoding="utf-8"))
            return [Example(**r) for r in raw["examples"]]
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("the reader's replay set is missing; learning without replay")
            return []

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


@dataclass(frozen=True)
class RoundResult:
    losses: list[float]
    windows: int  # trained on, all passes together
    passes: int
    unlearned: int  # corrections the reader still did not give back after the last pass


def train_round(
    reader: SpanReader,
    labelled: list[Example],
    own: list[Example],
    replay: list[Example],
    *,
    repeats: int = REPEATS,
    config: TrainConfig = ROUND,
    passes: int = MAX_PASSES,
    checkpoint: Callable[[], None] | None = None,
    on_step: Callable[[int, int, float], None] | None = None,
) -> RoundResult:
    """Teach ``reader`` (trainable) the corrections, gently, until it gives them back.

    The first pass trains on every correction and own answer, ``repeats`` times,
    with as many replay windows. A correction the passage already nearly says is
    learned by then; one that contradicts its passage (the person knows better
    than the note) often is not, so each further pass trains again on the
    corrections the reader still reads otherwise, with the own answers and replay
    beside them, up to ``passes`` in all. A strong round for every correction
    lowered the other questions' answers about the corrected passages (see
    ``REPEATS``); this spends strength only where a correction needs it.
    """
    cfg = reader.config
    todo = list(labelled)
    losses: list[float] = []
    windows = done = 0
    while todo and done < passes:
        chosen = (todo + own) * repeats
        extra = max(MIN_REPLAY, len(chosen)) if replay else 0
        rows = chosen + [replay[i % len(replay)] for i in range(extra)]
        features = encode(
            reader.tokenizer,
            rows,
            max_length=cfg.max_length,
            stride=cfg.stride,
        )
        losses += train(reader.model, features, config, on_step=on_step, checkpoint=checkpoint)
        windows += len(features)
        done += 1
        todo = [e for e in todo if not gives_back(reader, e)]
    return RoundResult(losses, windows, done, len(todo))


def gives_back(reader: SpanReader, example: Example) -> bool:
    """Whether the reader's best span for the example's question is its answer (token F1
    of at least 0.5, case and punctuation ignored)."""
    best = reader.read(example.question, [example.context]).best
    if best is None:
        return False
    said, wanted = _words(best.text), _words(example.answer)
    common = sum((Counter(said) & Counter(wanted)).values())
    if not common:
        return False
    precision, recall = common / len(said), common / len(wanted)
    return 2 * precision * recall / (precision + recall) >= 0.5


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.casefold())
