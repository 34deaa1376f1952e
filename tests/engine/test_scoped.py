"""Asking about one file or folder only: ``within`` on search and ask, and ``--in``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine import Engine, EngineConfig, FolderNotFoundError
from engine.embedding import Embedder
from engine.library.vector_index import ExactIndex, USearchIndex
from tests.engine.test_cli import kenning

NOTES = {
    "work/dentist.md": "The dentist appointment is on Tuesday at 3pm.\n",
    "work/vet.md": "The vet appointment for the cat is on Friday at noon.\n",
    "home/garage.md": "The garage appointment for the car is on Monday morning.\n",
}


def write_notes(root: Path) -> Path:
    for name, text in NOTES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root


@pytest.mark.parametrize("make", [USearchIndex, ExactIndex])
def test_search_among_scores_only_the_scope_exactly(make: type) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(50, 8)).astype(np.float32)
    index = make(8)
    index.add(np.arange(50, dtype=np.uint64), vectors)
    query = vectors[7] + 0.01
    keys, scores = index.search_among(query, np.array([3, 7, 9, 99], dtype=np.uint64), 10)
    assert list(keys) == [7, *sorted({3, 9}, key=lambda k: -float(vectors[k] @ query))]
    assert scores[0] == pytest.approx(1.0, abs=1e-3) and len(keys) == 3  # 99 is not held
    assert len(index.search_among(query, np.zeros(0, dtype=np.uint64), 5)[0]) == 0


def test_search_and_ask_within_a_file_or_folder(tmp_path: Path, embedder: Embedder) -> None:
    notes = write_notes(tmp_path / "notes")
    with Engine(tmp_path / "data", EngineConfig(torch_threads=2), embedder=embedder) as eng:
        eng.add_folder(notes)
        assert eng.wait_until_idle(300)
        everywhere = {h.path.name for h in eng.search("when is the appointment", 10)}
        assert everywhere == {"dentist.md", "vet.md", "garage.md"}
        in_work = {h.path.name for h in eng.search("appointment", 10, within=notes / "work")}
        assert in_work == {"dentist.md", "vet.md"}
        only_vet = eng.search("when is the appointment", 10, within=notes / "work" / "vet.md")
        assert [h.path.name for h in only_vet] == ["vet.md"]
        answer = eng.ask("When is the appointment?", within=notes / "home" / "garage.md")
        assert "Monday" in answer.text and answer.sources[0].path.name == "garage.md"
        with pytest.raises(FolderNotFoundError, match="Nothing is indexed"):
            eng.search("appointment", within=tmp_path / "elsewhere")


def test_the_cli_takes_in_path(tmp_path: Path) -> None:
    notes = write_notes(tmp_path / "notes")
    data = str(tmp_path / "data")
    assert kenning("index", str(notes), "--data-dir", data).returncode == 0
    done = kenning(
        "search", "appointment", "--in", str(notes / "home"), "--json", "--data-dir", data
    )
    assert done.returncode == 0, done.stderr
    assert [Path(h["path"]).name for h in json.loads(done.stdout)] == ["garage.md"]
    missing = kenning("search", "appointment", "--in", data, "--data-dir", data)
    assert missing.returncode == 3 and b"Nothing is indexed" in missing.stderr
    assert b"Traceback" not in missing.stderr
