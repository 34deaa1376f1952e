"""Pending changes of a watched folder, coalesced per path, and the change sets made of them.

Memory stays bounded: one entry per touched path however many events it got,
and past :data:`MAX_PENDING_PATHS` a folder's changes collapse to one "rescan"
marker, so a ``git checkout`` of 100,000 files costs no more than 10,000.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

# Past this many pending paths a folder's changes collapse to one full rescan.
MAX_PENDING_PATHS = 10_000
# A file still open for writing (no close seen yet) is indexed only after this
# long without events: a download or a slow copy must not be indexed by halves.
WRITE_SETTLE_SECONDS = 1.0
# A closed file written again and again (a log) is still indexed this often.
MAX_COALESCE_SECONDS = 2.0
# inotify reports close-after-write; other backends do not, and there the
# size re-check after reading is what catches a file still being written.
CLOSE_EVENTS = sys.platform.startswith("linux")


@dataclass(frozen=True)
class Move:
    """A rename seen by the watcher, both ends inside one watched folder."""

    src: Path
    dst: Path
    is_dir: bool


@dataclass(frozen=True)
class ChangeSet:
    """What changed in one folder during one quiet period.

    ``moves`` are replayed in order; then each of ``paths`` (files or
    directories) is made to match the disk. ``rescan`` replaces both with a
    full sync (too many changes, or ``.kenningignore`` changed).
    """

    folder: Path
    moves: tuple[Move, ...] = ()
    paths: tuple[Path, ...] = ()
    rescan: bool = False


@dataclass
class _Touch:
    first: float  # monotonic time of the first event since the last hand-over
    last: float  # ... and of the latest one
    writing: bool  # written to and not closed since: the writer may not be done


@dataclass
class PendingChanges:
    """Pending changes of one folder, coalesced per path; bounded by MAX_PENDING_PATHS.

    Not thread-safe by itself: :class:`~engine.library.watching.watcher.FolderWatcher`
    guards it with its lock.
    """

    touched: dict[Path, _Touch] = field(default_factory=dict)
    moves: list[tuple[float, Move]] = field(default_factory=list)
    rescan: bool = False
    last: float = 0.0

    def empty(self) -> bool:
        return not (self.touched or self.moves or self.rescan)

    def touch(self, path: Path, now: float, *, writing: bool) -> None:
        self.last = now
        if self.rescan:
            return
        t = self.touched.get(path)
        if t is None:
            self.touched[path] = _Touch(now, now, writing)
        else:
            t.last, t.writing = now, writing
        self._bound()

    def move(self, move: Move, now: float) -> None:
        self.last = now
        if self.rescan:
            return
        for _, m in self.moves:
            # A directory move is followed by one event per file inside it; the
            # directory's own move already re-points them all.
            if m.is_dir and is_under(move.src, m.src) and is_under(move.dst, m.dst):
                return
        moved = self.touched.pop(move.src, None)
        self.moves.append((now, move))
        self.touch(move.src, now, writing=False)
        self.touch(move.dst, now, writing=moved.writing if moved else False)

    def mark_rescan(self, now: float) -> None:
        self.last = now
        self.rescan = True
        self.touched.clear()
        self.moves.clear()

    def take(self, folder: Path, now: float, debounce: float) -> ChangeSet | None:
        """Hand over what has been quiet for ``debounce`` seconds; keep the rest."""
        if self.rescan:
            if now - self.last < debounce:
                return None
            self.rescan = False
            return ChangeSet(folder, rescan=True)
        n = 0
        while n < len(self.moves) and now - self.moves[n][0] >= debounce:
            n += 1
        moves = tuple(m for _, m in self.moves[:n])
        del self.moves[:n]
        ready = [p for p, t in self.touched.items() if _ready(t, now, debounce)]
        for p in ready:
            del self.touched[p]
        if not moves and not ready:
            return None
        return ChangeSet(folder, moves, tuple(sorted(ready)))

    def next_due(self, debounce: float) -> float | None:
        """Monotonic time at which something here may become ready, or None if empty."""
        if self.empty():
            return None
        if self.rescan or self.moves:
            return self.last + debounce
        return min(t.last + debounce for t in self.touched.values())

    def _bound(self) -> None:
        if len(self.touched) + len(self.moves) > MAX_PENDING_PATHS:
            log.info("more than %d pending changes: rescanning instead", MAX_PENDING_PATHS)
            self.mark_rescan(self.last)


def _ready(t: _Touch, now: float, debounce: float) -> bool:
    quiet = now - t.last
    if t.writing and CLOSE_EVENTS:
        return quiet >= WRITE_SETTLE_SECONDS
    return quiet >= debounce or now - t.first >= MAX_COALESCE_SECONDS


def is_under(path: Path, parent: Path) -> bool:
    """True if ``path`` is ``parent`` or lies beneath it."""
    return path == parent or path.is_relative_to(parent)
