"""Progress of long work: what, how much, ETA; shared by the worker and readers."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class ProgressSnapshot:
    """What the engine is doing right now, for a status bar."""

    task: str  # e.g. "Indexing ~/Notes"
    done: int
    total: int  # 0 when unknown
    current: str  # the file being read, or ""
    elapsed: float
    eta_seconds: float | None  # None until there is a rate to extrapolate from


class Progress:
    """Thread-safe progress counter; the worker writes, anyone may snapshot."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._task = ""
        self._done = 0
        self._total = 0
        self._current = ""
        self._started = time.monotonic()
        self._base = 0

    def begin(self, task: str, total: int = 0, *, done: int = 0) -> None:
        """Start a task; ``done`` is work finished before (a job resumed in slices),
        counted in the bar but not in the rate the ETA is drawn from."""
        with self._lock:
            self._task, self._done, self._total, self._current = task, done, total, ""
            self._base = done
            self._started = time.monotonic()

    def set_total(self, total: int) -> None:
        with self._lock:
            self._total = total

    def advance(self, n: int = 1, current: str = "") -> None:
        with self._lock:
            self._done += n
            self._current = current

    def set_current(self, current: str) -> None:
        with self._lock:
            self._current = current

    def end(self) -> None:
        with self._lock:
            self._task, self._done, self._total, self._current = "", 0, 0, ""

    def snapshot(self) -> ProgressSnapshot | None:
        with self._lock:
            if not self._task:
                return None
            elapsed = time.monotonic() - self._started
            eta = None
            if self._total and self._done > self._base:
                rate = (self._done - self._base) / elapsed if elapsed > 0 else 0.0
                eta = max(0, self._total - self._done) / rate if rate > 0 else None
            return ProgressSnapshot(
                self._task, self._done, self._total, self._current, elapsed, eta
            )
