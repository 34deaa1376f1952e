"""The adapted generator alone (issue 5, layer 2): ``python -m bench.bench_adapter``.

Corrections are the CounterFact-style rewrites of ``bench/data/edits_fixture.json``
(question -> counterfactual new answer). One consolidation round trains a LoRA
adapter of the bundled SmolLM2-135M on all of them, with replay of the base
model's own answers to unrelated prompts. Answers come from the adapted model
alone (no correction memory): closed-book recall, kept only when the recall gate
passes (margin = mean log p adapted - mean log p base of the recalled answer, and
a floor on the adapted log p). The gate's two thresholds are calibrated on the
fixture's calibration split (its rewrites and paraphrases against its near-misses
and the questions of the first 12 QA-fixture articles, at most 5% of those let
through) and scored on the test split and the other articles' questions.

Efficacy / paraphrase: the gate passes and the answer contains the new answer
(normalized containment of free generation). Near-miss: the gate passes on a
near-miss question. Locality: the gate stays shut on a question over the indexed
documents, so ``Engine.ask`` gives exactly the base model's extractive answer.
Round times use synthetic corrections from the fixture's retention templates;
no GPU in this task, 2 shared CPU cores.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from bench.common import FIXTURE as QA_FIXTURE
from bench.common import machine, normalize_answer
from engine.adaptation.adapter import (
    Example,
    TrainingCancelled,
    TrainSettings,
    adapted_view,
    lora_model,
    train_round,
)
from engine.adaptation.recall import ANCHOR_QUESTIONS, Recalled, accept, cached_anchors, recall
from engine.config import EngineConfig
from engine.generation import Generator

EDITS = Path(__file__).parent / "data" / "edits_fixture.json"
CALIBRATION_ARTICLES = 12
MAX_FALSE = 0.05  # negatives the calibrated gate may let through


@dataclass(frozen=True)
class Edit:
    question: str
    answer: str
    paraphrases: tuple[str, ...]
    near_misses: tuple[str, ...]
    split: str


def load_edits() -> tuple[list[Edit], list[Edit]]:
    """(hand-written records, synthetic retention facts) from the edits fixture."""
    data = json.loads(EDITS.read_text(encoding="utf-8"))
    records = [
        Edit(
            r["requested_rewrite"]["question"],
            r["requested_rewrite"]["target_new"],
            tuple(r["paraphrase_questions"]),
            tuple(n["question"] for n in r["near_miss_questions"]),
            r["split"],
        )
        for r in data["records"]
    ]
    rng = random.Random(5)
    facts = []
    retention = data["retention"]
    for kind, relations in retention["relations"].items():
        for subject in retention["subjects"][kind]:
            for rel in relations.values():
                ask, para = rel["questions"][0], rel["questions"][1]
                answer = rng.choice(rel["answers"])
                facts.append(Edit(ask.format(subject), answer, (para.format(subject),), (), "r"))
    rng.shuffle(facts)
    return records, facts


def document_questions() -> tuple[list[str], list[str]]:
    """QA-fixture questions: (first 12 articles, the rest), answerable ones only."""
    data = json.loads(QA_FIXTURE.read_text(encoding="utf-8"))
    calib: list[str] = []
    test: list[str] = []
    for n, article in enumerate(data["articles"]):
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                if not qa.get("is_impossible"):
                    (calib if n < CALIBRATION_ARTICLES else test).append(qa["question"])
    return calib, test


def contains(answer: str, text: str) -> bool:
    return bool(normalize_answer(answer)) and normalize_answer(answer) in normalize_answer(text)


def calibrate(
    positives: list[tuple[Recalled, bool]], negatives: list[Recalled]
) -> tuple[float, float]:
    """Thresholds that let through at most MAX_FALSE of negatives and most right positives.

    >>> pos = [(Recalled("a", 1, -0.1, -3.0), True), (Recalled("b", 1, -0.2, -2.0), True)]
    >>> calibrate(pos, [Recalled("c", 1, -0.5, -0.6)])
    (1.8, -0.2)
    """
    margins = sorted({round(r.margin, 2) for r, _ in positives} | {0.0, 0.5, 1.0, 2.0})
    floors = sorted({round(r.adapted_logp, 2) for r, _ in positives} | {-0.25, -0.5, -1.0})
    best: tuple[int, float, float] = (-1, 1.0, -0.5)
    for margin in margins:
        for floor in floors:
            let = sum(accept(r, min_margin=margin, min_logp=floor) for r in negatives)
            if let > MAX_FALSE * len(negatives):
                continue
            right = sum(ok and accept(r, min_margin=margin, min_logp=floor) for r, ok in positives)
            # Ties go to the stricter gate: fewer surprises on unseen questions.
            if right > best[0] or (right == best[0] and (margin, floor) > best[1:]):
                best = (right, margin, floor)
    return best[1], best[2]


def quality(
    gen: Generator, anchors: list[Example], settings: TrainSettings, limit: int
) -> list[str]:
    records, _ = load_edits()
    records = records[:limit]
    doc_calib, doc_test = document_questions()
    corrections = [Example(e.question, e.answer, n + 1) for n, e in enumerate(records)]
    model = lora_model(gen, settings)
    result = train_round(model, gen, corrections, anchors=anchors, settings=settings)
    adapted = adapted_view(gen, model)
    print(f"trained: {result.steps} steps, {result.seconds:.0f} s", file=sys.stderr, flush=True)

    def ask(question: str) -> Recalled:
        return recall(adapted, gen, question)

    scored: dict[str, list[tuple[Recalled, bool]]] = {}
    for e in records:
        scored.setdefault(f"{e.split}/efficacy", []).append(
            (r := ask(e.question), contains(e.answer, r.text))
        )
        for p in e.paraphrases:
            scored.setdefault(f"{e.split}/paraphrase", []).append(
                (r := ask(p), contains(e.answer, r.text))
            )
        for q in e.near_misses:
            scored.setdefault(f"{e.split}/near", []).append((ask(q), False))
    scored["calibration/locality"] = [(ask(q), False) for q in doc_calib[: min(40, limit + 1)]]
    scored["test/locality"] = [(ask(q), False) for q in doc_test[: min(80, 2 * limit + 2)]]

    print("scored", {k: len(v) for k, v in scored.items()}, file=sys.stderr, flush=True)
    positives = scored["calibration/efficacy"] + scored["calibration/paraphrase"]
    negatives = [r for r, _ in scored["calibration/near"] + scored["calibration/locality"]]
    margin, floor = calibrate(positives, negatives)

    def rate(key: str, *, right: bool) -> str:
        rows = scored[key]
        passed = [
            accept(r, min_margin=margin, min_logp=floor) and (ok or not right) for r, ok in rows
        ]
        return f"{sum(passed) / len(rows):.2f} ({len(rows)})"

    def shut(key: str) -> str:
        rows = scored[key]
        kept = [not accept(r, min_margin=margin, min_logp=floor) for r, _ in rows]
        return f"{sum(kept) / len(rows):.2f} ({len(rows)})"

    def ungated(key: str) -> str:
        rows = scored[key]
        return f"{sum(ok for _, ok in rows) / len(rows):.2f}"

    lines = [
        f"One round on {len(corrections)} corrections: {result.steps} steps,"
        f" {result.seconds:.0f} s, final loss {result.loss:.3f}; gate calibrated to"
        f" margin >= {margin:.2f} nats/token and adapted log p >= {floor:.2f}.",
        "",
        "| split | efficacy | paraphrase | near-miss false triggers | locality |"
        " efficacy ungated | paraphrase ungated |",
        "|---|---|---|---|---|---|---|",
    ]
    for split in ("calibration", "test"):
        lines.append(
            f"| {split} | {rate(f'{split}/efficacy', right=True)}"
            f" | {rate(f'{split}/paraphrase', right=True)}"
            f" | {rate(f'{split}/near', right=False)} | {shut(f'{split}/locality')}"
            f" | {ungated(f'{split}/efficacy')} | {ungated(f'{split}/paraphrase')} |"
        )
    return lines


def round_time(
    gen: Generator, anchors: list[Example], settings: TrainSettings, n: int, budget: float
) -> str:
    """Seconds of a round on ``n`` new corrections; projected from the steps done if it
    would run past ``budget`` seconds (then cancelled)."""
    _, facts = load_edits()
    corrections = [Example(f.question, f.answer, i + 1) for i, f in enumerate((facts * 4)[:n])]
    cancel = threading.Event()
    stamps: list[tuple[int, int, float]] = []
    started = time.perf_counter()

    def on_step(done: int, total: int) -> None:
        stamps.append((done, total, time.perf_counter() - started))
        if time.perf_counter() - started > budget:
            cancel.set()

    model = lora_model(gen, settings)
    try:
        result = train_round(
            model,
            gen,
            corrections,
            anchors=anchors,
            settings=settings,
            cancel=cancel,
            on_step=on_step,
        )
    except TrainingCancelled:
        done, total, seconds = stamps[-1]
        projected = seconds / done * total
        return (
            f"| {n} | {total} | {projected:.0f} (projected from {done} steps in {seconds:.0f} s) |"
        )
    return f"| {n} | {result.steps} | {result.seconds:.0f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--sizes", type=int, nargs="*", default=[10, 100, 1000])
    parser.add_argument("--budget", type=float, default=600.0, help="seconds per timed round")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--limit", type=int, default=1000, help="fixture records used")
    parser.add_argument("--epochs", type=int, default=0, help="override adapter_epochs")
    parser.add_argument("--lr", type=float, default=0.0, help="override adapter_learning_rate")
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "kb-adapter")
    args = parser.parse_args()

    defaults = EngineConfig()
    settings = TrainSettings(
        rank=defaults.adapter_rank,
        alpha=2 * defaults.adapter_rank,
        learning_rate=args.lr or defaults.adapter_learning_rate,
        epochs=args.epochs or defaults.adapter_epochs,
        replay_ratio=defaults.adapter_replay_ratio,
        seed=defaults.adapter_seed,
    )
    gen = Generator(cache_root=args.data_dir / "models", device="cpu", threads=args.threads)
    started = time.perf_counter()
    anchors = cached_anchors(gen, ANCHOR_QUESTIONS, args.data_dir / "anchors.json")
    anchor_seconds = time.perf_counter() - started
    lines = [f"Machine: {machine()}; torch threads {args.threads}; no GPU.", ""]
    if not args.skip_quality:
        lines += [*quality(gen, anchors, settings, args.limit), ""]
    lines += [
        f"Round times (rank {settings.rank}, lr {settings.learning_rate:g},"
        f" {settings.epochs} epochs, replay ratio"
        f" {settings.replay_ratio}, batch {settings.batch_size}); the base model's answers"
        f" to {len(anchors)} anchor prompts took {anchor_seconds:.0f} s (0 when cached).",
        "",
        "| corrections | steps | seconds |",
        "|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for n in args.sizes:  # one row at a time: a long round should not hide the short ones
        print(round_time(gen, anchors, replace(settings), n, args.budget), flush=True)


if __name__ == "__main__":
    main()
