"""The folder watcher: one watchdog observer, a recorder, a debouncer thread.

:class:`_EventRecorder` runs on watchdog's dispatcher thread and only records
what changed. :class:`FolderWatcher` owns the observer (one recursive watch per
folder) and a debouncer thread that hands each quiet batch to the engine as a
:class:`~engine.library.watching.changes.ChangeSet`; the same thread checks every folder
once a second, so one that vanished (deleted, unmounted) or came back is
re-watched and rescanned.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from watchdog import events as ev
from watchdog.events import FileSystemEvent, FileSystemEventHandler

from engine.library.scanning import IGNORE_FILE, IgnoreRules
from engine.library.watching.changes import CLOSE_EVENTS, ChangeSet, Move, PendingChanges, is_under

if TYPE_CHECKING:
    from watchdog.observers.api import BaseObserver, ObservedWatch

log = logging.getLogger(__name__)

# How often the debouncer checks that every watched folder is still there.
POLL_SECONDS = 1.0
# Time allowed for an event to reach the recorder: waiting for idle waits at
# least this long, so a change made just before is not overlooked. On Linux
# watchdog holds a rename's first half for 0.5 s to pair it with its second;
# unpaired (moved out, or into a directory too new to be watched yet) it only
# then becomes a delete.
EVENT_GRACE_SECONDS = 0.6 if CLOSE_EVENTS else 0.1


@dataclass
class _Watched:
    """One watched folder: its rules, its watchdog watch and its pending changes."""

    path: Path
    rules: IgnoreRules
    identity: tuple[int, int] | None = None  # (st_dev, st_ino) when last watched
    watch: ObservedWatch | None = None
    changes: PendingChanges = field(default_factory=PendingChanges)


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


class FolderWatcher:
    """Watch folders recursively and turn quiet periods into :class:`ChangeSet` s.

    Args:
        debounce: Seconds a path must be quiet before its change is handed over.
        on_changes: Called (on the debouncer thread) with each change set.
        on_reappeared: Called with a folder that came back after going missing,
            or was replaced by another directory; it needs a full sync.
        on_pending: Called with +1 when a folder gets pending changes and -1 when
            they are all handed over, so the engine counts them as queued work.
        on_error: Called with (folder, reason) when a folder cannot be watched.
        ignore_patterns: Extra gitignore-style patterns for every folder.
        exclude: Directories whose events are never recorded (the engine's data
            dir: indexing its own database would loop forever).

    Lifecycle: :meth:`start`, then :meth:`watch`/:meth:`unwatch`, then :meth:`stop`,
    which joins every thread it started.
    """

    def __init__(
        self,
        *,
        debounce: float,
        on_changes: Callable[[ChangeSet], None],
        on_reappeared: Callable[[Path], None],
        on_pending: Callable[[int], None],
        on_error: Callable[[Path, str], None],
        ignore_patterns: Iterable[str] = (),
        exclude: Iterable[Path] = (),
    ) -> None:
        self.debounce = debounce
        self._on_changes = on_changes
        self._on_reappeared = on_reappeared
        self._on_pending = on_pending
        self._on_error = on_error
        self._patterns = tuple(ignore_patterns)
        self._exclude = tuple(exclude)
        self._folders: dict[Path, _Watched] = {}
        self._cond = threading.Condition()  # guards _folders' pending changes
        self._watch_lock = threading.Lock()  # serializes schedule/unschedule
        self._stopping = False
        self._observer: BaseObserver | None = None
        self._thread: threading.Thread | None = None
        self._recorder = _EventRecorder(self)

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Start the observer and the debouncer thread."""
        from watchdog.observers import Observer

        observer = Observer()
        observer.name = "kenning-observer"
        observer.daemon = True
        observer.start()
        self._observer = observer
        self._thread = threading.Thread(target=self._run, name="kenning-debouncer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching, join every thread, and drop changes not yet handed over."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join()
        observer = self._observer
        if observer is not None:
            observer.stop()
            observer.join()
        with self._cond:
            dirty = sum(not w.changes.empty() for w in self._folders.values())
            self._folders.clear()
        for _ in range(dirty):
            self._on_pending(-1)

    # -- folders ---------------------------------------------------------------------------
    def watch(self, folder: Path) -> None:
        """Watch ``folder`` recursively (no-op if already watched)."""
        with self._watch_lock:
            with self._cond:
                if folder in self._folders or self._stopping:
                    return
                watched = _Watched(folder, IgnoreRules(folder, self._patterns))
                self._folders[folder] = watched
            self._schedule_locked(watched)

    def unwatch(self, folder: Path) -> None:
        """Stop watching ``folder`` and forget its pending changes."""
        with self._watch_lock:
            with self._cond:
                watched = self._folders.pop(folder, None)
                dirty = watched is not None and not watched.changes.empty()
            if watched is not None:
                self._unschedule_locked(watched)
        if dirty:
            self._on_pending(-1)

    @property
    def folders(self) -> list[Path]:
        with self._cond:
            return list(self._folders)

    def rules(self, folder: Path) -> IgnoreRules:
        """The ignore rules the watcher applies to ``folder`` (shared with the worker)."""
        with self._cond:
            watched = self._folders.get(folder)
        return watched.rules if watched else IgnoreRules(folder, self._patterns)

    def requeue(self, folder: Path, path: Path) -> None:
        """Look at ``path`` again later: it changed while it was being read."""
        self._record(folder, lambda c, now: c.touch(path, now, writing=True))

    # -- recording (watchdog's thread) -------------------------------------------------------
    def _record(self, folder: Path, change: Callable[[PendingChanges, float], None]) -> None:
        with self._cond:
            watched = self._folders.get(folder)
            if watched is None or self._stopping:
                return
            was_empty = watched.changes.empty()
            change(watched.changes, time.monotonic())
            if was_empty and not watched.changes.empty():
                # Under the lock, so this +1 always precedes the -1 of the hand-over
                # that empties the folder again (the engine never calls back in).
                self._on_pending(+1)
            self._cond.notify_all()

    def _excluded(self, path: Path) -> bool:
        return any(is_under(path, e) for e in self._exclude)

    def mark_lost(self, folder: Path) -> None:
        """Re-watch and rescan ``folder`` as soon as it is (again) a directory.

        For a folder deleted under its watch (whose successor may even get the
        same inode number) and for changes dropped because the folder was away.
        """
        with self._cond:
            watched = self._folders.get(folder)
            if watched is not None:
                watched.identity = None
            self._cond.notify_all()

    # -- debouncer thread --------------------------------------------------------------------
    def _run(self) -> None:
        next_poll = time.monotonic()
        while True:
            ready: list[tuple[ChangeSet, bool]] = []
            with self._cond:
                if self._stopping:
                    return
                now = time.monotonic()
                for w in self._folders.values():
                    if w.changes.empty():
                        continue
                    changes = w.changes.take(w.path, now, self.debounce)
                    if changes is not None:
                        ready.append((changes, w.changes.empty()))
                due = [next_poll]
                for w in self._folders.values():
                    t = w.changes.next_due(self.debounce)
                    if t is not None:
                        due.append(t)
                if not ready:
                    self._cond.wait(max(0.0, min(due) - now) + 0.001)
            for changes, now_clean in ready:
                self._on_changes(changes)
                if now_clean:
                    self._on_pending(-1)
            if time.monotonic() >= next_poll:
                self._poll_folders()
                next_poll = time.monotonic() + POLL_SECONDS

    def _poll_folders(self) -> None:
        """Re-watch folders that came back or were replaced; unwatch vanished ones."""
        for folder in self.folders:
            with self._watch_lock:  # no watch() or unwatch() half done meanwhile
                with self._cond:
                    watched = self._folders.get(folder)
                if watched is None:
                    continue
                ident = _identity(folder)
                if ident == watched.identity:
                    continue
                log.info("folder %s %s", folder, "is missing" if ident is None else "is back")
                self._unschedule_locked(watched)
                watched.identity = None
                if ident is None:
                    continue
                watched.rules.reload()
                self._schedule_locked(watched)
            self._on_reappeared(folder)

    # -- watchdog ----------------------------------------------------------------------------
    def _schedule_locked(self, watched: _Watched) -> None:
        """Start watchdog's watch of a folder; the caller holds ``_watch_lock``."""
        observer = self._observer
        if observer is None:
            raise RuntimeError("FolderWatcher.start() was not called")
        # Only what changes content: opens and reads (our own indexing) must not
        # come back as events, or every read would trigger another read.
        wanted: list[type[FileSystemEvent]] = [
            ev.FileCreatedEvent,
            ev.DirCreatedEvent,
            ev.FileModifiedEvent,
            ev.FileClosedEvent,
            ev.FileDeletedEvent,
            ev.DirDeletedEvent,
            ev.FileMovedEvent,
            ev.DirMovedEvent,
        ]
        ident = _identity(watched.path)
        if ident is None:
            return  # missing: the poll re-watches it when it comes back
        try:
            watched.watch = observer.schedule(
                self._recorder, str(watched.path), recursive=True, event_filter=wanted
            )
        except OSError as exc:
            self._on_error(watched.path, f"cannot watch: {exc.strerror or exc}")
            return
        watched.identity = ident

    def _unschedule_locked(self, watched: _Watched) -> None:
        watch, watched.watch = watched.watch, None
        if watch is None or self._observer is None:
            return
        with contextlib.suppress(KeyError, OSError):  # gone with its folder already
            self._observer.unschedule(watch)


class _EventRecorder(FileSystemEventHandler):
    """watchdog's event handler: classify each event and record it, nothing more."""

    def __init__(self, watcher: FolderWatcher) -> None:
        self._w = watcher

    def dispatch(self, event: FileSystemEvent) -> None:
        try:
            self._dispatch(event)
        except Exception:  # never let one odd event kill watchdog's thread
            log.exception("cannot record %r", event)

    def _dispatch(self, event: FileSystemEvent) -> None:
        kind = event.event_type
        is_dir = event.is_directory
        src = Path(os.fsdecode(event.src_path))
        folder = self._folder_of(src)
        if folder is None or self._w._excluded(src):
            return
        watched_rules = self._w.rules(folder)
        if kind == "moved":
            dst = Path(os.fsdecode(event.dest_path))
            self._moved(folder, watched_rules, src, dst, is_dir)
            return
        if src == folder / IGNORE_FILE:
            watched_rules.reload()
            self._w._record(folder, lambda c, now: c.mark_rescan(now))
            return
        if src == folder:
            if kind == "deleted":
                self._w.mark_lost(folder)
            return
        if watched_rules.ignores(src, is_dir=is_dir):
            return
        if kind == "deleted":
            self._w._record(folder, lambda c, now: c.touch(src, now, writing=False))
        elif kind == "modified" and not is_dir:  # written to: maybe not finished
            self._w._record(folder, lambda c, now: c.touch(src, now, writing=True))
        elif kind in ("created", "closed"):  # also a file moved in from elsewhere: complete
            self._w._record(folder, lambda c, now: c.touch(src, now, writing=False))

    def _moved(self, folder: Path, rules: IgnoreRules, src: Path, dst: Path, is_dir: bool) -> None:
        if folder / IGNORE_FILE in (src, dst):
            rules.reload()
            self._w._record(folder, lambda c, now: c.mark_rescan(now))
            return
        src_gone = self._w._excluded(src) or rules.ignores(src, is_dir=is_dir)
        dst_gone = not is_under(dst, folder) or self._w._excluded(dst)
        dst_gone = dst_gone or rules.ignores(dst, is_dir=is_dir)
        if src_gone and dst_gone:
            return
        if src_gone:  # atomic save: temp file renamed over the real one
            self._w._record(folder, lambda c, now: c.touch(dst, now, writing=False))
        elif dst_gone:  # renamed to a temp or ignored name: gone from view
            self._w._record(folder, lambda c, now: c.touch(src, now, writing=False))
        else:
            move = Move(src, dst, is_dir)
            self._w._record(folder, lambda c, now: c.move(move, now))

    def _folder_of(self, path: Path) -> Path | None:
        best: Path | None = None
        for folder in self._w.folders:
            if is_under(path, folder) and (best is None or len(folder.parts) > len(best.parts)):
                best = folder
        return best
