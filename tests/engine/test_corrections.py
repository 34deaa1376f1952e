"""Corrections: the durable store, the exact memory and its gate, and the whole loop."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from engine.adaptation.corrections import FORMAT_VERSION, CorrectionStore
from engine.errors import StoreError


# -- the store ---------------------------------------------------------------------------
def test_store_add_get_forget_and_revision(tmp_path: Path) -> None:
    store = CorrectionStore(tmp_path / "c.sqlite3")
    assert store.revision == 0
    first = store.add("Who wrote Emma?", "Jane Austen", answer_id="abc")
    second = store.add("Capital of Peru?", "Lima")
    assert (first.id, second.id) == (1, 2)
    assert store.get(first.id) == first
    assert [c.id for c in store.active()] == [1, 2]
    revision = store.revision
    gone = store.forget(first.id)
    assert gone.forgotten and store.revision > revision
    assert [c.id for c in store.active()] == [2]
    assert [c.id for c in store.all()] == [1, 2]
    assert store.get(99) is None
    with pytest.raises(KeyError):
        store.forget(99)
    with pytest.raises(ValueError):
        store.add("  ", "x")
    store.close()


def test_supersede_and_forget_brings_the_older_back(tmp_path: Path) -> None:
    store = CorrectionStore(tmp_path / "c.sqlite3")
    old = store.add("Where is the key?", "in the drawer")
    new = store.add("Where is the key?", "under the mat")
    store.supersede([old.id], new.id)
    assert [c.id for c in store.active()] == [new.id]
    assert store.get(old.id).superseded_by == new.id  # type: ignore[union-attr]
    store.forget(new.id)
    assert [c.id for c in store.active()] == [old.id]
    store.close()


def test_ratings_derived_from_a_correction_go_with_it(tmp_path: Path) -> None:
    store = CorrectionStore(tmp_path / "c.sqlite3")
    fix = store.add("q", "a")
    store.add_rating("q", 7, True, correction_id=fix.id)
    store.add_rating("q", 8, False, answer_id="x")
    assert [r.chunk_id for r in store.ratings()] == [7, 8]
    store.forget(fix.id)
    assert [r.chunk_id for r in store.ratings()] == [8]
    store.close()


def test_store_survives_reopen_and_refuses_newer_format(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    store = CorrectionStore(path)
    store.add("q", "a")
    store.close()
    again = CorrectionStore(path)
    assert [c.answer for c in again.active()] == ["a"] and again.revision == 1
    again.close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={FORMAT_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError):
        CorrectionStore(path)
