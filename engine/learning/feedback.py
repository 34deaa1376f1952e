"""Layer 3, retrieval feedback: ratings move passages up or down for *similar* questions.

A rating is kept with the embedding of the question it was given for. A later
query gets, for each rated passage, a boost that decays linearly with the
cosine between the query and the rated question, reaching zero at
``min_similarity``; below it a rating has no effect at all, so unrelated
questions rank exactly as before. Corrections add ratings too: the engine rates
the passages that contain the corrected answer as helpful for its question.

Boosts are added to the fused scores after dividing them by the best score of
the search, so one weight works for convex and RRF fusion alike:

    score'(d) = score(d) / score(top) + sum_r sign_r * weight * s_r,
    s_r = max(0, (cos(q, q_r) - min_similarity) / (1 - min_similarity)).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from engine.embedding import Embedder
from engine.learning.corrections import Rating


def decayed_boosts(
    query: NDArray[np.float32],
    questions: NDArray[np.float32],
    chunk_ids: Sequence[int],
    signs: NDArray[np.float64],
    *,
    weight: float,
    min_similarity: float,
) -> dict[int, float]:
    """Per-chunk boost for one query from rated (question vector, chunk, sign) triples.

    >>> q = np.array([1.0, 0.0], dtype=np.float32)
    >>> rated = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    >>> decayed_boosts(q, rated, [7, 8], np.array([1.0, 1.0]), weight=0.5, min_similarity=0.6)
    {7: 0.5}
    """
    if len(chunk_ids) == 0:
        return {}
    cos = (questions @ query).astype(np.float64)
    strength = np.clip((cos - min_similarity) / (1.0 - min_similarity), 0.0, 1.0)
    out: dict[int, float] = {}
    for i in np.flatnonzero(strength > 0):
        chunk = int(chunk_ids[int(i)])
        out[chunk] = out.get(chunk, 0.0) + float(signs[i] * weight * strength[i])
    # Several ratings of one passage do not add up past one full-strength rating.
    return {k: round(float(np.clip(v, -weight, weight)), 6) for k, v in out.items() if v != 0.0}


class FeedbackBoosts:
    """The ratings in effect, with their question embeddings; safe to share between threads.

    Args:
        embedder: The engine's embedder.
        weight: Boost of a full-strength rating, in units of the search's best score.
        min_similarity: Cosine with a rated question below which a rating does nothing.
    """

    def __init__(self, embedder: Embedder, *, weight: float, min_similarity: float) -> None:
        if not 0.0 <= min_similarity < 1.0:
            raise ValueError("min_similarity must be within [0, 1)")
        self._embedder = embedder
        self.weight = weight
        self.min_similarity = min_similarity
        self._lock = threading.Lock()
        self._ratings: list[Rating] = []
        self._vectors: NDArray[np.float32] = np.zeros((0, embedder.dim), dtype=np.float32)

    def __len__(self) -> int:
        return len(self._ratings)

    def add(self, ratings: Sequence[Rating]) -> None:
        """Hold new ratings (their questions are embedded here)."""
        if not ratings:
            return
        vectors = self._embedder.embed([r.question for r in ratings])
        with self._lock:
            self._ratings.extend(ratings)
            self._vectors = np.vstack([self._vectors, vectors])

    def drop_correction(self, correction_id: int) -> None:
        """Forget the ratings derived from a correction."""
        with self._lock:
            keep = [i for i, r in enumerate(self._ratings) if r.correction_id != correction_id]
            self._ratings = [self._ratings[i] for i in keep]
            self._vectors = self._vectors[keep]

    def boosts(self, query: NDArray[np.float32]) -> dict[int, float]:
        """Boost per chunk id for a query embedding; empty when no rating is near."""
        with self._lock:
            if not self._ratings:
                return {}
            vectors = self._vectors
            ids = [r.chunk_id for r in self._ratings]
            signs = np.array([1.0 if r.helpful else -1.0 for r in self._ratings])
        return decayed_boosts(
            query,
            vectors,
            ids,
            signs,
            weight=self.weight,
            min_similarity=self.min_similarity,
        )
