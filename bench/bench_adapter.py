"""Layer 2 (the adapted generator), alone and behind the memory: ``python -m bench.bench_adapter``.

Corrections are the CounterFact-style rewrites of ``bench/data/edits_fixture.json``
(question -> counterfactual new answer). One consolidation round trains a LoRA
adapter of the bundled SmolLM2-135M on all of them, with replay of the base
model's own answers to unrelated prompts. The adapted model answers closed-book,
and its answer is kept only when the recall gate passes (margin = mean log p
adapted - mean log p base of the recalled answer, and a floor on the adapted log
p). The gate's two thresholds are calibrated on the fixture's calibration split
and the questions of the first 12 QA-fixture articles (see :func:`gates`: one
pair for the adapter alone, one for it behind the correction memory) and scored
on the test split and the other articles' questions. "All layers" asks the real
correction memory first (as ``Engine.ask`` does) and the adapter only where it
does not fire.

Efficacy / paraphrase: the answer contains the new answer (normalized containment
of free generation). Near-miss: an answer was given (memory or gate) to a
near-miss question. Locality: nothing fires on a question over the indexed
documents, so ``Engine.ask`` gives exactly the base model's extractive answer.
Round times use synthetic corrections from the fixture's retention templates.
``--dump`` keeps every scored question; ``--from-dump`` reports one again.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from bench.common import FIXTURE as QA_FIXTURE
from bench.common import machine, normalize_answer
from engine.config import EngineConfig
from engine.generation import Generator
from engine.learning.adapter import (
    Example,
    TrainingCancelled,
    TrainSettings,
    adapted_view,
    bf16_trains_fast,
    lora_model,
    train_round,
)
from engine.learning.recall import (
    ANCHOR_QUESTIONS,
    Recalled,
    accept,
    cached_base_answers,
    recall,
)

EDITS = Path(__file__).parent / "data" / "edits_fixture.json"
CALIBRATION_ARTICLES = 12


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
    positives: list[tuple[Recalled, bool]], negatives: list[Recalled], *, max_false: float
) -> tuple[float, float]:
    """Thresholds that let through at most ``max_false`` of negatives and most right
    positives.

    >>> pos = [(Recalled("a", 1, -0.1, -3.0), True), (Recalled("b", 1, -0.2, -2.0), True)]
    >>> calibrate(pos, [Recalled("c", 1, -0.5, -0.6)], max_false=0.05)
    (1.8, -0.2)
    """
    margins = sorted({round(r.margin, 2) for r, _ in positives} | {0.0, 0.5, 1.0, 2.0})
    floors = sorted({round(r.adapted_logp, 2) for r, _ in positives} | {-0.25, -0.5, -1.0})
    best: tuple[int, float, float] = (-1, 1.0, -0.5)
    for margin in margins:
        for floor in floors:
            let = sum(accept(r, min_margin=margin, min_logp=floor) for r in negatives)
            if let > max_false * len(negatives):
                continue
            right = sum(ok and accept(r, min_margin=margin, min_logp=floor) for r, ok in positives)
            # Ties go to the stricter gate: fewer surprises on unseen questions.
            if right > best[0] or (right == best[0] and (margin, floor) > best[1:]):
                best = (right, margin, floor)
    return best[1], best[2]


@dataclass(frozen=True)
class Scored:
    """One question asked of the adapted model (and of the correction memory)."""

    group: str  # "<split>/<efficacy|paraphrase|near|locality>"
    question: str
    recalled: Recalled
    right: bool  # the recalled text holds the new answer (never, for near/locality)
    memory: bool  # the correction memory (layer 1) fires on it
    memory_right: bool  # ... with the right correction
    seconds: float = 0.0  # the whole recall (decode + both scorings)
    early_seconds: float = 0.0  # what ask runs behind the memory (gives up below its floor)
    early_gave_up: bool = False
    alone_seconds: float = 0.0  # ... and with the memory off (a lower floor)
    alone_gave_up: bool = False


def quality(
    gen: Generator,
    anchors: list[Example],
    settings: TrainSettings,
    limit: int,
) -> tuple[list[Scored], str]:
    """Train one round on the fixture's records, then ask every question; (rows, summary)."""
    from engine.embedding import Embedder
    from engine.learning.corrections import Correction
    from engine.learning.memory import CorrectionMemory

    records, _ = load_edits()
    records = records[:limit]
    doc_calib, doc_test = document_questions()
    corrections = [Example(e.question, e.answer, n + 1) for n, e in enumerate(records)]
    model = lora_model(gen, settings)
    result = train_round(model, gen, corrections, anchors=anchors, settings=settings)
    adapted = adapted_view(gen, model)
    summary = (
        f"One round on {len(corrections)} corrections: {result.steps} steps in"
        f" {result.seconds:.0f} s, final loss {result.loss:.3f}."
    )
    print(summary, file=sys.stderr, flush=True)
    memory = CorrectionMemory(Embedder(device="cpu"))
    memory.add([Correction(c.correction_id or 0, c.question, c.answer, 0.0) for c in corrections])

    rows: list[Scored] = []

    config = EngineConfig()

    def ask(group: str, question: str, answer: str | None) -> None:
        started = time.perf_counter()
        r = recall(adapted, gen, question)
        seconds = time.perf_counter() - started
        early = recall(adapted, gen, question, min_logp=config.recall_min_logp)
        early_seconds = time.perf_counter() - started - seconds
        alone = recall(adapted, gen, question, min_logp=config.recall_alone_min_logp)
        alone_seconds = time.perf_counter() - started - seconds - early_seconds
        match = memory.lookup(question)
        rows.append(
            Scored(
                group,
                question,
                r,
                answer is not None and contains(answer, r.text),
                match is not None,
                match is not None and answer is not None and match.correction.answer == answer,
                seconds,
                early_seconds,
                early.gave_up,
                alone_seconds,
                alone.gave_up,
            )
        )

    for e in records:
        ask(f"{e.split}/efficacy", e.question, e.answer)
        for p in e.paraphrases:
            ask(f"{e.split}/paraphrase", p, e.answer)
        for q in e.near_misses:
            ask(f"{e.split}/near", q, None)
    for q in doc_calib[: min(40, limit + 1)]:
        ask("calibration/locality", q, None)
    for q in doc_test[: min(80, 2 * limit + 2)]:
        ask("test/locality", q, None)
    return rows, summary


def dump(rows: list[Scored], path: Path) -> None:
    data = [{**asdict(r), "recalled": asdict(r.recalled)} for r in rows]
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")


def undump(path: Path) -> list[Scored]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return [Scored(**{**d, "recalled": Recalled(**d["recalled"])}) for d in data]


def gates(rows: list[Scored]) -> dict[str, tuple[float, float]]:
    """The recall gate's (margin, floor), calibrated on the calibration split two ways.

    "alone" (``recall_alone_*``, the memory off): at most 5% of document questions
    answered from the adapter; the goals for the generator alone are efficacy,
    paraphrase and locality, so near misses are reported, not guarded.
    "behind memory" (``recall_*``, the default): recall only runs on what the
    memory did not answer, so it is calibrated on those questions alone, letting
    at most 2% of their near misses and document questions through (the budget
    the memory's own gate has), as near misses count against all layers together.
    """
    groups = _groups(rows)
    calib = {k: groups[f"calibration/{k}"] for k in ("efficacy", "paraphrase", "near", "locality")}
    positives = [(r.recalled, r.right) for k in ("efficacy", "paraphrase") for r in calib[k]]
    alone = calibrate(positives, [r.recalled for r in calib["locality"]], max_false=0.05)
    behind = calibrate(
        [
            (r.recalled, r.right)
            for k in ("efficacy", "paraphrase")
            for r in calib[k]
            if not r.memory
        ],
        [r.recalled for k in ("near", "locality") for r in calib[k] if not r.memory],
        max_false=0.02,
    )
    return {"alone": alone, "behind memory": behind}


def _groups(rows: list[Scored]) -> dict[str, list[Scored]]:
    groups: dict[str, list[Scored]] = {}
    for r in rows:
        groups.setdefault(r.group, []).append(r)
    return groups


def report(rows: list[Scored]) -> list[str]:
    """Layer 2 alone under the "alone" gate, and all layers with the "behind memory" one."""
    groups = _groups(rows)
    fitted = gates(rows)
    lines = [
        "Gates calibrated on the calibration split: alone margin >= {:.2f}, floor >= {:.2f};"
        " behind the memory margin >= {:.2f}, floor >= {:.2f}.".format(
            *fitted["alone"], *fitted["behind memory"]
        ),
        "",
        "| layers | gate | split | efficacy | paraphrase | near-miss false triggers"
        " | locality | efficacy ungated | paraphrase ungated |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    margin, floor = fitted["behind memory"]

    def together(r: Scored) -> tuple[bool, bool]:
        """(answer changed, changed to the right answer) with the memory asked first."""
        if r.memory:
            return True, r.memory_right
        fired = accept(r.recalled, min_margin=margin, min_logp=floor)
        return fired, fired and r.right

    def alone(gate: tuple[float, float]) -> Callable[[Scored], tuple[bool, bool]]:
        def decide(r: Scored) -> tuple[bool, bool]:
            fired = accept(r.recalled, min_margin=gate[0], min_logp=gate[1])
            return fired, fired and r.right

        return decide

    rows_of = [(f"generator alone | {name}", alone(gate), True) for name, gate in fitted.items()]
    rows_of.append(("memory + generator | behind memory", together, False))
    for label, decide, ungated in rows_of:
        for split in ("calibration", "test"):
            eff, para = groups[f"{split}/efficacy"], groups[f"{split}/paraphrase"]
            near, local = groups[f"{split}/near"], groups[f"{split}/locality"]
            extra = (
                f" {_rate([r.right for r in eff])} | {_rate([r.right for r in para])} |"
                if ungated
                else " | |"
            )
            lines.append(
                f"| {label} | {split}"
                f" | {_rate([decide(r)[1] for r in eff])}"
                f" | {_rate([decide(r)[1] for r in para])}"
                f" | {_rate([decide(r)[0] for r in near])}"
                f" | {_rate([not decide(r)[0] for r in local])} |{extra}"
            )
    local = groups["test/locality"]
    if local[0].seconds:
        config = EngineConfig()

        def p50(values: list[float]) -> float:
            return sorted(values)[len(values) // 2]

        lines += [
            "",
            f"Recall cost per question over the documents (test split, {len(local)}): whole"
            f" decode and both scorings p50 {p50([r.seconds for r in local]):.2f} s; giving up"
            f" below the floor, as ask does: behind the memory ({config.recall_min_logp})"
            f" p50 {p50([r.early_seconds for r in local]):.2f} s (gave up on"
            f" {sum(r.early_gave_up for r in local)}), alone ({config.recall_alone_min_logp})"
            f" p50 {p50([r.alone_seconds for r in local]):.2f} s (gave up on"
            f" {sum(r.alone_gave_up for r in local)}).",
        ]
    return lines


def _rate(flags: list[bool]) -> str:
    return f"{sum(flags) / max(1, len(flags)):.3f} ({sum(flags)}/{len(flags)})"


def round_time(
    gen: Generator, anchors: list[Example], settings: TrainSettings, n: int, budget: float
) -> str:
    """A row: a round on ``n`` new corrections; projected from the steps done if it
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
    parser.add_argument("--budget", type=float, default=3000.0, help="seconds per timed round")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--limit", type=int, default=1000, help="fixture records used")
    parser.add_argument("--epochs", type=int, default=0, help="override adapter_epochs")
    parser.add_argument("--lr", type=float, default=0.0, help="override adapter_learning_rate")
    parser.add_argument("--no-bf16", action="store_true", help="train in float32 throughout")
    parser.add_argument("--dump", type=Path, help="write every scored question here (JSON)")
    parser.add_argument("--from-dump", type=Path, help="only report a --dump file")
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "kb-adapter")
    args = parser.parse_args()
    if args.from_dump:
        print("\n".join(report(undump(args.from_dump))))
        return

    defaults = EngineConfig()
    settings = TrainSettings(
        rank=defaults.adapter_rank,
        alpha=2 * defaults.adapter_rank,
        learning_rate=args.lr or defaults.adapter_learning_rate,
        epochs=args.epochs or defaults.adapter_epochs,
        replay_ratio=defaults.adapter_replay_ratio,
        seed=defaults.adapter_seed,
        bf16=not args.no_bf16,
    )
    gen = Generator(cache_root=args.data_dir / "models", device="cpu", threads=args.threads)
    started = time.perf_counter()
    anchors = cached_base_answers(gen, ANCHOR_QUESTIONS, args.data_dir / "anchors.json")
    anchor_seconds = time.perf_counter() - started
    bf16 = settings.bf16 and bf16_trains_fast("cpu")
    lines = [
        f"Machine: {machine()}; torch threads {args.threads}; no GPU; bfloat16 autocast"
        f" {'on' if bf16 else 'off'}; rank {settings.rank}, lr {settings.learning_rate:g},"
        f" {settings.epochs} epochs, replay ratio {settings.replay_ratio},"
        f" batch {settings.batch_size}.",
        "",
    ]
    if not args.skip_quality:
        rows, summary = quality(gen, anchors, settings, args.limit)
        if args.dump:
            dump(rows, args.dump)
        lines += [summary, "", *report(rows), ""]
    lines += [
        f"Round times; the base model's answers to {len(anchors)} anchor prompts took"
        f" {anchor_seconds:.0f} s (once per data folder; 0 when cached).",
        "",
        "| corrections | steps | seconds |",
        "|---|---|---|",
    ]
    print("\n".join(lines), flush=True)
    for n in args.sizes:  # one row at a time: a long round should not hide the short ones
        print(round_time(gen, anchors, replace(settings), n, args.budget), flush=True)


if __name__ == "__main__":
    main()
