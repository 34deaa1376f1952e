"""Kenning against the floor, in one process: the work beyond embedding, and queries.

The floor is what no indexer can skip: look each passage's vector up, add them all
to a USearch index in one call, insert the texts into one SQLite table, save. Kenning
indexes the same files through the real engine (scan, read, hash, parse, chunk with
the tokenizer, SQLite + FTS5, USearch, saves, status), with the same vector lookup
in place of the encoder, so the ratio is what Kenning spends beyond embedding.

The folder is one SQuAD paragraph per note file (``../shared/data`` and
``bench/data/extra_qa``, third-party text), repeated with a numbered title to reach
each size; the lookup gives every passage the real MiniLM embedding of its
paragraph plus a little seeded noise, so USearch sees realistic vectors. Sizes grow
so a per-file cost that grows with the folder shows up. Also measured at the
largest size: re-opening the unchanged folder (a new engine, sync done), queries
dense-only and hybrid against the floor's (real query embedding each time), and
the child process's peak RSS (``wait4``) with the real encoder loaded.

    python -m bench.bench_floor [--sizes 5000 10000 20000] [--queries 200]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import machine, percentile
from bench.squad import EXTRA, load_extra, load_paragraphs

CACHE = Path(tempfile.gettempdir()) / "kenning-bench-floor-vectors-int8.npy"


class LookupEmbedder:
    """The real encoder's tokenizer and query path; passage vectors looked up."""

    def __init__(self, real: Any, table: np.ndarray) -> None:
        self.real, self.table = real, table
        for name in ("tokenizer", "max_tokens", "dim", "model_id", "path"):
            setattr(self, name, getattr(real, name))

    def embed(self, texts: Sequence[str], *, batch_size: int = 16, kind: str | None = None) -> Any:
        return lookup(texts, self.table)

    def embed_query(self, text: str) -> Any:
        return self.real.embed_query(text)

    def count_tokens(self, text: str) -> int:
        return int(self.real.count_tokens(text))


def lookup(texts: Sequence[str], table: np.ndarray) -> np.ndarray:
    """A paragraph's real vector, nudged by seeded noise so no two passages coincide."""
    out = np.empty((len(texts), table.shape[1]), np.float32)
    for i, text in enumerate(texts):
        crc = zlib.crc32(text.encode())
        noise = np.random.default_rng(crc).standard_normal(table.shape[1]).astype(np.float32)
        v = table[crc % len(table)] + 0.02 * noise
        out[i] = v / np.linalg.norm(v)
    return out


def paragraphs() -> list[str]:
    return [p.context for p in load_paragraphs() + load_extra((EXTRA,))]


def vector_table(real: Any, texts: list[str]) -> np.ndarray:
    if CACHE.exists():
        table = np.load(CACHE, allow_pickle=False)
        if table.shape == (len(texts), real.dim):
            return table
    table = real.embed(texts, kind="passage")
    np.save(CACHE, table, allow_pickle=False)
    return table


def write_folder(folder: Path, size: int, texts: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(size):
        body = texts[i % len(texts)]
        (folder / f"note_{i:06d}.md").write_text(f"# Note {i}\n\n{body}\n", encoding="utf-8")


def floor(chunks: list[str], table: np.ndarray, work: Path) -> float:
    """Seconds for the floor: lookup, one USearch add, one SQLite insert, save."""
    from engine.native import preload_onnxruntime

    preload_onnxruntime()  # USearch first would crash the int8 encoder's import
    from usearch.index import Index

    started = time.perf_counter()
    vectors = lookup(chunks, table)
    index = Index(ndim=table.shape[1], metric="cos", dtype="f32", connectivity=16)
    keys = np.arange(1, len(chunks) + 1, dtype=np.uint64)
    index.add(keys, vectors)
    conn = sqlite3.connect(work / "floor.sqlite")
    conn.execute("CREATE TABLE chunks (id INTEGER PRIMARY KEY, text TEXT)")
    conn.executemany("INSERT INTO chunks VALUES (?, ?)", zip(keys.tolist(), chunks, strict=True))
    conn.commit()
    conn.close()
    index.save(str(work / "floor.usearch"))
    return time.perf_counter() - started


def floor_query(index: Any, conn: sqlite3.Connection, real: Any, query: str) -> None:
    vector = real.embed_query(query)
    matches = index.search(vector, 10)
    ids = [int(k) for k in matches.keys]
    marks = ",".join("?" * len(ids))
    conn.execute(f"SELECT id, text FROM chunks WHERE id IN ({marks})", ids).fetchall()


def child(size: int, queries: int, work: Path) -> dict[str, Any]:
    """One size, in this process: Kenning's build, the floor's, re-open, queries."""
    from engine import Engine, EngineConfig
    from engine.embedding import Embedder
    from engine.native import preload_onnxruntime

    preload_onnxruntime()  # USearch first would crash the int8 encoder's import
    from usearch.index import Index

    real = Embedder(None, threads=2, precision="int8")
    texts = paragraphs()
    table = vector_table(real, texts)
    fake = LookupEmbedder(real, table)
    folder, data = work / "notes", work / "data"
    write_folder(folder, size, texts)
    config = EngineConfig()
    started = time.perf_counter()
    with Engine(data, config, embedder=fake) as engine:  # type: ignore[arg-type]
        engine.add_folder(folder)
        assert engine.wait_until_idle(7200)
        built = time.perf_counter() - started
        store = engine.store
        chunks = [r.embed_prefix + r.text for r in store.get_chunks(store.chunk_ids()).values()]
    floor_s = floor(chunks, table, work)
    started = time.perf_counter()
    with Engine(data, config, embedder=fake) as engine:  # type: ignore[arg-type]
        engine.add_folder(folder)  # already known: a sync of unchanged files
        assert engine.wait_until_idle(600)
        reopened = time.perf_counter() - started
        asked = [q[1] for p in load_paragraphs() for q in p.qas][:queries]
        timings: dict[str, list[float]] = {"dense": [], "hybrid": []}
        for mode in ("dense", "hybrid", "dense", "hybrid"):  # warm, then measure
            took = timings[mode]
            took.clear()
            for q in asked:
                t0 = time.perf_counter()
                engine.search(q, limit=10, mode=mode)
                took.append((time.perf_counter() - t0) * 1000)
    index = Index.restore(str(work / "floor.usearch"), view=False)
    conn = sqlite3.connect(work / "floor.sqlite")
    floor_took = []
    for q in asked * 2:
        t0 = time.perf_counter()
        floor_query(index, conn, real, q)
        floor_took.append((time.perf_counter() - t0) * 1000)
    floor_took = floor_took[len(asked) :]
    embed_took = []
    for q in asked:
        t0 = time.perf_counter()
        real.embed_query(q)
        embed_took.append((time.perf_counter() - t0) * 1000)
    return {
        "files": size,
        "chunks": len(chunks),
        "kenning_s": built,
        "floor_s": floor_s,
        "reopen_s": reopened,
        "query_embed_p50": percentile(embed_took, 0.5),
        **{
            f"{mode}_p{q}": percentile(took, q / 100)
            for mode, took in (*timings.items(), ("floor", floor_took))
            for q in (50, 95)
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 10000, 20000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.queries, args.work)))
        return
    print(f"Machine: {machine()}\n")
    rows = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory(prefix="kenning-floor-") as tmp:
            out = Path(tmp) / "out.json"
            with open(out, "w") as handle:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "bench.bench_floor", "--child", str(size),
                     "--queries", str(args.queries), "--work", tmp],
                    stdout=handle,
                )  # fmt: skip
                _, code, usage = os.wait4(proc.pid, 0)
            if code:
                raise SystemExit(f"the run at {size} files failed ({code})")
            row = json.loads(out.read_text().strip().splitlines()[-1])
            row["rss_mb"] = usage.ru_maxrss / 1024
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    print("| files | passages | Kenning passages/s | floor passages/s | cost ratio | ms a file |"
          " re-open unchanged | peak RSS |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['files']:,} | {r['chunks']:,} | {r['chunks'] / r['kenning_s']:,.0f} | "
            f"{r['chunks'] / r['floor_s']:,.0f} | {r['kenning_s'] / r['floor_s']:.1f}x | "
            f"{1000 * r['kenning_s'] / r['files']:.2f} | {r['reopen_s']:.2f} s | "
            f"{r['rss_mb']:,.0f} MB |"
        )
    print("\n| passages | query embedding p50 | floor p50 / p95 | dense p50 / p95 |"
          " hybrid p50 / p95 | hybrid / dense |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['chunks']:,} | {r['query_embed_p50']:.1f} ms | "
            f"{r['floor_p50']:.1f} / {r['floor_p95']:.1f} ms | "
            f"{r['dense_p50']:.1f} / {r['dense_p95']:.1f} ms | "
            f"{r['hybrid_p50']:.1f} / {r['hybrid_p95']:.1f} ms | "
            f"{r['hybrid_p50'] / r['dense_p50']:.2f}x |"
        )


if __name__ == "__main__":
    main()
