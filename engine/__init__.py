"""Kenning's engine: plain Python, never imports Qt.

>>> from engine import Engine, EngineConfig
>>> with Engine(data_dir) as eng:                       # doctest: +SKIP
...     eng.add_folder("~/Notes"); eng.wait_until_idle()
...     eng.search("when is the dentist appointment?")
"""

from __future__ import annotations

from engine.adaptation.corrections import Correction
from engine.config import EngineConfig
from engine.engine import Engine
from engine.errors import (
    EngineClosedError,
    EngineError,
    FolderNotFoundError,
    ModelNotAvailableError,
    ParseError,
    StoreError,
)
from engine.retrieval import Hit, SearchMode
from engine.status import FolderStatus, Status

__all__ = [
    "Correction",
    "Engine",
    "EngineClosedError",
    "EngineConfig",
    "EngineError",
    "FolderNotFoundError",
    "FolderStatus",
    "Hit",
    "ModelNotAvailableError",
    "ParseError",
    "SearchMode",
    "Status",
    "StoreError",
]
