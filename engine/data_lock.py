"""One writer per data dir: a lock file held while an engine is open.

Two processes on one data dir (a window and a ``kenning watch``) both ran and
both reported success, but each kept its own in-memory vector index, so the first
one's went stale (303 passages without vectors, 20 new files never found). The
second one is now refused with who holds the library.

The lock is an OS advisory lock (``filelock``: ``flock`` on POSIX, ``msvcrt`` on
Windows): the kernel releases it when its process ends, however it ends, so a
crash or ``kill -9`` never leaves a stale lock behind. Beside it, a small JSON
file names the holder (pid, program, since when) for the message.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

from filelock import FileLock, Timeout

from engine.errors import DataDirInUseError

LOCK_FILE = "kenning.lock"
HOLDER_FILE = "kenning.lock.json"


class DataDirLock:
    """Held for an engine's lifetime; :meth:`acquire` refuses a second holder at once."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        # Not thread-local (filelock's default): an engine may be closed from another
        # thread than the one that opened it (the window restarts engines so).
        self._lock = FileLock(str(data_dir / LOCK_FILE), timeout=0, thread_local=False)

    def acquire(self) -> None:
        """Take the lock or raise :class:`DataDirInUseError` naming its holder."""
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise DataDirInUseError(self.data_dir, self.holder()) from None
        holder = {"pid": os.getpid(), "program": _program(), "since": time.time()}
        with contextlib.suppress(OSError):
            (self.data_dir / HOLDER_FILE).write_text(json.dumps(holder), encoding="utf-8")

    def release(self) -> None:
        if self._lock.is_locked:
            with contextlib.suppress(OSError):
                (self.data_dir / HOLDER_FILE).unlink()
            self._lock.release(force=True)

    def holder(self) -> str:
        """Who holds the lock, in words ("the window, pid 4121, since 10:42")."""
        try:
            info = json.loads((self.data_dir / HOLDER_FILE).read_text(encoding="utf-8"))
            since = time.strftime("%H:%M", time.localtime(float(info["since"])))
            return f"{info['program']}, pid {int(info['pid'])}, since {since}"
        except (OSError, ValueError, KeyError, TypeError):
            return "another Kenning process"


def _program() -> str:
    if "desktop_app" in sys.modules:
        return "the Kenning window"
    args = [a for a in sys.argv[1:] if not a.startswith("-")]
    return f"kenning {args[0]}" if args else "a Kenning process"
