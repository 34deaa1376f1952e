"""Grounded answers: numbered sources in a prompt, copy-constrained decoding, abstention.

The bundled 135M model paraphrases and invents when asked to chat over sources
(token F1 about 0.1 on the QA fixture). It is much better at *choosing* a span:
decoding is constrained so every answer token continues a run of tokens that
occurs verbatim in one of the sources (Lee et al.'s copy idea, done with a
constraint instead of a copy head). The model still decides where the span
starts and when it stops, greedily under its own p(y | q, d); the span it
copied is the citation, with exact character offsets into the file.

Abstention comes before any generation: when no passage is similar enough to
the question (cosine of the embeddings, a threshold calibrated on the fixture),
the answer says the documents do not say it and still lists the nearest passages.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from engine.generation import Generator, TokenCallback
from engine.library.retrieval import Hit
from engine.reader.answer import NOT_FOUND, Answer, Citation, Strategy

# Candidates are scored on at most this many tokens: answers are short phrases.
MAX_ANSWER_TOKENS = 24
# Nats added to the PMI of spans from the sentence that shares most words with the
# question. The small model often prefers a fluent span of the runner-up sentence;
# on the QA fixture's 12 calibration articles (109 answerable questions) a bonus of
# 0 / 2 / 5 / 8 / 20 gave F1 0.386 / 0.438 / 0.454 / 0.454 / 0.449 and the cited
# passage held the answer for 0.817 / 0.908 / 0.936 / 0.945 / 0.945: the middle of
# the plateau is kept. A runner-up span still wins when the model is sure of it.
TOP_SENTENCE_BONUS = 8.0

EXTRACTIVE_SYSTEM = "Answer with a short phrase copied from the context."
CHAT_SYSTEM = "Answer the question using the numbered sources. Be brief."


@dataclass(frozen=True)
class Prompt:
    """A prompt built at token level, so each source's tokens are known exactly."""

    ids: list[int]
    sources: list[Hit]  # the hits that fit, in prompt order ([1], [2], ...)
    source_ids: list[list[int]]  # each source's own tokens as they appear in ids
    source_offsets: list[list[tuple[int, int]]]  # per token: char span in hit.text


# -- conversation ------------------------------------------------------------------------
_FOLLOW_UP = re.compile(
    r"\b(it|its|it's|he|him|his|she|her|hers|they|them|their|this|that|these|those|"
    r"there|then|the same|also|one|ones)\b",
    re.IGNORECASE,
)


def is_follow_up(question: str) -> bool:
    """Whether a question leans on the previous turn (a pronoun, or very short).

    >>> is_follow_up("When was he born?"), is_follow_up("When was Huxley born?")
    (True, False)
    """
    return bool(_FOLLOW_UP.search(question)) or len(question.split()) <= 3


def condense_query(question: str, previous_question: str | None, previous_answer: str = "") -> str:
    """The retrieval query for a question, with the previous turn folded in when needed.

    >>> condense_query("Where did he die?", "Who wrote Brave New World?", "Aldous Huxley")
    'Who wrote Brave New World? Aldous Huxley Where did he die?'
    >>> condense_query("Where did Huxley die?", "Who wrote Brave New World?")
    'Where did Huxley die?'
    """
    if not previous_question or not is_follow_up(question):
        return question
    return " ".join(p for p in (previous_question, previous_answer, question) if p)


# -- prompt --------------------------------------------------------------------------------
def fit_budget(lengths: Sequence[int], budget: int, *, min_tokens: int = 32) -> list[int]:
    """Tokens to keep of each source, best first, so that the total stays within budget.

    Whole sources are kept while they fit; the first that does not is cut to what
    is left (if at least ``min_tokens``), and the rest are dropped.

    >>> fit_budget([100, 100, 100], 250)
    [100, 100, 50]
    >>> fit_budget([100, 100], 120)
    [100]
    """
    kept: list[int] = []
    left = budget
    for length in lengths:
        if length <= left:
            kept.append(length)
            left -= length
            continue
        if left >= min_tokens:
            kept.append(left)
        break
    return kept


def build_prompt(
    generator: Generator,
    question: str,
    hits: Sequence[Hit],
    *,
    budget: int,
) -> Prompt:
    """Number the sources and fit them into ``budget`` tokens, best first.

    The chat template is rendered around a marker, and each source is tokenized
    on its own, so the model sees exactly the tokens the copy constraint allows.
    """
    system = CHAT_SYSTEM
    marker = "\x00SOURCES\x00"
    rendered = generator.tokenizer.apply_chat_template(
        [
            {"role": "system", "content": system},
            {"role": "user", "content": f"{marker}\nQuestion: {question}"},
        ],
        add_generation_prompt=True,
        tokenize=False,
    )
    head, tail = str(rendered).split(marker)
    encoded = [
        generator.tokenizer(h.text.strip(), add_special_tokens=False, return_offsets_mapping=True)
        for h in hits
    ]
    lead = [len(h.text) - len(h.text.lstrip()) for h in hits]
    keep = fit_budget([len(e["input_ids"]) for e in encoded], budget)
    ids = generator.encode(head)
    source_ids: list[list[int]] = []
    offsets: list[list[tuple[int, int]]] = []
    for n, count in enumerate(keep):
        ids += generator.encode(f"[{n + 1}] ")
        toks = list(encoded[n]["input_ids"][:count])
        source_ids.append(toks)
        offsets.append(
            [(a + lead[n], b + lead[n]) for a, b in encoded[n]["offset_mapping"][:count]]
        )
        ids += toks + generator.encode("\n\n")
    ids += generator.encode(tail)
    return Prompt(ids, list(hits[: len(keep)]), source_ids, offsets)


# -- sentence selection --------------------------------------------------------------------
_STOPWORDS = frozenset(
    "a an the of in on at to for from by with and or is are was were be been being do does "
    "did what which who whom whose when where why how that this these those it its as into "
    "than then there their they he she his her has have had can could would should will not "
    "about after before during many much one".split()
)
_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+[\"')\]]*|$)")
# A full stop after these does not end a sentence ("Dr. Molar", "St. Louis", "e.g. this").
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st mt jr sr vs etc e.g i.e no nos inc ltd co corp gen gov sen rep "
    "lt col capt sgt fr rev approx ca fig vol op jan feb mar apr jun jul aug sep sept oct "
    "nov dec u.s u.k".split()
)


def split_sentences(text: str) -> list[tuple[int, int]]:
    r"""Character spans of the sentences in ``text`` (headings and lines count as one).

    A full stop inside a number or an abbreviation, after an initial, or before a
    lower-case word does not end a sentence.

    >>> split_sentences("One. Two is here!\n# Head")
    [(0, 4), (5, 17), (18, 24)]
    >>> split_sentences("# Dr.\nnotes here")  # a line break always ends one
    [(0, 5), (6, 16)]
    >>> text = "It cost 3.5 million in the U.S. in 1999. Dr. Molar, J. R. Smith et al. agreed."
    >>> [text[a:b] for a, b in split_sentences(text)]
    ['It cost 3.5 million in the U.S. in 1999.', 'Dr. Molar, J. R. Smith et al. agreed.']
    """
    spans: list[tuple[int, int]] = []
    glued = False  # the previous piece ended with a full stop that ends no sentence
    for m in _SENTENCE.finditer(text):
        a, b = m.start(), m.end()
        while a < b and text[a].isspace():
            a += 1
        if b <= a:
            continue
        prev = spans[-1] if spans else None
        if (
            prev is not None
            and text[prev[1] - 1] == "."  # not ! or ?, not a line without a stop
            and "\n" not in text[prev[1] : a]
            and (glued or a == prev[1] or text[a].islower() or text[a].isdigit())
        ):
            spans[-1] = (prev[0], b)
        else:
            spans.append((a, b))
        glued = _stop_is_not_an_end(text[spans[-1][0] : b])
    return spans


def _stop_is_not_an_end(sentence: str) -> bool:
    """Whether ``sentence`` ends in a full stop of an abbreviation or an initial."""
    stripped = sentence.rstrip()
    if not stripped.endswith("."):
        return False
    words = stripped[:-1].split()
    if not words:
        return False
    last = words[-1].lower().lstrip("(\"'")
    return last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha()) or last == "al"


def content_words(text: str) -> set[str]:
    """Lower-cased words minus stopwords and a possessive 's, cut to 5 letters (a crude stemmer).

    (Snowball stems were tried instead: they changed which sentences were picked and
    F1 fell from 0.42 to 0.38 on the calibration articles.)

    >>> sorted(content_words("Who popularized the term droids? Dwan's"))
    ['droid', 'dwan', 'popul', 'term']
    """
    words = (re.sub(r"'s?$", "", w) for w in re.findall(r"[\w'-]+", text.lower()))
    return {w[:5] for w in words if w and w not in _STOPWORDS}


# Words that frame a question's answer type rather than its subject ("In what *year*
# did ...", "What *kind* of ..."): passages rarely repeat them, so they do not count
# against a passage's coverage of the question.
_FRAME = frozenset(
    w[:5]
    for w in "year years kind type sort name named called call mean means meaning begin began "
    "start started end ended also used use uses old city country place date time number "
    "percent wrote written go went come came take took make made besides around while now "
    "often first".split()
)
# "How long/far/tall ..." asks for a measure; the adjective names the kind of answer
# ("twenty minutes"), which the passage need not repeat.
_HOW_MEASURE = re.compile(
    r"\bhow\s+(?:long|far|tall|high|large|big|wide|deep|heavy|fast|late|early|soon)\b",
    re.IGNORECASE,
)


def uncovered(question: str, hits: Sequence[Hit]) -> float:
    """Share of the question's content words that none of the passages mention.

    SQuAD v2-style unanswerable questions are on topic (retrieval finds the right
    article) but ask about something the text does not state: "imports" where it
    says exports, a prize nobody won. A word of the question missing from every
    passage is the cheapest sign of that; on the QA fixture's calibration articles
    it separates answerable from unanswerable questions far better than cosine.

    >>> from pathlib import Path
    >>> hit = Hit(Path("a.md"), 0, 30, "In 2004 exports were worth $2 billion.", 1.0, 1)
    >>> uncovered("How much were exports worth in 2004?", [hit])
    0.0
    >>> uncovered("How much were imports worth in 2004?", [hit])
    0.3333333333333333
    >>> uncovered("How long were exports worth $2 billion?", [hit])
    0.0
    """
    wanted = content_words(_HOW_MEASURE.sub(" how ", question)) - _FRAME
    if not wanted:
        return 0.0
    seen: set[str] = set()
    for hit in hits:
        seen |= content_words(hit.text + " " + " ".join(hit.heading_path))
    missing = [w for w in wanted - seen if not _stem_seen(w, seen)]
    return len(missing) / len(wanted)


def _stem_seen(word: str, seen: set[str]) -> bool:
    """Whether a 5-letter stem is seen under a longer or shorter cut ("land" in "lande")."""
    return len(word) >= 4 and any(
        len(s) >= 4 and (s.startswith(word) or word.startswith(s)) for s in seen
    )


def rank_sentences(question: str, hits: Sequence[Hit]) -> list[tuple[float, int, int, int]]:
    """Sentences of the hits by shared content words with the question, best first.

    Returns (score, hit index, start, end) with offsets into ``hits[i].text``; a
    small bonus for better-ranked hits breaks ties.
    """
    wanted = content_words(question)
    ranked = []
    for i, hit in enumerate(hits):
        for a, b in split_sentences(hit.text):
            sentence = hit.text[a:b]
            if sentence.lstrip().startswith("#"):
                continue
            shared = len(wanted & content_words(sentence))
            ranked.append((shared + 0.3 / (i + 1), i, a, b))
    ranked.sort(key=lambda r: -r[0])
    return ranked


# -- answering -----------------------------------------------------------------------------
def best_similarity(hits: Sequence[Hit]) -> float:
    """The highest query-passage cosine among hits (0 when dense search saw none).

    >>> from pathlib import Path
    >>> best_similarity([Hit(Path("a"), 0, 1, "a", 1.0, 1, similarity=0.4)])
    0.4
    """
    return max((h.similarity for h in hits if h.similarity is not None), default=0.0)


_WORD = re.compile(r"\S+")
# Words trimmed from both ends of a candidate: function words and discourse
# connectives ("However", "such as", "because") that no short answer starts or ends with.
_EDGE = _STOPWORDS | frozenset(
    "since however but so although though while whereas thus therefore including "
    "such particularly especially yet still even both either neither like via per".split()
)


def candidate_spans(question: str, sentence: str) -> list[tuple[int, int]]:
    """Answer candidates in a sentence: runs of words cut at question words and punctuation.

    SQuAD-style answers almost never repeat the question's words, so the text
    between them, trimmed of function words at both ends, holds the answer.
    (Measured and dropped: offering each run's pieces between function words, and
    cutting runs at clause words such as "which" and "because"; the model then
    prefers short fragments, and F1 fell from 0.42 to 0.30 and 0.40.)

    >>> s = 'The term "droid", popularized by George Lucas, is a trademark.'
    >>> [s[a:b] for a, b in candidate_spans('Who popularized the term "droid"?', s)]
    ['George Lucas', 'trademark']
    >>> s = "It is on Tuesday with Dr. Molar."
    >>> [s[a:b] for a, b in candidate_spans("When is it?", s)]
    ['Tuesday with Dr. Molar']
    >>> s = "However, he read engineering (at Notre Dame)."
    >>> [s[a:b] for a, b in candidate_spans("What did he read?", s)]
    ['engineering', 'Notre Dame']
    """
    banned = content_words(question)
    runs: list[list[tuple[int, int]]] = [[]]
    for m in _WORD.finditer(sentence):
        token, word = m.group(), _bare(m.group())
        if token.startswith("(") and runs[-1]:
            runs.append([])
        if not word or word[:5] in banned:
            runs.append([])
            continue
        runs[-1].append((m.start(), m.end()))
        if token.endswith((",", ";", ":", ".", ")")) and not _stop_is_not_an_end(token):
            runs.append([])  # "Dr." or "U.S." goes on: "Dr. Molar", "U.S. Navy"
    spans: list[tuple[int, int]] = []
    for run in runs:
        _add_span(sentence, run, spans)
    return spans


def _add_span(sentence: str, run: list[tuple[int, int]], spans: list[tuple[int, int]]) -> None:
    """Trim ``run`` (word spans) of edge words and quotes; add it unless empty or known."""
    lo, hi = 0, len(run)
    while lo < hi and _bare(sentence[run[lo][0] : run[lo][1]]) in _EDGE:
        lo += 1
    while hi > lo and _bare(sentence[run[hi - 1][0] : run[hi - 1][1]]) in _EDGE:
        hi -= 1
    if lo == hi:
        return
    a, b = run[lo][0], run[hi - 1][1]
    while a < b and sentence[a] in "\"'([“":
        a += 1
    while b > a and sentence[b - 1] in ",;:.!?)]\"'”":
        b -= 1
    if b > a and (a, b) not in spans:
        spans.append((a, b))


# Expected answer types, read off the question; a candidate of the right type wins
# over any of the wrong one ("In what year ..." is never answered with a name).
_ASKS_DATE = re.compile(r"\b(what|which) (year|decade|century|month|date)\b|^when\b", re.I)
_ASKS_NUMBER = re.compile(
    r"\bhow (many|much|long|old|far|large|big|tall|high|often|deep|wide|heavy|fast)\b|"
    r"\bwhat (percentage|percent|share|proportion|number|fraction|amount)\b",
    re.I,
)
_DATE = re.compile(
    r"\b\d{3,4}s?\b|\b\d+(st|nd|rd|th)\b|\b(january|february|march|april|may|june|july|"
    r"august|september|october|november|december|century|centuries)\b",
    re.I,
)
_NUMBER = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|"
    r"forty|fifty|hundred|hundreds|thousand|thousands|million|millions|billion|dozen|half|"
    r"several|few)\b",
    re.I,
)


def typed_candidates(question: str, texts: Sequence[str]) -> list[int]:
    """Indices of the candidates whose type fits the question; all of them if none fit.

    >>> typed_candidates("In what year did UTC begin?", ["atomic clocks", "1960", "Paris"])
    [1]
    >>> typed_candidates("How many moons has Mars?", ["red", "the planet"])
    [0, 1]
    """
    question = question.strip()
    for asks, fits in ((_ASKS_DATE, _DATE), (_ASKS_NUMBER, _NUMBER)):
        if asks.search(question):
            typed = [i for i, text in enumerate(texts) if fits.search(text)]
            return typed or list(range(len(texts)))
    return list(range(len(texts)))


def _bare(word: str) -> str:
    return re.sub(r"[^\w'-]", "", word).lower()


def extractive_prompt(generator: Generator, context: str, question: str) -> list[int]:
    """The chat prompt whose answer is scored (an empty question gives the PMI baseline)."""
    return generator.chat_ids(
        [
            {"role": "system", "content": EXTRACTIVE_SYSTEM},
            {"role": "user", "content": f"Context: {context}\nQuestion: {question}"},
        ]
    )


def pick_span(
    generator: Generator,
    question: str,
    context: str,
    spans: Sequence[tuple[int, int]],
    prior: Sequence[float] | None = None,
) -> tuple[int, float]:
    """The candidate with the highest pointwise mutual information with the question.

    PMI = log p(y, end | q, d) - log p(y, end | d): the model's own likelihood
    of the answer, minus how likely the span is with no question at all, which
    cancels the small model's taste for short, common words ("1", "The").
    ``prior`` (nats per span, e.g. :data:`TOP_SENTENCE_BONUS`) is added before
    the pick.

    Returns:
        (index of the best span, its PMI in nats, without the prior).
    """
    end = generator.end_ids
    ys = [generator.encode(context[a:b].strip())[:MAX_ANSWER_TOKENS] + end for a, b in spans]
    with_q = generator.score_batch(extractive_prompt(generator, context, question), ys)
    without = generator.score_batch(extractive_prompt(generator, context, ""), ys)
    pmi = [w - b for w, b in zip(with_q, without, strict=True)]
    bonus = list(prior) if prior is not None else [0.0] * len(spans)
    best = max(range(len(spans)), key=lambda i: pmi[i] + bonus[i])
    return best, pmi[best]


def answer_from_hits(
    generator: Generator,
    question: str,
    hits: Sequence[Hit],
    *,
    budget: int,
    max_new_tokens: int,
    min_similarity: float,
    max_uncovered: float = 1.0,
    strategy: Strategy = Strategy.EXTRACTIVE,
    sentences: int = 2,
    beams: int = 4,
    on_token: TokenCallback | None = None,
) -> Answer:
    """Answer ``question`` from retrieved ``hits`` (retrieval and storage are the caller's).

    Extractive: the ``sentences`` sentences sharing most words with the question
    become the context, and of their candidate spans the one with the highest PMI
    with the question (:func:`pick_span`) wins, spans of the best-matching sentence
    getting :data:`TOP_SENTENCE_BONUS` nats.

    Args:
        generator: The loaded language model.
        question: What the person asked.
        hits: Retrieved passages, best first.
        budget: Most prompt tokens spent on sources.
        max_new_tokens: Most answer tokens.
        min_similarity: Abstain without generating when no hit's cosine reaches it.
        max_uncovered: Abstain when a larger share of the question's content words
            appears in none of the hits (see :func:`uncovered`); 1.0 never does.
        strategy: Copy-constrained extraction, or free generation (the baseline).
        sentences: Sentences handed to the model in extractive mode.
        beams: Beam width of the extractive search; 1 decodes greedily and streams.
        on_token: Receives the answer text piece by piece.

    Returns:
        The answer with citations; ``answer_id`` is fresh, timings hold "prompt",
        "first_token" and "generate" in seconds.
    """
    started = time.perf_counter()
    answer = Answer(question, "", list(hits), [], [], False, uuid.uuid4().hex)
    if not hits or best_similarity(hits) < min_similarity:
        return abstain(answer, on_token)
    if uncovered(question, hits) > max_uncovered:
        return abstain(answer, on_token)
    if strategy is Strategy.GENERATIVE:
        return _generate(generator, answer, budget, max_new_tokens, on_token, started)
    ranked = rank_sentences(question, hits)[:sentences]
    top = ranked[0][1:] if ranked else None
    picked = sorted(ranked, key=lambda r: (r[1], r[2]))  # in reading order
    context, pieces = "", []  # pieces: (offset in context, hit index, offset in hit.text)
    spans: list[tuple[int, int]] = []
    prior: list[float] = []
    for _, i, a, b in picked:
        pieces.append((len(context), i, a))
        found = candidate_spans(question, hits[i].text[a:b])
        spans += [(len(context) + x, len(context) + y) for x, y in found]
        prior += [TOP_SENTENCE_BONUS if (i, a, b) == top else 0.0] * len(found)
        context += hits[i].text[a:b] + " "
    answer.timings["prompt"] = time.perf_counter() - started
    if not spans:
        return abstain(answer, on_token)
    keep = typed_candidates(question, [context[a:b] for a, b in spans])
    spans, prior = [spans[n] for n in keep], [prior[n] for n in keep]
    best, pmi = pick_span(generator, question, context, spans, prior)
    answer.timings["first_token"] = answer.timings["generate"] = time.perf_counter() - started
    a, b = spans[best]
    p0, i, s0 = max((p for p in pieces if p[0] <= a), key=lambda p: p[0])
    start = hits[i].start + s0 + (a - p0)
    answer.text = context[a:b]
    answer.confidence = pmi
    answer.citations.append(Citation(i, start, start + (b - a), answer.text))
    answer.cited.append(i)
    if on_token is not None:
        on_token(answer.text)
    return answer


def abstain(answer: Answer, on_token: TokenCallback | None) -> Answer:
    """Make ``answer`` the "documents do not say" answer (its sources stay)."""
    answer.abstained = True
    answer.text = NOT_FOUND
    if on_token is not None:
        on_token(NOT_FOUND)
    return answer


def _generate(
    generator: Generator,
    answer: Answer,
    budget: int,
    max_new_tokens: int,
    on_token: TokenCallback | None,
    started: float,
) -> Answer:
    """The naive baseline: numbered sources in a chat prompt, free greedy decoding."""
    prompt = build_prompt(generator, answer.question, answer.sources, budget=budget)
    answer.sources = prompt.sources
    answer.timings["prompt"] = time.perf_counter() - started
    decoded = generator.decode(prompt.ids, max_new_tokens=max_new_tokens, on_token=on_token)
    answer.timings["first_token"] = decoded.first_token_s
    answer.timings["generate"] = decoded.seconds
    answer.text = decoded.text
    answer.tokens = len(decoded.tokens)
    if decoded.logprobs:
        answer.confidence = sum(decoded.logprobs) / len(decoded.logprobs)
    needle = decoded.text.strip().rstrip(".").lower()
    for n, hit in enumerate(prompt.sources):
        at = hit.text.lower().find(needle) if needle else -1
        if at >= 0:
            text = hit.text[at : at + len(needle)]
            answer.citations.append(Citation(n, hit.start + at, hit.start + at + len(text), text))
            answer.cited.append(n)
            break
    return answer
