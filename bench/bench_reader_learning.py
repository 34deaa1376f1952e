"""Does the reader get better with corrections? ``python -m bench.bench_reader_learning``.

The test split's library (``bench/squad.py``) with the real engine. Its
answerable paragraphs are split, seeded, into two halves. In the first, a person
corrects two questions of each paragraph (the gold answer, which the paragraph
holds) after asking one more question about it (the answer history keeps it;
the reader's learning round replays the shipped reader's answer to it); the other
questions of those paragraphs are "never asked": about the same documents, seen
by nothing before the round, the figure a round must raise. The second half is
"elsewhere". F1 is measured before the corrections and after the reader's learning
round, with the correction memory on (the default; it answers the corrected
questions themselves, which are reported apart), with it off (the reader alone),
and with the reader's learning off (the memory alone, the shipped reader): what
the learned reader adds on top of the memory; and the memory alone without the
reader's check on what it answers (``memory_min_agreement=0``): what the check adds.
``--no-round`` measures the memory's columns only (no learning round). The
never-asked questions' "before" is measured on a copy of the library, so that asking
them leaves no trace in the history the round reads.
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench.common import Question, machine, token_f1
from bench.squad import write_library
from engine import Engine, EngineConfig
from engine.embedding import Embedder
from engine.reader import SpanReader

CORRECTED_PER_PARAGRAPH = 2
ASKED_PER_PARAGRAPH = 1


def f1(eng: Engine, questions: list[Question]) -> float:
    total = 0.0
    for q in questions:
        ans = eng.ask(q.question)
        total += 0.0 if ans.abstained else token_f1(ans.text, q.answers[0])
    return total / max(1, len(questions))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paragraphs", type=int, default=30, help="corrected paragraphs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-round", action="store_true", help="the memory's columns only")
    args = parser.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="kenning-bench-learning-"))
    answerable, _ = write_library(root / "notes", "test")
    by_paragraph: dict[str, list[Question]] = {}
    for q in answerable:
        by_paragraph.setdefault(q.article, []).append(q)
    names = sorted(by_paragraph)
    random.Random(args.seed).shuffle(names)
    half = min(args.paragraphs, len(names) // 2)
    touched = [by_paragraph[n] for n in names[:half]]
    corrected = [q for qs in touched for q in qs[:CORRECTED_PER_PARAGRAPH]]
    cut = CORRECTED_PER_PARAGRAPH + ASKED_PER_PARAGRAPH
    asked = [q for qs in touched for q in qs[CORRECTED_PER_PARAGRAPH:cut]]
    never = [q for qs in touched for q in qs[cut:]]
    elsewhere = [q for n in names[half : 2 * half] for q in by_paragraph[n]]
    groups = {
        "corrected questions": corrected,
        "asked before, same documents": asked,
        "never asked, same documents": never,
        "elsewhere": elsewhere,
    }

    def measure(eng: Engine) -> dict[str, float]:
        return {key: f1(eng, qs) for key, qs in groups.items()}

    embedder = Embedder(None, threads=2)
    reader = SpanReader.load()
    base = EngineConfig(
        torch_threads=2, adapter_auto_after=0, adapter_idle_seconds=0, use_generator_recall=False
    )
    with Engine(root / "data", base, embedder=embedder, reader=reader) as eng:
        eng.add_folder(root / "notes")
        assert eng.wait_until_idle(3600)
    shutil.copytree(root / "data", root / "fresh")
    with Engine(root / "fresh", base, embedder=embedder, reader=reader) as eng:
        assert eng.wait_until_idle(3600)
        never_before = f1(eng, never)
    recording = replace(base, reader_learning=not args.no_round)
    with Engine(root / "data", recording, embedder=embedder, reader=reader) as eng:
        assert eng.wait_until_idle(3600)
        before = {key: never_before if qs is never else f1(eng, qs) for key, qs in groups.items()}
        t = time.perf_counter()
        for q in corrected:
            eng.record_correction(q.question, q.answers[0])
        recorded = time.perf_counter() - t
        assert eng.wait_until_idle(3600)
        learned = time.perf_counter() - t
        version = eng.reader_version
        after = None if args.no_round else measure(eng)
    after_alone = None
    if not args.no_round:
        alone = replace(base, use_correction_memory=False)
        with Engine(root / "data", alone, embedder=embedder) as eng:
            assert eng.wait_until_idle(3600)
            assert eng.reader_version == version
            after_alone = measure(eng)
    # The memory without the reader's learning: what the learned reader adds on top;
    # and without the reader's check on the memory's matches: what the check adds.
    memory_only = replace(base, reader_learning=False)
    with Engine(root / "data", memory_only, embedder=embedder, reader=reader) as eng:
        assert eng.wait_until_idle(3600)
        assert eng.reader_version == 0
        after_memory = measure(eng)
    unchecked = replace(memory_only, memory_min_agreement=0.0)
    with Engine(root / "data", unchecked, embedder=embedder, reader=reader) as eng:
        assert eng.wait_until_idle(3600)
        after_unchecked = measure(eng)

    def cell(figures: dict[str, float] | None, key: str) -> str:
        return "-" if figures is None else f"{figures[key]:.3f}"  # "-": not run (--no-round)

    print(f"Machine: {machine()}; 2 torch threads.")
    print(
        f"{half} corrected paragraphs ({len(corrected)} corrections, {len(asked)} questions "
        f"asked before them, {len(never)} never asked), {len(elsewhere)} questions elsewhere; "
        f"corrections recorded in {recorded:.1f} s, reader learned (version {version}) "
        f"{learned:.0f} s after the first.\n"
    )
    print(
        "| questions | F1 before | after: memory and reader (default) | memory alone "
        "(shipped reader) | memory alone, no reader check | reader alone (no memory) |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for key in before:
        print(
            f"| {key} | {before[key]:.3f} | {cell(after, key)} | {after_memory[key]:.3f} | "
            f"{after_unchecked[key]:.3f} | {cell(after_alone, key)} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
