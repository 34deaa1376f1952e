"""Search a library that another Kenning process is writing, without writing to it.

Only one engine may open a data dir (:mod:`engine.data_lock`); a second process
that only wants to look (``kenning search`` or ``kenning status`` while the window
is open) reads beside it instead. SQLite's WAL lets it read while the writer
writes, and the writer saves the vector index atomically (write, then rename)
after every change set, so the reader reloads the saved file whenever it changed
on disk. Passages added since the writer's last save are found by BM25 at once
and by dense search after that save. A library on Milvus is searched there, as the
writer searches it (a Milvus Lite file serves one process: a server is needed).
"""

from __future__ import annotations

import threading
from pathlib import Path

from engine.config import EngineConfig
from engine.embedding import Embedder, precision_of
from engine.errors import StoreError
from engine.library.chunk_store import ChunkStore
from engine.library.library import (
    STORE_FILE,
    folder_statuses,
    model_path_for,
    scope_ids,
    served_index_path,
)
from engine.library.milvus_passages import MilvusPassages, describe_backend
from engine.library.retrieval import Hit, PassageTexts, SearchMode
from engine.library.retrieval import search as hybrid_search
from engine.library.vector_index import USearchIndex, VectorIndex
from engine.status import Status


class LibraryReader:
    """Read-only search and counts over a data dir another process holds."""

    def __init__(
        self,
        data_dir: Path | str,
        config: EngineConfig | None = None,
        *,
        embedder: Embedder | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.config = config or EngineConfig()
        if not (self.data_dir / STORE_FILE).is_file():
            raise StoreError(f"No Kenning library in {self.data_dir}")
        self.store = ChunkStore(self.data_dir / STORE_FILE)
        self.embedder = embedder or self._served_embedder()
        self._index: USearchIndex | None = None
        self._loaded: tuple[int, int] | None = None  # (mtime_ns, size) of the loaded file
        self._lock = threading.Lock()
        self._remote: MilvusPassages | None = None  # the Milvus library, once opened

    def _milvus(self) -> MilvusPassages:
        with self._lock:
            if self._remote is None:
                self._remote = MilvusPassages.for_config(self.config, self.store, self.embedder)
            return self._remote

    def _served_embedder(self) -> Embedder:
        """The model whose vectors the writer serves (the configured one if unknown)."""
        from engine.models import embedding_model_path

        _path, served = served_index_path(self.data_dir, self.store)
        place = model_path_for(self.store, served) if served else None
        precision = precision_of(served) if served else self.config.encoder_precision
        return Embedder(
            place or embedding_model_path(self.config.embedding_model),
            device="cpu",
            precision=precision,
        )

    def index(self) -> USearchIndex:
        """The writer's last saved vector index, reloaded when the file changed."""
        path, served = served_index_path(self.data_dir, self.store)
        if served is not None and served != self.embedder.model_id:
            return USearchIndex(self.embedder.dim)  # another model's vectors: words only
        with self._lock:
            try:
                st = path.stat()
                stamp = (st.st_mtime_ns, st.st_size)
            except OSError:
                stamp = None
            if self._index is None or stamp != self._loaded:
                try:
                    self._index = USearchIndex.load(path, self.embedder.dim)
                except ValueError:  # not saved yet, or being replaced: BM25 still works
                    self._index = self._index or USearchIndex(self.embedder.dim)
                self._loaded = stamp
            return self._index

    def search(
        self,
        query: str,
        limit: int = 10,
        *,
        mode: SearchMode | str = "hybrid",
        within: Path | str | None = None,
    ) -> list[Hit]:
        """Like :meth:`engine.Engine.search`, on what the writer last saved."""
        cfg = self.config
        scope = scope_ids(self.store, within) if within is not None else None
        index: VectorIndex
        texts: PassageTexts
        if cfg.backend == "milvus":  # no local vector file to load
            index = texts = self._milvus()
        else:
            index, texts = self.index(), self.store
        return hybrid_search(
            query,
            store=texts,
            index=index,
            embedder=self.embedder,
            limit=limit,
            mode=SearchMode(mode),
            candidates=cfg.candidates,
            fusion=cfg.fusion,
            dense_weight=cfg.dense_weight,
            rrf_k=cfg.rrf_k,
            within=scope,
        )

    def status(self) -> Status:
        """Counts and skipped files as the writer last stored them."""
        files, chunks = self.store.counts()
        return Status(
            folders=folder_statuses(self.store, lambda _path: "open elsewhere"),
            files=files,
            chunks=chunks,
            vectors=len(self.index()),
            queued=0,
            busy=False,
            progress=None,
            errors=tuple(self.store.errors()),
            paused=False,
            backend=describe_backend(self.config),
        )

    def close(self) -> None:
        self.store.close()
        if self._remote is not None:
            self._remote.close()

    def __enter__(self) -> LibraryReader:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
