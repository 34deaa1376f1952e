"""Kenning's engine: plain Python, never imports Qt.

>>> from engine import Engine, EngineConfig
>>> with Engine(data_dir) as eng:                       # doctest: +SKIP
...     eng.add_folder("~/Notes"); eng.wait_until_idle()
...     eng.search("when is the dentist appointment?")
"""

from __future__ import annotations

from engine.config import EngineConfig
from engine.engine import Engine
from engine.errors import (
    BackendUnavailableError,
    DataDirInUseError,
    EngineClosedError,
    EngineError,
    FolderNotFoundError,
    FolderRefusedError,
    ModelNotAvailableError,
    ParseError,
    StoreError,
)
from engine.learning.corrections import Correction
from engine.library.retrieval import Hit, SearchMode
from engine.status import FolderStatus, Status

__all__ = [
    "BackendUnavailableError",
    "Correction",
    "DataDirInUseError",
    "Engine",
    "EngineClosedError",
    "EngineConfig",
    "EngineError",
    "FolderNotFoundError",
    "FolderRefusedError",
    "FolderStatus",
    "Hit",
    "ModelNotAvailableError",
    "ParseError",
    "SearchMode",
    "Status",
    "StoreError",
]
