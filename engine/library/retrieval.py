"""Hybrid retrieval: dense (vector index) and BM25 (FTS5), fused, then merged.

Dense search finds paraphrases; BM25 finds rare names and numbers the small
embedder blurs. The default fusion is a convex combination of min-max
normalised scores, which Bruch et al. ("An Analysis of Fusion Functions for
Hybrid Retrieval", 2023) found more accurate than reciprocal rank fusion and
robust to its one weight; on Kenning's QA fixture it beat RRF by 5 points of
hit@1 (docs/benchmarks.md). RRF stays available. Overlapping chunks of one file
and exact duplicates across files collapse into one hit, so the results are
different passages.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from engine.embedding import Embedder
from engine.library.chunk_store import ChunkRecord
from engine.library.vector_index import VectorIndex


@runtime_checkable
class PassageTexts(Protocol):
    """Where retrieval reads passages and searches their words: the local store
    (SQLite FTS5), or a backend that holds passages whole (Milvus)."""

    def bm25_search(
        self, query: str, limit: int, *, within: Sequence[int] | None = None
    ) -> list[tuple[int, float]]:
        """(chunk id, BM25 score) best first, score > 0."""
        ...

    def get_chunks(self, ids: Iterable[int]) -> dict[int, ChunkRecord]:
        """The chunks of ``ids`` that exist, by id."""
        ...


class SearchMode(str, Enum):
    HYBRID = "hybrid"
    DENSE = "dense"
    BM25 = "bm25"


@dataclass(frozen=True)
class Hit:
    """One passage found by :meth:`engine.Engine.search`.

    ``start``/``end`` are character offsets into the document's extracted text
    (for .txt/.md: into the decoded file), so ``text == extracted[start:end]``.
    """

    path: Path
    start: int
    end: int
    text: str
    score: float  # fused rank score: higher is better, comparable within one search
    chunk_id: int
    page: int | None = None
    heading_path: tuple[str, ...] = ()
    similarity: float | None = None  # cosine of query and passage, when dense search saw it
    bm25: float | None = None  # BM25 score, when keyword search saw it
    chunk_ids: tuple[int, ...] = ()  # every chunk merged into this hit
    also_in: tuple[Path, ...] = field(default=())  # other files holding the same passage


# Dense share of convex fusion per embedding model (by model id prefix), fitted on
# calibration data nobody here wrote: the SQuAD train subset's calibration split
# (English questions) and the calibration half of the parallel fixtures (questions in
# another language than the notes), by the mean of both hit@1 figures, in steps of
# 0.1 (`python -m bench.bench_multilingual --fit`, docs/benchmarks.md). MiniLM peaks
# at 0.5 on both. multilingual-e5-small wants 0.8: at 0.5 BM25's matches on words
# that two languages share (names, "de", "la") outvote its cross-lingual vectors
# (hit@1 0.85 against 0.995), while English questions lose nothing (0.930 vs 0.927).
DENSE_WEIGHTS = {"multilingual-e5-small": 0.8}
DEFAULT_DENSE_WEIGHT = 0.5


def dense_weight_for(model_id: str, configured: float | None = None) -> float:
    """The dense share of convex fusion for the model ``model_id``, unless configured.

    >>> dense_weight_for("multilingual-e5-small:1a2b"), dense_weight_for("all-MiniLM-L6-v2:9f")
    (0.8, 0.5)
    >>> dense_weight_for("multilingual-e5-small:1a2b", configured=0.3)
    0.3
    """
    if configured is not None:
        return configured
    name = model_id.split(":", 1)[0]
    return DENSE_WEIGHTS.get(name, DEFAULT_DENSE_WEIGHT)


def fuse_ranks(
    rankings: Sequence[Sequence[int]], *, k: int = 60, weights: Sequence[float] | None = None
) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: score(d) = sum over rankings of w / (k + rank(d)).

    >>> [(key, round(score, 3)) for key, score in fuse_ranks([[1, 2, 3], [3, 1]], k=1)]
    [(1, 0.833), (3, 0.75), (2, 0.333)]
    """
    weights = weights or [1.0] * len(rankings)
    scores: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, key in enumerate(ranking, start=1):
            scores[key] = scores.get(key, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def fuse_scores(
    dense: dict[int, float], bm25: dict[int, float], *, dense_weight: float = 0.5
) -> list[tuple[int, float]]:
    """Convex combination of min-max normalised scores, best first.

    A candidate missing from one list gets that list's lowest normalised score (0).
    Equal scores are common: the top of one list alone scores exactly what the top
    of the other alone does. Such ties go to the candidate both retrievers found,
    then to the better keyword match: for a query of one rare word (a code, a name)
    dense scores are noise, and a burst of 500 notes each with a unique code word
    left 3 of them behind an older, unrelated passage that only won on chunk id.

    >>> fuse_scores({1: 0.9, 2: 0.5}, {2: 12.0, 3: 4.0})
    [(2, 0.5), (1, 0.5), (3, 0.0)]
    >>> fuse_scores({1: 0.9, 2: 0.5}, {3: 12.0, 4: 4.0})
    [(3, 0.5), (1, 0.5), (2, 0.0), (4, 0.0)]
    """
    fused: dict[int, float] = {}
    found_by: dict[int, int] = {}
    keyword: dict[int, float] = {}
    for scores, weight in ((dense, dense_weight), (bm25, 1.0 - dense_weight)):
        if not scores:
            continue
        lo, hi = min(scores.values()), max(scores.values())
        span = hi - lo
        for key, value in scores.items():
            norm = (value - lo) / span if span > 1e-12 else 1.0
            fused[key] = fused.get(key, 0.0) + weight * norm
            found_by[key] = found_by.get(key, 0) + 1
            if scores is bm25:
                keyword[key] = norm
    return sorted(
        fused.items(),
        key=lambda kv: (-round(kv[1], 12), -found_by[kv[0]], -keyword.get(kv[0], 0.0), kv[0]),
    )


def search(
    query: str,
    *,
    store: PassageTexts,
    index: VectorIndex,
    embedder: Embedder,
    limit: int = 10,
    mode: SearchMode = SearchMode.HYBRID,
    candidates: int = 50,
    fusion: str = "convex",
    dense_weight: float | None = None,
    rrf_k: int = 60,
    within: Sequence[int] | None = None,
    beside: Executor | None = None,
) -> list[Hit]:
    """Find the passages that best answer ``query``.

    Args:
        query: Free text.
        store: Passage texts, offsets and BM25: the chunk store, or a backend that
            holds them itself (:class:`PassageTexts`).
        index: Vector index over the same chunk ids.
        embedder: Embeds the query into the index's space.
        limit: Most hits returned, after merging.
        mode: Hybrid, dense only or BM25 only.
        candidates: Hits fetched from each retriever before fusion.
        fusion: "convex" (normalised score combination) or "rrf" (reciprocal rank).
        dense_weight: Share of the dense score in convex fusion; None for the
            weight fitted for ``embedder`` (:func:`dense_weight_for`).
        rrf_k: RRF constant; larger flattens the rank weights.
        within: Search only these chunk ids (a file or folder the person chose);
            dense scores are then exact over them rather than from the HNSW graph.
        beside: Where keyword search runs while dense search does (hybrid only);
            None runs one after the other.

    Returns:
        Hits best first; empty for an empty query or an empty index.
    """
    if not query.strip() or limit <= 0:
        return []
    depth = max(candidates, limit * 3)
    similarity: dict[int, float] = {}
    bm25: dict[int, float] = {}
    rankings: list[list[int]] = []
    keywords: Future[list[tuple[int, float]]] | None = None
    if mode == SearchMode.HYBRID and beside is not None:
        # BM25 runs beside the query embedding and the vector search: SQLite and
        # ONNX Runtime free the GIL, so a hybrid search costs the slower of the two
        # rather than their sum.
        keywords = beside.submit(store.bm25_search, query, depth, within=within)
    if mode in (SearchMode.HYBRID, SearchMode.DENSE):
        vector = embedder.embed_query(query)
        if within is None:
            keys, sims = index.search(vector, depth)
        else:
            keys, sims = index.search_among(vector, np.asarray(within, dtype=np.uint64), depth)
        similarity = {int(k): float(s) for k, s in zip(keys, sims, strict=True)}
        rankings.append(list(similarity))
    if keywords is not None:
        bm25 = dict(keywords.result())
        rankings.append(list(bm25))
    elif mode in (SearchMode.HYBRID, SearchMode.BM25):
        bm25 = dict(store.bm25_search(query, depth, within=within))
        rankings.append(list(bm25))
    if fusion == "rrf":
        fused = fuse_ranks(rankings, k=rrf_k)
    elif fusion == "convex":
        weight = dense_weight_for(embedder.model_id, dense_weight)
        fused = fuse_scores(similarity, bm25, dense_weight=weight)
    else:
        raise ValueError(f"unknown fusion {fusion!r}")
    records = store.get_chunks(key for key, _ in fused[:depth])
    # Keys the vector index still holds for chunks deleted a moment ago have no record.
    ranked = [(records[key], score) for key, score in fused if key in records]
    hits = _merge(ranked, similarity, bm25)
    return hits[:limit]


def rescored(hits: list[Hit], query: str, embedder: Embedder, made_by: Embedder) -> list[Hit]:
    """``hits`` with ``embedder``'s cosines in place of those of ``made_by``, their maker.

    The reader's selection model and abstention floor were calibrated on MiniLM's
    cosines; another library embedder's (E5's sit near 0.8 for anything) would move
    every rating. So the few passages read get MiniLM's cosine (one query and
    ``answer_passages`` passages embedded, ~30 ms). A hit dense search did not see
    keeps None, as in calibration.
    """
    if embedder is made_by:
        return hits
    seen = [h for h in hits if h.similarity is not None]
    if not seen:
        return hits
    cosines = embedder.embed([h.text for h in seen], kind="passage") @ embedder.embed_query(query)
    new = {id(h): float(c) for h, c in zip(seen, cosines, strict=True)}
    return [replace(h, similarity=new[id(h)]) if id(h) in new else h for h in hits]


def _merge(
    ranked: list[tuple[ChunkRecord, float]], similarity: dict[int, float], bm25: dict[int, float]
) -> list[Hit]:
    """Collapse overlapping chunks of a file and identical passages across files."""
    hits: list[Hit] = []
    by_text: dict[str, int] = {}
    for record, score in ranked:
        twin = by_text.get(record.content_hash)
        if twin is not None:
            first = hits[twin]
            if record.path != first.path and record.path not in first.also_in:
                hits[twin] = _replace(first, also_in=(*first.also_in, record.path))
            continue
        overlap = next(
            (
                i
                for i, h in enumerate(hits)
                if h.path == record.path and record.start < h.end and h.start < record.end
            ),
            None,
        )
        if overlap is not None:
            hits[overlap] = _widen(hits[overlap], record)
            continue
        by_text[record.content_hash] = len(hits)
        hits.append(
            Hit(
                path=record.path,
                start=record.start,
                end=record.end,
                text=record.text,
                score=score,
                chunk_id=record.id,
                page=record.page,
                heading_path=record.heading_path,
                similarity=similarity.get(record.id),
                bm25=bm25.get(record.id),
                chunk_ids=(record.id,),
            )
        )
    return hits


def _widen(hit: Hit, record: ChunkRecord) -> Hit:
    """Extend a hit over an overlapping, lower-ranked chunk of the same file."""
    start, end = min(hit.start, record.start), max(hit.end, record.end)
    if record.start < hit.start:
        text = record.text[: hit.start - record.start] + hit.text
    else:
        text = hit.text
    if record.end > hit.end:
        text = text + record.text[len(record.text) - (record.end - hit.end) :]
    return _replace(hit, start=start, end=end, text=text, chunk_ids=(*hit.chunk_ids, record.id))


def _replace(hit: Hit, **changes: object) -> Hit:
    return replace(hit, **changes)  # type: ignore[arg-type]


def apply_boosts(
    hits: Sequence[Hit], boosts: dict[int, float], extra: Iterable[ChunkRecord] = ()
) -> list[Hit]:
    """Re-rank hits by normalised score plus boost; ``extra`` are boosted passages the
    search did not return (they enter with their boost alone)."""
    top = max((h.score for h in hits), default=0.0) or 1.0
    ranked: list[tuple[float, int, Hit]] = []
    seen: set[int] = set()
    for order, hit in enumerate(hits):
        ids = hit.chunk_ids or (hit.chunk_id,)
        seen.update(ids)
        bonus = max((boosts.get(i, 0.0) for i in ids), key=abs, default=0.0)
        ranked.append((hit.score / top + bonus, order, hit))
    for order, record in enumerate(extra, start=len(ranked)):
        bonus = boosts.get(record.id, 0.0)
        if record.id in seen or bonus <= 0:
            continue
        hit = Hit(
            path=record.path,
            start=record.start,
            end=record.end,
            text=record.text,
            score=0.0,
            chunk_id=record.id,
            page=record.page,
            heading_path=record.heading_path,
            chunk_ids=(record.id,),
        )
        ranked.append((bonus, order, hit))
    ranked.sort(key=lambda t: (-t[0], t[1]))
    return [replace(hit, score=score) for score, _, hit in ranked]
