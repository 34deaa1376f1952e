"""One error tree for everything the engine raises on purpose.

The GUI and the CLI catch :class:`EngineError` and show its message; anything
else is a bug and gets a traceback in the logs, never in a person's face.
"""

from __future__ import annotations

from pathlib import Path


class EngineError(Exception):
    """Base of every error the engine raises deliberately."""


class ParseError(EngineError):
    """A file could not be turned into text.

    Attributes:
        path: The file that failed.
        reason: A short, human-readable reason ("binary file", "encrypted PDF").
    """

    def __init__(self, path: Path | str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


class ModelNotAvailableError(EngineError):
    """A model is missing or broken; the engine never downloads one instead."""


class StoreError(EngineError):
    """The on-disk store is unusable (wrong format version, unreadable file)."""


class StoreDamagedError(StoreError):
    """A store's file failed SQLite's integrity check when it was opened.

    Attributes:
        path: The damaged file.
        what: Which store, in words ("search index", "corrections").
        detail: What SQLite found.
        folders: For the search index, the folders it listed if they could still be
            read (to rebuild it from the files).
    """

    def __init__(self, path: Path | str, what: str, detail: str) -> None:
        super().__init__(f"The {what} file {path} is damaged ({detail}).")
        self.path = Path(path)
        self.what = what
        self.detail = detail
        self.folders: list[Path] = []


class FolderNotFoundError(EngineError):
    """A folder given to the engine does not exist or is not a directory."""


class FolderRefusedError(FolderNotFoundError):
    """A folder that should not be indexed whole: the root, a system directory.

    A subclass of :class:`FolderNotFoundError` so callers that report a bad
    folder report this one the same way, with its own reason.
    """


class DataDirInUseError(EngineError):
    """Another process has this data dir open; two writers would corrupt each other's view.

    Attributes:
        data_dir: The library's folder.
        holder: Who holds it, in words.
    """

    def __init__(self, data_dir: Path | str, holder: str) -> None:
        super().__init__(
            f"This library ({data_dir}) is open in {holder}. Close that first, or give "
            "this one another folder with --data-dir."
        )
        self.data_dir = Path(data_dir)
        self.holder = holder


class BackendUnavailableError(EngineError):
    """A shared library's server (Milvus) cannot be reached: down, gone, or refusing
    the credentials. The local store keeps every passage meanwhile."""


class EngineClosedError(EngineError):
    """A call was made on an engine that was already closed."""


class StoreVersionError(StoreError):
    """A saved store is in a format this build cannot read as it is.

    Either a newer Kenning wrote it (installing that version again reads it), or
    it is older than any migration this build carries; the message says which and
    what to do, in words a person can act on.

    Attributes:
        path: The store's file.
        found: The format version on disk.
        supported: The format version this build writes.
    """

    def __init__(self, path: Path | str, what: str, found: int, supported: int) -> None:
        self.path = Path(path)
        self.found = found
        self.supported = supported
        if found > supported:
            message = (
                f"Your {what} ({self.path}) was saved by a newer version of Kenning "
                f"(format {found}; this version reads up to {supported}). Install the newer "
                f"Kenning again, or move {self.path.name} aside to start a fresh one."
            )
        else:
            message = (
                f"Your {what} ({self.path}) is in an old format ({found}) that this version "
                f"of Kenning (format {supported}) cannot upgrade. Move {self.path.name} aside "
                "and add your folders again: Kenning re-indexes them."
            )
        super().__init__(message)

    @property
    def newer(self) -> bool:
        """Whether a newer Kenning wrote the store (rather than a too-old one)."""
        return self.found > self.supported
