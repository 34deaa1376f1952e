"""Does the correction memory's gate fire on other questions about the same passage?

``python -m bench.probe_memory_gate``: third-party pairs from the SQuAD train subset
(``bench/squad.py``): a correction of one question about a paragraph against every
other question about that paragraph with another answer, a pair the memory must not
answer with the correction. Reported per split for the shipped gate, and for the gate
refitted with the *train* split's pairs as negatives beside the edits fixture's pairs
(``bench.bench_corrections``), at the lowest threshold letting at most 2% of either
kind of calibration negative through; the fixture's held-out paraphrases say what the
refit costs. Embedding only; a few minutes on 2 cores.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.bench_corrections import (
    NEAR_MISS,
    OTHER_RECORD,
    POSITIVE,
    UNRELATED,
    CachedEmbedder,
    gate_pairs,
    load_edits,
)
from bench.common import machine, write_articles
from bench.squad import Paragraph, load_paragraphs, split
from engine.embedding import Embedder
from engine.learning.corrections import Correction
from engine.learning.memory import (
    GATE_BIAS,
    GATE_THRESHOLD,
    GATE_WEIGHTS,
    CorrectionMemory,
    fit_gate,
    gate_probability,
)

MAX_THROUGH = 0.02
CORRECTED_PER_PARAGRAPH = 2


def same_passage_pairs(memory: CorrectionMemory, paragraphs: Sequence[Paragraph]) -> np.ndarray:
    """Feature rows (the gate's and its rule) of (correction, other question, other answer)."""
    rows = []
    for p in paragraphs:
        for i, (_, question, answer, _) in enumerate(p.qas[:CORRECTED_PER_PARAGRAPH]):
            stored = Correction(i, question, answer, 0.0)
            for _, other, other_answer, _ in p.qas:
                if other != question and other_answer.casefold() != answer.casefold():
                    rows.append(memory.features(stored, other))
    return np.array(rows)


def through(x: np.ndarray, weights: Sequence[float], bias: float, threshold: float) -> np.ndarray:
    """Whether the whole gate (rule and logistic model) lets each pair through."""
    return (gate_probability(x[:, [0, 1, 3]], weights, bias) * (x[:, 2] >= 1.0)) >= threshold


def main() -> None:
    memory = CorrectionMemory(CachedEmbedder(Embedder(None, threads=2)))
    parts = split(load_paragraphs())
    squad = {name: same_passage_pairs(memory, ps) for name, ps in parts.items()}
    records, _ = load_edits()
    asked = [q.question for q in write_articles(Path(tempfile.mkdtemp()) / "articles")]
    half = len(asked) // 2
    cal = [e for e in records if e.split == "calibration"]
    test = [e for e in records if e.split == "test"]
    xc, yc, gc = gate_pairs(memory, cal, asked[:half])
    xt, _, gt = gate_pairs(memory, test, asked[half:])
    groups_c, groups_t = np.array(gc), np.array(gt)
    hand = np.isin(groups_c, [POSITIVE, NEAR_MISS, OTHER_RECORD, UNRELATED]) & (xc[:, 2] >= 1)
    train_kept = squad["train"][squad["train"][:, 2] >= 1]
    weights, bias = fit_gate(
        np.vstack([xc[hand][:, [0, 1, 3]], train_kept[:, [0, 1, 3]]]),
        np.concatenate([yc[hand], np.zeros(len(train_kept))]),
    )
    hand_negative = np.isin(groups_c, [NEAR_MISS, OTHER_RECORD, UNRELATED])
    threshold = next(
        float(t)
        for t in [*np.linspace(0.05, 0.99, 95), 1.0]
        if through(xc, weights, bias, t)[hand_negative].mean() <= MAX_THROUGH
        and through(squad["train"], weights, bias, t).mean() <= MAX_THROUGH
    )
    print(f"Machine: {machine()}\n")
    print(
        "| gate | same passage, other answer: train / calibration / test | fixture "
        "paraphrases (held out) | fixture near misses (held out) |"
    )
    print("| --- | --- | --- | --- |")
    for name, (w, b, t) in {
        "shipped (fixture only)": (GATE_WEIGHTS, GATE_BIAS, GATE_THRESHOLD),
        f"refitted with SQuAD train pairs (t = {threshold:.2f})": (weights, bias, threshold),
    }.items():
        rates = " / ".join(f"{through(x, w, b, t).mean():.3f}" for x in squad.values())
        para = through(xt, w, b, t)[groups_t == POSITIVE].mean()
        near = through(xt, w, b, t)[groups_t == NEAR_MISS].mean()
        print(f"| {name} | {rates} | {para:.3f} | {near:.3f} |")
    sizes = ", ".join(f"{k} {len(v)}" for k, v in squad.items())
    print(f"\nSame-passage pairs: {sizes}.")
    print(f"Refitted weights {np.round(weights, 2)}, bias {bias:.2f}.")


if __name__ == "__main__":
    main()
