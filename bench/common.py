"""Shared bench helpers: the QA fixture as files on disk, machine facts, percentiles."""

from __future__ import annotations

import json
import os
import platform
import re
import string
from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path

FIXTURE = Path(__file__).parent / "data" / "qa_fixture.json"


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    answers: tuple[str, ...]
    path: Path  # the article file
    answer_start: int  # offset of the first gold answer in the article file; -1 if impossible
    answer_end: int
    paragraph_start: int
    paragraph_end: int
    impossible: bool
    article: str


def write_articles(folder: Path) -> list[Question]:
    """Write one Markdown file per fixture article; return its questions with gold spans."""
    data = json.loads(FIXTURE.read_text(encoding="utf-8"))
    folder.mkdir(parents=True, exist_ok=True)
    questions: list[Question] = []
    for article in data["articles"]:
        title = article["title"]
        name = re.sub(r"[^\w.-]+", "_", title) + ".md"
        text = f"# {title}\n\n"
        spans = []
        for paragraph in article["paragraphs"]:
            start = len(text)
            text += paragraph["context"]
            spans.append((start, len(text), paragraph))
            text += "\n\n"
        path = folder / name
        path.write_text(text, encoding="utf-8")
        for start, end, paragraph in spans:
            for qa in paragraph["qas"]:
                answers = tuple(qa.get("answers") or ())
                a_start = a_end = -1
                if answers:
                    offset = paragraph["context"].find(answers[0])
                    a_start, a_end = start + offset, start + offset + len(answers[0])
                questions.append(
                    Question(
                        qa["id"],
                        qa["question"],
                        answers,
                        path,
                        a_start,
                        a_end,
                        start,
                        end,
                        bool(qa.get("is_impossible")),
                        title,
                    )
                )
    return questions


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {date.today()}"


def normalize_answer(text: str) -> str:
    """SQuAD's normalisation: lower case, no punctuation, articles or extra spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def token_f1(prediction: str, gold: str) -> float:
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = Counter(pred) & Counter(ref)
    same = sum(common.values())
    if not pred or not ref:
        return float(pred == ref)
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(ref)
    return 2 * precision * recall / (precision + recall)
