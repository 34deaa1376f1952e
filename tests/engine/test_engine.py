"""The engine end to end: real files, the real embedder, USearch and SQLite on disk."""

from __future__ import annotations

import copy
import os
import time
from pathlib import Path

import numpy as np
import pytest

from engine import Engine, EngineConfig, FolderNotFoundError
from engine.library import library as library_module
from engine.library.vector_index import USearchIndex
from tests.engine.documents import make_docx, make_epub, make_pdf

NOTES = {
    "dentist.md": "# Dentist\n\nThe dentist appointment is on Tuesday at 3pm with Dr. Molar.\n",
    "garden.txt": "Tomatoes need six hours of sun.\n\nWater the basil every morning.\n",
    "recipes/bread.md": (
        "# Sourdough\n\n## Starter\n\nFeed the starter with rye flour twice a day.\n\n"
        "## Baking\n\nBake at 250 degrees for forty minutes with steam.\n"
    ),
    "code/fib.py": "def fibonacci(n):\n    'Return the nth Fibonacci number.'\n    a, b = 0, 1\n",
    "latin1.txt": "Café crème brûlée costs twelve euros at the bistro.\n",
    "page.html": "<html><body><h1>Bicycle</h1><p>The chain needs oil every month.</p>"
    "<script>var x = 'ignored';</script></body></html>",
}


def _write_folder(root: Path) -> Path:
    for name, text in NOTES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        encoding = "cp1252" if name == "latin1.txt" else "utf-8"
        path.write_bytes(text.encode(encoding))
    (root / "manual.pdf").write_bytes(
        make_pdf(
            [["Chapter one covers installation."], ["Press the red button to reset the router."]]
        )
    )
    make_docx(root / "report.docx")
    make_epub(root / "book.epub")
    (root / "photo.jpg").write_bytes(bytes(range(256)) * 40)
    (root / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (root / ".hidden.md").write_text("secret hidden note about volcanoes")
    (root / "node_modules").mkdir()
    (root / "node_modules" / "dep.md").write_text("vendored text about volcanoes")
    return root


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return _write_folder(tmp_path / "notes")


@pytest.fixture
def engine(tmp_path: Path, embedder, backend) -> Engine:  # type: ignore[no-untyped-def]
    """The engine on each backend (local, and a real Milvus server: tests/conftest.py)."""
    eng = Engine(tmp_path / "data", EngineConfig(**backend), embedder=embedder)
    yield eng
    eng.close()


def _top(engine: Engine, query: str):  # type: ignore[no-untyped-def]
    hits = engine.search(query, limit=5)
    assert hits, query
    return hits[0]


def test_mixed_folder_is_indexed_and_searchable(engine: Engine, folder: Path) -> None:
    engine.add_folder(folder)
    assert engine.wait_until_idle(120)
    hit = _top(engine, "when is my dentist appointment")
    assert hit.path == folder / "dentist.md"
    # For text files the offsets are exact offsets into the decoded file.
    assert (folder / "dentist.md").read_text(encoding="utf-8")[hit.start : hit.end] == hit.text
    assert "Tuesday at 3pm" in hit.text
    assert hit.heading_path == ("Dentist",)

    latin = _top(engine, "price of crème brûlée")
    assert latin.path == folder / "latin1.txt"
    assert (folder / "latin1.txt").read_bytes().decode("cp1252")[
        latin.start : latin.end
    ] == latin.text

    pdf = _top(engine, "how do I reset the router")
    assert pdf.path == folder / "manual.pdf" and pdf.page == 2

    bread = _top(engine, "what temperature to bake sourdough")
    assert bread.path == folder / "recipes" / "bread.md"
    assert bread.heading_path == ("Sourdough", "Baking")
    assert _top(engine, "bicycle chain oil").path == folder / "page.html"
    assert _top(engine, "fibonacci number function").path == folder / "code" / "fib.py"
    assert {h.path.name for h in engine.search("volcanoes", limit=10)}.isdisjoint(
        {".hidden.md", "dep.md"}
    )


def test_unreadable_files_are_reported_and_do_not_stop_the_rest(
    engine: Engine, folder: Path
) -> None:
    engine.add_folder(folder)
    assert engine.wait_until_idle(120)
    status = engine.status()
    reasons = {e.path.name: e.reason for e in status.errors}
    assert reasons["photo.jpg"] == "binary file"
    assert reasons["broken.pdf"].startswith("corrupt or unreadable PDF")
    names = {p.name for p in engine.store.files_in_folder(engine.store.folders()[0].id)}
    assert {"dentist.md", "manual.pdf", "report.docx", "book.epub"} <= names
    assert status.files == len(names) and status.chunks == status.vectors > 0
    assert status.folders[0].state == "ready" and status.folders[0].errors

    # An unchanged broken file is not parsed again; once deleted, its reason goes too.
    failed = engine.totals.files_failed
    engine.resync()
    assert engine.wait_until_idle(60)
    assert engine.totals.files_failed == failed
    (folder / "broken.pdf").unlink()
    engine.resync()
    assert engine.wait_until_idle(60)
    assert "broken.pdf" not in {e.path.name for e in engine.status().errors}


def test_only_changed_chunks_are_reembedded(engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "long"
    folder.mkdir()
    paragraphs = [
        f"Paragraph {i} is about the {i}th colour of the {i % 7}th rainbow. " * 6 for i in range(60)
    ]
    (folder / "long.md").write_text("\n\n".join(paragraphs))
    (folder / "other.md").write_text("A second file that never changes.")
    engine.add_folder(folder)
    assert engine.wait_until_idle(120)
    chunks_before = engine.status().chunks
    assert chunks_before >= 40

    before = copy.copy(engine.totals)
    paragraphs[30] = "This paragraph was rewritten to talk about penguins in Antarctica."
    (folder / "long.md").write_text("\n\n".join(paragraphs))
    engine.resync()  # the watcher may see the edit first; either way it is handled once
    assert engine.wait_until_idle(120)
    assert 1 <= engine.totals.chunks_embedded - before.chunks_embedded <= 3
    assert engine.totals.files_indexed - before.files_indexed == 1  # other.md not re-read
    assert _top(engine, "penguins in Antarctica").path == folder / "long.md"
    assert engine.status().chunks == engine.status().vectors

    # Touching a file without changing its content re-embeds nothing.
    before = copy.copy(engine.totals)
    os.utime(folder / "other.md", ns=(1, 1))
    engine.resync()
    assert engine.wait_until_idle(60)
    assert engine.totals.chunks_embedded == before.chunks_embedded


def test_deleted_files_and_removed_folders_leave_nothing(engine: Engine, folder: Path) -> None:
    engine.add_folder(folder)
    assert engine.wait_until_idle(120)
    (folder / "dentist.md").unlink()
    engine.resync()
    assert engine.wait_until_idle(60)
    assert all(h.path.name != "dentist.md" for h in engine.search("dentist appointment Tuesday"))
    assert engine.store.bm25_search("Molar", 5) == []

    engine.remove_folder(folder)
    assert engine.wait_until_idle(60)
    status = engine.status()
    assert (status.folders, status.files, status.chunks, status.vectors) == ((), 0, 0, 0)
    assert engine.search("sourdough starter") == []


def test_search_modes_and_merging(engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "dups"
    folder.mkdir()
    text = "The lighthouse keeper lit the lamp at dusk every evening.\n"
    (folder / "a.txt").write_text(text)
    (folder / "b.txt").write_text(text)  # an exact copy
    engine.add_folder(folder)
    assert engine.wait_until_idle(60)
    for mode in ("dense", "bm25", "hybrid"):
        hits = engine.search("lighthouse lamp", mode=mode)
        assert len(hits) == 1, mode  # the copy is merged, not listed twice
        assert {hits[0].path, *hits[0].also_in} == {folder / "a.txt", folder / "b.txt"}


def test_add_folder_rejects_a_missing_path(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(FolderNotFoundError):
        engine.add_folder(tmp_path / "nope")


def test_a_lost_or_corrupt_vector_index_is_rebuilt_from_stored_text(
    tmp_path: Path, folder: Path, embedder
) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "data"
    with Engine(data, embedder=embedder) as eng:
        eng.add_folder(folder)
        assert eng.wait_until_idle(120)
        expected = eng.search("reset the router", limit=3)
        chunks = eng.status().chunks
    (data / "vectors.usearch").write_bytes(b"\0" * 100)
    with Engine(data, embedder=embedder) as eng:
        assert eng.wait_until_idle(120)
        status = eng.status()
        assert status.vectors == status.chunks == chunks
        assert [h.chunk_id for h in eng.search("reset the router", limit=3)] == [
            h.chunk_id for h in expected
        ]
        # Nothing was parsed again, not even the files that failed before.
        assert (eng.last_stats.files_indexed, eng.last_stats.files_failed) == (0, 0)
        assert eng.last_stats.files_skipped_unchanged == eng.last_stats.files_seen


def test_files_over_the_size_limit_are_skipped_with_a_reason(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "big"
    folder.mkdir()
    (folder / "huge.txt").write_text("word " * 50_000)
    (folder / "small.txt").write_text("small file about owls")
    with Engine(tmp_path / "d", EngineConfig(max_file_bytes=10_000), embedder=embedder) as eng:
        eng.add_folder(folder)
        assert eng.wait_until_idle(60)
        assert [e.path.name for e in eng.status().errors] == ["huge.txt"]
        assert "larger than" in eng.status().errors[0].reason
        assert eng.status().files == 1


def test_vectors_in_the_index_match_the_stored_text(engine: Engine, folder: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    engine.add_folder(folder)
    assert engine.wait_until_idle(120)
    ids = engine.store.chunk_ids()
    records = engine.store.get_chunks(ids)
    for chunk_id in ids[:5]:
        rec = records[chunk_id]
        vector = embedder.embed([rec.embed_prefix + rec.text])[0]
        keys, scores = engine.library.index.search(vector, 1)  # type: ignore[union-attr]
        assert int(keys[0]) == chunk_id and scores[0] > 0.999
    assert np.isin(np.asarray(ids, dtype=np.uint64), engine.library.index.keys()).all()  # type: ignore[union-attr]


def test_paused_indexing_holds_between_files_and_resumes(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    notes = tmp_path / "notes"
    notes.mkdir()
    for n in range(40):
        (notes / f"note{n:02d}.md").write_text(f"# Note {n}\n\nThe kettle number {n} boils.\n")
    with Engine(tmp_path / "data", embedder=embedder) as eng:
        eng.pause_indexing()
        eng.add_folder(notes)
        assert not eng.wait_until_idle(1.5)  # held, not finished
        held = eng.status()
        assert held.paused and eng.indexing_paused
        assert held.files < 40
        assert not eng.wait_until_idle(0.5)
        assert eng.status().files == held.files  # nothing moved while paused
        assert eng.search("kettle number boils", 3) is not None  # search still answers

        eng.resume_indexing()
        assert eng.wait_until_idle(60)
        done = eng.status()
        assert not done.paused and done.files == 40


def test_close_ends_a_pause_instead_of_hanging(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    notes = tmp_path / "notes"
    notes.mkdir()
    for n in range(10):
        (notes / f"n{n}.md").write_text(f"Note {n} about tomatoes.\n")
    eng = Engine(tmp_path / "data", embedder=embedder)
    eng.pause_indexing()
    eng.add_folder(notes)
    eng.wait_until_idle(1.0)
    eng.close()  # returns: the paused job is cancelled at its checkpoint
    with Engine(tmp_path / "data", embedder=embedder) as again:
        assert again.wait_until_idle(60)
        assert again.status().files == 10  # the start-up sync finished the rest


def test_the_vector_index_is_saved_a_while_after_the_writer_runs_out_of_work(
    tmp_path: Path, folder: Path, embedder
) -> None:  # type: ignore[no-untyped-def]
    """Not after every change set (a save rewrites the whole file): a while after the
    last one, on the writer; whatever a kill loses before then, repair re-embeds."""
    data = tmp_path / "data"
    with Engine(data, EngineConfig(index_save_interval=0.5), embedder=embedder) as eng:
        eng.add_folder(folder)
        assert eng.wait_until_idle(120)
        saved = data / library_module.index_file(embedder.model_id)
        deadline = time.monotonic() + 30
        while not saved.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert saved.exists()
        chunks = eng.status().chunks
        assert len(USearchIndex.load(saved, embedder.dim)) == chunks
