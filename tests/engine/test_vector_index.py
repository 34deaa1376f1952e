"""One contract, run against the USearch index and its exact NumPy twin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.library.vector_index import ExactIndex, USearchIndex, VectorIndex

DIM = 32
IMPLEMENTATIONS = [USearchIndex, ExactIndex]


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _keys(*values: int) -> np.ndarray:
    return np.asarray(values, dtype=np.uint64)


@pytest.fixture(params=IMPLEMENTATIONS, ids=lambda c: c.__name__)
def index(request: pytest.FixtureRequest) -> VectorIndex:
    return request.param(DIM)  # type: ignore[no-any-return]


def test_empty_index_finds_nothing(index: VectorIndex) -> None:
    keys, scores = index.search(np.ones(DIM, dtype=np.float32), 5)
    assert len(keys) == 0 and len(scores) == 0 and len(index) == 0


def test_a_vector_finds_itself_first_with_cosine_one(index: VectorIndex) -> None:
    vectors = _unit(np.random.default_rng(0), 200)
    index.add(np.arange(200, dtype=np.uint64), vectors)
    keys, scores = index.search(vectors[17], 3)
    assert keys[0] == 17
    assert scores[0] == pytest.approx(1.0, abs=1e-5)
    assert list(scores) == sorted(scores, reverse=True)


def test_remove_and_contains(index: VectorIndex) -> None:
    vectors = _unit(np.random.default_rng(1), 10)
    index.add(np.arange(10, dtype=np.uint64), vectors)
    index.remove(_keys(3, 4, 999))  # unknown keys are ignored
    assert len(index) == 8
    assert list(index.contains(_keys(2, 3, 4, 5))) == [True, False, False, True]
    assert 3 not in index.search(vectors[3], 10)[0]
    assert sorted(int(k) for k in index.keys()) == [0, 1, 2, 5, 6, 7, 8, 9]


def test_adding_an_existing_key_replaces_its_vector(index: VectorIndex) -> None:
    vectors = _unit(np.random.default_rng(2), 5)
    index.add(np.arange(5, dtype=np.uint64), vectors)
    index.add(_keys(2), -vectors[2:3])
    assert len(index) == 5
    keys, scores = index.search(-vectors[2], 1)
    assert keys[0] == 2 and scores[0] == pytest.approx(1.0, abs=1e-5)


def test_save_and_load_round_trip(index: VectorIndex, tmp_path: Path) -> None:
    vectors = _unit(np.random.default_rng(3), 50)
    index.add(np.arange(50, dtype=np.uint64), vectors)
    path = tmp_path / "vectors.bin"
    index.save(path)
    loaded = type(index).load(path, DIM)  # type: ignore[attr-defined]
    assert sorted(loaded.keys().tolist()) == list(range(50))
    assert loaded.search(vectors[9], 1)[0][0] == 9
    assert not list(tmp_path.glob("*.tmp*"))  # the temp file was renamed into place


def test_usearch_agrees_with_the_exact_twin() -> None:
    rng = np.random.default_rng(4)
    vectors = _unit(rng, 5000)
    approx, exact = USearchIndex(DIM), ExactIndex(DIM)
    keys = np.arange(5000, dtype=np.uint64)
    approx.add(keys, vectors)
    exact.add(keys, vectors)
    recall = []
    for q in _unit(rng, 50):
        a = set(approx.search(q, 10)[0].tolist())
        e = set(exact.search(q, 10)[0].tolist())
        recall.append(len(a & e) / 10)
    assert np.mean(recall) >= 0.95


def test_load_rejects_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.usearch"
    path.write_bytes(b"not an index at all" * 10)
    with pytest.raises(ValueError):
        USearchIndex.load(path, DIM)


def test_garbage_in_the_middle_is_caught_by_the_checksum(tmp_path: Path) -> None:
    """USearch itself loaded such a file without a word and served broken vectors."""
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(2000, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = USearchIndex(DIM)
    index.add(np.arange(2000, dtype=np.uint64), vectors)
    path = tmp_path / "vectors.usearch"
    index.save(path)
    assert len(USearchIndex.load(path, DIM)) == 2000  # a sound file loads
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(size // 2)
        f.write(rng.bytes(4096))
    with pytest.raises(ValueError, match="checksum"):
        USearchIndex.load(path, DIM)


def test_a_crash_between_checksum_and_rename_still_verifies(tmp_path: Path) -> None:
    path = tmp_path / "vectors.usearch"
    first = USearchIndex(DIM)
    first.add(np.arange(3, dtype=np.uint64), np.eye(3, DIM, dtype=np.float32))
    first.save(path)
    second = USearchIndex(DIM)
    second.add(np.arange(5, dtype=np.uint64), np.eye(5, DIM, dtype=np.float32))
    tmp = tmp_path / "next.usearch"
    second._index.save(str(tmp))
    from engine.library.vector_index import _record_checksum

    _record_checksum(path, tmp)  # the sidecar names the new file, the old one is still there
    assert len(USearchIndex.load(path, DIM)) == 3


def test_a_search_never_waits_behind_a_save(tmp_path: Path) -> None:
    """A save holds the write lock only: searches go on while it writes the file."""
    import threading

    index = USearchIndex(DIM)
    vectors = _unit(np.random.default_rng(3), 500)
    index.add(np.arange(500, dtype=np.uint64), vectors)
    found: list[int] = []
    with index._write_lock:  # what a save of a large index holds while it writes
        searcher = threading.Thread(
            target=lambda: found.append(int(index.search(vectors[9], 1)[0][0]))
        )
        searcher.start()
        searcher.join(timeout=10)
        assert found == [9]
        # A write waits for the save instead.
        writer = threading.Thread(target=lambda: index.add(_keys(900), vectors[:1]))
        writer.start()
        writer.join(timeout=0.2)
        assert writer.is_alive()
    writer.join(timeout=10)
    assert index.contains(_keys(900)).all()
    index.save(tmp_path / "v.usearch")
    assert len(USearchIndex.load(tmp_path / "v.usearch", DIM)) == 501
