"""Extractive summaries with the real engine and embedder: cited, in reading order, no repeats."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine import Engine, FolderNotFoundError
from engine.reader.summary import centrality, pick

STORY = (
    "# The harbour project\n\n"
    "The town council approved a new harbour wall in March after two winters of flooding. "
    "The wall will be four metres high and will protect the fish market. "
    "Construction starts in June and should take eighteen months. "
    "Local fishermen said the flooding had cost them most of last season. "
    "The council approved the harbour wall after the floods of two winters. "
    "A bakery on the quay is selling harbour-shaped bread to celebrate.\n\n"
    "## Money\n\n"
    "The wall costs twelve million euros, paid mostly by a regional grant. "
    "The remaining money comes from a small tax on moorings for the next ten years.\n"
)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, embedder):  # type: ignore[no-untyped-def]
    notes = tmp_path_factory.mktemp("notes")
    (notes / "harbour.md").write_text(STORY, encoding="utf-8")
    (notes / "other.md").write_text("The choir meets on Thursdays in the old church hall.\n")
    with Engine(tmp_path_factory.mktemp("data"), embedder=embedder) as eng:
        eng.add_folder(notes)
        assert eng.wait_until_idle(120)
        yield eng, notes


def test_a_file_summary_is_cited_in_reading_order_without_repeats(engine) -> None:  # type: ignore[no-untyped-def]
    eng, notes = engine
    summary = eng.summarize(notes / "harbour.md", sentences=3)
    assert len(summary.sentences) == 3
    text = (notes / "harbour.md").read_text(encoding="utf-8")
    for s in summary.sentences:
        assert s.path == notes / "harbour.md"
        assert " ".join(text[s.start : s.end].split()) == s.text, "cited to its characters"
    starts = [s.start for s in summary.sentences]
    assert starts == sorted(starts), "in reading order"
    said = " ".join(s.text for s in summary.sentences)
    assert not ("approved a new harbour wall" in said and "approved the harbour wall" in said)
    assert "choir" not in said


def test_about_narrows_a_folder_to_what_it_says_on_that(engine) -> None:  # type: ignore[no-untyped-def]
    eng, notes = engine
    summary = eng.summarize(notes, sentences=2, about="How is the wall paid for?")
    said = " ".join(s.text for s in summary.sentences)
    assert "million euros" in said or "tax on moorings" in said
    with pytest.raises(FolderNotFoundError):
        eng.summarize(notes / "missing.md")
    with pytest.raises(ValueError):
        eng.summarize(notes, sentences=0)


def test_pick_drops_a_near_duplicate_for_the_next_point() -> None:
    similarity = np.array([[1.0, 0.98, 0.1], [0.98, 1.0, 0.1], [0.1, 0.1, 1.0]])
    scores = centrality(similarity)
    assert pick(scores, similarity, 2, redundancy=1.0) in ([0, 2], [1, 2])


def test_kenning_summarize_prints_cited_sentences(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "harbour.md").write_text(STORY, encoding="utf-8")
    data = tmp_path / "data"
    cli = [sys.executable, "-m", "engine.cli"]
    subprocess.run([*cli, "index", "--data-dir", str(data), str(notes)], check=True, timeout=300)
    done = subprocess.run(
        [*cli, "summarize", "--data-dir", str(data), str(notes / "harbour.md"),
         "--sentences", "2", "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert len(got["sentences"]) == 2 and all(s["text"] for s in got["sentences"])


def test_kenning_summarize_refuses_zero_sentences_before_opening_anything(tmp_path: Path) -> None:
    data = tmp_path / "data"
    done = subprocess.run(
        [sys.executable, "-m", "engine.cli", "summarize", "--data-dir", str(data), str(tmp_path),
         "--sentences", "0"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "--sentences must be at least 1" in done.stderr
    assert not data.exists(), "a usage error opens no library"
