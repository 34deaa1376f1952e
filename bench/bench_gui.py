"""Desktop window: event-loop stalls under load, and time to a usable window.

Stalls: the real window on a real engine (bundled models, loaded by the engine
as a person's first run would) indexes 1,000 generated Markdown notes while a
question is asked and answered. A 10 ms ``QTimer`` on the GUI thread records
the gap between its ticks; a gap much longer than 10 ms is time the GUI could
not react. Reported: the longest gap, p99, and how many gaps passed 100 ms.

Launch: a fresh process opens the window (``--data-dir`` with a warm store
and model caches, files in the OS cache after a first run) and reports when the
window is shown and painted (usable: it reacts to input) and when the engine
behind it is ready. The median of 3 launches is reported.

    python -m bench.bench_gui [--files 1000] [--launches 3]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QElapsedTimer, QObject, Qt, QTimer

from desktop_app.waiting import pump

TICK_MS = 10
APPOINTMENTS = "appointments.md"  # the one note the bench's question is about
STALL_MS = 100  # the bar: no stall over 100 ms


class StallMeter(QObject):
    """Records the gaps between ticks of a precise ``TICK_MS`` timer on this thread.

    A tick that comes late means the event loop was busy (or blocked) meanwhile;
    ``gaps_ms`` holds every interval, ``longest_ms`` the worst one.
    """

    def __init__(self, interval_ms: int = TICK_MS, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.gaps_ms: list[float] = []
        self._clock = QElapsedTimer()
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self._tick)

    def start(self) -> None:
        self.gaps_ms.clear()
        self._clock.start()
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    @property
    def longest_ms(self) -> float:
        return max(self.gaps_ms, default=0.0)

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile gap (0-100), nearest rank."""
        if not self.gaps_ms:
            return 0.0
        ordered = sorted(self.gaps_ms)
        return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]

    def over(self, threshold_ms: float) -> int:
        return sum(gap > threshold_ms for gap in self.gaps_ms)

    def _tick(self) -> None:
        self.gaps_ms.append(self._clock.nsecsElapsed() / 1e6)
        self._clock.restart()


WORDS = (
    "garden tomato basil sourdough oven recipe meeting budget invoice travel train ticket "
    "project deadline report kettle bicycle repair library book chapter "
    "river mountain weather forecast holiday birthday present music guitar lesson"
).split()


def write_notes(folder: Path, count: int, seed: int = 7) -> None:
    """``count`` Markdown notes of 3-8 paragraphs of made-up sentences."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for n in range(count):
        paragraphs = []
        for _ in range(rng.randint(3, 8)):
            sentences = [
                " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 14))).capitalize() + "."
                for _ in range(rng.randint(2, 5))
            ]
            paragraphs.append(" ".join(sentences))
        body = "\n\n".join(paragraphs)
        (folder / f"note_{n:04d}.md").write_text(f"# Note {n}\n\n{body}\n", encoding="utf-8")


def write_diary(folder: Path) -> None:
    """The one note the bench's question is about, in a folder of its own."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / APPOINTMENTS).write_text(
        "# Appointments\n\nThe dentist appointment is on Tuesday at 3pm with Dr. Molar.\n",
        encoding="utf-8",
    )


def _summary(meter: StallMeter, seconds: float) -> dict[str, Any]:
    return {
        "seconds": seconds,
        "ticks": len(meter.gaps_ms),
        "longest_ms": meter.longest_ms,
        "p99_ms": meter.percentile(99),
        "p50_ms": meter.percentile(50),
        "over_100": meter.over(STALL_MS),
    }


def measure_stalls(files: int, work: Path) -> dict[str, Any]:
    """Stalls in two phases of a first run of the real window on a fresh data dir.

    Start-up: from the window being shown until the engine has loaded both models
    (imports, the embedding model, the answer model dequantized into its cache).
    Work: ``files`` notes indexed while a question is asked and answered.
    """
    from PySide6.QtCore import QSettings
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    from desktop_app.bridge import EngineBridge
    from desktop_app.main_window import MainWindow

    app = QApplication.instance() or QApplication([])
    notes = work / "notes"
    write_notes(notes, files)
    bridge = EngineBridge(work / "data")
    window = MainWindow(bridge, QSettings(str(work / "gui.ini"), QSettings.Format.IniFormat))
    state: dict[str, Any] = {"answer": None, "indexed": False, "warm": None, "files": 0}
    bridge.sig_answer_done.connect(lambda _id, answer, _lines: state.update(answer=answer))
    bridge.sig_models_ready.connect(lambda seconds: state.update(warm=seconds))

    def status(st: Any) -> None:
        big = [f for f in st.folders if f.path.name == "notes"]
        state["files"] = big[0].files if big else 0
        if big and big[0].files >= files and not (st.busy or st.queued):
            state["indexed"] = True

    bridge.sig_status.connect(status)
    deadline = time.monotonic() + 3600
    window.show()  # its first paint is the launch, measured on its own below
    QTest.qWaitForWindowExposed(window)
    startup = StallMeter()
    startup.start()
    started = time.perf_counter()
    while state["warm"] is None and time.monotonic() < deadline:
        pump(20)
    startup.stop()
    startup_seconds = time.perf_counter() - started

    # The question's note is in a small folder indexed first (a big folder is read in
    # directory order, so the note could come last and the answer would not overlap).
    diary = work / "diary"
    write_diary(diary)
    window.add_folder(diary)
    bridge.sig_search_results.connect(
        lambda _q, hits: state.update(found=any(Path(h.path).name == APPOINTMENTS for h in hits))
    )
    while not state.get("found") and time.monotonic() < deadline:
        bridge.search("dentist appointment")
        pump(300)

    meter = StallMeter()
    meter.start()
    started = time.perf_counter()
    window.add_folder(notes)
    while state["files"] < min(100, files // 4) and time.monotonic() < deadline:
        pump(50)  # ask in the middle of indexing
    asked_at = time.perf_counter()
    window.ask("When is the dentist appointment?")
    while state["answer"] is None and time.monotonic() < deadline:
        pump(50)
    answered_at = time.perf_counter()
    files_when_answered = state["files"]
    while not state["indexed"] and time.monotonic() < deadline:
        pump(50)
    elapsed = time.perf_counter() - started
    meter.stop()
    window.close()
    bridge.shutdown()
    app.processEvents()
    answer = state["answer"]
    return {
        "files": files,
        "startup": _summary(startup, startup_seconds),
        "work": _summary(meter, elapsed),
        "answer": answer.text if answer is not None else None,
        "abstained": answer.abstained if answer is not None else None,
        "answer_seconds": answered_at - asked_at,
        "files_when_answered": files_when_answered,
    }


LAUNCH_SCRIPT = """
import sys, time
t0 = time.perf_counter()
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication
from desktop_app.app import APP_NAME
from desktop_app.waiting import pump
app = QApplication(sys.argv[:1])
app.setApplicationName(APP_NAME); app.setOrganizationName(APP_NAME)
from desktop_app.bridge import EngineBridge, load_settings
from desktop_app.main_window import MainWindow
bridge = EngineBridge(sys.argv[1])
models = []
bridge.sig_models_ready.connect(lambda seconds: models.append(time.perf_counter() - t0))
window = MainWindow(bridge)
window.show()
QTest.qWaitForWindowExposed(window)
app.processEvents()
shown = time.perf_counter() - t0
while not bridge.is_ready:
    pump(5)
ready = time.perf_counter() - t0
while not models:
    pump(5)
window.close(); bridge.shutdown()
print(f"{shown:.3f} {ready:.3f} {models[0]:.3f}")
"""


def measure_launch(data_dir: Path, launches: int) -> list[tuple[float, ...]]:
    """(window usable, engine ready, models loaded) seconds from process start."""
    env = dict(os.environ, HOME=str(data_dir.parent / "home"))  # QSettings out of the way
    results = []
    for n in range(launches + 1):  # the first run warms caches and is not counted
        out = subprocess.run(
            [sys.executable, "-c", LAUNCH_SCRIPT, str(data_dir)],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        if n:
            results.append(tuple(float(x) for x in out.stdout.split()[-3:]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--launches", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kenning-bench-gui-") as tmp:
        work = Path(tmp)
        stalls = measure_stalls(args.files, work)
        launches = measure_launch(work / "data", args.launches)
    shown, ready, models = (statistics.median(run[i] for run in launches) for i in range(3))
    up, work_ = stalls["startup"], stalls["work"]
    print("| measure | start-up (first run) | indexing + answering |")
    print("|---|---|---|")
    print(f"| duration | {up['seconds']:.1f} s | {work_['seconds']:.1f} s |")
    print(f"| GUI timer ticks (every {TICK_MS} ms) | {up['ticks']} | {work_['ticks']} |")
    longest = f"{up['longest_ms']:.0f} ms | {work_['longest_ms']:.0f} ms"
    print(f"| longest event-loop stall | {longest} |")
    print(
        f"| p99 / p50 tick gap | {up['p99_ms']:.0f} / {up['p50_ms']:.0f} ms "
        f"| {work_['p99_ms']:.0f} / {work_['p50_ms']:.0f} ms |"
    )
    print(f"| gaps over {STALL_MS} ms | {up['over_100']} | {work_['over_100']} |")
    print()
    print(
        f"Files indexed: {stalls['files']}. Answer (abstained: {stalls['abstained']}): "
        f"{stalls['answer']!r}, {stalls['answer_seconds']:.1f} s after asking, "
        f"with {stalls['files_when_answered']} files indexed so far."
    )
    print()
    print(f"| launch (warm caches, median of {len(launches)}) | seconds |")
    print("|---|---|")
    print(f"| to a usable window | {shown:.2f} |")
    print(f"| to the engine ready (search, folders) | {ready:.2f} |")
    print(f"| to both models loaded (answers) | {models:.2f} |")


if __name__ == "__main__":
    main()
