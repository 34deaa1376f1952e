"""Both backends side by side: retrieval quality, index-only throughput, query latency.

``python -m bench.bench_backends [--sizes 10000 100000] [--queries 200]``

Quality: the SQuAD v1.1 train subset's test split (``bench/squad.py``: questions
nobody here wrote, every paragraph of the subset indexed as notes files of five)
through the real engine on each backend: hit@1 and hit@5 of the paragraph holding
the answer, for dense, BM25 (SQLite FTS5 locally, Milvus' own BM25 function there)
and hybrid search.

Scale: stores of N synthetic passages filled as ``bench_search`` fills them (texts
of 3-6 random sentences of those paragraphs, each vector a real passage embedding
plus noise), 100 per file, through the store and the backend's ``add`` (100 at a
time, ``bench_search.fill``): index-only
throughput (passages a second, embeddings free), then ``Engine.search`` p50/p95 for
real questions, query embedding included. Milvus is a Milvus Lite server in its own
process on this machine (``milvus-lite server``), reached over gRPC as a remote one
would be; a cluster's figures depend on its hardware and are not these
(``--milvus-uri http://host:19530``, credentials in ``MILVUS_TOKEN``, measures one).
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from bench.bench_search import fill
from bench.common import machine, percentile
from bench.squad import write_library
from engine import Engine, EngineConfig
from engine.embedding import Embedder

_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def quality(engine: Engine, questions) -> dict[str, tuple[float, float]]:  # type: ignore[no-untyped-def]
    out = {}
    for mode in ("dense", "bm25", "hybrid"):
        first = top5 = 0
        for q in questions:
            hits = engine.search(q.question, limit=5, mode=mode)
            right = [
                h.path == q.path and h.start < q.paragraph_end and q.paragraph_start < h.end
                for h in hits
            ]
            first += bool(right and right[0])
            top5 += any(right)
        out[mode] = (first / len(questions), top5 / len(questions))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--backends", nargs="+", default=["local", "milvus"])
    parser.add_argument(
        "--milvus-uri", help="a Milvus server or cluster to measure (default: start Milvus Lite)"
    )
    args = parser.parse_args()
    from tests.engine.milvus_server import MilvusServer

    embedder = Embedder(None, threads=2)
    print(f"Machine: {machine()}\n")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server = MilvusServer(root / "milvus")
        if args.milvus_uri is None:
            server.start()
        uri = args.milvus_uri or server.uri
        try:
            answerable, _ = write_library(root / "notes", "test")

            def config(backend: str) -> EngineConfig:
                if backend == "local":
                    return EngineConfig(torch_threads=2)
                return EngineConfig(
                    torch_threads=2,
                    backend="milvus",
                    milvus_uri=uri,
                    milvus_token=os.environ.get("MILVUS_TOKEN"),  # for a cluster
                    milvus_library="b" + uuid.uuid4().hex[:12],
                )

            print(f"Quality: {len(answerable)} answerable test-split questions\n")
            print("| backend | dense hit@1 / @5 | BM25 hit@1 / @5 | hybrid hit@1 / @5 | index s |")
            print("| --- | --- | --- | --- | --- |")
            sentences: list[str] = []
            vectors = np.empty((0, embedder.dim), np.float32)
            for backend in args.backends:
                with Engine(root / f"q-{backend}", config(backend), embedder=embedder) as eng:
                    t0 = time.perf_counter()
                    eng.add_folder(root / "notes")
                    assert eng.wait_until_idle(3600)
                    seconds = time.perf_counter() - t0
                    q = quality(eng, answerable)
                    if not len(vectors):
                        records = list(eng.store.get_chunks(eng.store.chunk_ids()).values())
                        vectors = embedder.embed([r.text for r in records])
                        sentences = [
                            s for r in records for s in _SENTENCE.split(r.text) if len(s) > 20
                        ]
                cells = " | ".join(f"{a:.3f} / {b:.3f}" for a, b in q.values())
                print(f"| {backend} | {cells} | {seconds:.1f} |", flush=True)
            questions = [q.question for q in answerable][: args.queries]
            print("\n| backend | passages | index-only passages/s | search p50 | search p95 |")
            print("| --- | --- | --- | --- | --- |")
            for size in args.sizes:
                for backend in args.backends:
                    with Engine(
                        root / f"s-{backend}-{size}", config(backend), embedder=embedder
                    ) as eng:
                        t0 = time.perf_counter()
                        fill(eng, size, sentences, vectors, seed=size)
                        if backend == "milvus":  # sealed, as the engine's saves do
                            eng.library.wait_for_index().save(root)
                        built = time.perf_counter() - t0
                        eng.search("warm up", limit=10)
                        took = []
                        for text in questions:
                            t0 = time.perf_counter()
                            eng.search(text, limit=10)
                            took.append((time.perf_counter() - t0) * 1000)
                    print(
                        f"| {backend} | {size:,} | {size / built:,.0f} | "
                        f"{percentile(took, 0.5):.1f} ms | {percentile(took, 0.95):.1f} ms |",
                        flush=True,
                    )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
