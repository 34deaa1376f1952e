"""Every saved store carries a format version; other versions upgrade, rebuild or say why not.

A person's data must survive installing a newer Kenning (older formats migrate)
and must never be damaged by an older one (newer formats are refused, untouched,
with a message that says what to do).
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from engine import Engine
from engine.config import CONFIG_FORMAT, EngineConfig, load_config, save_config
from engine.errors import StoreError, StoreVersionError
from engine.learning.corrections import CorrectionStore
from engine.library import chunk_store as chunk_store_module
from engine.library.chunk_store import ChunkStore
from engine.library.vector_index import USearchIndex
from engine.reader.answer_log import AnswerLog


def _set_user_version(path: Path, version: int) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version={version}")


def _store_version(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        return str(conn.execute("SELECT value FROM meta WHERE key='format_version'").fetchone()[0])


def test_a_new_chunk_store_records_the_current_format(tmp_path: Path) -> None:
    store = ChunkStore(tmp_path / "store.db")
    store.close()
    assert _store_version(tmp_path / "store.db") == str(chunk_store_module.FORMAT_VERSION)


def test_a_chunk_store_from_a_newer_kenning_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    store = ChunkStore(path)
    store.add_folder(tmp_path)
    store.set_meta("format_version", "99")
    store.close()

    with pytest.raises(StoreVersionError) as caught:
        ChunkStore(path)

    error = caught.value
    assert isinstance(error, StoreError)  # callers catching StoreError still catch it
    assert (error.newer, error.found, error.supported) == (True, 99, 1)
    assert "newer version of Kenning" in str(error) and str(path) in str(error)
    assert _store_version(path) == "99"


def test_an_older_chunk_store_is_migrated_in_place_keeping_its_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "store.db"
    store = ChunkStore(path)
    store.add_folder(tmp_path / "notes")
    store.close()

    def add_tags_table(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE tags (chunk_id INTEGER, tag TEXT)")

    monkeypatch.setattr(chunk_store_module, "FORMAT_VERSION", 2)
    monkeypatch.setattr(chunk_store_module, "MIGRATIONS", {1: add_tags_table})
    store = ChunkStore(path)
    try:
        assert [f.path for f in store.folders()] == [tmp_path / "notes"]
    finally:
        store.close()

    assert _store_version(path) == "2"
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM tags").fetchone() == (0,)


def test_an_older_chunk_store_without_a_migration_asks_for_a_reindex(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "store.db"
    ChunkStore(path).close()
    monkeypatch.setattr(chunk_store_module, "FORMAT_VERSION", 3)
    monkeypatch.setattr(chunk_store_module, "MIGRATIONS", {1: lambda conn: None})

    with pytest.raises(StoreVersionError) as caught:
        ChunkStore(path)

    assert not caught.value.newer
    assert "add your folders again" in str(caught.value)
    assert _store_version(path) == "1"  # the failed upgrade changed nothing


def test_a_failed_migration_step_rolls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "store.db"
    ChunkStore(path).close()

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x INTEGER)")
        raise RuntimeError("disk full")

    monkeypatch.setattr(chunk_store_module, "FORMAT_VERSION", 2)
    monkeypatch.setattr(chunk_store_module, "MIGRATIONS", {1: broken})
    with pytest.raises(RuntimeError):
        ChunkStore(path)

    assert _store_version(path) == "1"
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert "half_done" not in tables


def test_an_answer_log_from_a_newer_kenning_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "answers.db"
    AnswerLog(path).close()
    _set_user_version(path, AnswerLog.FORMAT_VERSION + 1)

    with pytest.raises(StoreVersionError, match="answer history"):
        AnswerLog(path)


def test_corrections_from_a_newer_kenning_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "corrections.db"
    CorrectionStore(path).close()
    _set_user_version(path, 7)

    with pytest.raises(StoreVersionError, match="corrections"):
        CorrectionStore(path)


def test_settings_carry_a_format_and_a_newer_file_still_loads_known_keys(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "config.toml"
    save_config(EngineConfig(candidates=7), path)
    assert f"format_version = {CONFIG_FORMAT}" in path.read_text()

    newer = path.read_text().replace(
        f"format_version = {CONFIG_FORMAT}", f"format_version = {CONFIG_FORMAT + 1}"
    )
    path.write_text(newer + "a_setting_from_the_future = 3\n")
    with caplog.at_level(logging.WARNING, logger="engine.config"):
        config = load_config(path)

    assert config.candidates == 7
    assert "newer Kenning" in caplog.text


def test_a_format_1_settings_file_leaves_the_fusion_weight_to_the_embedder(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.toml"
    old = "# Kenning settings\nformat_version = 1\n\n[engine]\ndense_weight = 0.5\ncandidates = 9\n"
    path.write_text(old, encoding="utf-8")
    config = load_config(path)
    assert config.dense_weight is None and config.candidates == 9
    path.write_text(old.replace("0.5", "0.7"), encoding="utf-8")
    assert load_config(path).dense_weight == 0.7  # a real choice is kept
    save_config(EngineConfig(), path)
    assert "dense_weight" not in path.read_text()
    assert load_config(path).dense_weight is None


TOPICS = {
    "router.md": ("Press the red button to reset the router.", "reset the router"),
    "bread.md": ("Bake the sourdough at 250 degrees for forty minutes.", "baking bread"),
    "dentist.md": ("The dentist appointment is on Tuesday with Dr. Molar.", "teeth check-up"),
    "garden.md": ("Tomatoes need six hours of sun and daily water.", "growing vegetables"),
    "bike.md": ("Oil the bicycle chain every month.", "cycling maintenance"),
}


@pytest.mark.slow
def test_a_vector_index_of_another_format_is_rebuilt_from_the_store(
    tmp_path: Path, embedder
) -> None:  # type: ignore[no-untyped-def]
    notes = tmp_path / "notes"
    notes.mkdir()
    for name, (text, _query) in TOPICS.items():
        (notes / name).write_text(text + "\n")
    data = tmp_path / "data"

    def best(eng: Engine) -> list[int]:
        return [eng.search(q, limit=1, mode="dense")[0].chunk_id for _t, q in TOPICS.values()]

    with Engine(data, embedder=embedder) as eng:
        eng.add_folder(notes)
        assert eng.wait_until_idle(120)
        expected = best(eng)
        keys = (
            eng.library.index.keys()
            if eng.library.index is not None
            else np.zeros(0, dtype=np.uint64)
        )
    assert len(set(expected)) == len(TOPICS) == len(keys)

    # A readable index with the right keys but noise for vectors, marked as written in
    # an older format: loading it as it is would rank by noise.
    stale = USearchIndex(embedder.dim)
    noise = np.random.default_rng(0).normal(size=(len(keys), embedder.dim)).astype(np.float32)
    stale.add(keys, noise)
    stale.save(data / "vectors.usearch")
    store = ChunkStore(data / "kenning.sqlite3")
    store.set_meta("index_format", "0")
    store.close()

    with Engine(data, embedder=embedder) as eng:
        assert eng.wait_until_idle(120)
        assert best(eng) == expected
        assert eng.store.get_meta("index_format") == "1"
        assert eng.last_stats.files_indexed == 0  # rebuilt from stored text, not re-parsed


def test_an_answer_log_of_format_1_gains_the_correction_an_answer_came_from(
    tmp_path: Path,
) -> None:
    from engine.learning.corrections import Correction
    from engine.reader.answer import Answer

    path = tmp_path / "answers.db"
    with sqlite3.connect(path) as conn:  # format 1 as released: no correction_id
        conn.execute(
            "CREATE TABLE answers (answer_id TEXT PRIMARY KEY, conversation_id TEXT, "
            "question TEXT NOT NULL, retrieval_query TEXT NOT NULL, answer TEXT NOT NULL, "
            "abstained INTEGER NOT NULL, citations TEXT NOT NULL, created_at REAL NOT NULL)"
        )
        conn.execute("INSERT INTO answers VALUES ('old', NULL, 'q', 'q', 'a', 0, '[]', 1.0)")
        conn.execute("PRAGMA user_version=1")

    log = AnswerLog(path)
    assert log.get("old") is not None and log.correction_of("old") is None  # kept
    fix = Correction(7, "Which breed is Miso?", "a Siamese", 2.0)
    given = Answer("Which breed is Miso?", "a Siamese", [], [], [], False, "new", correction=fix)
    log.record(given)
    log.close()

    reopened = AnswerLog(path)  # after a restart the answer still names its correction
    try:
        assert reopened.correction_of("new") == 7
        assert reopened.correction_of("old") is None and reopened.correction_of("nope") is None
    finally:
        reopened.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == AnswerLog.FORMAT_VERSION == 2
