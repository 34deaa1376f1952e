"""Whole-document summaries against human ones: ``python -m bench.bench_summaries``.

CNN/DailyMail news stories with the highlights their editors wrote
(``bench/data/summaries``: 21 stories of the public validation split, provenance in
its README), nothing the project wrote. Each story is a notes file indexed by the
real engine; the summary has as many sentences as the story's highlights, and
ROUGE-1/2/Lsum F1 (Google's ``rouge-score``, stemmed) is taken against them. The
stories are split in two by id: the redundancy weight is chosen on the
calibration half, and every row is reported on the test half. Baselines: the
first sentences (Lead, the well-known strong baseline for news) and seeded random
sentences. Then the time to summarise a ~50-page document.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import machine
from engine import Engine, EngineConfig
from engine.reader import summary as summaries

DATA = Path(__file__).resolve().parent / "data" / "summaries" / "pairs.jsonl"
WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)


def rouge(picked: list[str], reference: str) -> tuple[float, float, float]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeLsum"], use_stemmer=True)
    s = scorer.score(reference, "\n".join(picked))
    return s["rouge1"].fmeasure, s["rouge2"].fmeasure, s["rougeLsum"].fmeasure


def mean_rouge(rows: list[tuple[float, float, float]]) -> tuple[float, float, float]:
    return tuple(statistics.mean(r[i] for r in rows) for i in range(3))  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    pairs = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines()]
    half = {
        p["id"]: "calibration"
        if int(hashlib.sha1(p["id"].encode()).hexdigest(), 16) % 2
        else "test"
        for p in pairs
    }
    root = Path(tempfile.mkdtemp(prefix="kenning-bench-summaries-"))
    notes = root / "notes"
    notes.mkdir()
    for p in pairs:
        (notes / f"{p['id'][:12]}.md").write_text(p["document"], encoding="utf-8")
    with Engine(root / "data", EngineConfig(torch_threads=2)) as eng:
        eng.add_folder(notes)
        if not eng.wait_until_idle(timeout=3600):
            raise SystemExit("indexing did not finish")
        embedder = eng.models.embedder
        scores: dict[str, dict[str, list[tuple[float, float, float]]]] = {}
        for p in pairs:
            path = notes / f"{p['id'][:12]}.md"
            sentences = summaries.document_sentences(
                eng.library.chunks_in_order(eng.library.scope(path))
            )
            count = len([s for s in p["summary"].split("\n") if s.strip()])
            rows = scores.setdefault(half[p["id"]], {})
            for weight in WEIGHTS:
                got = summaries.summarize(embedder, sentences, count=count, redundancy=weight)
                rows.setdefault(f"centrality, redundancy {weight:g}", []).append(
                    rouge([s.text for s in got.sentences], p["summary"])
                )
            rows.setdefault("Lead (first sentences)", []).append(
                rouge([s.text for s in sentences[:count]], p["summary"])
            )
            rng = random.Random(p["id"])
            picked = sorted(rng.sample(range(len(sentences)), min(count, len(sentences))))
            rows.setdefault("random sentences (seeded)", []).append(
                rouge([sentences[i].text for i in picked], p["summary"])
            )
        best = max(
            WEIGHTS,
            key=lambda w: mean_rouge(scores["calibration"][f"centrality, redundancy {w:g}"])[1],
        )
        print(f"Machine: {machine()}; {len(pairs)} CNN/DailyMail stories")
        print(
            f"calibration {sum(v == 'calibration' for v in half.values())}, "
            f"test {sum(v == 'test' for v in half.values())}; redundancy chosen on "
            f"calibration (ROUGE-2): {best:g} (shipped: {summaries.REDUNDANCY:g})\n"
        )
        print("| method (test half) | ROUGE-1 | ROUGE-2 | ROUGE-Lsum |")
        print("| --- | --- | --- | --- |")
        for name, rows in scores["test"].items():
            r1, r2, rl = mean_rouge(rows)
            print(f"| {name} | {r1:.3f} | {r2:.3f} | {rl:.3f} |")

        long_doc = notes / "long.md"
        body = "\n\n".join(p["document"] for p in pairs)
        long_doc.write_text(body + "\n\n" + body, encoding="utf-8")
        eng.wait_until_idle(timeout=3600)
        words = len((body + body).split())
        started = time.perf_counter()
        got = eng.summarize(long_doc, sentences=10)
        seconds = time.perf_counter() - started
        print(
            f"\nA {words:,}-word document (~{words // 500} pages of 500 words), "
            f"{got.considered} sentences: summarised in {seconds:.1f} s "
            f"(embedding {got.timings['embed']:.1f} s, ranking {got.timings['rank']:.2f} s)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
