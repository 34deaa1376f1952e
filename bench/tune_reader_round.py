"""How strong a learning round should be: ``python -m bench.tune_reader_round``.

Tunes the reader's learning round (``engine.learning.reader_learning``) on the
*calibration* split alone (the test split is for ``bench_reader_learning``). It reads
each question against its own paragraph (no retrieval, no memory), so it measures
only what a round does to the reader:

* corrected: two questions per chosen paragraph, each corrected with its gold answer;
* asked before: further questions of those paragraphs that the person had asked
  (the answer log holds them; a round may replay the reader's own answers to them);
* never asked: the rest of those paragraphs' questions, never seen by the round:
  the figure the round must raise ("other questions of the same kind");
* elsewhere: questions about paragraphs that no correction touched.

Each variant trains one round from the shipped weights, the way the engine does,
and reports F1 on the four groups.
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import dataclass

from bench.common import machine, token_f1
from bench.squad import load_paragraphs, split
from engine.learning.reader_learning import MAX_PASSES, REPEATS, ROUND, ReaderLearning, train_round
from engine.reader import SpanReader
from engine.reader.training import Example, TrainConfig

CORRECTED = 2
ASKED = 1


@dataclass(frozen=True)
class Variant:
    name: str
    repeats: int
    epochs: float
    learning_rate: float
    self_replay: bool  # the reader's own answers to the asked-before questions join the round
    passes: int = 1  # further passes over the corrections not yet given back (train_round)


VARIANTS = {
    "engine-old": Variant("12 repeats, 2 epochs, 1e-3 (before)", 12, 2.0, 1e-3, False),
    "old+self": Variant("12 repeats, 2 epochs, 1e-3 + own answers", 12, 2.0, 1e-3, True),
    "gentle": Variant("gentle (4 repeats, 1 epoch, 5e-4)", 4, 1.0, 5e-4, False),
    "gentle+self": Variant("gentle + own answers replayed", 4, 1.0, 5e-4, True),
    "medium+self": Variant("8 repeats, 1 epoch, 1e-3 + own answers", 8, 1.0, 1e-3, True),
    "strong+self": Variant("12 repeats, 1 epoch, 1e-3, + own answers", 12, 1.0, 1e-3, True),
    "gentle+self+2": Variant("gentle + own answers, up to 2 passes", 4, 1.0, 5e-4, True, 2),
    "shipped": Variant(
        "gentle + own answers, up to 4 passes (shipped)",
        REPEATS,
        ROUND.epochs,
        ROUND.learning_rate,
        True,
        MAX_PASSES,
    ),
}


def f1(reader: SpanReader, rows: list[tuple[str, str, str]]) -> float:
    total = 0.0
    for question, context, gold in rows:
        best = reader.read(question, [context]).best
        total += token_f1(best.text, gold) if best else 0.0
    return total / max(1, len(rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paragraphs", type=int, default=15)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(2)
    paragraphs = [p for p in split(load_paragraphs())["calibration"] if len(p.qas) >= 5]
    random.Random(args.seed).shuffle(paragraphs)
    touched = paragraphs[: args.paragraphs]
    others = paragraphs[args.paragraphs : 2 * args.paragraphs]
    corrected = [(p.context, qa) for p in touched for qa in p.qas[:CORRECTED]]
    groups = {
        "corrected": [(qa[1], p.context, qa[2]) for p in touched for qa in p.qas[:CORRECTED]],
        "asked before": [
            (qa[1], p.context, qa[2])
            for p in touched
            for qa in p.qas[CORRECTED : CORRECTED + ASKED]
        ],
        "never asked": [
            (qa[1], p.context, qa[2]) for p in touched for qa in p.qas[CORRECTED + ASKED :]
        ],
        "elsewhere": [(qa[1], p.context, qa[2]) for p in others for qa in p.qas],
    }
    shipped = SpanReader.load()
    before = {k: f1(shipped, rows) for k, rows in groups.items()}
    own = []
    for question, context, _ in groups["asked before"]:
        best = shipped.read(question, [context]).best
        if best is not None:
            own.append(Example(question, context, best.text, best.start))
        else:
            own.append(Example(question, context, "", -1))
    replay = ReaderLearning(shipped.path.parent / "unused", shipped.path)._replay_rows()
    print(f"Machine: {machine()}; 2 torch threads; calibration split only.")
    print(f"{len(touched)} paragraphs, {len(corrected)} corrections; group sizes:", end=" ")
    print(", ".join(f"{k} {len(v)}" for k, v in groups.items()))
    print()
    print("| round | " + " | ".join(groups) + " | passes | seconds |")
    print("| --- |" + " --- |" * (len(groups) + 2))
    cells = " | ".join(f"{v:.3f}" for v in before.values())
    print(f"| shipped reader (before) | {cells} | | |")
    for key in args.variants.split(","):
        v = VARIANTS[key]
        started = time.perf_counter()
        reader = SpanReader.load(device="cpu", trainable=True)
        labelled = [Example(qa[1], c, qa[2], qa[3]) for c, qa in corrected]
        round_cfg = TrainConfig(
            epochs=v.epochs, batch_size=8, learning_rate=v.learning_rate, warmup=0.0, seed=0
        )
        done = train_round(
            reader,
            labelled,
            own if v.self_replay else [],
            replay,
            repeats=v.repeats,
            config=round_cfg,
            passes=v.passes,
        )
        after = [f1(reader, rows) for rows in groups.values()]
        seconds = time.perf_counter() - started
        cells = " | ".join(f"{a:.3f}" for a in after)
        print(f"| {v.name} | {cells} | {done.passes} | {seconds:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
