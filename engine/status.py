"""What :meth:`engine.Engine.status` reports."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.progress import ProgressSnapshot


@dataclass(frozen=True)
class FileError:
    """A file that was skipped or only partly indexed, and why (shown to the person)."""

    path: Path
    reason: str
    at: float


@dataclass(frozen=True)
class FolderStatus:
    path: Path
    files: int
    chunks: int
    synced_at: float | None  # last completed sync (epoch seconds); None before the first
    state: str  # "indexing", "ready", "missing" (folder gone from disk), "queued"
    errors: tuple[FileError, ...]


@dataclass(frozen=True)
class Status:
    folders: tuple[FolderStatus, ...]
    files: int
    chunks: int
    vectors: int  # keys in the vector index; equals chunks once repair is done
    queued: int  # jobs waiting behind the running one
    busy: bool  # a job is running
    progress: ProgressSnapshot | None
    errors: tuple[FileError, ...]  # every file skipped, with its reason
    paused: bool = False  # indexing held by Engine.pause_indexing
    # Corrections the answer model has not learned yet, and when the scheduler starts
    # the round that learns them (seconds from now; None: not scheduled, see
    # Engine.wait_until_learned and Engine.consolidate).
    corrections_waiting: int = 0
    next_learning_in: float | None = None
    # Where the passages live: "local", or "Milvus at <address>" (never credentials);
    # and why a remote library cannot be reached now (indexing goes on locally).
    backend: str = "local"
    backend_problem: str | None = None
