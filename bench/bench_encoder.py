"""The encoder in float32 and int8, side by side in one process, through the real engine.

``python -m bench.bench_encoder [--precisions float32 int8]``

For each precision a fresh library of the SQuAD v1.1 train subset's notes files
(``bench/squad.py``: third-party questions; the calibration split's library, then
the test split's) is indexed end to end (scan, parse, chunk, embed, SQLite + FTS5,
USearch), and its questions searched dense and hybrid: hit@1 / hit@5 of the
paragraph holding the answer. The choice between the two is made on calibration;
test is reported. Also: embedding alone (passages a second over the library's own
chunks, sorted batches of 16 as the indexer sends them) and query-embedding p50.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.bench_backends import quality
from bench.common import machine, percentile
from bench.squad import write_library
from engine import Engine, EngineConfig
from engine.embedding import Embedder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precisions", nargs="+", default=["float32", "int8"])
    parser.add_argument("--splits", nargs="+", default=["calibration", "test"])
    args = parser.parse_args()
    print(f"Machine: {machine()}\n")
    rows = []
    with tempfile.TemporaryDirectory(prefix="kenning-encoder-") as tmp:
        root = Path(tmp)
        embedders = {
            p: Embedder(None, precision=p, cache_root=root / "cache") for p in args.precisions
        }
        for split in args.splits:
            folder = root / f"notes-{split}"
            answerable, _ = write_library(folder, split)
            for precision, embedder in embedders.items():
                config = EngineConfig(encoder_precision=precision)
                started = time.perf_counter()
                with Engine(root / f"data-{split}-{precision}", config, embedder=embedder) as eng:
                    eng.add_folder(folder)
                    assert eng.wait_until_idle(3600)
                    seconds = time.perf_counter() - started
                    store = eng.store
                    records = store.get_chunks(store.chunk_ids()).values()
                    texts = [r.embed_prefix + r.text for r in records]
                    q = quality(eng, answerable)
                t0 = time.perf_counter()
                embedder.embed(texts, kind="passage")
                embed_rate = len(texts) / (time.perf_counter() - t0)
                took = []
                for question in answerable[:200]:
                    t0 = time.perf_counter()
                    embedder.embed_query(question.question)
                    took.append((time.perf_counter() - t0) * 1000)
                rows.append(
                    (split, embedder.precision, len(texts), len(texts) / seconds, embed_rate,
                     percentile(took, 0.5), q)
                )  # fmt: skip
                print(rows[-1], flush=True)
    print(
        "\n| split | encoder | passages | indexing end to end, passages/s | embedding alone |"
        " query embedding p50 | dense hit@1 / @5 | hybrid hit@1 / @5 |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for split, precision, n, rate, embed_rate, query_ms, q in rows:
        dense, hybrid = q["dense"], q["hybrid"]
        print(
            f"| {split} | {precision} | {n:,} | {rate:.1f} | {embed_rate:.1f} | {query_ms:.1f} ms"
            f" | {dense[0]:.3f} / {dense[1]:.3f} | {hybrid[0]:.3f} / {hybrid[1]:.3f} |"
        )


if __name__ == "__main__":
    main()
