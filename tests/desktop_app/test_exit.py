"""The window process ends within 5 s of being asked to, with its stores closed.

Real processes: the window on the offscreen platform (or on a real Xvfb display
that is then killed), a real engine in a fresh data dir, real signals. Each is
asked to quit right after "kenning: ready", while the models are still loading:
the case that kept the process alive for 7 s and, with a lost display, longer.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

EXIT_LIMIT = 5.0


def _launch(data_dir: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "desktop_app", "--data-dir", str(data_dir), "--quit-after", "3600"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_ready(proc: subprocess.Popen[str], timeout: float = 240.0) -> None:
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == "kenning: ready":
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(timeout):
        proc.kill()
        pytest.fail(f"the window never became ready: {proc.stderr.read() if proc.stderr else ''}")


def _assert_exits_closed(proc: subprocess.Popen[str], data_dir: Path, asked: float) -> int:
    try:
        code = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("still running 30 s after being asked to quit")
    took = time.monotonic() - asked
    assert took <= EXIT_LIMIT, f"took {took:.1f} s to exit"
    # SQLite removes the -wal file when the last connection closes: the stores were closed.
    left_open = sorted(p.name for p in data_dir.glob("*.sqlite3-wal"))
    assert left_open == [], left_open
    assert (data_dir / "kenning.sqlite3").is_file()
    return code


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_closes_the_stores_and_exits_quickly(tmp_path: Path, signum: int) -> None:
    data_dir = tmp_path / "data"
    proc = _launch(data_dir, dict(os.environ, QT_QPA_PLATFORM="offscreen"))
    _wait_ready(proc)
    asked = time.monotonic()
    proc.send_signal(signum)
    _assert_exits_closed(proc, data_dir, asked)


def _xcb_usable() -> bool:
    from desktop_app.platform_check import missing_libraries

    return shutil.which("Xvfb") is not None and not missing_libraries()


@pytest.mark.skipif(not _xcb_usable(), reason="needs Xvfb and Qt's X11 libraries")
def test_lost_display_closes_the_stores_and_exits(tmp_path: Path) -> None:
    display = f":{200 + os.getpid() % 500}"
    xvfb = subprocess.Popen(
        ["Xvfb", display, "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)
        data_dir = tmp_path / "data"
        env = dict(os.environ, QT_QPA_PLATFORM="xcb", DISPLAY=display)
        proc = _launch(data_dir, env)
        _wait_ready(proc)
        asked = time.monotonic()
        xvfb.kill()
        code = _assert_exits_closed(proc, data_dir, asked)
        assert code != 0  # Qt's own code for a lost display
    finally:
        xvfb.kill()
        xvfb.wait()
