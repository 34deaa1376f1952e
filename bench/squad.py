"""Third-party questions for the reader: the SQuAD v1.1 train subset in ``../shared/data``.

4,000 questions written by SQuAD's crowd workers on 800 Wikipedia paragraphs
(CC BY-SA 4.0, see that folder's README). Split by paragraph, seeded, into
train (600 paragraphs) / calibration (80) / test (120): the reader trains on the
first, thresholds are fitted on the second, and the headline figures come from the
third alone. Nothing here comes from SQuAD's dev sets.

For the engine benchmarks the paragraphs become notes: files of five paragraphs
each (the subset has no article titles, so a file mixes topics as a notes folder
does). Unanswerable questions are met as a person meets them: questions about a
paragraph the library does not hold (it is left out of the indexed files, every
other paragraph is in).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from bench.common import Question

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "squad_train_subset" / "train.json"
SPLIT_SEED = 2026
SPLIT_SIZES = {"train": 600, "calibration": 80, "test": 120}
PARAGRAPHS_PER_FILE = 5
# Paragraphs of a split whose questions become unanswerable (left out of the library).
HELD_OUT = {"calibration": 20, "test": 30}


@dataclass(frozen=True)
class Paragraph:
    id: str
    context: str
    qas: tuple[tuple[str, str, str, int], ...]  # (id, question, answer, answer_start)


def load_paragraphs(path: Path = DATA) -> list[Paragraph]:
    if not path.is_file():
        raise SystemExit(f"{path} is missing: the third-party questions live in ../shared/data")
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    out = []
    for entry in data:
        for p in entry["paragraphs"]:
            qas = tuple(
                (
                    qa["id"],
                    qa["question"],
                    qa["answers"][0]["text"],
                    qa["answers"][0]["answer_start"],
                )
                for qa in p["qas"]
            )
            out.append(Paragraph(entry["title"], p["context"], qas))
    return out


DATA_DIR = Path(__file__).resolve().parent / "data"
EXTRA = DATA_DIR / "extra_qa" / "train.jsonl"
# Every extra set of SQuAD v1.1 *train* questions (each folder's README says whence):
# training data only, never split into calibration or test.
EXTRA_SETS = (EXTRA, DATA_DIR / "extra_qa2" / "train.jsonl", DATA_DIR / "extra_qa3" / "train.jsonl")


def load_extra(paths: tuple[Path, ...] = EXTRA_SETS) -> list[Paragraph]:
    """More SQuAD v1.1 *train* questions (``bench/data/extra_qa*``), grouped by
    paragraph: training data only, never split into calibration or test."""
    grouped: dict[str, list[tuple[str, str, str, int]]] = {}
    titles: dict[str, str] = {}
    for path in paths:
        if not path.is_file():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            grouped.setdefault(row["context"], []).append(
                (row["id"], row["question"], row["answer"], int(row["answer_start"]))
            )
            titles.setdefault(row["context"], row["title"])
    return [Paragraph(f"extra:{titles[c]}", c, tuple(q)) for c, q in grouped.items()]


def split(paragraphs: list[Paragraph]) -> dict[str, list[Paragraph]]:
    """Seeded split by paragraph: no paragraph's questions fall on both sides."""
    order = sorted(paragraphs, key=lambda p: p.id)
    random.Random(SPLIT_SEED).shuffle(order)
    out, lo = {}, 0
    for name, size in SPLIT_SIZES.items():
        out[name] = order[lo : lo + size]
        lo += size
    return out


def write_library(folder: Path, part: str) -> tuple[list[Question], list[Question]]:
    """Write every paragraph except ``part``'s held-out ones as notes files.

    Returns:
        (answerable questions of ``part``, unanswerable ones: those of its held-out
        paragraphs), with gold spans into the written files.
    """
    parts = split(load_paragraphs())
    held = {p.id for p in parts[part][: HELD_OUT[part]]}
    everything = sorted((p for ps in parts.values() for p in ps), key=lambda p: p.id)
    library = [p for p in everything if p.id not in held]
    asked = {p.id for p in parts[part]} - held
    folder.mkdir(parents=True, exist_ok=True)
    answerable: list[Question] = []
    for n in range(0, len(library), PARAGRAPHS_PER_FILE):
        group = library[n : n + PARAGRAPHS_PER_FILE]
        path = folder / f"notes_{n // PARAGRAPHS_PER_FILE:03d}.md"
        text = ""
        for p in group:
            start = len(text)
            text += p.context
            if p.id in asked:
                for qid, q, ans, at in p.qas:
                    answerable.append(
                        Question(
                            qid,
                            q,
                            (ans,),
                            path,
                            start + at,
                            start + at + len(ans),
                            start,
                            start + len(p.context),
                            False,
                            p.id,
                        )
                    )
            text += "\n\n"
        path.write_text(text, encoding="utf-8")
    unanswerable = [
        Question(qid, q, (), Path(), -1, -1, -1, -1, True, p.id)
        for p in parts[part][: HELD_OUT[part]]
        for qid, q, _, _ in p.qas
    ]
    return answerable, unanswerable
