"""A newcomer's first minutes, from an empty home: launch, the sample notes, the first answer.

``make run``'s set-up (pip) is excluded; everything after it is timed as a person
meets it, in a child process whose HOME and XDG dirs are fresh temporary folders
(no data dir, no settings, no model cache), Qt offscreen:

1. ``kenning prepare`` (what ``make run`` does once after set-up): the per-user
   model cache; reported separately, and the run is repeated without it to show
   what a first launch costs when it was skipped.
2. The window: process start to window shown, to engine ready, to models loaded.
3. "Try the sample notes": the click to all of them indexed.
4. The first question, typed as soon as indexing is done: to the answer shown.

    python -m bench.bench_first_run [--skip-prepare]

Goal (issue 13): the first answer at most 10 s after the first launch on 2 idle cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "How long should the loaf bake with steam?"

CHILD = r"""
import json, sys, time
t0 = float(sys.argv[1])
marks = {"python_started": time.time() - t0}
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication
app = QApplication(["kenning", "-platform", "offscreen"])
from desktop_app.bridge import EngineBridge, default_data_dir
from desktop_app.main_window import MainWindow
bridge = EngineBridge(default_data_dir(), None)
window = MainWindow(bridge)
window.show()
marks["window_shown"] = time.time() - t0
state = {"asked": False}

def mark(name):
    marks.setdefault(name, time.time() - t0)

def on_ready():
    mark("engine_ready")
    mark("samples_clicked")
    window.add_sample_notes()

def on_status(status):
    if "samples_clicked" in marks and status.folders and not status.busy and not status.queued \
            and status.progress is None and status.files and not state["asked"]:
        state["asked"] = True
        mark("samples_indexed")
        marks["files"] = status.files
        bridge.ask(sys.argv[2])

def on_done(_ask_id, answer, _sources):
    mark("first_answer")
    marks["answer"] = answer.text
    marks["abstained"] = answer.abstained
    QTimer.singleShot(0, window.close)

bridge.sig_ready.connect(on_ready)
bridge.sig_models_ready.connect(lambda _s: mark("models_loaded"))
bridge.sig_status.connect(on_status)
bridge.sig_answer_done.connect(on_done)
QTimer.singleShot(240_000, window.close)
app.exec()
bridge.shutdown()
print("MARKS " + json.dumps(marks), flush=True)
"""


def fresh_home(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "KENNING_"))}
    for name in ("home", "data", "config", "cache"):
        (root / name).mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(root / "home"),
        XDG_DATA_HOME=str(root / "data"),
        XDG_CONFIG_HOME=str(root / "config"),
        XDG_CACHE_HOME=str(root / "cache"),
        QT_QPA_PLATFORM="offscreen",
        HF_HUB_OFFLINE="1",
        PYTHONPATH=str(ROOT),
    )
    return env


def run(prepare: bool) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="kenning-first-run-") as tmp:
        env = fresh_home(Path(tmp))
        result: dict[str, object] = {"prepared": prepare}
        if prepare:
            started = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "engine.cli", "prepare"],
                env=env, cwd=ROOT, check=True, capture_output=True, timeout=900,
            )  # fmt: skip
            result["prepare_s"] = round(time.perf_counter() - started, 1)
        done = subprocess.run(
            [sys.executable, "-c", CHILD, str(time.time()), QUESTION],
            env=env, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        lines = [line for line in done.stdout.splitlines() if line.startswith("MARKS ")]
        if not lines:
            raise SystemExit(f"the window run failed:\n{done.stderr[-3000:]}")
        marks = json.loads(lines[-1][6:])
        result.update({k: round(v, 2) if isinstance(v, float) else v for k, v in marks.items()})
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-prepare", action="store_true", help="only the unprepared run")
    args = parser.parse_args(argv)
    runs = [] if args.skip_prepare else [run(prepare=True)]
    runs.append(run(prepare=False))
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} CPUs, load {load:.2f}; {time.strftime('%Y-%m-%d')}")
    for r in runs:
        print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
