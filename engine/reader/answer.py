"""What an answer is: the text, its sources, the exact spans it cites, the sentence quoted.

Every way of answering (the span reader, the generator pipelines, a person's
correction, the adapted generator's recall) returns an :class:`Answer`, so the
window, the CLI and the answer log show and store them one way.

Imports nothing of the library but the :class:`~engine.library.retrieval.Hit` it
cites, and nothing of learning: a correction is referred to by the fields it shows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from engine.library.retrieval import Hit

NOT_FOUND = "The documents do not say."


class CorrectionRef(Protocol):
    """The correction an answer came from, as the answer shows it (see
    :class:`engine.learning.corrections.Correction`)."""

    @property
    def id(self) -> int: ...
    @property
    def question(self) -> str: ...
    @property
    def answer(self) -> str: ...
    @property
    def created_at(self) -> float: ...


class Strategy(str, Enum):
    READER = "reader"  # the trained span reader (engine.reader), the default
    EXTRACTIVE = "extractive"  # copy-constrained decoding (the default)
    GENERATIVE = "generative"  # free decoding from a chat prompt (the naive baseline)


@dataclass(frozen=True)
class Citation:
    """A span of a source the answer was copied from (offsets into the file's text)."""

    source: int  # index into Answer.sources
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Evidence:
    """The sentence an answer was read from, quoted to the person with the answer marked.

    ``start``/``end`` are offsets of the sentence into the file's text (like a
    citation); ``answer_start``/``answer_end`` mark the answer inside ``text``
    (both 0 when the reader abstained and this is only the closest sentence).
    """

    source: int  # index into Answer.sources
    start: int
    end: int
    text: str
    answer_start: int = 0
    answer_end: int = 0


def certainty_words(probability: float | None) -> str:
    """How sure the reader is, in words a person reads at a glance.

    >>> certainty_words(0.93), certainty_words(0.6), certainty_words(0.2), certainty_words(None)
    ('sure', 'fairly sure', 'unsure', '')
    """
    if probability is None:
        return ""
    if probability >= 0.85:
        return "sure"
    if probability >= 0.5:
        return "fairly sure"
    return "unsure"


@dataclass
class Answer:
    """What :meth:`engine.Engine.ask` returns."""

    question: str
    text: str  # exactly what was streamed to on_token
    sources: list[Hit]  # the passages given to the model, best first
    cited: list[int]  # indices into sources the answer cites
    citations: list[Citation]
    abstained: bool
    answer_id: str  # uuid4 hex, stored with the answer so corrections can refer to it
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    confidence: float = 0.0  # mean log p of the answer tokens (0 when abstained early)
    retrieval_query: str = ""
    conversation_id: str | None = None
    tokens: int = 0
    # Set when the answer came from the person's own correction (correction memory);
    # ``sources`` then still lists the nearest passages.
    correction: CorrectionRef | None = None
    # Set (to the adapter version) when the adapted generator recalled the answer from
    # what it learned of the corrections (engine.learning.recall); 0 otherwise.
    adapter_version: int = 0
    # The sentence the answer came from (or, when abstaining, the closest one).
    evidence: Evidence | None = None
    # The reader's calibrated probability that the passages answer the question and
    # this span is the answer (None for the generator pipelines): see certainty_words.
    certainty: float | None = None

    @property
    def certainty_label(self) -> str:
        """How sure the reader is, in words ("sure", "fairly sure", "unsure"; "" if unknown)."""
        return certainty_words(self.certainty)
