"""Whole-document answers: a file's summary, or what a folder says about something.

Snippet answers cannot say what a document is about; a summary has to weigh every
sentence. This one is extractive, so each sentence is the document's own and is
cited to its characters:

- **Centrality.** Sentences are embedded with the bundled encoder, and ranked by
  LexRank's idea (Erkan & Radev, 2004): a sentence is central when sentences like
  it are central, i.e. PageRank over the graph of cosine similarities. For "what
  does this say about X" the random walk restarts at sentences close to X
  (topic-sensitive LexRank, Otterbacher et al., 2005).
- **No repeats.** Sentences are picked by maximal marginal relevance (Carbonell &
  Goldstein, 1998): centrality minus the closest similarity to a sentence already
  picked, so a point made twice is shown once.
- **Reading order.** The picked sentences are shown in the order they appear.

Its weights (``redundancy``) were set on the calibration half of a public
summarisation sample and measured on the other half (``bench/bench_summaries.py``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.embedding import Embedder
from engine.library.chunk_store import ChunkRecord
from engine.reader.generator_answers import split_sentences

# Sentences ranked per summary at most: the similarity matrix is this squared
# (3,000: 36 MB, and ~30 s of embedding on 2 cores); the rest are left out, said.
MAX_SENTENCES = 3000
# Shorter ones are headings, captions or list debris, not statements.
MIN_WORDS = 5
DAMPING = 0.85
# The walk's share that follows similarity when a topic is given; the rest restarts
# at sentences near the topic (weighted by their cosine to it, cubed).
ABOUT_DAMPING = 0.2
# Weight of "already said" against centrality when picking the next sentence; chosen
# on the calibration half of bench/bench_summaries.py (by ROUGE-2).
REDUNDANCY = 0.25
# Above this cosine two sentences make the same statement (paraphrases, a point
# repeated in a conclusion): never both in one summary.
DUPLICATE_COSINE = 0.85


@dataclass(frozen=True)
class Sentence:
    """One sentence of an indexed file, where it is."""

    path: Path
    start: int  # character offsets into the file's extracted text
    end: int
    text: str
    page: int | None = None


@dataclass
class Summary:
    """What :meth:`engine.Engine.summarize` returns: sentences in reading order."""

    subject: str  # the file or folder, and what about
    sentences: list[Sentence]
    considered: int  # sentences ranked
    total: int  # sentences there were (more than considered when capped)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.sentences)


_SPACE = re.compile(r"\s+")


def document_sentences(chunks: Sequence[ChunkRecord]) -> list[Sentence]:
    """The sentences of a file, from its stored chunks (document order).

    Chunks overlap by a few tokens, so each one contributes only the text past the
    previous one's end; offsets stay the file's own.
    """
    out: list[Sentence] = []
    covered = 0
    for chunk in chunks:
        begin = max(chunk.start, covered)
        if begin >= chunk.end:
            continue
        part = chunk.text[begin - chunk.start :]
        covered = chunk.end
        for a, b in split_sentences(part):
            text = _SPACE.sub(" ", part[a:b]).strip()
            if len(text.split()) >= MIN_WORDS:
                out.append(Sentence(chunk.path, begin + a, begin + b, text, chunk.page))
    return out


def centrality(
    similarity: np.ndarray, restart: np.ndarray | None = None, damping: float = DAMPING
) -> np.ndarray:
    """PageRank over a non-negative similarity matrix (LexRank), optionally biased.

    >>> s = np.array([[1, .9, .1], [.9, 1, .1], [.1, .1, 1]])
    >>> r = centrality(s)
    >>> bool(r[0] > r[2] and r[1] > r[2]), round(float(r.sum()), 6)
    (True, 1.0)
    """
    n = len(similarity)
    weights = np.clip(similarity, 0.0, None)
    np.fill_diagonal(weights, 0.0)
    rows = weights.sum(axis=1, keepdims=True)
    walk = np.divide(weights, rows, out=np.full_like(weights, 1.0 / n), where=rows > 0)
    jump = np.full(n, 1.0 / n) if restart is None else restart / restart.sum()
    rank = np.full(n, 1.0 / n)
    for _ in range(100):
        nxt = (1 - damping) * jump + damping * rank @ walk
        if np.abs(nxt - rank).sum() < 1e-9:
            rank = nxt
            break
        rank = nxt
    out: np.ndarray = rank / rank.sum()
    return out


def pick(
    scores: np.ndarray, similarity: np.ndarray, count: int, redundancy: float = REDUNDANCY
) -> list[int]:
    """``count`` indices by maximal marginal relevance, in reading (index) order.

    >>> s = np.array([[1, .99, 0], [.99, 1, 0], [0, 0, 1]])
    >>> pick(np.array([.5, .45, .3]), s, 2)  # 1 restates 0, so 2 comes instead
    [0, 2]
    >>> pick(np.array([.5, .45, .3]), np.array([[1, .6, 0], [.6, 1, 0], [0, 0, 1]]), 2)
    [0, 1]
    """
    if len(scores) == 0 or count <= 0:
        return []
    # Min-max: centrality scores are close together, and only their order and
    # spread should weigh against similarity (which spans 0-1).
    low, high = float(scores.min()), float(scores.max())
    relevance = (scores - low) / (high - low) if high > low else np.ones(len(scores))
    chosen: list[int] = []
    closest = np.zeros(len(scores))
    for _ in range(min(count, len(scores))):
        value = relevance - redundancy * closest
        value[chosen] = -np.inf
        value[closest >= DUPLICATE_COSINE] = -np.inf  # says what a picked one says
        if not np.isfinite(value).any():
            break
        best = int(np.argmax(value))
        chosen.append(best)
        closest = np.maximum(closest, similarity[best])
    return sorted(chosen)


def summarize(
    embedder: Embedder,
    sentences: Sequence[Sentence],
    *,
    count: int,
    about: str | None = None,
    redundancy: float = REDUNDANCY,
    subject: str = "",
) -> Summary:
    """The ``count`` most central, least repetitive of ``sentences`` (near ``about``, if given)."""
    started = time.perf_counter()
    total = len(sentences)
    ranked = list(sentences[:MAX_SENTENCES])
    summary = Summary(subject, [], len(ranked), total)
    if not ranked:
        return summary
    vectors = embedder.embed([s.text for s in ranked])
    embedded = time.perf_counter()
    similarity = vectors @ vectors.T
    restart = None
    if about:
        query = embedder.embed([about])[0]
        restart = np.clip(vectors @ query, 0.0, None) ** 3 + 1e-6
    # Near a topic the walk mostly restarts at the sentences close to it (Otterbacher
    # et al. found a high restart share best for question-focused summaries).
    scores = centrality(similarity, restart, ABOUT_DAMPING if about else DAMPING)
    summary.sentences = [ranked[i] for i in pick(scores, similarity, count, redundancy)]
    summary.timings = {"embed": embedded - started, "rank": time.perf_counter() - embedded}
    summary.seconds = time.perf_counter() - started
    return summary
