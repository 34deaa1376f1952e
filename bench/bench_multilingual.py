"""Cross-lingual retrieval, both embedders: ``python -m bench.bench_multilingual``.

Public text nobody here wrote. Parallel fixtures (``bench/data/parallel*``,
provenance in each README): the same sentence in English and German, French,
Spanish or Russian. Each sentence of one language is a note file in a real folder,
indexed by the real engine; its translation is a question that must find it. Both
ways: questions in de/fr/es/ru over English notes, and English questions over notes
in each language. Beside them, English questions over English notes (the SQuAD
train subset's split, as in the reader's benchmark), so a multilingual model is seen
not to cost English quality.

Split: the parallel items, sorted by id, alternate between calibration and test;
SQuAD has its own calibration and test splits. ``--fit`` sweeps the dense share of
hybrid fusion on the calibration halves (the only thing tuned here, giving
``retrieval.DENSE_WEIGHTS``); the default run reports the test halves with the
shipped weights: hit@1, hit@5 and MRR for dense search (the embedder alone) and
hybrid (what a person gets), query latency, embedding throughput and load time.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import Question, machine, percentile
from bench.squad import write_library
from engine import Engine, EngineConfig
from engine.embedding import Embedder
from engine.library.retrieval import Hit, dense_weight_for
from engine.library.retrieval import search as hybrid_search
from engine.models import embedding_model_path
from engine.multilingual import MULTILINGUAL_MODEL

DATA = Path(__file__).resolve().parent / "data"
SETS = ("parallel", "parallel_tatoeba")
OTHERS = ("de", "fr", "es", "ru")
DIRECTIONS = [("en", q) for q in OTHERS] + [(n, "en") for n in OTHERS]  # (notes, questions)
MODELS = (("all-MiniLM-L6-v2", None), ("multilingual-e5-small", MULTILINGUAL_MODEL))
WEIGHTS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)

Search = Callable[[str, str, float | None], list[Hit]]  # (question, mode, dense weight)


def load_items(part: str | None = None) -> list[dict[str, str | None]]:
    """The parallel items; ``part`` "calibration" (even places by id) or "test" (odd)."""
    items: list[dict[str, str | None]] = []
    for name in SETS:
        path = DATA / name / "parallel.jsonl"
        if path.exists():
            items += [json.loads(line) for line in path.read_text("utf-8").splitlines() if line]
    items.sort(key=lambda i: str(i["id"]))
    if part is None:
        return items
    return [i for n, i in enumerate(items) if (n % 2 == 0) == (part == "calibration")]


def _library(engine_dir: Path, folder: Path, embedder: Embedder) -> tuple[Engine, Search]:
    engine = Engine(engine_dir, EngineConfig(), embedder=embedder)
    engine.add_folder(folder)
    assert engine.wait_until_idle(timeout=3600)
    index = engine.library.wait_for_index()

    def search(question: str, mode: str, weight: float | None) -> list[Hit]:
        return hybrid_search(
            question,
            store=engine.library.store,
            index=index,
            embedder=embedder,
            limit=10,
            mode=mode,  # type: ignore[arg-type]
            dense_weight=weight,
        )

    return engine, search


def _ranks(search: Search, asked: list[tuple[str, Callable[[Hit], bool]]], mode: str, w):  # type: ignore[no-untyped-def]
    ranks, seconds = [], []
    for question, right in asked:
        t = time.perf_counter()
        hits = search(question, mode, w)
        seconds.append(time.perf_counter() - t)
        ranks.append(next((n for n, h in enumerate(hits, 1) if right(h)), 0))
    return ranks, seconds


def _row(ranks: list[int], seconds: list[float], prefix: str) -> dict[str, float]:
    return {
        f"{prefix}_hit1": statistics.mean(r == 1 for r in ranks),
        f"{prefix}_hit5": statistics.mean(0 < r <= 5 for r in ranks),
        f"{prefix}_mrr": statistics.mean(1 / r if r else 0.0 for r in ranks),
        f"{prefix}_p50_ms": percentile(seconds, 0.5) * 1000,
    }


def squad_questions(folder: Path, part: str) -> list[tuple[str, Callable[[Hit], bool]]]:
    """English questions; right when a hit holds the gold answer's span."""
    answerable, _ = write_library(folder, part)

    def right(q: Question) -> Callable[[Hit], bool]:
        return lambda h: h.path == q.path and h.start <= q.answer_start and q.answer_end <= h.end

    return [(q.question, right(q)) for q in answerable]


def _named(name: str, hit: Hit) -> bool:
    return hit.path.name == name


def parallel_library(
    folder: Path, items: list[dict[str, str | None]], notes: str, questions: str
) -> list[tuple[str, Callable[[Hit], bool]]]:
    """One note file per ``notes`` sentence; its ``questions`` twin must find it."""
    folder.mkdir(parents=True)
    asked: list[tuple[str, Callable[[Hit], bool]]] = []
    for n, item in enumerate(i for i in items if i[notes] and i[questions]):
        name = f"{n:04d}.txt"
        (folder / name).write_text(f"{item[notes]}\n", encoding="utf-8")
        asked.append((str(item[questions]), functools.partial(_named, name)))
    return asked


def libraries(embedder: Embedder, part: str, root: Path):  # type: ignore[no-untyped-def]
    """(name, engine, search, questions) for SQuAD and each language direction."""
    folder = root / "squad"
    asked = squad_questions(folder, part)
    engine, search = _library(root / "data-squad", folder, embedder)
    yield "en->en (SQuAD)", engine, search, asked
    engine.close()
    items = load_items(part)
    for notes, questions in DIRECTIONS:
        folder = root / f"notes-{notes}-{questions}"
        asked = parallel_library(folder, items, notes, questions)
        engine, search = _library(root / f"data-{notes}-{questions}", folder, embedder)
        yield f"{questions}->{notes}", engine, search, asked
        engine.close()


def fit(root: Path) -> dict[str, dict[str, float]]:
    """hit@1 per dense weight on the calibration halves, and the best weight."""
    out: dict[str, dict[str, float]] = {}
    for label, choice in MODELS:
        embedder = Embedder(embedding_model_path(choice), device="cpu", threads=2)
        squad: dict[float, float] = {}
        cross: dict[float, list[float]] = {w: [] for w in WEIGHTS}
        for name, _engine, search, asked in libraries(embedder, "calibration", root / label):
            for w in WEIGHTS:
                hit1 = statistics.mean(r == 1 for r in _ranks(search, asked, "hybrid", w)[0])
                if name.startswith("en->en"):
                    squad[w] = hit1
                else:
                    cross[w].append(hit1)
        scores = {w: (squad[w] + statistics.mean(cross[w])) / 2 for w in WEIGHTS}
        best = max(WEIGHTS, key=lambda w: (round(scores[w], 6), -abs(w - 0.5)))
        for w in WEIGHTS:
            print(
                f"{label:22s} dense weight {w:.1f}: English hit@1 {squad[w]:.3f}, "
                f"cross-lingual hit@1 {statistics.mean(cross[w]):.3f}, mean {scores[w]:.3f}"
                + ("  <- best" if w == best else ""),
                flush=True,
            )
        out[label] = {"best": best, **{f"{w:.1f}": scores[w] for w in WEIGHTS}}
    return out


def measure(root: Path) -> dict[str, dict[str, dict[str, float]]]:
    """The test halves, with the shipped fusion weights."""
    results: dict[str, dict[str, dict[str, float]]] = {}
    for label, choice in MODELS:
        started = time.perf_counter()
        embedder = Embedder(embedding_model_path(choice), device="cpu", threads=2)
        load = time.perf_counter() - started
        texts = [str(i["en"]) for i in load_items() if i.get("en")]
        t = time.perf_counter()
        embedder.embed(texts, kind="passage")
        per_second = len(texts) / (time.perf_counter() - t)
        weight = dense_weight_for(embedder.model_id)
        results[label] = {
            "model": {"load_seconds": load, "sentences_per_second": per_second, "weight": weight}
        }
        for name, _engine, search, asked in libraries(embedder, "test", root / label):
            row: dict[str, float] = {"questions": len(asked)}
            for mode in ("dense", "hybrid"):
                ranks, seconds = _ranks(search, asked, mode, None)
                row |= _row(ranks, seconds, mode)
            results[label][name] = row
            print(
                f"{label:22s} {name:15s} n={len(asked):3d} dense hit@1 {row['dense_hit1']:.3f} "
                f"hit@5 {row['dense_hit5']:.3f} | hybrid hit@1 {row['hybrid_hit1']:.3f} "
                f"hit@5 {row['hybrid_hit5']:.3f} mrr {row['hybrid_mrr']:.3f} | "
                f"p50 {row['hybrid_p50_ms']:.1f} ms",
                flush=True,
            )
        rows = [v for k, v in results[label].items() if "->" in k and "SQuAD" not in k]
        summary = {
            f"{mode}_{m}": statistics.mean(r[f"{mode}_{m}"] for r in rows)
            for mode in ("dense", "hybrid")
            for m in ("hit1", "hit5", "mrr", "p50_ms")
        }
        results[label]["cross-lingual mean"] = summary
        print(
            f"{label:22s} cross-lingual mean: dense hit@1 {summary['dense_hit1']:.3f} | "
            f"hybrid hit@1 {summary['hybrid_hit1']:.3f} (dense weight {weight}) | "
            f"{per_second:.1f} sentences/s embedded, loaded in {load:.1f} s",
            flush=True,
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", action="store_true", help="sweep the fusion weight (calibration)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    part = "calibration" if args.fit else "test"
    print(f"# Cross-lingual retrieval, {len(load_items(part))} {part} items; {machine()}")
    with tempfile.TemporaryDirectory(prefix="kenning-bench-multilingual-") as tmp:
        results = fit(Path(tmp)) if args.fit else measure(Path(tmp))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
