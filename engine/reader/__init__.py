"""The reader room: reading the answer out of retrieved passages.

Holds the trained span reader (:mod:`~engine.reader.model`: the bundled MiniLM
encoder with a start/end head, weights in ``resources/reader/``), the training
step that ``python -m bench.train_reader`` and the learning from corrections
both use (:mod:`~engine.reader.training`), the reader's answers with abstention
and the quoted sentence (:mod:`~engine.reader.span_answers`), the generator
pipelines kept as options (:mod:`~engine.reader.generator_answers`), what an
answer is (:mod:`~engine.reader.answer`), the answer log
(:mod:`~engine.reader.answer_log`) and :class:`~engine.reader.answering.Answering`,
which composes them.

Imports: the shared engine modules and the library's :class:`Hit` it is given;
never learning (which uses the reader) or the facade (``tests/engine/test_layout.py``
checks).
"""

from __future__ import annotations

from engine.reader.model import (
    READER_FORMAT,
    ReaderConfig,
    ReaderGuess,
    Selection,
    SpanReader,
    bundled_reader_path,
)

__all__ = [
    "READER_FORMAT",
    "ReaderConfig",
    "ReaderGuess",
    "Selection",
    "SpanReader",
    "bundled_reader_path",
]
