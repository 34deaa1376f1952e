"""The stall meter of bench/bench_gui.py sees a blocked event loop (machinery, not speed)."""

from __future__ import annotations

import time
from typing import Any

from PySide6.QtCore import QTimer

from bench.bench_gui import StallMeter

BLOCK_S = 0.2


def test_a_blocked_event_loop_shows_up_as_a_long_gap(qtbot: Any) -> None:
    meter = StallMeter()
    meter.start()
    qtbot.waitUntil(lambda: len(meter.gaps_ms) >= 3)
    QTimer.singleShot(0, lambda: time.sleep(BLOCK_S))  # the GUI thread is stuck meanwhile
    ticks = len(meter.gaps_ms)
    qtbot.waitUntil(lambda: len(meter.gaps_ms) >= ticks + 3)
    meter.stop()

    # The gap spanning the block cannot be shorter than the block itself.
    assert meter.longest_ms >= BLOCK_S * 1000
    assert meter.over(100) >= 1
    assert meter.percentile(0) <= meter.percentile(50) <= meter.percentile(100) == meter.longest_ms
