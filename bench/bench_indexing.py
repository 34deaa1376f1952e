"""Indexing throughput against the floor, and chunks re-embedded by a one-paragraph edit.

Throughput: Kenning indexes the QA fixture's articles (parse, chunk, SQLite + FTS5,
embed, USearch add, save) from a fresh data dir. The floor is the work no indexer
can skip: sentence-transformers ``encode`` of the very same chunk texts plus USearch
``add``, measured in the same run with the same loaded model. Reported: chunks/s of
each and their ratio (goal >= 0.85).

Incremental: a 100-chunk document has one paragraph changed; reported is how many
chunks were embedded again (goal <= 3), over several trials.

    python -m bench.bench_indexing
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import machine, write_articles
from engine import Engine, EngineConfig
from engine.embedding import Embedder
from engine.library.vector_index import USearchIndex


def throughput(embedder: Embedder, root: Path, repeats: int) -> list[tuple[float, float]]:
    write_articles(root / "articles")
    results = []
    for r in range(repeats):
        data = root / f"data{r}"
        with Engine(data, EngineConfig(), embedder=embedder) as engine:
            t0 = time.perf_counter()
            engine.add_folder(root / "articles")
            engine.wait_until_idle(3600)
            kenning_s = time.perf_counter() - t0
            records = engine.store.get_chunks(engine.store.chunk_ids())
        texts = [rec.embed_prefix + rec.text for rec in records.values()]
        t0 = time.perf_counter()
        vectors = embedder.embed(texts, batch_size=EngineConfig().embed_batch_size)
        index = USearchIndex(embedder.dim)
        index.add(np.arange(len(texts), dtype=np.uint64), vectors)
        floor_s = time.perf_counter() - t0
        results.append((len(texts) / kenning_s, len(texts) / floor_s))
        print(
            f"  run {r + 1}: {len(texts)} chunks, Kenning {kenning_s:.1f} s, floor {floor_s:.1f} s"
        )
        shutil.rmtree(data)
    return results


def incremental(embedder: Embedder, root: Path, trials: int) -> list[int]:
    rng = random.Random(0)
    words = (root / "articles").glob("*.md")
    vocabulary = " ".join(p.read_text() for p in sorted(words)).split()
    paragraphs = [
        " ".join(rng.choice(vocabulary) for _ in range(rng.randint(60, 150))) for _ in range(100)
    ]
    folder = root / "incremental"
    folder.mkdir()
    doc = folder / "doc.md"
    doc.write_text("# Long document\n\n" + "\n\n".join(paragraphs))
    embedded = []
    with Engine(root / "data-inc", embedder=embedder) as engine:
        engine.add_folder(folder)
        engine.wait_until_idle(3600)
        print(f"  document: {engine.status().chunks} chunks")
        for _ in range(trials):
            i = rng.randrange(len(paragraphs))
            paragraphs[i] = " ".join(rng.choice(vocabulary) for _ in range(rng.randint(60, 150)))
            before = engine.totals.chunks_embedded
            doc.write_text("# Long document\n\n" + "\n\n".join(paragraphs))
            engine.wait_until_idle(3600)  # the watcher picks the edit up
            embedded.append(engine.totals.chunks_embedded - before)
    return embedded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    embedder = Embedder()
    print(f"Machine: {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        runs = throughput(embedder, root, args.repeats)
        k = float(np.median([a for a, _ in runs]))
        f = float(np.median([b for _, b in runs]))
        edits = incremental(embedder, root, args.trials)
    print("\n| measure | value |\n|---|---|")
    print(f"| Kenning indexing (median of {len(runs)}) | {k:.1f} chunks/s |")
    print(f"| floor: encode + USearch add, same chunks | {f:.1f} chunks/s |")
    print(f"| ratio (goal >= 0.85) | {k / f:.2f} |")
    print(
        f"| chunks re-embedded per one-paragraph edit ({len(edits)} trials) |"
        f" max {max(edits)}, mean {np.mean(edits):.2f} |"
    )


if __name__ == "__main__":
    main()
