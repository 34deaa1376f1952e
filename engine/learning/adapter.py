"""Layer 2 of learning from corrections: the generator itself adapts (LoRA, peft).

A consolidation round trains a small LoRA adapter on the person's corrections,
each as a chat turn (question -> corrected answer) in the generator's own chat
template, with the loss on the answer only. Two kinds of replay keep the model
from drifting: earlier corrections (so a round on new ones does not erase old
ones) and the *base* model's own closed-book answers to unrelated prompts (so the
adapted model still says what the base model said about everything else, which
is what keeps the recall gate in :mod:`engine.learning.recall` quiet there).

Adapters are versioned under ``data_dir/adapters``: ``v0001/adapter.safetensors``
plus ``v0001/manifest.json`` (format version, the correction ids it learned, its
parent, seed, loss), each folder filled as a temp dir and renamed into place, and
``current.json`` naming the version in use (temp file + ``os.replace``). Version 0
is the base model. Rolling back only moves ``current.json``; nothing is deleted.

Training never touches the shared :class:`~engine.generation.Generator`'s
weights: it works on its own copy of the model, so answers keep flowing from the
base model while a round runs. Between steps it checks a cancel event and waits
while a :class:`PauseGate` is held (the engine holds it while answering).
"""

from __future__ import annotations

import copy
import json
import os
import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.generation import Generator

FORMAT_VERSION = 1
WEIGHTS_FILE = "adapter.safetensors"
MANIFEST_FILE = "manifest.json"
CURRENT_FILE = "current.json"
# A short system turn instead of SmolLM2's default one: the same chat format, but a
# 12-token prompt instead of 38 makes training steps about twice as fast.
RECALL_SYSTEM = "Answer in a few words."
# Every linear map of the transformer gets a LoRA pair: with attention only, 135M
# SmolLM2 needs several times more steps to learn a fact.
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class TrainingCancelled(Exception):
    """A round stopped at the cancel event; nothing was saved."""


@dataclass(frozen=True)
class Example:
    """One chat turn to learn: ``question`` -> ``answer``.

    ``correction_id`` is None for replay of the base model's own answers.
    """

    question: str
    answer: str
    correction_id: int | None = None


@dataclass(frozen=True)
class TrainSettings:
    """How a round trains; the engine fills it from :class:`~engine.config.EngineConfig`."""

    rank: int = 8  # LoRA rank; 8 holds 1,000 short facts in 2.4M parameters
    alpha: int = 16  # LoRA scale numerator (scale = alpha / rank)
    learning_rate: float = 3e-3  # AdamW; LoRA tolerates rates 10x a full fine-tune's
    epochs: int = 12  # passes over the new corrections (each with its replay)
    batch_size: int = 16  # examples per step
    replay_ratio: float = 1.0  # replayed examples (old corrections, base answers) per new one
    seed: int = 0  # shuffling and LoRA initialisation
    bf16: bool = True  # bfloat16 autocast where the hardware runs it fast (bf16_trains_fast)


@dataclass(frozen=True)
class AdapterVersion:
    """One saved adapter (``manifest.json``)."""

    version: int
    created_at: float
    parent: int  # the version it continued from; 0 is the base model
    corrections: tuple[int, ...]  # every correction id this adapter has learned
    examples: int  # examples seen in the round that made it
    steps: int
    seconds: float
    loss: float  # mean loss over the round's last epoch
    seed: int
    base_model: str  # Generator.model_id it was trained on
    format_version: int = FORMAT_VERSION


@dataclass(frozen=True)
class AdapterStatus:
    """What the adapter is doing, for a status bar."""

    state: str  # "idle", "training" or "paused"
    progress: float  # fraction of the running round done, 0 when idle
    version: int  # the version answers use; 0 is the base model
    trained: int  # corrections in effect that the current version has learned
    pending: int  # corrections in effect that it has not


# -- pausing ---------------------------------------------------------------------------
class PauseGate:
    """Holders pause the trainer: it waits between steps while anyone holds the gate.

    >>> gate = PauseGate()
    >>> with gate.hold():
    ...     gate.held
    True
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._holders = 0
        self.waiting = False  # True while a trainer is blocked here (state "paused")

    @property
    def held(self) -> bool:
        return self._holders > 0

    @contextmanager
    def hold(self) -> Iterator[None]:
        with self._cond:
            self._holders += 1
        try:
            yield
        finally:
            with self._cond:
                self._holders -= 1
                self._cond.notify_all()

    def checkpoint(self, cancel: threading.Event | None) -> None:
        """Where background work may stop: wait out any holder, then raise
        :class:`TrainingCancelled` if ``cancel`` is set."""
        stop = cancel or threading.Event()
        self.wait(stop)
        if stop.is_set():
            raise TrainingCancelled

    def wait(self, cancel: threading.Event) -> None:
        """Return once nobody holds the gate (checks ``cancel`` every 50 ms)."""
        with self._cond:
            while self._holders and not cancel.is_set():
                self.waiting = True
                self._cond.wait(0.05)
            self.waiting = False


# -- examples --------------------------------------------------------------------------
def recall_prompt(generator: Generator, question: str) -> list[int]:
    """The chat prompt a question is learned and recalled with (assistant turn open)."""
    return generator.chat_ids(
        [{"role": "system", "content": RECALL_SYSTEM}, {"role": "user", "content": question}]
    )


def encode_example(generator: Generator, example: Example) -> tuple[list[int], list[int]]:
    """Token ids and labels of one turn; labels are -100 except on the answer and its end.

    Learning the end-of-turn token teaches the model to *stop* after the answer,
    so greedy recall returns the answer and nothing after it.
    """
    prompt = recall_prompt(generator, example.question)
    answer = generator.encode(example.answer.strip()) + list(generator.end_ids)
    return prompt + answer, [-100] * len(prompt) + answer


def mix_round(
    new: Sequence[Example],
    learned: Sequence[Example],
    anchors: Sequence[Example],
    *,
    replay_ratio: float,
    rng: random.Random,
) -> list[Example]:
    """One epoch's examples: every new one, plus replay drawn half from learned, half anchors.

    >>> new = [Example("q1", "a1", 1)]
    >>> mixed = mix_round(new, [Example("q0", "a0", 0)], [Example("x", "y")],
    ...                   replay_ratio=2.0, rng=random.Random(0))
    >>> sorted(e.question for e in mixed)
    ['q0', 'q1', 'x']
    """
    budget = round(len(new) * replay_ratio)
    old = rng.sample(list(learned), min(len(learned), (budget + 1) // 2))
    rest = budget - len(old)
    base = rng.sample(list(anchors), min(len(anchors), rest))
    mixed = [*new, *old, *base]
    rng.shuffle(mixed)
    return mixed


def collate(rows: Sequence[tuple[list[int], list[int]]], pad_id: int) -> dict[str, Any]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` tensors."""
    import torch

    width = max(len(ids) for ids, _ in rows)
    ids = [r[0] + [pad_id] * (width - len(r[0])) for r in rows]
    labels = [r[1] + [-100] * (width - len(r[1])) for r in rows]
    mask = [[1] * len(r[0]) + [0] * (width - len(r[0])) for r in rows]
    return {
        "input_ids": torch.tensor(ids),
        "attention_mask": torch.tensor(mask),
        "labels": torch.tensor(labels),
    }


def training_step(
    model: Any, optimizer: Any, batch: dict[str, Any], *, bf16: bool = False
) -> float:
    """One explicit optimisation step on a batch; returns its mean loss per answer token.

    Only positions that predict an answer token go through the output layer: the
    49k-word vocabulary projection of every prompt position would be a fifth of the
    step's work for nothing. ``bf16`` runs the forward pass under bfloat16 autocast
    (the LoRA weights and the optimiser stay float32).
    """
    import torch

    model.train()
    device = next(model.parameters()).device
    ids = batch["input_ids"].to(device)
    mask = batch["attention_mask"].to(device)
    labels = batch["labels"].to(device)
    targets = labels[:, 1:]
    keep = (targets != -100).any(dim=0).nonzero().squeeze(1)  # positions predicting an answer
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=keep).logits
    loss: Any = torch.nn.functional.cross_entropy(
        logits.float().flatten(0, 1), targets[:, keep].flatten(), ignore_index=-100
    )
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


def bf16_trains_fast(device: str) -> bool:
    """Whether bfloat16 autocast speeds training up here (CPUs with AVX-512 BF16 or AMX,
    CUDA GPUs that support it); elsewhere it would emulate and slow down."""
    import torch

    if device == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if device.startswith("cuda"):
        return bool(torch.cuda.is_bf16_supported())
    return False


# -- the adapted model -----------------------------------------------------------------
def lora_model(generator: Generator, settings: TrainSettings) -> Any:
    """A peft LoRA model around a *copy* of the generator's weights (LoRA B starts at 0)."""
    import torch
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=settings.rank,
        lora_alpha=settings.alpha,
        lora_dropout=0.0,
        target_modules=list(TARGET_MODULES),
        bias="none",
    )
    with torch.random.fork_rng(devices=[]):  # the seed is passed in, never global
        torch.manual_seed(settings.seed)
        model = get_peft_model(copy.deepcopy(generator.model), config)
    model.eval()
    return model


def adapted_view(generator: Generator, model: Any) -> Generator:
    """A Generator that shares the tokenizer and settings but decodes with ``model``."""
    view = copy.copy(generator)
    view.model = model
    view._lock = threading.Lock()  # its own model, so it need not wait for the base one
    return view


class AdapterStore:
    """Versioned adapters on disk under ``root`` (see the module docstring for the layout)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def versions(self) -> list[AdapterVersion]:
        """Every saved version, oldest first (unreadable folders are skipped)."""
        found = []
        for folder in sorted(self.root.glob("v[0-9][0-9][0-9][0-9]*")):
            try:
                raw = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if raw.get("format_version") != FORMAT_VERSION:
                continue
            raw["corrections"] = tuple(raw["corrections"])
            found.append(AdapterVersion(**raw))
        return found

    def current(self) -> int:
        """The version answers use; 0 (the base model) when none was chosen."""
        try:
            raw = json.loads((self.root / CURRENT_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return 0
        version = int(raw.get("version", 0))
        return version if version == 0 or (self.folder(version) / WEIGHTS_FILE).exists() else 0

    def set_current(self, version: int) -> None:
        """Point ``current.json`` at ``version`` atomically."""
        if version and not (self.folder(version) / WEIGHTS_FILE).exists():
            raise ValueError(f"no adapter version {version}")
        self.root.mkdir(parents=True, exist_ok=True)
        data = {"format_version": FORMAT_VERSION, "version": version}
        tmp = self.root / f".{CURRENT_FILE}.tmp"
        tmp.write_text(json.dumps(data), encoding="utf-8")
        os.replace(tmp, self.root / CURRENT_FILE)

    def folder(self, version: int) -> Path:
        return self.root / f"v{version:04d}"

    def next_version(self) -> int:
        numbers = [int(p.name[1:]) for p in self.root.glob("v[0-9]*") if p.name[1:].isdigit()]
        return max(numbers, default=0) + 1

    def save(self, model: Any, meta: AdapterVersion) -> None:
        """Write weights and manifest into a temp dir, then rename it to ``vNNNN``."""
        from peft import get_peft_model_state_dict
        from safetensors.torch import save_file

        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.root))
        try:
            state = {
                k: v.detach().contiguous()
                for k, v in get_peft_model_state_dict(model, save_embedding_layers=False).items()
            }
            save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format_version": "1"})
            manifest = asdict(meta)
            manifest["corrections"] = list(meta.corrections)
            (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
            os.replace(tmp, self.folder(meta.version))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def load_into(self, model: Any, version: int) -> None:
        """Load a version's weights into a LoRA model of the same shape."""
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        state = load_file(str(self.folder(version) / WEIGHTS_FILE))
        set_peft_model_state_dict(model, state)


@dataclass
class RoundResult:
    """What :func:`train_round` did."""

    steps: int = 0
    examples: int = 0
    loss: float = 0.0
    seconds: float = 0.0
    step_threads: set[int] = field(default_factory=set)  # thread ids that ran steps


def train_round(
    model: Any,
    generator: Generator,
    new: Sequence[Example],
    *,
    learned: Sequence[Example] = (),
    anchors: Sequence[Example] = (),
    settings: TrainSettings,
    cancel: threading.Event | None = None,
    pause: PauseGate | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> RoundResult:
    """Train ``model`` (a LoRA model from :func:`lora_model`) on ``new`` with replay.

    Args:
        model: Updated in place.
        generator: Its tokenizer and chat format.
        new: The corrections to learn this round.
        learned: Corrections learned before (replayed so they are not forgotten).
        anchors: The base model's own answers to unrelated prompts (replayed so
            nothing else drifts).
        settings: Rank, rate, epochs, batch size, replay ratio, seed.
        cancel: Checked between steps; raises :class:`TrainingCancelled`.
        pause: Waited on between steps.
        on_step: Called with (steps done, steps in all) after each step.

    Returns:
        Steps, examples seen, the last epoch's mean loss, seconds.
    """
    import torch

    started = time.perf_counter()
    rng = random.Random(settings.seed)
    epochs = [
        mix_round(new, learned, anchors, replay_ratio=settings.replay_ratio, rng=rng)
        for _ in range(settings.epochs)
    ]
    size = settings.batch_size
    total = sum((len(e) + size - 1) // size for e in epochs)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.learning_rate, weight_decay=0.0)
    pad_id = min(generator.stop_ids)
    bf16 = settings.bf16 and bf16_trains_fast(str(next(model.parameters()).device))
    gate = pause or PauseGate()  # an unheld gate only checks ``cancel``
    result = RoundResult()
    cache: dict[Example, tuple[list[int], list[int]]] = {}
    try:
        for epoch in epochs:
            losses = []
            for start in range(0, len(epoch), size):
                gate.checkpoint(cancel)
                chunk = epoch[start : start + size]
                rows = [cache.setdefault(e, encode_example(generator, e)) for e in chunk]
                losses.append(training_step(model, optimizer, collate(rows, pad_id), bf16=bf16))
                result.step_threads.add(threading.get_ident())
                result.steps += 1
                result.examples += len(chunk)
                if on_step is not None:
                    on_step(result.steps, total)
            result.loss = sum(losses) / max(1, len(losses))
    finally:
        model.eval()
    result.seconds = time.perf_counter() - started
    return result
