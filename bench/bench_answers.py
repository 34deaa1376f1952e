"""Answer quality and latency on the QA fixture: ``python -m bench.bench_answers --limit 40``.

Each article is one Markdown file. The abstention threshold is calibrated on the
first 12 articles (retrieval only); answers are scored on a seeded sample of the
rest, with the naive chat prompt (free generation) measured on the same hits.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from bench.common import Question, machine, normalize_answer, percentile, token_f1, write_articles
from engine import Engine, EngineConfig
from engine.answering import Strategy, answer_from_hits, best_similarity
from engine.generation import Generator

CALIBRATION_ARTICLES = 12


def calibrate(sims: list[tuple[bool, float]], *, max_false: float = 0.10) -> float:
    """The highest cosine threshold that abstains on under ``max_false`` of answerable ones.

    >>> calibrate([(False, 0.9), (False, 0.5), (True, 0.4), (True, 0.7)], max_false=0.5)
    0.5
    """
    answerable = sorted(s for impossible, s in sims if not impossible)
    best = 0.0
    for threshold in sorted({s for _, s in sims}):
        false = sum(s < threshold for s in answerable) / max(1, len(answerable))
        if false < max_false:
            best = threshold
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=40, help="test questions to answer")
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "kb-answers")
    parser.add_argument("--model", default=None, help="GGUF file or HF folder (default bundled)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    docs = args.data_dir / "docs"
    questions = write_articles(docs)
    titles = list(dict.fromkeys(q.article for q in questions))
    calib = [q for q in questions if q.article in titles[:CALIBRATION_ARTICLES]]
    test = [q for q in questions if q.article not in titles[:CALIBRATION_ARTICLES]]
    sample = random.Random(args.seed).sample(test, min(args.limit, len(test)))

    cache_root = args.data_dir / "models"
    cold_dir = Path(tempfile.mkdtemp(prefix="kb-cold-"))
    t = time.perf_counter()
    Generator(args.model, cache_root=cold_dir, threads=2)
    cold = time.perf_counter() - t
    Generator(args.model, cache_root=cache_root, threads=2)  # make sure the cache exists
    t = time.perf_counter()
    gen = Generator(args.model, cache_root=cache_root, threads=2)
    warm = time.perf_counter() - t

    with Engine(args.data_dir / "engine", EngineConfig(torch_threads=2), generator=gen) as eng:
        eng.add_folder(docs)
        eng.wait_until_idle(900)
        cfg = eng.config
        sims = [(q.impossible, best_similarity(eng.search(q.question, 3))) for q in calib]
        threshold = calibrate(sims)
        rows = [evaluate(eng, gen, q, replace(cfg, abstain_similarity=threshold)) for q in sample]

    print_report(rows, threshold, cold, warm, gen)


def evaluate(eng: Engine, gen: Generator, q: Question, cfg: EngineConfig) -> dict[str, float]:
    t = time.perf_counter()
    hits = eng.search(q.question, cfg.answer_passages)
    retrieve = time.perf_counter() - t
    ours = answer_from_hits(
        gen,
        q.question,
        hits,
        budget=cfg.answer_context_tokens,
        max_new_tokens=cfg.max_new_tokens,
        min_similarity=cfg.abstain_similarity,
        sentences=cfg.answer_sentences,
    )
    naive = answer_from_hits(
        gen,
        q.question,
        hits,
        budget=cfg.answer_context_tokens,
        max_new_tokens=cfg.max_new_tokens,
        min_similarity=-1.0,
        strategy=Strategy.GENERATIVE,
    )
    golds = q.answers or ("",)
    cited = [ours.sources[i].text for i in ours.cited]
    return {
        "impossible": float(q.impossible),
        "abstained": float(ours.abstained),
        "f1": 0.0 if ours.abstained else max(token_f1(ours.text, g) for g in golds),
        "em": float(
            not ours.abstained
            and any(normalize_answer(ours.text) == normalize_answer(g) for g in golds)
        ),
        "evidence": float(any(g in c for g in q.answers for c in cited)),
        "naive_f1": max(token_f1(naive.text, g) for g in golds),
        "retrieve": retrieve,
        "ttft": ours.timings.get("first_token", 0.0),
        "naive_ttft": naive.timings.get("first_token", 0.0),
        "naive_tps": naive.tokens / max(1e-9, naive.timings.get("generate", 0.0)),
    }


def print_report(
    rows: list[dict[str, float]], threshold: float, cold: float, warm: float, gen: Generator
) -> None:
    ans = [r for r in rows if not r["impossible"]]
    imp = [r for r in rows if r["impossible"]]
    answered = [r for r in ans if not r["abstained"]]

    def mean(key: str, rs: list[dict[str, float]]) -> float:
        return sum(r[key] for r in rs) / max(1, len(rs))

    ttft = [r["ttft"] for r in rows if not r["abstained"]]
    print(f"Machine: {machine()}; model {gen.model_id} on {gen.device}")
    print(f"Questions: {len(ans)} answerable, {len(imp)} unanswerable (test articles)\n")
    print("| metric | value |\n| --- | --- |")
    print(f"| token F1, extractive PMI (answerable) | {mean('f1', ans):.3f} |")
    print(f"| exact match, extractive PMI | {mean('em', ans):.3f} |")
    print(f"| token F1, naive chat prompt (same hits) | {mean('naive_f1', ans):.3f} |")
    print(f"| cited passage holds the gold answer (answered) | {mean('evidence', answered):.3f} |")
    print(f"| abstained on unanswerable | {mean('abstained', imp):.3f} |")
    print(f"| abstained on answerable (false) | {mean('abstained', ans):.3f} |")
    print(f"| abstention threshold (cosine, calibrated) | {threshold:.3f} |")
    print(f"| retrieval, median s | {percentile([r['retrieve'] for r in rows], 0.5):.2f} |")
    print(f"| extractive answer after retrieval, median s | {percentile(ttft, 0.5):.2f} |")
    print(f"| extractive answer after retrieval, p90 s | {percentile(ttft, 0.9):.2f} |")
    naive_ttft = percentile([r["naive_ttft"] for r in rows], 0.5)
    print(f"| naive: first token after retrieval, median s | {naive_ttft:.2f} |")
    print(f"| naive: tokens/s, median | {percentile([r['naive_tps'] for r in rows], 0.5):.1f} |")
    print(f"| cold start, dequantizing the GGUF, s | {cold:.1f} |")
    print(f"| warm start, from the cache, s | {warm:.2f} |")


if __name__ == "__main__":
    main()
