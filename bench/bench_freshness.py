"""Live sync freshness, and start-up reconciliation of unchanged files.

Freshness: a watched folder gets a write, an edit, a rename or a delete; the
clock starts when that call returns and stops when ``Engine.search`` (hybrid,
polled every 10 ms) reflects it: the new text found in that file, the passage
under its new path only, or the file no longer returned. p50/p95 over the
trials of each operation; a trial not reflected within 5 s counts as missed.
Renames must embed no chunk at all (counted from the engine's stats).

Background chunks: the index already holds N other chunks. They are synthetic:
stored rows of random words with random unit vectors, written straight to the
store and the vector index (embedding 50k real chunks would take most of an
hour on a laptop CPU, and freshness does not depend on what the vectors mean).
Their files exist on disk with the recorded size and mtime, so the start-up
sync skips them as it would real ones.

Reconciliation: an engine restarts over 10k unchanged small files (seeded the
same way); the time from ``Engine(...)`` to idle covers opening the index and
the size/mtime comparison of every file, none of which is read.

    python -m bench.bench_freshness [--trials 20] [--background-chunks 1000 50000]
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from bench.common import machine, percentile
from engine import Engine
from engine.embedding import Embedder
from engine.library.chunk_store import ChunkStore, NewChunk
from engine.library.library import INDEX_FILE, STORE_FILE
from engine.library.vector_index import USearchIndex

OPS = ("create", "edit", "rename", "delete")
POLL = 0.01  # seconds between searches while waiting for a change to show
MISS_AFTER = 5.0  # a change not reflected by then is counted as missed
VOCABULARY = (
    "river stone cloud maple tiger ember frost lemon harbor meadow copper violet lantern"
    " orchard pebble thunder saddle willow canyon beacon quartz falcon garnet island"
).split()


def seed(
    data_dir: Path, folder: Path, files: int, chunks_per_file: int, dim: int, model_id: str
) -> None:
    """Store ``files`` real small files with synthetic chunks and random unit vectors."""
    rng = np.random.default_rng(0)
    words = random.Random(0)
    folder.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    store = ChunkStore(data_dir / STORE_FILE)
    store.set_meta("embedding_model", model_id)
    record = store.add_folder(folder.resolve())
    keys: list[int] = []
    for i in range(files):
        path = folder.resolve() / f"bg{i:05d}.txt"
        path.write_text(f"background file {i}\n")
        st = path.stat()
        chunks = [
            NewChunk(None, n, 0, 0, None, (), "", " ".join(words.choices(VOCABULARY, k=40)), "")
            for n in range(chunks_per_file)
        ]
        inserted, _ = store.write_file(
            folder_id=record.id,
            path=path,
            size=st.st_size,
            mtime_ns=st.st_mtime_ns,
            content_hash=f"synthetic{i}",
            kind="text",
            chunks=chunks,
        )
        keys += inserted
    store.mark_folder_synced(record.id)
    store.close()
    vectors = rng.standard_normal((len(keys), dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = USearchIndex(dim)
    for i in range(0, len(keys), 10_000):  # in parts: bounded memory in USearch's add
        index.add(np.asarray(keys[i : i + 10_000], dtype=np.uint64), vectors[i : i + 10_000])
    index.save(data_dir / INDEX_FILE)


def time_until(condition: Callable[[], bool]) -> float | None:
    """Seconds until ``condition`` holds, polling every POLL; None if MISS_AFTER passed."""
    t0 = time.perf_counter()
    while True:
        if condition():
            return time.perf_counter() - t0
        if time.perf_counter() - t0 > MISS_AFTER:
            return None
        time.sleep(POLL)


def shows(engine: Engine, token: str, path: Path) -> bool:
    return any(h.path == path and token in h.text for h in engine.search(token, limit=5))


def paths_for(engine: Engine, token: str) -> set[Path]:
    """Files of the passages found that hold ``token`` (dense search adds unrelated ones)."""
    return {h.path for h in engine.search(token, limit=5) if token in h.text}


def only_at(engine: Engine, token: str, path: Path) -> bool:
    return paths_for(engine, token) == {path}


def gone_from(engine: Engine, token: str, path: Path) -> bool:
    return path not in paths_for(engine, token)


def freshness(
    embedder: Embedder, root: Path, background: int, trials: int
) -> tuple[dict[str, list[float | None]], int]:
    """Latencies per operation and the chunks embedded by all the renames."""
    data, live = root / f"data{background}", root / f"live{background}"
    t0 = time.perf_counter()
    seed(data, root / f"bg{background}", background // 10, 10, embedder.dim, embedder.model_id)
    print(f"  seeded {background} background chunks in {time.perf_counter() - t0:.0f} s")
    live.mkdir()
    token = {op: [f"zq{op[:3]}{t}x{background}" for t in range(trials)] for op in OPS}
    for t in range(trials):  # targets of edits, renames and deletes, indexed up front
        for op in ("edit", "rename", "delete"):
            (live / f"{op}{t}.txt").write_text(f"Note {token[op][t]} about the harbor.\n")
    results: dict[str, list[float | None]] = {op: [] for op in OPS}
    with Engine(data, embedder=embedder) as engine:
        engine.add_folder(live)
        engine.wait_until_idle(3600)
        status = engine.status()
        print(f"  index holds {status.chunks} chunks, {status.vectors} vectors")
        renames_embedded = 0
        for op in OPS:
            for t in range(trials):
                tok, before = token[op][t], engine.live_stats.chunks_embedded
                if op == "create":
                    path = live / f"create{t}.txt"
                    path.write_text(f"Fresh note {tok} about the meadow.\n")
                    took = time_until(partial(shows, engine, tok, path))
                elif op == "edit":
                    path = live / f"edit{t}.txt"
                    tok = f"zqedited{t}x{background}"
                    path.write_text(f"Note {tok} about the harbor, revised.\n")
                    took = time_until(partial(shows, engine, tok, path))
                elif op == "rename":
                    old, path = live / f"rename{t}.txt", live / f"renamed{t}.txt"
                    os.rename(old, path)
                    took = time_until(partial(only_at, engine, tok, path))
                else:
                    path = live / f"delete{t}.txt"
                    path.unlink()
                    took = time_until(partial(gone_from, engine, tok, path))
                results[op].append(took)
                engine.wait_until_idle(60)
                if op == "rename":
                    renames_embedded += engine.live_stats.chunks_embedded - before
    return results, renames_embedded


def reconciliation(embedder: Embedder, root: Path, files: int) -> tuple[float, int, int]:
    """Seconds to restart over ``files`` unchanged files; files skipped; chunks embedded."""
    data = root / "reconcile"
    seed(data, root / "unchanged", files, 1, embedder.dim, embedder.model_id)
    t0 = time.perf_counter()
    with Engine(data, embedder=embedder) as engine:
        # Timed to the end of the start-up sync, not to wait_until_idle, which
        # also waits out the watcher's grace period for late file events.
        while engine.last_stats.files_seen < files and time.perf_counter() - t0 < 3600:
            time.sleep(POLL)
        took = time.perf_counter() - t0
        engine.wait_until_idle(3600)
        stats = engine.last_stats
    return took, stats.files_skipped_unchanged, stats.chunks_embedded


def fmt(value: float) -> str:
    return f"{value:.2f}" if value == value else "n/a"  # NaN when every trial missed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--background-chunks", type=int, nargs="+", default=[1000, 50_000])
    parser.add_argument("--reconcile-files", type=int, default=10_000)
    args = parser.parse_args()
    print(f"Machine: {machine()}")
    embedder = Embedder()
    rows, renames = [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for background in args.background_chunks:
            results, embedded = freshness(embedder, root, background, args.trials)
            renames.append((background, embedded))
            for op, values in results.items():
                done = [v for v in values if v is not None]
                rows.append(
                    f"| {background:,} | {op} | {len(values)} | {fmt(percentile(done, 0.5))}"
                    f" | {fmt(percentile(done, 0.95))} | {fmt(max(done, default=float('nan')))}"
                    f" | {len(values) - len(done)} |"
                )
        took, skipped, embedded = reconciliation(embedder, root, args.reconcile_files)
    print("\n| background chunks | operation | trials | p50 (s) | p95 (s) | max (s) | missed |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    print(
        "\nBackground chunks are synthetic (random words, random unit vectors written"
        " straight to the store and index), not embedded. Goal: p95 <= 1.0 s,"
        " p50 <= 0.5 s, none missed."
    )
    for background, n in renames:
        print(f"Chunks embedded by all renames ({background:,} background): {n} (goal 0)")
    print("\n| start-up reconciliation | value |\n|---|---|")
    print(f"| unchanged files | {args.reconcile_files:,} |")
    print(f"| Engine() to end of start-up sync | {took:.2f} s |")
    print(f"| files skipped unread | {skipped:,} |")
    print(f"| chunks embedded | {embedded} |")


if __name__ == "__main__":
    main()
