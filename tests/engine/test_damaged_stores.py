"""A store damaged on disk is noticed at open and said plainly; what is derived is
rebuilt from the files, the person's corrections are never overwritten.

Real files, the real embedder and real SQLite files garbled in the middle, as a bad
disk sector or an interrupted copy would leave them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine import Engine, EngineConfig
from engine.errors import StoreDamagedError

WORDS = "apple river lantern copper meadow violin harbor cactus glacier pepper".split()


def _notes(folder: Path, count: int = 60) -> Path:
    folder.mkdir()
    for i in range(count):
        a, b = WORDS[i % 10], WORDS[(i * 3 + 1) % 10]
        (folder / f"note{i:03}.md").write_text(
            f"# Note {i}\n\nThe {a} and the {b} meet in note number {i}, code word w{i}x.\n" * 3
        )
    return folder


def _garble_middle(path: Path) -> None:
    size = path.stat().st_size
    assert size > 16 * 4096, "too small a database to damage in the middle"
    with open(path, "r+b") as f:
        f.seek((size // 2) // 4096 * 4096)
        f.write(os.urandom(4096))


def test_a_damaged_search_index_is_rebuilt_from_the_files(tmp_path: Path, embedder) -> None:
    notes = _notes(tmp_path / "notes")
    data = tmp_path / "data"
    with Engine(data, embedder=embedder) as engine:
        engine.add_folder(notes)
        assert engine.wait_until_idle(timeout=300)
    _garble_middle(data / "kenning.sqlite3")

    with Engine(data, embedder=embedder) as engine:
        assert engine.wait_until_idle(timeout=300)
        status = engine.status()
        assert status.files == 60 and status.vectors == status.chunks
        said = [e.reason for e in status.errors if e.path.name == "kenning.sqlite3"]
        assert said and "damaged" in said[0] and "rebuilt from your files" in said[0]
        hit = engine.search("code word w42x", limit=1)[0]
        assert hit.path.name == "note042.md"
    assert list(data.glob("kenning.sqlite3.damaged-*"))  # the damaged copy is kept


def test_damaged_corrections_are_kept_and_search_goes_on(tmp_path: Path, embedder) -> None:
    notes = _notes(tmp_path / "notes", count=10)
    data = tmp_path / "data"
    config = EngineConfig(adapter_auto_after=0, adapter_idle_seconds=0, reader_learning=False)
    with Engine(data, config, embedder=embedder) as engine:
        engine.add_folder(notes)
        assert engine.wait_until_idle(timeout=300)
        for i in range(200):  # enough rows for pages in the middle of the file
            engine.record_correction(f"What is the code word of note {i}?", f"w{i}x " + "x" * 200)
    assert (data / "corrections.sqlite3.bak").is_file()  # made at the clean shutdown
    _garble_middle(data / "corrections.sqlite3")
    damaged = (data / "corrections.sqlite3").read_bytes()

    with Engine(data, config, embedder=embedder) as engine:
        assert engine.wait_until_idle(timeout=300)
        assert engine.search("code word w7x", limit=1)[0].path.name == "note007.md"
        answer = engine.ask("Which note has code word w7x?")
        assert answer.text
        with pytest.raises(StoreDamagedError, match=r"corrections\.sqlite3\.bak"):
            engine.record_correction("a new question?", "an answer")
        reasons = [e.reason for e in engine.status().errors]
        assert any("search and answers work without it" in r for r in reasons)
    assert (data / "corrections.sqlite3").read_bytes() == damaged  # never overwritten
