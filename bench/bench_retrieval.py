"""Retrieval quality on the QA fixture: hit@1 and hit@5 for dense, BM25 and hybrid.

A hit counts when a returned passage of the right article contains the gold
answer's span (the passage that answers the question). Articles are indexed
as whole-article Markdown files, as a person's notes would be.

    python -m bench.bench_retrieval
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.common import machine, write_articles
from engine import Engine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        questions = [q for q in write_articles(root / "articles") if not q.impossible]
        with Engine(root / "data") as engine:
            t0 = time.perf_counter()
            engine.add_folder(root / "articles")
            engine.wait_until_idle(3600)
            status = engine.status()
            print(
                f"Indexed {status.files} articles, {status.chunks} chunks in "
                f"{time.perf_counter() - t0:.1f} s on {machine()}"
            )
            print(f"\n{len(questions)} answerable questions\n")
            print("| retriever | hit@1 | hit@5 | MRR@5 |")
            print("|---|---|---|---|")
            variants = [
                ("dense", "dense", None),
                ("bm25", "bm25", None),
                ("hybrid, reciprocal rank fusion", "hybrid", "rrf"),
                ("hybrid, convex fusion (default)", "hybrid", "convex"),
            ]
            for name, mode, fusion in variants:
                ranks = []
                for q in questions:
                    hits = engine.search(q.question, limit=args.limit, mode=mode, fusion=fusion)
                    rank = next(
                        (
                            i
                            for i, h in enumerate(hits, 1)
                            if h.path == q.path
                            and h.start <= q.answer_start
                            and q.answer_end <= h.end
                        ),
                        None,
                    )
                    ranks.append(rank)
                n = len(ranks)
                hit1 = sum(r == 1 for r in ranks) / n
                hit5 = sum(r is not None and r <= 5 for r in ranks) / n
                mrr = sum(1 / r for r in ranks if r) / n
                print(f"| {name} | {hit1:.3f} | {hit5:.3f} | {mrr:.3f} |")


if __name__ == "__main__":
    main()
