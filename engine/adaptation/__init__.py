"""Learning from corrections: a durable record, an exact correction memory, feedback.

Layers (issue 5): 1. :mod:`engine.adaptation.memory` answers a question, or a
paraphrase of it, from a stored correction at once; 2. generator adaptation
(LoRA) learns from the same record in the background; 3.
:mod:`engine.adaptation.feedback` turns ratings and corrections into ranking
boosts for similar later questions. :mod:`engine.adaptation.corrections` is the
record all of them read.
"""

from __future__ import annotations

from engine.adaptation.corrections import Correction, CorrectionStore, Rating

__all__ = ["Correction", "CorrectionStore", "Rating"]
