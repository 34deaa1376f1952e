"""Learning: what a person's corrections and ratings change, at once and over time.

Holds the durable record (:mod:`~engine.learning.corrections`) every layer
reads, and the layers: 1. :mod:`~engine.learning.memory` answers a question, or
a paraphrase of it, from a stored correction at once; 2. the models learn in
rounds on the engine's writer: the reader
(:mod:`~engine.learning.reader_learning`) and the generator's LoRA adapter
(:mod:`~engine.learning.adapter`, scheduled by
:mod:`~engine.learning.consolidation`, recalled by
:mod:`~engine.learning.recall`); 3. :mod:`~engine.learning.feedback` turns
ratings and corrections into ranking boosts for similar later questions.
:class:`~engine.learning.learning.Learning` composes them.

Imports: the shared engine modules, the library's types (a :class:`Hit`) and
the reader room (its model, answers and answer log); never the facade
(``tests/engine/test_layout.py`` checks).
"""

from __future__ import annotations

from engine.learning.corrections import Correction, CorrectionStore, Rating

__all__ = ["Correction", "CorrectionStore", "Rating"]
