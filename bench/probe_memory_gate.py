"""Does the correction memory's gate fire on other questions about the same passage?

``python -m bench.probe_memory_gate``: third-party pairs from the SQuAD train subset
(``bench/squad.py``): a correction of one question about a paragraph against every
other question about that paragraph with another answer, a pair the memory must not
answer with the correction. Reported per split for the shipped gate, and for the gate
refitted with the *train* split's pairs as negatives beside the edits fixture's pairs
(``bench.bench_corrections``), at the lowest threshold letting at most 2% of either
kind of calibration negative through; the fixture's held-out paraphrases say what the
refit costs.

Then the reader's check behind the gate (``SpanReader.agreement``, shipped as
``EngineConfig.memory_min_agreement``): how alike the reader reads the corrected and
the new question over a passage (for SQuAD pairs their own paragraph; for the
fixture's the QA-fixture paragraph nearest the new question, as the engine reads its
best hit). Its floor is the highest that keeps at least 95% of the calibration pairs
that should pass and do pass the gate: the fixture's calibration paraphrases and
SQuAD train + calibration pairs of two questions with the same answer. A few minutes
on 2 cores.
"""

from __future__ import annotations

import json
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
    Edit,
    gate_pairs,
    load_edits,
)
from bench.common import FIXTURE as QA_FIXTURE
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
    normalized_question,
)
from engine.reader.model import SpanReader

MAX_THROUGH = 0.02
CORRECTED_PER_PARAGRAPH = 2
KEEP = 0.95  # of the gate's rightful passes, the reader's check keeps at least this
FLOORS = [round(float(t), 2) for t in np.linspace(0.05, 0.6, 12)]


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


def same_answer_pairs(
    memory: CorrectionMemory, paragraphs: Sequence[Paragraph]
) -> list[tuple[str, str, str]]:
    """(corrected question, another question with the same answer, paragraph) that the
    gate lets through: the pairs where the correction is the right answer."""
    out = []
    for p in paragraphs:
        for i, (_, question, answer, _) in enumerate(p.qas):
            for j, (_, other, other_answer, _) in enumerate(p.qas):
                if i == j or normalized_question(other) == normalized_question(question):
                    continue
                if other_answer.casefold().strip(" .") == answer.casefold().strip(" ."):
                    stored = Correction(i, question, answer, 0.0)
                    row = np.array([memory.features(stored, other)])
                    if through(row, GATE_WEIGHTS, GATE_BIAS, GATE_THRESHOLD)[0]:
                        out.append((question, other, p.context))
    return out


def other_answer_triples(
    memory: CorrectionMemory, paragraphs: Sequence[Paragraph]
) -> tuple[int, list[tuple[str, str, str]]]:
    """(pairs in all, those of them the gate lets through) of :func:`same_passage_pairs`."""
    total, out = 0, []
    for p in paragraphs:
        for i, (_, question, answer, _) in enumerate(p.qas[:CORRECTED_PER_PARAGRAPH]):
            stored = Correction(i, question, answer, 0.0)
            for _, other, other_answer, _ in p.qas:
                if other != question and other_answer.casefold() != answer.casefold():
                    total += 1
                    row = np.array([memory.features(stored, other)])
                    if through(row, GATE_WEIGHTS, GATE_BIAS, GATE_THRESHOLD)[0]:
                        out.append((question, other, p.context))
    return total, out


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
    reader_check(memory, parts, records, write_articles_paragraphs())


def write_articles_paragraphs() -> list[str]:
    """The QA fixture's paragraphs: the library bench_corrections asks the fixture in."""
    data = json.loads(QA_FIXTURE.read_text(encoding="utf-8"))
    return [p["context"] for a in data["articles"] for p in a["paragraphs"]]


def reader_check(
    memory: CorrectionMemory,
    parts: dict[str, list[Paragraph]],
    records: Sequence[Edit],
    library: list[str],
) -> None:
    """Calibrate and report the reader's agreement floor behind the shipped gate."""
    reader = SpanReader.load()
    passages = memory._embedder.embed(library)

    def fixture(split_name: str, kind: str) -> list[tuple[str, str, str]]:
        out = []
        for e in records:
            if e.split != split_name:
                continue
            stored = Correction(0, e.question, e.answer, 0.0)
            for other in e.paraphrases if kind == "paraphrase" else e.near_misses:
                row = np.array([memory.features(stored, other)])
                if through(row, GATE_WEIGHTS, GATE_BIAS, GATE_THRESHOLD)[0]:
                    best = int(np.argmax(passages @ memory._embedder.embed([other])[0]))
                    out.append((e.question, other, library[best]))
        return out

    def scores(triples: list[tuple[str, str, str]]) -> np.ndarray:
        return np.array([reader.agreement(a, b, c) for a, b, c in triples])

    keep = np.concatenate(
        [
            scores(fixture("calibration", "paraphrase")),
            scores(same_answer_pairs(memory, parts["train"] + parts["calibration"])),
        ]
    )
    floor = max(t for t in [0.0, *FLOORS] if (keep >= t).mean() >= KEEP)
    print(
        f"\nReader agreement floor (calibration): {floor:.2f}, keeping "
        f"{(keep >= floor).mean():.3f} of {len(keep)} rightful passes.\n"
    )
    print("| pairs | through the gate | and the reader's check |")
    print("| --- | --- | --- |")
    for name, ps in parts.items():
        total, passed = other_answer_triples(memory, ps)
        kept = (scores(passed) >= floor).sum()
        print(
            f"| SQuAD {name}: same passage, other answer | {len(passed) / total:.3f} | "
            f"{kept / total:.3f} |"
        )
    test_same = scores(same_answer_pairs(memory, parts["test"]))
    print(
        f"| SQuAD test: same passage, same answer (passes of the gate kept) | "
        f"{len(test_same)} | {(test_same >= floor).mean():.3f} |"
    )
    for kind in ("paraphrase", "near miss"):
        s = scores(fixture("test", "paraphrase" if kind == "paraphrase" else "near"))
        print(
            f"| fixture test {kind} pairs (passes of the gate kept) | {len(s)} | "
            f"{(s >= floor).mean():.3f} |"
        )


if __name__ == "__main__":
    main()
