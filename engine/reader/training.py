"""Training the span reader: SQuAD-style features and one explicit training loop.

The same code trains the shipped reader (``python -m bench.train_reader``, on
third-party questions) and teaches it from a person's corrections in the
background (``engine.reader.learning``), so both produce the same kind of
weights: a LoRA on the bundled encoder and the start/end head, saved with peft as
safetensors.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The shipped reader's LoRA. Rank 16 on every linear layer of the encoder is ~0.6 M
# trainable weights (2.4 MB); the head (384 x 2) is trained whole.
LORA_RANK = 16
LORA_TARGETS = (
    "query",
    "key",
    "value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
)


@dataclass(frozen=True)
class Example:
    """A labelled reading: the answer is ``context[answer_start:answer_start+len(answer)]``.

    ``answer_start == -1`` marks a passage that does not answer the question.
    """

    question: str
    context: str
    answer: str
    answer_start: int


@dataclass(frozen=True)
class TrainConfig:
    """How a training run goes; defaults are the shipped reader's."""

    epochs: float = 2.0  # passes over the features (fractions allowed)
    batch_size: int = 16
    learning_rate: float = 1e-3  # LoRA + head; AdamW, linear warm-up and decay
    warmup: float = 0.06  # share of steps spent warming up
    weight_decay: float = 0.01
    seed: int = 0
    max_length: int = 384
    stride: int = 128
    # bfloat16 autocast for the forward pass where the hardware has it (AVX-512 BF16,
    # AMX, recent GPUs): 1.6-1.8x per step on the project's 2-core AMD machine.
    bf16: bool = True


def encode(
    tokenizer: Any, examples: Sequence[Example], *, max_length: int, stride: int
) -> list[dict[str, Any]]:
    """Features: token ids of each window and the word pieces where the answer starts and ends.

    A window that does not hold the whole answer (or an unanswerable example)
    points both at [CLS] (position 0), the no-answer label of SQuAD 2.0 readers.

    >>> from engine.embedding import bundled_embedding_model_path
    >>> from transformers import AutoTokenizer
    >>> tok = AutoTokenizer.from_pretrained(str(bundled_embedding_model_path()))
    >>> ex = Example("Who?", "It was Ada Lovelace.", "Ada Lovelace", 7)
    >>> f = encode(tok, [ex], max_length=64, stride=16)[0]
    >>> tok.decode(f["input_ids"][f["start"] : f["end"] + 1])
    'ada lovelace'
    """
    enc = tokenizer(
        [e.question for e in examples],
        [e.context for e in examples],
        truncation="only_second",
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
    )
    features = []
    for w, owner in enumerate(enc["overflow_to_sample_mapping"]):
        ex = examples[owner]
        seq = enc.sequence_ids(w)
        offsets = enc["offset_mapping"][w]
        start = end = 0
        if ex.answer_start >= 0:
            a, b = ex.answer_start, ex.answer_start + len(ex.answer)
            inside = [i for i, s in enumerate(seq) if s == 1]
            if inside and offsets[inside[0]][0] <= a and offsets[inside[-1]][1] >= b:
                start = next(i for i in inside if offsets[i][1] > a)
                end = next(i for i in reversed(inside) if offsets[i][0] < b)
        features.append(
            {
                "input_ids": enc["input_ids"][w],
                "token_type_ids": enc["token_type_ids"][w],
                "attention_mask": enc["attention_mask"][w],
                "start": start,
                "end": end,
            }
        )
    return features


def lora_model(encoder: Any, *, rank: int = LORA_RANK, seed: int = 0) -> Any:
    """Wrap a question-answering encoder in a fresh LoRA (the head trained whole)."""
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    config = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        lora_dropout=0.05,
        target_modules=list(LORA_TARGETS),
        modules_to_save=["qa_outputs"],
        bias="none",
    )
    return get_peft_model(encoder, config)


def trainable_encoder(encoder: Any) -> Any:
    """Fine-tune every encoder layer and the head; the word embeddings stay frozen.

    Freezing the embeddings (11.7 M of MiniLM's 22.7 M weights) halves what ships
    (the shipped file holds only what training changed) and keeps words the
    training questions never used where the encoder left them.
    """
    for name, param in encoder.named_parameters():
        param.requires_grad = not name.startswith("bert.embeddings.")
    return encoder


def trained_state(model: Any) -> dict[str, Any]:
    """The weights training changed (``requires_grad``), as float16 tensors to ship."""
    import torch

    return {
        name: param.detach().to(torch.float16).contiguous()
        for name, param in model.named_parameters()
        if param.requires_grad
    }


def train(
    model: Any,
    features: Sequence[dict[str, Any]],
    config: TrainConfig,
    *,
    on_step: Callable[[int, int, float], None] | None = None,
    checkpoint: Callable[[], None] | None = None,
) -> list[float]:
    """Fine-tune ``model``'s trainable weights on ``features``; returns the loss per step.

    Batches hold windows of similar length (less padding: about 1.6x faster on
    SQuAD paragraphs than random batches), in a seeded order, so a run repeats.

    Args:
        model: A question-answering model (a peft model: only the LoRA and head train).
        features: From :func:`encode`.
        config: Epochs, batch size, learning rate, seed.
        on_step: Called with (step, steps, loss) after each step (progress).
        checkpoint: Called before each step; may block (pause) or raise (cancel).
    """
    import torch

    rng = random.Random(config.seed)
    torch.manual_seed(config.seed)
    steps_per_epoch = math.ceil(len(features) / config.batch_size)
    steps = max(1, round(config.epochs * steps_per_epoch))
    batches: list[list[int]] = []
    while len(batches) < steps:
        batches += _length_batches(features, config.batch_size, rng)
    batches = batches[:steps]
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    warm = max(1, int(config.warmup * steps))
    sched = torch.optim.lr_scheduler.LambdaLR(
        optim, lambda s: min((s + 1) / warm, max(0.0, (steps - s) / max(1, steps - warm)))
    )
    device = next(model.parameters()).device
    bf16 = config.bf16 and _bf16_fast(device.type)
    model.train()
    losses = []
    for step, batch in enumerate(batches):
        if checkpoint is not None:
            checkpoint()
        inputs = _collate([features[i] for i in batch], device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model(**inputs)
        loss = out.loss.float()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optim.step()
        sched.step()
        optim.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if on_step is not None:
            on_step(step + 1, steps, losses[-1])
    model.eval()
    return losses


def _bf16_fast(device: str) -> bool:
    import torch

    if device == "cpu":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return device == "cuda" and bool(torch.cuda.is_bf16_supported())


def _length_batches(
    features: Sequence[dict[str, Any]], size: int, rng: random.Random
) -> list[list[int]]:
    """Shuffle, sort by length within chunks of 50 batches, cut into batches, shuffle those."""
    order = list(range(len(features)))
    rng.shuffle(order)
    pool = size * 50
    batches = []
    for lo in range(0, len(order), pool):
        chunk = sorted(order[lo : lo + pool], key=lambda i: len(features[i]["input_ids"]))
        batches += [chunk[i : i + size] for i in range(0, len(chunk), size)]
    rng.shuffle(batches)
    return batches


def _collate(batch: Sequence[dict[str, Any]], device: Any) -> dict[str, Any]:
    import torch

    width = max(len(f["input_ids"]) for f in batch)

    def pad(key: str) -> Any:
        return torch.tensor([f[key] + [0] * (width - len(f[key])) for f in batch], device=device)

    return {
        "input_ids": pad("input_ids"),
        "token_type_ids": pad("token_type_ids"),
        "attention_mask": pad("attention_mask"),
        "start_positions": torch.tensor([f["start"] for f in batch], device=device),
        "end_positions": torch.tensor([f["end"] for f in batch], device=device),
    }


def new_encoder(base: Path) -> Any:
    """The bundled encoder with a fresh (seeded by the caller) start/end head."""
    from transformers import AutoModelForQuestionAnswering
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # type: ignore[no-untyped-call]  # the head is new here
    try:
        return AutoModelForQuestionAnswering.from_pretrained(str(base))
    finally:
        hf_logging.set_verbosity(verbosity)
