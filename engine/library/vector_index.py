"""Vector indexes: integer keys and unit vectors, nothing a person reads.

:class:`USearchIndex` is the real one (HNSW, cosine). :class:`ExactIndex` is a
brute-force NumPy twin with the same contract, used to check the approximate
index and wherever a just-added key must be found for certain.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import zlib
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from engine.native import preload_onnxruntime

Keys = npt.NDArray[np.uint64]
Vectors = npt.NDArray[np.float32]


class VectorIndex(Protocol):
    """What the engine needs from a vector index."""

    dim: int

    def add(self, keys: Keys, vectors: Vectors) -> None:
        """Insert vectors under new keys (a key already present is replaced)."""

    def remove(self, keys: Keys) -> None:
        """Delete keys; unknown keys are ignored."""

    def search(self, query: Vectors, limit: int) -> tuple[Keys, npt.NDArray[np.float32]]:
        """Nearest keys to a (dim,) query with cosine similarities, best first."""

    def search_among(
        self, query: Vectors, keys: Keys, limit: int
    ) -> tuple[Keys, npt.NDArray[np.float32]]:
        """Exact cosine search over ``keys`` only (a scope: one file or folder)."""

    def contains(self, keys: Keys) -> npt.NDArray[np.bool_]:
        """Membership of each key."""

    def keys(self) -> Keys:
        """Every key in the index."""

    def __len__(self) -> int: ...

    def save(self, path: Path) -> None:
        """Write atomically: a crash leaves the old file or the new one, never half."""


class USearchIndex:
    """HNSW cosine index backed by USearch; thread-safe for one writer and many readers."""

    def __init__(self, dim: int, *, connectivity: int = 16, expansion_search: int = 64) -> None:
        preload_onnxruntime()  # before USearch, or a later ONNX Runtime import crashes
        from usearch.index import Index

        self.dim = dim
        self._index = Index(
            ndim=dim,
            metric="cos",
            dtype="f32",
            connectivity=connectivity,
            expansion_search=expansion_search,
        )
        # Searches and writes exclude each other; a save excludes writes only. A save
        # reads the graph as searches do, so searches never wait behind one (a save of
        # 20k vectors took 79 ms, and searches queued behind it).
        self._lock = threading.RLock()
        self._write_lock = threading.RLock()

    @classmethod
    def load(cls, path: Path, dim: int) -> USearchIndex:
        """Open a saved index; raises ValueError if it is unreadable or of another size."""
        index = cls(dim)
        _verify_checksum(path)
        try:
            index._index.load(str(path))
        except Exception as exc:  # USearch raises RuntimeError/ValueError for bad files
            raise ValueError(f"unreadable vector index {path}: {exc}") from exc
        if index._index.ndim != dim:
            raise ValueError(f"vector index {path} has {index._index.ndim} dims, expected {dim}")
        return index

    def add(self, keys: Keys, vectors: Vectors) -> None:
        if len(keys) == 0:
            return
        keys = np.asarray(keys, dtype=np.uint64)
        with self._write_lock, self._lock:
            present = keys[self._contains(keys)]
            if len(present):
                self._index.remove(present)
            # Both cores for a batch (indexing adds a whole embedding batch at once);
            # a handful of vectors is not worth the threads.
            threads = 0 if len(keys) >= 64 else 1
            self._index.add(keys, np.asarray(vectors, dtype=np.float32), threads=threads)

    def remove(self, keys: Keys) -> None:
        keys = np.asarray(keys, dtype=np.uint64)
        with self._write_lock, self._lock:
            present = keys[self._contains(keys)] if len(keys) else keys
            if len(present):
                self._index.remove(present)

    def search(self, query: Vectors, limit: int) -> tuple[Keys, npt.NDArray[np.float32]]:
        with self._lock:
            if len(self._index) == 0 or limit <= 0:
                return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.float32)
            matches = self._index.search(np.asarray(query, dtype=np.float32), limit, threads=1)
        keys = np.asarray(matches.keys, dtype=np.uint64)
        scores = 1.0 - np.asarray(matches.distances, dtype=np.float32)
        return keys, scores.astype(np.float32)

    def search_among(
        self, query: Vectors, keys: Keys, limit: int
    ) -> tuple[Keys, npt.NDArray[np.float32]]:
        """Exact over the scope: HNSW with a filter would still walk the whole graph
        for a scope of one file, while a file's few hundred vectors score in microseconds."""
        keys = np.asarray(keys, dtype=np.uint64)
        with self._lock:
            if len(keys) == 0 or len(self._index) == 0 or limit <= 0:
                return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.float32)
            present = keys[self._contains(keys)]
            if len(present) == 0:
                return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.float32)
            vectors = np.asarray(self._index.get(present), dtype=np.float32).reshape(
                len(present), self.dim
            )
        return _top_cosine(query, present, vectors, limit, self.dim)

    def contains(self, keys: Keys) -> npt.NDArray[np.bool_]:
        with self._lock:
            return self._contains(np.asarray(keys, dtype=np.uint64))

    def _contains(self, keys: Keys) -> npt.NDArray[np.bool_]:
        if len(keys) == 0 or len(self._index) == 0:
            return np.zeros(len(keys), dtype=bool)
        return np.asarray(self._index.contains(keys), dtype=bool).reshape(len(keys))

    def keys(self) -> Keys:
        with self._lock:
            return np.asarray(self._index.keys, dtype=np.uint64)

    def __len__(self) -> int:
        return len(self._index)

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp")
        with self._write_lock:
            self._index.save(str(tmp))
        _fsync_file(tmp)
        _record_checksum(path, tmp)  # before the rename: a crash between the two is fine
        os.replace(tmp, path)


# USearch loads a file with garbage in the middle without a word (4 KiB of it left
# three passages with broken vectors, missing from dense search for good). A CRC-32
# beside the file, checked at load, turns that into a rebuild from the stored texts.
# The sidecar names the new file's checksum and the previous one's, so a crash
# between writing it and renaming the new file into place still verifies.
CHECKSUM_SUFFIX = ".crc.json"


class SuccessorIndex:
    """The index of a new embedding model being filled while the old one is searched.

    Every write goes to ``successor``; removals also reach ``served``, so a passage
    deleted or edited meanwhile never comes back from the old vectors (a chunk id
    may be reused). Additions do not: the old model cannot embed them, and keyword
    search finds them until the successor takes over.
    """

    def __init__(self, successor: USearchIndex, served: USearchIndex) -> None:
        self.successor, self.served = successor, served
        self.dim = successor.dim

    def add(self, keys: Keys, vectors: Vectors) -> None:
        self.successor.add(keys, vectors)

    def remove(self, keys: Keys) -> None:
        self.successor.remove(keys)
        self.served.remove(keys)

    def search(self, query: Vectors, limit: int) -> tuple[Keys, npt.NDArray[np.float32]]:
        return self.successor.search(query, limit)

    def search_among(
        self, query: Vectors, keys: Keys, limit: int
    ) -> tuple[Keys, npt.NDArray[np.float32]]:
        return self.successor.search_among(query, keys, limit)

    def contains(self, keys: Keys) -> npt.NDArray[np.bool_]:
        return self.successor.contains(keys)

    def keys(self) -> Keys:
        return self.successor.keys()

    def __len__(self) -> int:
        return len(self.successor)

    def save(self, path: Path) -> None:
        self.successor.save(path)


def _crc32(path: Path) -> int:
    crc = 0
    with open(path, "rb") as handle:
        while block := handle.read(4 * 1024 * 1024):
            crc = zlib.crc32(block, crc)
    return crc


def _record_checksum(path: Path, new_file: Path) -> None:
    sidecar = Path(str(path) + CHECKSUM_SUFFIX)
    previous = None
    with contextlib.suppress(OSError, ValueError, KeyError):
        previous = int(json.loads(sidecar.read_text(encoding="utf-8"))["crc32"])
    tmp = Path(str(sidecar) + ".tmp")
    tmp.write_text(json.dumps({"crc32": _crc32(new_file), "previous": previous}), "utf-8")
    _fsync_file(tmp)
    os.replace(tmp, sidecar)


def _verify_checksum(path: Path) -> None:
    """Raise ValueError when ``path`` matches neither checksum its sidecar records.

    A file saved before checksums existed (no sidecar) is trusted as before.
    """
    sidecar = Path(str(path) + CHECKSUM_SUFFIX)
    try:
        recorded = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    try:
        actual = _crc32(path)
    except OSError as exc:
        raise ValueError(f"unreadable vector index {path}: {exc}") from exc
    if actual not in (recorded.get("crc32"), recorded.get("previous")):
        raise ValueError(f"vector index {path} is damaged (checksum mismatch)")


class ExactIndex:
    """Brute-force cosine search over a NumPy matrix: slow at scale, never misses."""

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._keys = np.zeros(0, dtype=np.uint64)
        self._vectors = np.zeros((0, dim), dtype=np.float32)
        self._lock = threading.RLock()

    @classmethod
    def load(cls, path: Path, dim: int) -> ExactIndex:
        index = cls(dim)
        with np.load(path, allow_pickle=False) as data:
            index._keys = data["keys"].astype(np.uint64)
            index._vectors = data["vectors"].astype(np.float32)
        if index._vectors.shape[1] != dim:
            raise ValueError(f"exact index {path} has wrong dimension")
        return index

    def add(self, keys: Keys, vectors: Vectors) -> None:
        keys = np.asarray(keys, dtype=np.uint64)
        vectors = _normalize(np.asarray(vectors, dtype=np.float32).reshape(len(keys), self.dim))
        with self._lock:
            keep = ~np.isin(self._keys, keys)
            self._keys = np.concatenate([self._keys[keep], keys])
            self._vectors = np.concatenate([self._vectors[keep], vectors])

    def remove(self, keys: Keys) -> None:
        with self._lock:
            keep = ~np.isin(self._keys, np.asarray(keys, dtype=np.uint64))
            self._keys, self._vectors = self._keys[keep], self._vectors[keep]

    def search(self, query: Vectors, limit: int) -> tuple[Keys, npt.NDArray[np.float32]]:
        with self._lock:
            keys, vectors = self._keys, self._vectors
        if len(keys) == 0 or limit <= 0:
            return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.float32)
        q = _normalize(np.asarray(query, dtype=np.float32).reshape(1, self.dim))[0]
        scores = vectors @ q
        top = np.argsort(-scores, kind="stable")[:limit]
        return keys[top], scores[top].astype(np.float32)

    def search_among(
        self, query: Vectors, keys: Keys, limit: int
    ) -> tuple[Keys, npt.NDArray[np.float32]]:
        with self._lock:
            mask = np.isin(self._keys, np.asarray(keys, dtype=np.uint64))
            present, vectors = self._keys[mask], self._vectors[mask]
        if len(present) == 0 or limit <= 0:
            return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.float32)
        return _top_cosine(query, present, vectors, limit, self.dim)

    def contains(self, keys: Keys) -> npt.NDArray[np.bool_]:
        with self._lock:
            return np.isin(np.asarray(keys, dtype=np.uint64), self._keys)

    def keys(self) -> Keys:
        with self._lock:
            return self._keys.copy()

    def __len__(self) -> int:
        return len(self._keys)

    def save(self, path: Path) -> None:
        tmp = path.with_name(path.name + ".tmp.npz")
        with self._lock:
            np.savez(tmp, keys=self._keys, vectors=self._vectors)
        _fsync_file(tmp)
        os.replace(tmp, path)


def _normalize(vectors: Vectors) -> Vectors:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    out: Vectors = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
    return out


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _top_cosine(
    query: Vectors, keys: Keys, vectors: Vectors, limit: int, dim: int
) -> tuple[Keys, npt.NDArray[np.float32]]:
    """The ``limit`` keys whose vectors are nearest ``query`` by cosine, best first."""
    q = _normalize(np.asarray(query, dtype=np.float32).reshape(1, dim))[0]
    scores = _normalize(np.asarray(vectors, dtype=np.float32)) @ q
    top = np.argsort(-scores, kind="stable")[:limit]
    return np.asarray(keys, dtype=np.uint64)[top], scores[top].astype(np.float32)
