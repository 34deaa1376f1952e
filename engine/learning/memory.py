"""Layer 1, correction memory: a corrected fact answers its question at once.

Every correction's question is embedded twice with the engine's embedder: as
written, and with its named entities masked (``"Where was someone born?"``),
which isolates the *relation* asked about; its answer is embedded too. A
question is compared with every stored correction exactly (one NumPy matrix
product; an approximate index can miss a key added a moment ago), and a gate
decides whether one of the nearest applies:

1. A rule: every entity token (capitalised word or number) of the stored
   question must occur in the new one, so "Where was Pierre Curie born?" never
   triggers "Where was Marie Curie born?". Names that differ in any token name
   different things; a person who shortens a name loses the shortcut, and the
   generator answers instead (a miss costs less than a wrong trigger). And the
   two question words must not ask for different kinds of answer (who: a
   person, where: a place, when: a time, how many/much: an amount): MiniLM
   barely weighs the question word, so "Who founded Acme?" and "Where was Acme
   founded?" have a masked cosine of 0.93 and passed the gate at p = 0.99.
2. A logistic model over three features, ``p = sigmoid(w . f + b) >= threshold``:

   * ``cos_question``: cosine of the two questions (same subject *and* relation);
   * ``cos_relation``: cosine of the entity-masked questions, so "Where was Ada
     born?" does not trigger "What did Ada study?" although the subject matches;
   * ``answer_fit``: how much closer the corrected answer sits to the new masked
     question than to the stored one ("English" fits "Which language ..." and
     not "Where was someone born?").

Masking with "someone" separated paraphrases from same-subject near misses
better than "X" or dropping the names (ROC AUC 0.985 vs 0.957 and 0.920 on the
fixture's records). The weights were fitted by :func:`fit_gate` (gradient
descent on the mean log loss, L2 0.001, 8,000 steps) on the calibration split
of ``bench/data/edits_fixture.json`` (pairs that pass the rule): positives are
(question, itself or a paraphrase), negatives its hand-written near misses,
another record's paraphrase and unrelated QA-fixture questions. The threshold is
the lowest that lets at most 2% of calibration negatives through, counting the
pairs the rule rejects (there: 95.8% of the 72 positive pairs pass, 1.6% of the 192
negative pairs, whose 96 near misses include 48 added on 2026-12-01 after the test
split let 4 of 70 through; held out, that is now 1 of 70). ``python -m bench.bench_corrections
--calibrate`` refits and prints them; the benchmark reports the held-out split.

A newer correction *supersedes* an older one only when both state the same fact
(:meth:`CorrectionMemory.same_fact`): the same question word for word, or the same
names both ways and a gate probability of at least ``SUPERSEDE_THRESHOLD``, the
lowest at which no same-subject, other-relation pair of the calibration split gets
through. The gate alone is too loose for that: at its threshold it accepts some
other relations of one subject ("What is the occupation of X?" for "Who is the
employer of X?"), which is a tolerable miss-rank when both corrections are held
(the exact question still wins) but lost 31% of 1,000 corrections when each such
match replaced the older fact.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from engine.embedding import Embedder
from engine.learning.corrections import Correction

Matrix = NDArray[np.float32]

# Fitted on the calibration split of bench/data/edits_fixture.json (see module docstring).
GATE_WEIGHTS: tuple[float, ...] = (5.07, 7.85, 6.07)  # cos_question, cos_relation, answer_fit
GATE_BIAS: float = -8.35
GATE_THRESHOLD: float = 0.39
# A correction replaces an older one at or above this (same names required too).
SUPERSEDE_THRESHOLD: float = 0.95

# Capitalised words that start or fill questions without naming anything.
_FUNCTION_WORDS = frozenset(
    "a an and are as at be by can could did do does for from had has have how i if in "
    "is it its of on or tell the their there these this those to was we were what "
    "when where which who whom whose why will with would you your please".split()
)
_TOKEN = re.compile(r"[\w][\w'’.-]*")
# The kind of answer a question word asks for; "what", "which" and "how" ask for any.
_KINDS = {"who": "person", "whom": "person", "whose": "person", "where": "place"}
_KINDS |= {"when": "time", "why": "reason"}
_AMOUNT = re.compile(r"\bhow\s+(?:many|much)\b", re.IGNORECASE)


def entity_tokens(text: str) -> list[str]:
    """Lower-cased tokens that look like names: capitalised words and numbers.

    >>> entity_tokens("Where was Danielle Darrieux born in 1917?")
    ['danielle', 'darrieux', '1917']
    """
    out = []
    for match in _TOKEN.finditer(text):
        token = match.group().rstrip(".'’-")
        token = re.sub(r"['’]s$", "", token)
        if not token:
            continue
        lowered = token.lower()
        named = token[0].isupper() or any(ch.isdigit() for ch in token)
        if named and lowered not in _FUNCTION_WORDS:
            out.append(lowered)
    return out


def mask_entities(text: str) -> str:
    """The question with each run of entity tokens replaced by ``someone``.

    >>> mask_entities("What is the mother tongue of Danielle Darrieux?")
    'What is the mother tongue of someone?'
    """
    names = set(entity_tokens(text))

    def swap(match: re.Match[str]) -> str:
        token = re.sub(r"['’]s$", "", match.group().rstrip(".'’-"))
        return "\0" if token.lower() in names else match.group()

    masked = re.sub("\0(?:\\s+\0)*", "someone", _TOKEN.sub(swap, text))
    return masked


def answer_kind(text: str) -> str | None:
    """The kind of answer a question's first question word asks for, if it says.

    >>> answer_kind("Who founded Acme?"), answer_kind("In which city was Acme founded?")
    ('person', None)
    """
    if _AMOUNT.search(text):
        return "amount"
    for match in _TOKEN.finditer(text.lower()):
        word = match.group()
        if word in _KINDS or word in ("what", "which", "how"):
            return _KINDS.get(word)
    return None


def kinds_agree(stored: str, query: str) -> bool:
    """False when the two questions ask for different kinds of answer.

    >>> kinds_agree("Who founded Acme?", "Where was Acme founded?")
    False
    >>> kinds_agree("Where was Ada born?", "What is the birthplace of Ada?")
    True
    """
    a, b = answer_kind(stored), answer_kind(query)
    return a is None or b is None or a == b


def entity_overlap(stored: str, query: str) -> float:
    """Share of ``stored``'s entity tokens present in ``query`` (1.0 if it has none).

    >>> entity_overlap("Where was Ada Lovelace born?", "Ada Lovelace's birthplace?")
    1.0
    """
    wanted = set(entity_tokens(stored))
    if not wanted:
        return 1.0
    return len(wanted & set(entity_tokens(query))) / len(wanted)


def gate_probability(
    features: NDArray[np.float64],
    weights: Sequence[float] = GATE_WEIGHTS,
    bias: float = GATE_BIAS,
) -> NDArray[np.float64]:
    """Logistic gate over rows of (cos_question, cos_relation, answer_fit)."""
    z = features @ np.asarray(weights, dtype=np.float64) + bias
    return 1.0 / (1.0 + np.exp(-z))


def fit_gate(
    features: NDArray[np.float64],
    labels: NDArray[np.float64],
    *,
    steps: int = 8000,
    learning_rate: float = 1.0,
    l2: float = 0.001,
) -> tuple[tuple[float, ...], float]:
    """Fit the gate's logistic weights by gradient descent on the mean log loss.

    Args:
        features: (n, k) feature rows (see :func:`gate_probability`).
        labels: (n,) 1 where the correction applies, 0 where it must not.

    Returns:
        (weights, bias).

    >>> x = np.array([[0.9, 0.9, 1.0], [0.6, 0.3, 1.0], [0.7, 0.9, 0.0]])
    >>> w, b = fit_gate(x, np.array([1.0, 0.0, 0.0]))
    >>> bool(gate_probability(x, w, b)[0] > 0.5 > gate_probability(x, w, b)[1:].max())
    True
    """
    w = np.zeros(features.shape[1])
    b = 0.0
    n = len(labels)
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(features @ w + b)))
        err = p - labels
        w -= learning_rate * (features.T @ err / n + l2 * w)
        b -= learning_rate * float(err.mean())
    return tuple(float(v) for v in w), b


@dataclass(frozen=True)
class MemoryMatch:
    """A stored correction the gate judged to answer a question."""

    correction: Correction
    probability: float  # the gate's output
    cos_question: float
    cos_relation: float
    entities: float
    answer_fit: float


class CorrectionMemory:
    """The in-effect corrections, searched exactly; safe to share between threads.

    Args:
        embedder: The engine's embedder (questions are short; one call embeds both forms).
        weights, bias, threshold: The gate (defaults fitted on the fixture).
        supersede_threshold: The gate probability at which a new correction of the same
            names replaces a held one (see :meth:`same_fact`).
        candidates: Nearest stored questions the gate looks at per query.
    """

    def __init__(
        self,
        embedder: Embedder,
        *,
        weights: Sequence[float] = GATE_WEIGHTS,
        bias: float = GATE_BIAS,
        threshold: float = GATE_THRESHOLD,
        supersede_threshold: float = SUPERSEDE_THRESHOLD,
        candidates: int = 8,
    ) -> None:
        self._embedder = embedder
        self.weights = tuple(weights)
        self.bias = bias
        self.threshold = threshold
        self.supersede_threshold = supersede_threshold
        self.candidates = candidates
        self._lock = threading.Lock()
        self._items: list[Correction] = []
        self._questions: Matrix = np.zeros((0, embedder.dim), dtype=np.float32)
        self._relations: Matrix = np.zeros((0, embedder.dim), dtype=np.float32)
        self._answers: Matrix = np.zeros((0, embedder.dim), dtype=np.float32)
        self._fits: NDArray[np.float32] = np.zeros(0, dtype=np.float32)  # cos(answer, relation)

    def __len__(self) -> int:
        return len(self._items)

    def add(self, corrections: Sequence[Correction], *, vectors: Matrix | None = None) -> Matrix:
        """Hold corrections (a batch at start-up, one per ``record_correction``).

        Args:
            corrections: What to hold.
            vectors: Their rows as returned by an earlier ``add`` (a cache); embedded
                here when None.

        Returns:
            One row per correction: question, masked question and answer embeddings
            side by side, ready to cache.
        """
        dim = self._embedder.dim
        if not corrections:
            return np.zeros((0, 3 * dim), dtype=np.float32)
        n = len(corrections)
        if vectors is None:
            texts = [c.question for c in corrections]
            masked = [mask_entities(t) for t in texts]
            flat = self._embedder.embed([*texts, *masked, *(c.answer for c in corrections)])
            vectors = np.hstack([flat[:n], flat[n : 2 * n], flat[2 * n :]])
        if vectors.shape != (n, 3 * dim):
            raise ValueError(f"expected ({n}, {3 * dim}) vectors, got {vectors.shape}")
        questions, relations, answers = (
            vectors[:, :dim],
            vectors[:, dim : 2 * dim],
            vectors[:, 2 * dim :],
        )
        fits = np.einsum("ij,ij->i", answers, relations).astype(np.float32)
        with self._lock:
            self._items.extend(corrections)
            self._questions = np.vstack([self._questions, questions])
            self._relations = np.vstack([self._relations, relations])
            self._answers = np.vstack([self._answers, answers])
            self._fits = np.concatenate([self._fits, fits])
        return vectors

    def remove(self, correction_ids: Sequence[int]) -> None:
        """Drop corrections (forgotten or superseded); unknown ids are ignored."""
        drop = set(correction_ids)
        with self._lock:
            keep = [i for i, c in enumerate(self._items) if c.id not in drop]
            self._items = [self._items[i] for i in keep]
            self._questions = self._questions[keep]
            self._relations = self._relations[keep]
            self._answers = self._answers[keep]
            self._fits = self._fits[keep]

    def ids(self) -> list[int]:
        with self._lock:
            return [c.id for c in self._items]

    def matches(self, question: str) -> list[MemoryMatch]:
        """Every nearby correction the gate accepts for ``question``, most likely first.

        Ties (two stored questions of the same fact) go to the newer correction.
        """
        query = self._embedder.embed([question, mask_entities(question)])
        with self._lock:
            if not self._items:
                return []
            cos_q = self._questions @ query[0]
            k = min(self.candidates, len(self._items))
            nearest = np.argpartition(-cos_q, k - 1)[:k]
            cos_r = self._relations[nearest] @ query[1]
            fit = self._answers[nearest] @ query[1] - self._fits[nearest]
            items = [self._items[i] for i in nearest]
        ents = np.array([entity_overlap(c.question, question) for c in items])
        kinds = np.array([kinds_agree(c.question, question) for c in items])
        features = np.column_stack([cos_q[nearest], cos_r, fit]).astype(np.float64)
        probs = gate_probability(features, self.weights, self.bias) * (ents >= 1.0) * kinds
        found = [
            MemoryMatch(c, float(p), float(f[0]), float(f[1]), float(e), float(f[2]))
            for c, p, f, e in zip(items, probs, features, ents, strict=True)
            if p >= self.threshold
        ]
        found.sort(key=lambda m: (-round(m.probability, 3), -m.correction.created_at))
        return found

    def lookup(self, question: str) -> MemoryMatch | None:
        """The correction that answers ``question``, or None when none applies."""
        found = self.matches(question)
        return found[0] if found else None

    def same_fact(self, question: str) -> list[MemoryMatch]:
        """The held corrections a new correction of ``question`` replaces.

        Stricter than :meth:`matches`: the same question (ignoring case, spacing and
        end punctuation), or the same names both ways and a gate probability of at
        least ``supersede_threshold``. Other relations of one subject stay held.
        """
        names = set(entity_tokens(question))
        return [
            m
            for m in self.matches(question)
            if normalized_question(m.correction.question) == normalized_question(question)
            or (
                m.probability >= self.supersede_threshold
                and set(entity_tokens(m.correction.question)) == names
            )
        ]

    def features(self, stored: Correction, question: str) -> tuple[float, float, float, float]:
        """(cos_question, cos_relation, rule, answer_fit) of a stored correction for a
        question: the gate's features and its rule (1.0 when :func:`rule_passes`, else the
        share of stored names present, 0 when the answer kinds differ) for calibration."""
        texts = [stored.question, question, mask_entities(stored.question)]
        v = self._embedder.embed([*texts, mask_entities(question), stored.answer])
        fit = float(v[4] @ v[3]) - float(v[4] @ v[2])
        rule = entity_overlap(stored.question, question)
        return (
            float(v[0] @ v[1]),
            float(v[2] @ v[3]),
            rule if kinds_agree(stored.question, question) else 0.0,
            fit,
        )


def normalized_question(question: str) -> str:
    """A question ignoring case, spacing and end punctuation (same question, same key)."""
    return " ".join(question.casefold().split()).rstrip(" ?.!")
