"""Search latency p50/p95, query embedding included, at 10k and 100k chunks.

Embedding 100k chunks on 2 CPU cores would take most of an hour, so the large
stores are filled through the store and index layers directly: chunk texts are
made of 3-6 random sentences of the QA fixture's articles (a realistic BM25
vocabulary), and each vector is the real embedding of a fixture chunk plus
Gaussian noise (renormalised). Queries are the fixture's questions, embedded
for real on every call, through ``Engine.search`` (hybrid, default settings).

    python -m bench.bench_search [--sizes 10000 100000] [--queries 200]
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
    args = parser.parse_args()
    embedder = Embedder()
    print(f"Machine: {machine()}")
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
                engine.search("warm up the caches", limit=10)
                total, embed = [], []
                for q in questions:
                    t0 = time.perf_counter()
                    engine.search(q, limit=10)
                    total.append((time.perf_counter() - t0) * 1000)
                    t0 = time.perf_counter()
                    embedder.embed_query(q)
                    embed.append((time.perf_counter() - t0) * 1000)
                bm25 = []
                for q in questions:
                    t0 = time.perf_counter()
                    engine.store.bm25_search(q, 50)
                    bm25.append((time.perf_counter() - t0) * 1000)
                rows.append((size, total, embed, bm25, build))
    print("\n| chunks | search p50 | search p95 | of which query embedding p50 | BM25 p50 |")
    print("|---|---|---|---|---|")
    for size, total, embed, bm25, _ in rows:
        print(
            f"| {size:,} | {percentile(total, 0.5):.1f} ms | {percentile(total, 0.95):.1f} ms |"
            f" {percentile(embed, 0.5):.1f} ms | {percentile(bm25, 0.5):.1f} ms |"
        )
    for size, *_, build in rows:
        print(f"\n(filling {size:,} chunks through the store and index layers took {build:.0f} s)")


if __name__ == "__main__":
    main()
