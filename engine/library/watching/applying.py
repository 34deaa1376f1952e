"""Applying a change set on the engine worker: replay moves, then trust the disk.

Moves are replayed on the store first (no re-embedding); then every touched
path is reconciled with the disk as it is *now*, so a lost or reordered event
can never leave the store wrong for a path it names, and an editor's temp-file
dance ends as one plain update whose unchanged chunks keep their vectors.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

from engine.library.chunk_store import FolderRecord
from engine.library.indexing import Indexer, IndexStats
from engine.library.scanning import IgnoreRules, ScannedFile, scan_folder
from engine.library.watching.changes import ChangeSet
from engine.progress import Progress
from engine.writer import Cancelled


def apply_change_set(
    indexer: Indexer,
    folder: FolderRecord,
    changes: ChangeSet,
    rules: IgnoreRules,
    progress: Progress,
    cancel: threading.Event,
    stats: IndexStats,
) -> list[Path]:
    """Bring the store in line with the disk for everything a change set names.

    Returns:
        Paths that changed while they were being read (still being written):
        the caller hands them back to the watcher to look at again.
    """
    if changes.rescan:
        rules.reload()
        stats.add(indexer.sync_folder(folder, progress, cancel))
        return []
    progress.begin(f"Updating {folder.path}", total=len(changes.paths))
    for move in changes.moves:
        indexer.move_path(move.src, move.dst, folder.id, stats)
    to_index: dict[Path, ScannedFile] = {}
    forced: set[Path] = set()
    for path in changes.paths:
        if cancel.is_set():
            raise Cancelled
        progress.advance(1, str(path))
        if path not in to_index:
            _reconcile(indexer, folder, path, rules, stats, to_index, forced)
    files = [to_index[p] for p in sorted(to_index)]
    progress.begin(f"Indexing {folder.path}", total=len(files))
    indexer.index_files(folder.id, files, progress, cancel, stats)
    return [f.path for f in files if f.path in forced and _changed_since(f)]


def _reconcile(
    indexer: Indexer,
    folder: FolderRecord,
    path: Path,
    rules: IgnoreRules,
    stats: IndexStats,
    to_index: dict[Path, ScannedFile],
    forced: set[Path],
) -> None:
    """Make the store agree with the disk about ``path`` (a file or a directory)."""
    try:
        lst = os.lstat(path)
        st = os.stat(path) if stat.S_ISLNK(lst.st_mode) else lst
    except (FileNotFoundError, NotADirectoryError):
        indexer.delete_tree(path, stats)
        return
    except OSError as exc:  # a symlink loop, a permission denied on a parent
        indexer.store.record_error(path, folder.id, exc.strerror or str(exc))
        return
    if stat.S_ISDIR(lst.st_mode):
        if rules.ignores(path, is_dir=True):
            indexer.delete_tree(path, stats)
        else:
            _sync_directory(indexer, folder, path, rules, stats, to_index)
        return
    if not stat.S_ISREG(st.st_mode) or rules.ignores(path):
        indexer.delete_tree(path, stats)  # symlinked dirs are never followed (no loops)
        return
    to_index[path] = ScannedFile(path, st.st_size, st.st_mtime_ns)
    forced.add(path)


def _sync_directory(
    indexer: Indexer,
    folder: FolderRecord,
    directory: Path,
    rules: IgnoreRules,
    stats: IndexStats,
    to_index: dict[Path, ScannedFile],
) -> None:
    """A directory appeared or moved: index what is new in it, forget what is gone."""
    report = scan_folder(directory, rules)
    indexer.store.clear_error(directory)
    for problem, reason in report.problems:
        indexer.store.record_error(problem, folder.id, reason)
    on_disk = {f.path: f for f in report.files}
    stored = {r.path: r for r in indexer.store.files_under(directory)}
    for path in sorted(set(stored) - set(on_disk)):
        indexer.delete_path(path, stats)
    for path, f in on_disk.items():
        rec = stored.get(path)
        if rec is None or (rec.size, rec.mtime_ns) != (f.size, f.mtime_ns):
            to_index[path] = f


def _changed_since(scanned: ScannedFile) -> bool:
    """True if the file no longer has the size and mtime it had before it was read.

    A file still being written may have been read by halves (or failed to parse
    as a truncated PDF): it is looked at again rather than forgotten.
    """
    try:
        st = scanned.path.stat()
    except OSError:
        return False  # gone: its delete event covers it
    return (st.st_size, st.st_mtime_ns) != (scanned.size, scanned.mtime_ns)
