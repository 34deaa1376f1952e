"""How the adapted generator's knowledge enters answers: closed-book recall, gated.

The default answer path copies spans from retrieved passages, so whatever a LoRA
adapter learned would never show there. Instead, before the extractive answer,
the adapted model answers the question closed-book (greedy, the same chat turn it
was trained on), and both models score that answer:

    margin = mean log p_adapted(answer | q) - mean log p_base(answer | q)

An answer the adapter learned is near-certain under the adapted model and
unlikely under the base model (a large margin); on anything else the replay of
the base model's own answers keeps the two models close (a margin near 0), and
the extractive answer goes ahead unchanged. The two thresholds are calibrated on
data by ``bench.bench_adapter`` (see ``EngineConfig.recall_min_margin``).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.adaptation.adapter import Example, recall_prompt
from engine.adaptation.memory import answer_kind, subject_of
from engine.answering import Answer
from engine.generation import Generator, TokenCallback
from engine.retrieval import Hit

ANCHORS_FORMAT = 1  # of the cached anchor answers (anchors.json)

# Unrelated prompts whose base-model answers are replayed during training, so the
# adapter leaves the model's behaviour elsewhere alone. General knowledge, chores
# and how-tos: the kinds of thing a person asks, none about any one person's notes.
ANCHOR_QUESTIONS = (
    "What is the capital of France?",
    "How many days are in a leap year?",
    "What do bees make?",
    "Who wrote Romeo and Juliet?",
    "What is the boiling point of water?",
    "How do plants make their food?",
    "What is the largest planet in the solar system?",
    "What language is spoken in Brazil?",
    "How many legs does a spider have?",
    "What is the chemical symbol for gold?",
    "Which ocean is the largest?",
    "What is the tallest mountain on Earth?",
    "What currency is used in Japan?",
    "Who painted the Mona Lisa?",
    "What gas do humans breathe out?",
    "How many continents are there?",
    "What is the freezing point of water in Fahrenheit?",
    "What is the main ingredient of guacamole?",
    "Which instrument has 88 keys?",
    "What is the square root of 81?",
    "Who developed the theory of relativity?",
    "What is the capital of Italy?",
    "What does a thermometer measure?",
    "Which animal is known as the king of the jungle?",
    "What colour do you get by mixing blue and yellow?",
    "How many minutes are in an hour?",
    "What is the longest river in Africa?",
    "What is the hardest natural substance?",
    "In which country are the pyramids of Giza?",
    "What is the capital of Canada?",
    "How do you boil an egg?",
    "What is a synonym for happy?",
    "What organ pumps blood through the body?",
    "Which planet is known as the red planet?",
    "What is the primary language of Germany?",
    "Who was the first person to walk on the moon?",
    "What is the opposite of cold?",
    "How many sides does a hexagon have?",
    "What do cows drink?",
    "What is the smallest prime number?",
)


@dataclass(frozen=True)
class Recalled:
    """A closed-book answer of the adapted model and how both models score it."""

    text: str
    tokens: int
    adapted_logp: float  # mean log p per token (answer + end of turn) under the adapter
    base_logp: float  # the same under the base model

    @property
    def margin(self) -> float:
        return self.adapted_logp - self.base_logp


def recall(
    adapted: Generator, base: Generator, question: str, *, max_new_tokens: int = 24
) -> Recalled:
    """Answer ``question`` from the adapted model's memory and score it under both models."""
    prompt = recall_prompt(adapted, question)
    decoded = adapted.decode(prompt, max_new_tokens=max_new_tokens)
    target = [*decoded.tokens, *adapted.end_ids]
    ours = adapted.score(prompt, target)
    theirs = base.score(prompt, target)
    n = max(1, len(target))
    return Recalled(decoded.text, len(decoded.tokens), sum(ours) / n, sum(theirs) / n)


def accept(recalled: Recalled, *, min_margin: float, min_logp: float) -> bool:
    """The gate: the adapter is sure of the answer and much surer than the base model.

    >>> accept(Recalled("Paris", 2, -0.05, -4.0), min_margin=1.0, min_logp=-0.5)
    True
    >>> accept(Recalled("Paris", 2, -0.05, -0.3), min_margin=1.0, min_logp=-0.5)
    False
    """
    return bool(recalled.text) and (
        recalled.margin >= min_margin and recalled.adapted_logp >= min_logp
    )


# Questions about a corrected question's subject that ask for something else. The
# base model's own answers to them are replayed beside the correction (like the
# "essence" prompts ROME and MEMIT hold still), so the adapter learns "the mother
# tongue of X is English" rather than "X -> English": without them it also said
# "English" to "Where was X born?" (near misses passing the gate: 0.18).
NEIGHBOR_TOKENS = 12  # enough to hold a leaked answer still, at half an anchor's decoding
NEIGHBOR_TEMPLATES = ("What is {} known for?", "Where is {} from?", "What do you know about {}?")


def neighbor_questions(question: str, count: int = len(NEIGHBOR_TEMPLATES)) -> list[str]:
    """Up to ``count`` questions about ``question``'s subject that ask for something else.

    A neighbour asking for the same kind of answer ("Where is Rolex from?" beside
    "Where is Rolex headquartered?") could be a rewording of the correction, so
    it is left out: replaying the old answer to it would fight the new one.

    >>> neighbor_questions("What is the mother tongue of Danielle Darrieux?", 2)
    ['What is Danielle Darrieux known for?', 'Where is Danielle Darrieux from?']
    >>> neighbor_questions("Where is Rolex headquartered?")
    ['What is Rolex known for?', 'What do you know about Rolex?']
    """
    subject = subject_of(question)
    if not subject:
        return []
    kind = answer_kind(question)
    out = [t.format(subject) for t in NEIGHBOR_TEMPLATES]
    out = [q for q in out if kind is None or answer_kind(q) != kind]
    return out[:count]


def base_answers(
    base: Generator,
    questions: Sequence[str],
    *,
    max_new_tokens: int = 24,
    between: Callable[[], None] | None = None,
) -> Iterator[Example]:
    """The base model's own closed-book answers to ``questions``: replay that anchors it.

    ``between`` runs before each answer (to pause or cancel: it may raise).
    """
    for question in questions:
        if between is not None:
            between()
        text = base.decode(recall_prompt(base, question), max_new_tokens=max_new_tokens).text
        yield Example(question, text)


def cached_base_answers(
    base: Generator,
    questions: Sequence[str],
    path: Path,
    *,
    max_new_tokens: int = 24,
    between: Callable[[], None] | None = None,
) -> list[Example]:
    """:func:`base_answers`, kept in a small JSON file so no answer is decoded twice.

    The file names the model it came from (another model starts it afresh); only
    questions it lacks are decoded, then it is rewritten atomically (temp file +
    ``os.replace``), also when ``between`` raises part way, so nothing decoded is lost.
    """
    known: dict[str, str] = {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw["format_version"] == ANCHORS_FORMAT and raw["model"] == base.model_id:
            known = {str(q): str(a) for q, a in raw["answers"]}
    except (OSError, ValueError, KeyError, TypeError):
        pass
    missing = [q for q in dict.fromkeys(questions) if q not in known]
    if missing:
        try:
            for example in base_answers(
                base, missing, max_new_tokens=max_new_tokens, between=between
            ):
                known[example.question] = example.answer  # "" is remembered too
        finally:
            data = {
                "format_version": ANCHORS_FORMAT,
                "model": base.model_id,
                "answers": [[q, a] for q, a in known.items()],
            }
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
            os.replace(tmp, path)
    return [Example(q, known[q]) for q in questions if known[q]]


def recalled_answer(
    question: str,
    recalled: Recalled,
    hits: Sequence[Hit],
    *,
    version: int,
    on_token: TokenCallback | None = None,
) -> Answer:
    """An :class:`Answer` carrying the recalled text (no citation: it came from the model).

    The passages retrieved for the question stay in ``sources`` so they can still
    be shown, but none is cited.
    """
    if on_token is not None and recalled.text:
        on_token(recalled.text)
    answer = Answer(
        question=question,
        text=recalled.text,
        sources=list(hits),
        cited=[],
        citations=[],
        abstained=False,
        answer_id=uuid.uuid4().hex,
        confidence=recalled.adapted_logp,
        tokens=recalled.tokens,
        adapter_version=version,
    )
    answer.timings["recall_margin"] = recalled.margin
    return answer
