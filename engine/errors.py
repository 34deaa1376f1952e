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


class FolderNotFoundError(EngineError):
    """A folder given to the engine does not exist or is not a directory."""


class EngineClosedError(EngineError):
    """A call was made on an engine that was already closed."""
