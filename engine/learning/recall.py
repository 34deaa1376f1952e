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
data by ``bench.bench_adapter`` (see ``EngineConfig.recall_min_margin``): one pair
for the adapter behind the correction memory, a looser one for the adapter alone.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.generation import Generator, TokenCallback
from engine.learning.adapter import Example, recall_prompt
from engine.library.retrieval import Hit
from engine.reader.answer import Answer

ANCHORS_FORMAT = 1  # of the cached anchor answers (anchors.json)
BASE_ANSWER_BATCH = 8  # replay answers decoded together (a pause waits at most one batch)

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
    gave_up: bool = False  # decoding stopped early: it could not pass the gate's floor

    @property
    def margin(self) -> float:
        return self.adapted_logp - self.base_logp


def recall(
    adapted: Generator,
    base: Generator,
    question: str,
    *,
    max_new_tokens: int = 24,
    min_logp: float | None = None,
) -> Recalled:
    """Answer ``question`` from the adapted model's memory and score it under both models.

    With ``min_logp`` (the gate's floor on the adapted model's mean log p, below 0)
    decoding stops as soon as the answer can no longer reach it: every token's log p
    is at most 0, so a sum below ``min_logp`` times the longest possible answer
    already fails the floor. Then neither model scores it and the result is
    rejected by :func:`accept`, as it would have been. Most questions the adapter
    did not learn stop after a token or two instead of costing a whole decode and
    two scoring passes.
    """
    prompt = recall_prompt(adapted, question)
    longest = max_new_tokens + len(adapted.end_ids)
    give_up = None if min_logp is None else min_logp * longest - 1e-4
    decoded = adapted.decode(prompt, max_new_tokens=max_new_tokens, give_up_below=give_up)
    if decoded.gave_up:
        n = len(decoded.tokens)
        return Recalled(decoded.text, n, sum(decoded.logprobs) / n, 0.0, gave_up=True)
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
    return (
        bool(recalled.text)
        and not recalled.gave_up
        and (recalled.margin >= min_margin and recalled.adapted_logp >= min_logp)
    )


def base_answers(
    base: Generator,
    questions: Sequence[str],
    *,
    max_new_tokens: int = 24,
    between: Callable[[], None] | None = None,
    batch: int = BASE_ANSWER_BATCH,
) -> Iterator[Example]:
    """The base model's own closed-book answers to ``questions``: replay that anchors it.

    Decoded ``batch`` at a time; ``between`` runs before each batch (to pause or
    cancel: it may raise).
    """
    for start in range(0, len(questions), batch):
        if between is not None:
            between()
        chunk = questions[start : start + batch]
        prompts = [recall_prompt(base, q) for q in chunk]
        texts = base.decode_batch(prompts, max_new_tokens=max_new_tokens)
        yield from (Example(q, t) for q, t in zip(chunk, texts, strict=True))


def cached_base_answers(
    base: Generator,
    questions: Sequence[str],
    path: Path,
    *,
    max_new_tokens: int = 24,
    between: Callable[[], None] | None = None,
    batch: int = BASE_ANSWER_BATCH,
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
                base, missing, max_new_tokens=max_new_tokens, between=between, batch=batch
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
