"""Live folder sync: file events become debounced change sets for the engine worker.

Three roles, one module each, as watchdog splits emitter, dispatcher and handler:

* :mod:`~engine.library.watching.changes`: what changed in a folder, coalesced per
  path with bounded memory, and the :class:`ChangeSet` handed over.
* :mod:`~engine.library.watching.watcher`: :class:`FolderWatcher`, the observer, the
  recorder on watchdog's thread and the debouncer thread.
* :mod:`~engine.library.watching.applying`: :func:`apply_change_set`, run on the
  engine worker: moves re-point stored files (no re-embedding), then every
  touched path is reconciled with the disk.

Start-up reconciliation (changes made while Kenning was closed) is
:meth:`engine.library.indexing.Indexer.sync_folder`: size and mtime only, no content read.
"""

from __future__ import annotations

from engine.library.watching.applying import apply_change_set
from engine.library.watching.changes import CLOSE_EVENTS, MAX_PENDING_PATHS, ChangeSet, Move
from engine.library.watching.watcher import EVENT_GRACE_SECONDS, FolderWatcher

__all__ = [
    "CLOSE_EVENTS",
    "EVENT_GRACE_SECONDS",
    "MAX_PENDING_PATHS",
    "ChangeSet",
    "FolderWatcher",
    "Move",
    "apply_change_set",
]
