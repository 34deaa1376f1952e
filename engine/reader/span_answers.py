"""Answers read by the span reader: the best span, its sentence, and whether to abstain.

The reader scores every span of the retrieved passages at once. Which passage's
best span answers, and whether any does, is the calibrated selection model's call
(``reader.json``, :class:`~engine.reader.model.Selection`): a logistic model of
that span's score, its margin over the passage's no-answer score and the
passage's retrieval cosine and rank, fitted on held-out third-party questions
(``bench/calibrate_reader.py``). The chosen span is the answer, cited to the
character, and the sentence holding it is quoted with the span marked. The old
word-coverage rule is a candidate feature there, kept only if it earns its place.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Sequence

from engine.generation import Generator, TokenCallback
from engine.library.retrieval import Hit
from engine.reader.answer import Answer, Citation, Evidence
from engine.reader.generator_answers import (
    abstain,
    pick_span,
    split_sentences,
    uncovered,
)
from engine.reader.model import ReaderGuess, Selection, Span, SpanReader


def read_answer(
    reader: SpanReader,
    question: str,
    hits: Sequence[Hit],
    *,
    on_token: TokenCallback | None = None,
    threshold: float | None = None,
    generator: Generator | None = None,
    rescore_weight: float = 0.0,
) -> Answer:
    """Answer ``question`` from ``hits`` with the span reader, or abstain.

    Args:
        reader: The loaded reader.
        question: What the person asked.
        hits: Retrieved passages, best first.
        on_token: Receives the answer text (in one piece: spans are not streamed).
        threshold: Answer when the calibrated probability reaches it; default the
            operating point in ``reader.json``.
        generator: With ``rescore_weight`` > 0, rescores the reader's best spans
            (:func:`rescore`); abstention still uses the selection model's rating.
        rescore_weight: Weight of the generator's PMI against the reader's score.

    Returns:
        The answer; ``certainty`` is the calibrated probability that the passages
        answer the question, ``evidence`` the sentence quoted (also when abstaining).
    """
    started = time.perf_counter()
    answer = Answer(question, "", list(hits), [], [], False, uuid.uuid4().hex)
    if not hits:
        return abstain(answer, on_token)
    guess = reader.read(question, [h.text for h in hits])
    answer.timings["read"] = time.perf_counter() - started
    if guess.best is None:
        return abstain(answer, on_token)
    selection = reader.config.selection
    chosen, probability = choose(selection, guess, hits, question)
    guess = guess.leading(chosen)
    answer.certainty = probability
    floor = threshold if threshold is not None else selection.threshold if selection else 0.0
    if probability < floor:
        answer.evidence = evidence_for(hits, guess.spans[0], mark=False)
        return abstain(answer, on_token)
    if generator is not None and rescore_weight > 0:
        guess = rescore(generator, question, hits, guess, weight=rescore_weight)
    best = guess.spans[0]
    hit = hits[best.passage]
    start = hit.start + best.start
    answer.text = best.text
    answer.citations.append(Citation(best.passage, start, start + len(best.text), best.text))
    answer.cited.append(best.passage)
    answer.evidence = evidence_for(hits, best, mark=True)
    answer.confidence = best.score
    answer.timings["first_token"] = answer.timings["generate"] = time.perf_counter() - started
    if on_token is not None:
        on_token(answer.text)
    return answer


def rescore(
    generator: Generator,
    question: str,
    hits: Sequence[Hit],
    guess: ReaderGuess,
    *,
    weight: float,
    top: int = 4,
) -> ReaderGuess:
    """Reorder the reader's best spans by reader score + ``weight`` x the generator's PMI.

    The generator scores each candidate as the answer to the question given the
    sentences the candidates come from (:func:`engine.reader.generator_answers.pick_span`'s PMI);
    a span the small model finds much likelier with the question than without it
    gains. ``weight`` is fitted on the calibration split (``bench/bench_reader.py
    --rescore``); 0 leaves the reader's order.
    """
    spans = guess.spans[:top]
    if weight <= 0 or len(spans) < 2:
        return guess
    quotes = [evidence_for(hits, s, mark=True) for s in spans]
    context, offsets = "", {}
    for ev in quotes:
        key = (ev.source, ev.start)
        if key not in offsets:
            offsets[key] = len(context)
            context += ev.text + " "
    ranges = [
        (
            offsets[(ev.source, ev.start)] + ev.answer_start,
            offsets[(ev.source, ev.start)] + ev.answer_end,
        )
        for ev in quotes
    ]
    prior = [s.score / weight for s in spans]
    best, _ = pick_span(generator, question, context, ranges, prior)
    order = [spans[best]] + [s for n, s in enumerate(spans) if n != best]
    return ReaderGuess(order + guess.spans[top:], guess.null_scores, guess.passage_best)


def choose(
    selection: Selection | None, guess: ReaderGuess, hits: Sequence[Hit], question: str = ""
) -> tuple[Span, float]:
    """The span to answer with and its calibrated probability of answering the question.

    Each passage's best span is rated by ``selection``; the highest rated wins.
    Without a selection model (an uncalibrated reader): the highest raw score, 1.0.
    """
    best = guess.best
    assert best is not None, "choose() needs a reading with at least one span"
    if selection is None:
        return best, 1.0
    shared = {}
    if "uncovered" in selection.features:
        shared["uncovered"] = uncovered(question, hits) if question else 0.0
    rated = [
        (selection.probability({**passage_features(guess, hits, span), **shared}), span)
        for span in guess.passage_best
        if span is not None
    ]
    probability, span = max(rated, key=lambda r: r[0])
    return span, probability


def passage_features(guess: ReaderGuess, hits: Sequence[Hit], span: Span) -> dict[str, float]:
    """What the selection model may use about one passage's best span.

    ``score`` and ``margin`` are the reader's (the span's start + end logits, and
    their lead over the passage's no-answer score); ``similarity``,
    ``similarity_gap`` (to the best passage's) and ``reciprocal_rank`` the
    retrieval's. A passage dense search did not see has similarity 0.
    """
    cosines = [h.similarity or 0.0 for h in hits]
    cosine = cosines[span.passage]
    return {
        "score": span.score,
        "margin": span.score - guess.null_scores[span.passage],
        "similarity": cosine,
        "similarity_gap": cosine - max(cosines),
        "reciprocal_rank": 1.0 / (span.passage + 1),
    }


_WRAPPED = re.compile(r"(?<=\S)\n(?=[^\s#>*+|-])")


def unwrap_lines(text: str) -> str:
    r"""``text`` with the line breaks of hard-wrapped paragraphs turned into spaces.

    Notes are often wrapped at 80 columns; a quoted sentence must not stop at a
    wrap. Blank lines, headings, lists, quotes and tables still break. Same length
    as ``text``, so offsets carry over.

    >>> unwrap_lines("Kenning reads text\nand PDFs.\n\n# Next\n- item")
    'Kenning reads text and PDFs.\n\n# Next\n- item'
    """
    return _WRAPPED.sub(" ", text)


def evidence_for(hits: Sequence[Hit], span: Span, *, mark: bool) -> Evidence:
    r"""The sentence of ``hits[span.passage]`` that holds the span (the span marked).

    A span across a sentence break quotes every sentence it touches.

    >>> from pathlib import Path
    >>> hit = Hit(Path("a.md"), 100, 140, "Rain fell. It was Ada Lovelace. Then sun.", 1.0, 1)
    >>> ev = evidence_for([hit], Span(0, 18, 30, "Ada Lovelace", 3.0), mark=True)
    >>> ev.text, ev.text[ev.answer_start : ev.answer_end], ev.start
    ('It was Ada Lovelace.', 'Ada Lovelace', 111)
    >>> hit = Hit(Path("a.md"), 0, 40, "Kenning reads text\nand PDFs. Not this.", 1.0, 1)
    >>> evidence_for([hit], Span(0, 24, 28, "PDFs", 3.0), mark=True).text
    'Kenning reads text\nand PDFs.'
    """
    hit = hits[span.passage]
    sentences = split_sentences(unwrap_lines(hit.text)) or [(0, len(hit.text))]
    touched = [(a, b) for a, b in sentences if a < span.end and b > span.start]
    a = min((s[0] for s in touched), default=span.start)
    b = max((s[1] for s in touched), default=span.end)
    a, b = min(a, span.start), max(b, span.end)
    text = hit.text[a:b]
    lo, hi = (span.start - a, span.end - a) if mark else (0, 0)
    return Evidence(span.passage, hit.start + a, hit.start + b, text, lo, hi)
