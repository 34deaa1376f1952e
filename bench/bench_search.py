"""Search latency p50/p95, query embedding included, at 10k and 100k chunks.

Embedding 100k chunks on 2 CPU cores would take most of an hour, so the large
stores are filled through the store and index layers directly: chunk texts are
made of 3-6 random sentences of the QA fixture's articles (a realistic BM25
vocabulary), and each vector is the real embedding of a fixture chunk plus
Gaussian noise (renormalised). Queries are the fixture's questions, embedded
for real on every call, through ``Engine.search``: hybrid (default settings) and
dense only, then the parts of a hybrid search one by one (query embedding, USearch,
BM25, reading 50 passage texts), so the ratio and where the time goes are measured
in the same run.

    python -m bench.bench_search [--sizes 10000 100000] [--queries 200] [--precision int8]
"""

from __future__ import annotations

import argparse
import random
import re
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import machine, percentile, write_articles
from engine import Engine
from engine.embedding import Embedder
from engine.library.chunk_store import NewChunk

_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def fill(
    engine: Engine, n_chunks: int, sentences: list[str], vectors: np.ndarray, seed: int
) -> None:
    """Add ``n_chunks`` synthetic chunks, 100 per file, straight into store and index."""
    rng = np.random.default_rng(seed)
    pick = random.Random(seed)
    folder = engine.store.add_folder(Path("/bench/synthetic"))
    index = engine.library.wait_for_index()
    for f in range(0, n_chunks, 100):
        chunks = []
        for j in range(min(100, n_chunks - f)):
            text = " ".join(pick.choice(sentences) for _ in range(pick.randint(3, 6)))
            chunks.append(NewChunk(None, j, 0, len(text), None, (), "", text, f"h{f}-{j}"))
        ids, _ = engine.store.write_file(
            folder_id=folder.id,
            path=Path(f"/bench/synthetic/{f // 100}.md"),
            size=1,
            mtime_ns=1,
            content_hash=str(f),
            kind="markdown",
            chunks=chunks,
        )
        base = vectors[rng.integers(0, len(vectors), len(ids))]
        noisy = base + rng.normal(scale=0.03, size=base.shape).astype(np.float32)
        noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
        index.add(np.asarray(ids, dtype=np.uint64), noisy.astype(np.float32))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--precision", default="int8", choices=["float32", "int8"])
    args = parser.parse_args()
    embedder = Embedder(precision=args.precision)
    print(f"Machine: {machine()}, encoder {embedder.precision}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        questions = [q.question for q in write_articles(root / "articles")][: args.queries]
        with Engine(root / "seed", embedder=embedder) as seed:
            seed.add_folder(root / "articles")
            seed.wait_until_idle(3600)
            records = seed.store.get_chunks(seed.store.chunk_ids())
            texts = [r.text for r in records.values()]
            vectors = embedder.embed([r.embed_prefix + r.text for r in records.values()])
        sentences = [s for t in texts for s in _SENTENCE.split(t) if len(s) > 20]
        for size in args.sizes:
            with Engine(root / f"data{size}", embedder=embedder) as engine:
                t0 = time.perf_counter()
                fill(engine, size, sentences, vectors, seed=size)
                build = time.perf_counter() - t0
                index = engine.library.wait_for_index()
                engine.search("warm up the caches", limit=10)
                took: dict[str, list[float]] = {
                    k: [] for k in ("hybrid", "dense", "embed", "vectors", "bm25", "texts")
                }
                for mode in ("hybrid", "dense", "hybrid", "dense"):  # warm, then measure
                    took[mode].clear()
                    for q in questions:
                        t0 = time.perf_counter()
                        engine.search(q, limit=10, mode=mode)
                        took[mode].append((time.perf_counter() - t0) * 1000)
                for q in questions:  # the parts of a hybrid search, one by one
                    t0 = time.perf_counter()
                    vector = embedder.embed_query(q)
                    t1 = time.perf_counter()
                    keys, _ = index.search(vector, 50)
                    t2 = time.perf_counter()
                    hits = engine.store.bm25_search(q, 50)
                    t3 = time.perf_counter()
                    engine.store.get_chunks([*(int(k) for k in keys), *(i for i, _ in hits)][:50])
                    t4 = time.perf_counter()
                    for name, a, b in (
                        ("embed", t0, t1), ("vectors", t1, t2), ("bm25", t2, t3), ("texts", t3, t4)
                    ):  # fmt: skip
                        took[name].append((b - a) * 1000)
                rows.append((size, took, build))
    print(
        "\n| chunks | hybrid p50 / p95 | dense p50 / p95 | hybrid / dense | query embedding |"
        " USearch | BM25 | texts of 50 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for size, took, _ in rows:
        p50 = {k: percentile(v, 0.5) for k, v in took.items()}
        print(
            f"| {size:,} | {p50['hybrid']:.1f} / {percentile(took['hybrid'], 0.95):.1f} ms |"
            f" {p50['dense']:.1f} / {percentile(took['dense'], 0.95):.1f} ms |"
            f" {p50['hybrid'] / p50['dense']:.2f}x | {p50['embed']:.1f} ms |"
            f" {p50['vectors']:.1f} ms | {p50['bm25']:.1f} ms | {p50['texts']:.1f} ms |"
        )
    for size, _, build in rows:
        print(f"\n(filling {size:,} chunks through the store and index layers took {build:.0f} s)")


if __name__ == "__main__":
    main()
