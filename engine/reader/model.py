"""The span reader: start/end logits over [question; passage] windows, plus a no-answer score.

The bundled all-MiniLM-L6-v2 encoder reads ``[CLS] question [SEP] passage [SEP]``;
a linear head gives every word piece a start and an end logit. A span's score is
start + end (Devlin et al.'s BERT reader), the [CLS] position's pair is the
no-answer score (SQuAD 2.0 style). The encoder carries a LoRA and the head, trained
by ``python -m bench.train_reader`` on third-party questions; both ship in
``resources/reader/`` as safetensors (peft's adapter format) beside ``reader.json``,
which holds the format version and the selection model calibrated on held-out
questions: which passage's best span to answer with, and whether to answer at all.
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import ModelNotAvailableError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# Version of reader.json's layout; a reader saved by another format is refused.
# 2: ``selection`` (per passage) replaced ``abstention`` (per question).
READER_FORMAT = 2
CONFIG_NAME = "reader.json"
ADAPTER_NAME = "adapter_model.safetensors"
# A fully fine-tuned reader's weights (every layer and the head, float16).
WEIGHTS_NAME = "reader.safetensors"
# Training examples replayed when the reader learns from corrections.
REPLAY_NAME = "replay.json"


def bundled_reader_path() -> Path:
    """``resources/reader`` of the source tree, or of the frozen build (same layout)."""
    return Path(__file__).resolve().parents[2] / "resources" / "reader"


@dataclass(frozen=True)
class Selection:
    """P(this passage's best span answers the question), a logistic model.

    The reader's start/end logits are trained per window, so they are not
    comparable across passages: on held-out questions, the passage with the highest
    raw span score held the answer less often than the first-ranked passage did.
    This model weighs each passage's best span by the reader's scores *and* the
    retrieval's (cosine, its gap to the best cosine, rank); the engine answers with
    the passage it rates highest and abstains when even that one is below
    ``threshold``. Fitted on the calibration split (``bench/calibrate_reader.py``).

    >>> a = Selection(("margin",), (1.0,), 0.0, 0.5)
    >>> round(a.probability({"margin": 2.0}), 3), a.answers({"margin": -1.0})
    (0.881, False)
    """

    features: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float
    threshold: float

    def probability(self, values: dict[str, float]) -> float:
        z = self.bias + sum(w * values[f] for f, w in zip(self.features, self.weights, strict=True))
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def answers(self, values: dict[str, float]) -> bool:
        return self.probability(values) >= self.threshold


@dataclass(frozen=True)
class ReaderConfig:
    """``reader.json``: how the reader was built and how to use it."""

    format_version: int = READER_FORMAT
    # The weights file: WEIGHTS_NAME (layers + head) or ADAPTER_NAME (a LoRA + head).
    weights: str = WEIGHTS_NAME
    # The encoder the LoRA was trained on (the bundled embedding model).
    base_model: str = "sentence-transformers/all-MiniLM-L6-v2"
    # Word pieces per window ([CLS] question [SEP] passage [SEP]); MiniLM reads 512.
    max_length: int = 384
    # Word pieces shared by consecutive windows of a passage too long for one.
    stride: int = 128
    # Longest answer, in word pieces (SQuAD answers: 99% under 30).
    max_answer_tokens: int = 30
    selection: Selection | None = None
    # What produced the weights (data, seed, epochs, time): for people, not code.
    training: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> ReaderConfig:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelNotAvailableError(
                f"The reader's settings {path} cannot be read ({exc}). Reinstall Kenning or "
                "retrain the reader: python -m bench.train_reader"
            ) from exc
        version = int(raw.get("format_version", 0))
        if version != READER_FORMAT:
            raise ModelNotAvailableError(
                f"The reader in {path.parent} is format {version}; this Kenning reads format "
                f"{READER_FORMAT}. Reinstall Kenning or retrain: python -m bench.train_reader"
            )
        sel = raw.pop("selection", None)
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__}
        if sel is not None:
            known["selection"] = Selection(
                tuple(sel["features"]), tuple(sel["weights"]), sel["bias"], sel["threshold"]
            )
        return cls(**known)

    def save(self, path: Path) -> None:
        """Write atomically (temp file + rename)."""
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)


@dataclass(frozen=True)
class Span:
    """A candidate answer: characters ``start:end`` of passage ``passage``."""

    passage: int
    start: int
    end: int
    text: str
    score: float  # start logit + end logit


@dataclass(frozen=True)
class ReaderGuess:
    """What the reader made of one question over its passages."""

    spans: list[Span]  # best first by raw score (at most ``top`` of them)
    null_scores: list[float]  # per passage: the [CLS] start + end logits (lowest window)
    # Per passage: its best span (None when it has no word piece to answer from).
    passage_best: list[Span | None] = field(default_factory=list)

    @property
    def best(self) -> Span | None:
        return self.spans[0] if self.spans else None

    def leading(self, span: Span) -> ReaderGuess:
        """The same reading with ``span`` first (the one chosen to answer with)."""
        rest = [s for s in self.spans if s != span]
        return ReaderGuess([span, *rest], self.null_scores, self.passage_best)


class SpanReader:
    """A loaded reader. ``read`` is thread-safe (one forward pass at a time)."""

    def __init__(self, model: Any, tokenizer: Any, config: ReaderConfig, path: Path) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.path = path
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        path: Path | None = None,
        *,
        base: Path | None = None,
        device: str = "cpu",
        adapter: Path | None = None,
        trainable: bool = False,
    ) -> SpanReader:
        """Load the reader in ``path`` (default: the bundled one) on the bundled encoder.

        Args:
            path: A folder with ``reader.json`` and peft's adapter files.
            base: The encoder's folder; default the bundled all-MiniLM-L6-v2.
            device: Torch device.
            adapter: A learned version's folder (a LoRA on the reader, trained on
                corrections: engine.learning.reader_learning), merged in for speed.
            trainable: Keep a LoRA (``adapter``'s, or a fresh one) separate and
                trainable, for a learning round.

        Raises:
            ModelNotAvailableError: a file is missing, corrupt, or of another format.
        """
        path = path or bundled_reader_path()
        config = ReaderConfig.load(path / CONFIG_NAME)
        if not (path / config.weights).is_file():
            raise ModelNotAvailableError(
                f"The reader's weights are missing ({path / config.weights}). Reinstall "
                "Kenning or retrain them: python -m bench.train_reader"
            )
        from engine.embedding import bundled_embedding_model_path

        base = base or bundled_embedding_model_path()
        try:
            model, tokenizer = _load_weights(path, config, base, device, adapter, trainable)
        except ModelNotAvailableError:
            raise
        except Exception as exc:  # safetensors/peft raise many kinds for a bad file
            raise ModelNotAvailableError(
                f"The reader in {adapter or path} cannot be loaded ({type(exc).__name__}: "
                f"{exc}). Reinstall Kenning or retrain it: python -m bench.train_reader"
            ) from exc
        return cls(model, tokenizer, config, path)

    def read(self, question: str, passages: Sequence[str], *, top: int = 8) -> ReaderGuess:
        """Score every span of ``passages`` (all windows in one batch).

        Returns:
            The ``top`` best spans across passages (at most one per start word
            piece of a window), and each passage's no-answer score.
        """
        if not passages:
            return ReaderGuess([], [])
        enc = self.tokenizer(
            [question] * len(passages),
            list(passages),
            truncation="only_second",
            max_length=self.config.max_length,
            stride=self.config.stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            padding=True,
            return_tensors="pt",
        )
        owner = enc.pop("overflow_to_sample_mapping").tolist()
        offsets = enc.pop("offset_mapping").tolist()
        context = [
            [s == 1 for s in enc.sequence_ids(w)] for w in range(len(owner))
        ]  # True on passage word pieces
        starts, ends = self._forward(enc)
        nulls = [math.inf] * len(passages)
        candidates: list[Span] = []
        best: list[Span | None] = [None] * len(passages)
        for w, p in enumerate(owner):
            nulls[p] = min(nulls[p], float(starts[w, 0] + ends[w, 0]))
            candidates += _window_spans(
                starts[w],
                ends[w],
                context[w],
                offsets[w],
                p,
                passages[p],
                self.config.max_answer_tokens,
                top,
            )
        for s in candidates:
            current = best[s.passage]
            if current is None or s.score > current.score:
                best[s.passage] = s
        candidates.sort(key=lambda s: -s.score)
        seen: set[tuple[int, int, int]] = set()
        spans = []
        for s in candidates:
            if (s.passage, s.start, s.end) not in seen:
                seen.add((s.passage, s.start, s.end))
                spans.append(s)
        return ReaderGuess(spans[:top], nulls, best)

    def agreement(self, first: str, second: str, passage: str) -> float:
        """How alike the reader reads two questions over one passage, in [0, 1].

        The overlap (sum of element-wise minima) of the two questions' start
        distributions, and of their end distributions, over the passage's word pieces
        and the no-answer position, averaged. Two wordings of one question point at
        the same span (or both at none); another question about the same passage
        points elsewhere, however alike the two look to a sentence embedder. The
        correction memory uses it to keep a correction of one question from answering
        a different question about the same passage (``EngineConfig.memory_min_agreement``).
        Only the passage's first window is read.
        """
        import torch

        enc = self.tokenizer(
            [first, second],
            [passage, passage],
            truncation="only_second",
            max_length=self.config.max_length,
            padding=True,
            return_tensors="pt",
        )
        shares = []
        for logits in self._forward(enc):
            rows = []
            for w in range(2):
                at = [0] + [i for i, s in enumerate(enc.sequence_ids(w)) if s == 1]
                rows.append(torch.softmax(logits[w, at], dim=-1))
            n = min(len(rows[0]), len(rows[1]))  # a longer question leaves less passage
            shares.append(float(torch.minimum(rows[0][:n], rows[1][:n]).sum()))
        return sum(shares) / 2

    def _forward(self, enc: Any) -> tuple[Any, Any]:
        """The start and end logits of tokenized windows, as float32 CPU tensors.

        One forward pass at a time: the memory's check and a question being read
        can reach one model from two threads.
        """
        import torch

        with self._lock, torch.inference_mode():
            device = next(self.model.parameters()).device
            out = self.model(**{k: v.to(device) for k, v in enc.items()})
        return out.start_logits.float().cpu(), out.end_logits.float().cpu()


def _window_spans(
    starts: Any,
    ends: Any,
    context: list[bool],
    offsets: list[list[int]],
    passage: int,
    text: str,
    max_tokens: int,
    top: int,
) -> list[Span]:
    """The ``top`` best (start <= end < start + max_tokens) spans inside one window's passage."""
    import torch

    mask = torch.tensor(context)
    if not bool(mask.any()):
        return []
    n = len(context)
    score = starts[:, None] + ends[None, :]
    band = torch.ones(n, n, dtype=torch.bool).triu().tril(max_tokens - 1)
    ok = band & mask[:, None] & mask[None, :]
    score = score.masked_fill(~ok, -math.inf)
    k = min(top, int(ok.sum()))
    values, flat = score.flatten().topk(k)
    spans = []
    for v, f in zip(values.tolist(), flat.tolist(), strict=True):
        i, j = divmod(f, n)
        a, b = offsets[i][0], offsets[j][1]
        spans.append(Span(passage, a, b, text[a:b], float(v)))
    return spans


def _load_weights(
    path: Path,
    config: ReaderConfig,
    base: Path,
    device: str,
    adapter: Path | None,
    trainable: bool,
) -> tuple[Any, Any]:
    """The encoder with the reader's weights, then (optionally) a learned LoRA on top."""
    from transformers import AutoTokenizer

    from engine.reader.training import new_encoder

    tokenizer = AutoTokenizer.from_pretrained(str(base))
    model = new_encoder(base)
    if config.weights == ADAPTER_NAME:
        model = _with_adapter(model, path, merge=True)
    else:
        _load_state(model, path / config.weights)
    if adapter is not None:
        model = _with_adapter(model, adapter, merge=not trainable, trainable=trainable)
    elif trainable:
        from engine.reader.training import lora_model

        model = lora_model(model)
    if not trainable:
        model.eval()
    return model.to(device), tokenizer


def _load_state(model: Any, file: Path) -> None:
    """Load a safetensors state into ``model``; every key must fit, only embeddings may lack."""
    import torch
    from safetensors.torch import load_file

    state = {k: v.to(torch.float32) for k, v in load_file(str(file)).items()}
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("bert.embeddings.")]
    if result.unexpected_keys or missing or "qa_outputs.weight" not in state:
        raise ModelNotAvailableError(
            f"The reader's weights {file} do not fit the bundled encoder "
            f"(unexpected {result.unexpected_keys[:3]}, missing {missing[:3]})."
        )


def _with_adapter(model: Any, folder: Path, *, merge: bool, trainable: bool = False) -> Any:
    from peft import PeftModel

    if not (folder / ADAPTER_NAME).is_file():
        raise ModelNotAvailableError(f"The reader's adapter {folder / ADAPTER_NAME} is missing.")
    peft_model = PeftModel.from_pretrained(model, str(folder), is_trainable=trainable)
    return peft_model.merge_and_unload() if merge else peft_model
