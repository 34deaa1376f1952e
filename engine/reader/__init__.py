"""The reader: a span model that reads the answer out of retrieved passages.

It holds the trained extractive reader (the bundled MiniLM encoder with a LoRA and
a start/end head, weights in ``resources/reader/``), the training step that both
``python -m bench.train_reader`` and the online learning from corrections use, and
the abstention score calibrated on third-party questions.

Imports: numpy, torch, transformers, peft, safetensors and ``engine.errors`` only;
never the library (indexing, storage), learning or Qt.
"""

from __future__ import annotations

from engine.reader.model import (
    READER_FORMAT,
    Abstention,
    ReaderConfig,
    ReaderGuess,
    SpanReader,
    bundled_reader_path,
)

__all__ = [
    "READER_FORMAT",
    "Abstention",
    "ReaderConfig",
    "ReaderGuess",
    "SpanReader",
    "bundled_reader_path",
]
