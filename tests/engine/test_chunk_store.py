"""The SQLite store: chunk rows, BM25 rows and file rows stay in step."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from engine.errors import StoreError
from engine.library.chunk_store import ChunkStore, FileWrite, NewChunk, fts_query


def _chunk(text: str, ord_: int = 0, id_: int | None = None) -> NewChunk:
    return NewChunk(
        id=id_,
        ord=ord_,
        start=0,
        end=len(text),
        page=None,
        heading_path=("H",),
        embed_prefix="",
        text=text,
        content_hash=f"h-{text}",
    )


@pytest.fixture
def store(tmp_path: Path) -> ChunkStore:
    s = ChunkStore(tmp_path / "store.sqlite3")
    yield s
    s.close()


def _write(store: ChunkStore, folder_id: int, path: str, chunks: list[NewChunk]):
    return store.write_file(
        folder_id=folder_id,
        path=Path(path),
        size=1,
        mtime_ns=1,
        content_hash=path,
        kind="text",
        chunks=chunks,
    )


def test_bm25_follows_inserts_updates_and_deletes(store: ChunkStore) -> None:
    folder = store.add_folder(Path("/notes"))
    inserted, removed = _write(
        store, folder.id, "/notes/a.txt", [_chunk("zebra crossing"), _chunk("quiet lake", 1)]
    )
    assert len(inserted) == 2 and removed == []
    assert [i for i, _ in store.bm25_search("zebra", 5)] == [inserted[0]]
    # Rewrite: keep the lake chunk by id, replace the zebra chunk.
    kept = _chunk("quiet lake", 0, inserted[1])
    new, removed = _write(store, folder.id, "/notes/a.txt", [kept, _chunk("purple giraffe", 1)])
    assert removed == [inserted[0]]
    assert store.bm25_search("zebra", 5) == []
    assert [i for i, _ in store.bm25_search("giraffe", 5)] == new
    assert store.delete_file(Path("/notes/a.txt")) == sorted([inserted[1], *new])
    assert store.bm25_search("lake", 5) == [] and store.counts() == (0, 0)


def test_ids_are_never_reused(store: ChunkStore) -> None:
    folder = store.add_folder(Path("/n"))
    first, _ = _write(store, folder.id, "/n/a.txt", [_chunk("one")])
    store.delete_file(Path("/n/a.txt"))
    second, _ = _write(store, folder.id, "/n/b.txt", [_chunk("two")])
    assert second[0] > first[0]


def test_move_path_repoints_files_and_directories(store: ChunkStore) -> None:
    folder = store.add_folder(Path("/n"))
    _write(store, folder.id, "/n/dir/a.txt", [_chunk("alpha")])
    _write(store, folder.id, "/n/dir/sub/b.txt", [_chunk("beta")])
    _write(store, folder.id, "/n/dirt.txt", [_chunk("gamma")])
    assert store.move_path(Path("/n/dir"), Path("/n/moved"), folder.id) == 2
    paths = sorted(str(p) for p in store.files_in_folder(folder.id))
    assert paths == ["/n/dirt.txt", "/n/moved/a.txt", "/n/moved/sub/b.txt"]
    hit = store.get_chunks([i for i, _ in store.bm25_search("beta", 1)])
    assert [str(c.path) for c in hit.values()] == ["/n/moved/sub/b.txt"]


def test_removing_a_folder_leaves_nothing(store: ChunkStore) -> None:
    keep = store.add_folder(Path("/keep"))
    gone = store.add_folder(Path("/gone"))
    _write(store, keep.id, "/keep/a.txt", [_chunk("apple")])
    ids, _ = _write(store, gone.id, "/gone/b.txt", [_chunk("banana"), _chunk("cherry", 1)])
    store.record_error(Path("/gone/bad.pdf"), gone.id, "corrupt")
    assert sorted(store.remove_folder(gone.id)) == sorted(ids)
    assert store.counts() == (1, 1)
    assert store.bm25_search("banana cherry", 5) == []
    assert store.errors() == []


def test_fts_query_quotes_words_and_drops_stopwords() -> None:
    assert fts_query('What is the "capital" of France?') == '"capital" OR "france"'
    assert fts_query("the") == '"the"'  # only stopwords: keep them rather than match nothing
    assert fts_query("  ?! ") == ""
    assert fts_query('AND OR NOT "x*') == '"x"'


def test_a_newer_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    s = ChunkStore(path)
    s.set_meta("format_version", "999")
    s.close()
    with pytest.raises(StoreError, match="newer Kenning"):
        ChunkStore(path)


def test_a_non_database_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    path.write_bytes(b"garbage" * 1000)
    with pytest.raises(StoreError):
        ChunkStore(path)


def test_many_files_are_written_in_one_transaction_each_as_write_file_would(
    store: ChunkStore,
) -> None:
    folder = store.add_folder(Path("/notes"))
    (first,), _ = _write(store, folder.id, "/notes/a.txt", [_chunk("old lake")])
    b_chunks = [_chunk("zebra"), _chunk("owl", 1)]
    writes = [
        FileWrite(folder.id, Path("/notes/a.txt"), 2, 2, "a2", "text", [_chunk("new lake")]),
        FileWrite(folder.id, Path("/notes/b.txt"), 1, 1, "b", "text", b_chunks),
    ]
    (a_new, a_gone), (b_new, b_gone) = store.write_files(writes)
    assert a_gone == [first] and len(a_new) == 1 and len(b_new) == 2 and b_gone == []
    assert [i for i, _ in store.bm25_search("zebra", 5)] == [b_new[0]]
    assert store.bm25_search("old", 5) == []
    assert store.counts() == (2, 3)
    # A write that fails leaves none of the batch behind.
    bad = FileWrite(99, Path("/nowhere/c.txt"), 1, 1, "c", "text", [_chunk("heron")])
    good = FileWrite(folder.id, Path("/notes/d.txt"), 1, 1, "d", "text", [_chunk("crane")])
    with pytest.raises(sqlite3.IntegrityError):
        store.write_files([good, bad])
    assert store.get_file(Path("/notes/d.txt")) is None and store.counts() == (2, 3)


def test_move_detection_looks_files_up_by_hash_not_by_walking_the_folder(
    store: ChunkStore,
) -> None:
    folder = store.add_folder(Path("/notes"))
    for n in range(50):
        _write(store, folder.id, f"/notes/{n}.txt", [_chunk(f"note {n}")])
    assert [f.path for f in store.files_with_hash("/notes/7.txt", folder.id)] == [
        Path("/notes/7.txt")
    ]
    assert store.files_with_hash("/notes/7.txt", folder.id + 1) == []
    plan = " ".join(
        str(row[-1])
        for row in store._conn().execute(
            "EXPLAIN QUERY PLAN SELECT id FROM files WHERE content_hash = ? AND +folder_id = ?",
            ("x", folder.id),
        )
    )
    assert "files_hash" in plan and "files_folder" not in plan
