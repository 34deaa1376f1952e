"""Run every benchmark and write their tables to docs/benchmarks.md.

Each benchmark runs in its own process (a clean model and thread pool), one at a
time; run this on an otherwise idle machine.

    python -m bench.run_all [--only retrieval search]
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import time
from pathlib import Path

from bench.common import machine

ROOT = Path(__file__).resolve().parent.parent
BENCHES = {
    "retrieval": ("Retrieval quality", "bench.bench_retrieval"),
    "indexing": ("Indexing throughput and incremental edits", "bench.bench_indexing"),
    "search": ("Search latency", "bench.bench_search"),
    "freshness": ("Live sync freshness and start-up reconciliation", "bench.bench_freshness"),
    "reader": ("Answers on third-party questions (the span reader)", "bench.bench_reader"),
    "reader_learning": ("The reader learning from corrections", "bench.bench_reader_learning"),
    "answers": ("Answers", "bench.bench_answers"),
    "adapter": ("Generator adaptation (LoRA)", "bench.bench_adapter"),
    "corrections": ("Learning from corrections: memory and feedback", "bench.bench_corrections"),
    "gui": ("Desktop window responsiveness and launch", "bench.bench_gui"),
    "package": ("Linux artifact: size and cold start", "bench.bench_package"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHES), default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    names = args.only or list(BENCHES)
    sections: dict[str, str] = {}
    for name in names:
        title, module = BENCHES[name]
        try:
            doc = (importlib.import_module(module).__doc__ or "").strip()
        except ImportError:
            print(f"skipping {name}: {module} is not there", file=sys.stderr)
            continue
        print(f"== {title} ({module})", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        result = subprocess.run(
            [sys.executable, "-m", module], cwd=ROOT, capture_output=True, text=True, check=False
        )
        elapsed = time.perf_counter() - t0
        output = result.stdout.strip() or result.stderr.strip()[-2000:]
        print(output, file=sys.stderr)
        sections[title] = (
            f"## {title}\n\n{doc}\n\nRun on {machine()}: `python -m {module}`"
            f" ({elapsed:.0f} s, exit {result.returncode})\n\n{output}\n"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(merge(args.out, sections), encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)


def merge(path: Path, sections: dict[str, str]) -> str:
    """Replace the sections just run in an existing report, keeping the others."""
    kept: dict[str, str] = {}
    if path.exists():
        for part in path.read_text(encoding="utf-8").split("\n## ")[1:]:
            title = part.split("\n", 1)[0].strip()
            kept[title] = "## " + part.rstrip() + "\n"
    kept.update(sections)
    order = [title for title, _ in BENCHES.values()]
    body = "\n".join(
        kept[t]
        for t in sorted(kept, key=lambda t: (t not in order, order.index(t) if t in order else 0))
    )
    return (
        "# Benchmarks\n\nWritten by `make bench` (`python -m bench.run_all`); each section"
        " names the machine and date it ran on. Speed figures are ratios against a"
        " baseline measured in the same run where one exists.\n\n" + body
    )


if __name__ == "__main__":
    main()
