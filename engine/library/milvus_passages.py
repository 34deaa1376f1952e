"""Passages on Milvus: a library shared by a team, or too large for one laptop.

The local backend keeps vectors in USearch and text in the SQLite store beside
them. This one keeps each passage whole in one Milvus collection: its vector
(HNSW, cosine), its text with Milvus' own BM25 full-text index, its offsets, page,
headings and the path of the file it came from. So several Kenning clients on
different machines index into one library and every search sees every client's
passages: a file watched by one client is indexed by that client, and the others
find it on their next search.

The local store still does the bookkeeping of the files this client watches
(sizes, hashes, which chunks a file has, what was skipped and why): it is how a
client knows what to index and what to delete, and it is what crash repair
compares the collection with. Milvus holds no file of another client's that this
one could open; a remote passage is cited by the path its client indexed it from.

Keys. A passage's key in Milvus is ``client << 40 | chunk id``, with ``client`` a
random 22-bit number the store keeps (``milvus_client`` in its meta): chunk ids
are the local store's and collide across clients. Towards the engine this client's
passages keep their local chunk ids (below ``2**40``) and other clients' keep their
Milvus keys (at or above it), so corrections, scopes and the reader use them as any
other chunk id and :meth:`MilvusPassages.get_chunks` knows where to read each.

Milvus Lite (``milvus_uri`` a local file path, the ``milvus-lite`` package) is the
same engine embedded in-process; the tests run on it. It serves one process, so
sharing needs a Milvus server or cluster (``http://host:19530``).
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.config import EngineConfig
from engine.embedding import Embedder
from engine.errors import BackendUnavailableError, EngineError
from engine.library.chunk_store import ChunkRecord, ChunkStore
from engine.library.vector_index import Keys, Vectors

log = logging.getLogger(__name__)

CLIENT_BITS = 22
LOCAL_BITS = 40
_LOCAL_MASK = (1 << LOCAL_BITS) - 1
# Milvus' VARCHAR limit; a chunk is a few thousand characters at most.
_MAX_TEXT = 65_535
_MAX_PATH = 4_096
_HEADING_SEP = "\x1f"
_ROWS_PER_CALL = 512  # per insert, delete and get: well under the gRPC message limit
_KEY_WINDOW = 16_384  # Milvus' most rows per query
RETRY_SECONDS = 1.0  # before a failed call's second try
_FIELDS = ["id", "client", "path", "ord", "start", "end", "page", "heading", "text", "hash"]


def redacted(uri: str) -> str:
    """``uri`` without credentials, for status and logs.

    >>> redacted("https://alice:s3cret@milvus.example:19530")
    'https://milvus.example:19530'
    >>> redacted("/home/a/library.db")
    '/home/a/library.db'
    """
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return uri
    return f"{scheme}://{rest.rsplit('@', 1)[-1]}"


def describe_backend(config: EngineConfig) -> str:
    """Where ``config``'s passages live, in words, without credentials."""
    if config.backend == "milvus" and config.milvus_uri:
        return f"Milvus at {redacted(config.milvus_uri)}"
    return "local"


def collection_name(library: str, model_id: str) -> str:
    """One collection per library and embedding model, as one index file per model
    locally: vectors of two models never meet in one collection."""
    import hashlib

    return f"{library}_{hashlib.sha256(model_id.encode()).hexdigest()[:12]}"


class MilvusPassages:
    """The vector index contract (:class:`~engine.library.vector_index.VectorIndex`)
    and the store's read side (``bm25_search``, ``get_chunks``) on one Milvus collection.

    Writes come from the indexer as for a local index (``add`` after the store
    committed the chunks, whose text is read back from the store); ``keys``,
    ``contains`` and ``remove`` see only this client's passages, so crash repair
    works as it does locally. ``save`` is a flush: the server keeps the data.

    Raises:
        BackendUnavailableError: from any call while the server cannot be reached.
    """

    def __init__(
        self,
        uri: str,
        store: ChunkStore,
        dim: int,
        model_id: str,
        *,
        token: str | None = None,
        library: str = "kenning",
        client: Any = None,
        on_unavailable: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self.dim = dim
        self.uri = redacted(uri)
        self.store = store
        self.collection = collection_name(library, model_id)
        self.client_id = client_number(store)
        self._lock = threading.Lock()
        self._on_unavailable = on_unavailable
        self._client = client if client is not None else _connect(uri, token)
        self._call(self._ensure_collection)

    @classmethod
    def for_config(
        cls,
        config: EngineConfig,
        store: ChunkStore,
        embedder: Embedder,
        on_unavailable: Callable[[str], None] = lambda reason: None,
    ) -> MilvusPassages:
        """The library ``config`` names, for ``embedder``'s vectors."""
        assert config.milvus_uri is not None
        return cls(
            config.milvus_uri,
            store,
            embedder.dim,
            embedder.model_id,
            token=config.milvus_token,
            library=config.milvus_library,
            on_unavailable=on_unavailable,
        )

    # -- the vector index contract -----------------------------------------------------
    def add(self, keys: Keys, vectors: Vectors) -> None:
        records = self.store.get_chunks(int(k) for k in keys)
        rows = []
        for key, vector in zip(keys, np.asarray(vectors, dtype=np.float32), strict=True):
            record = records.get(int(key))
            if record is None:  # deleted a moment ago: nothing to hold
                continue
            rows.append(self._row(record, vector))
        for i in range(0, len(rows), _ROWS_PER_CALL):
            part = rows[i : i + _ROWS_PER_CALL]
            self._call(lambda part=part: self._client.upsert(self.collection, part))

    def remove(self, keys: Keys) -> None:
        ids = [self._remote(int(k)) for k in keys]
        for i in range(0, len(ids), _ROWS_PER_CALL):
            part = ids[i : i + _ROWS_PER_CALL]
            self._call(lambda part=part: self._client.delete(self.collection, ids=part))

    def repoint(self, keys: Keys) -> None:
        """Rewrite these passages' rows from the store (their file moved), keeping
        each one's vector as Milvus holds it: nothing is embedded again."""
        ids = [self._remote(int(k)) for k in keys]
        for i in range(0, len(ids), _ROWS_PER_CALL):
            part = ids[i : i + _ROWS_PER_CALL]
            rows = self._call(
                lambda part=part: self._client.get(
                    self.collection, ids=part, output_fields=["id", "vector"]
                )
            )
            records = self.store.get_chunks(self._local(int(r["id"])) for r in rows)
            fresh = [
                self._row(records[self._local(int(r["id"]))], np.asarray(r["vector"], np.float32))
                for r in rows
                if self._local(int(r["id"])) in records
            ]
            if fresh:
                self._call(lambda fresh=fresh: self._client.upsert(self.collection, fresh))

    def search(self, query: Vectors, limit: int) -> tuple[Keys, npt.NDArray[np.float32]]:
        return self._dense(query, limit, None)

    def search_among(
        self, query: Vectors, keys: Keys, limit: int
    ) -> tuple[Keys, npt.NDArray[np.float32]]:
        return self._dense(query, limit, [self._remote(int(k)) for k in keys])

    def contains(self, keys: Keys) -> npt.NDArray[np.bool_]:
        found: set[int] = set()
        ids = [self._remote(int(k)) for k in keys]
        for i in range(0, len(ids), _ROWS_PER_CALL):
            part = ids[i : i + _ROWS_PER_CALL]
            rows = self._call(
                lambda part=part: self._client.get(self.collection, ids=part, output_fields=["id"])
            )
            found.update(self._local(int(r["id"])) for r in rows)
        return np.asarray([int(k) in found for k in keys], dtype=np.bool_)

    def keys(self) -> Keys:
        """This client's keys (as local chunk ids), never another client's."""

        # By windows of ids (a query returns at most 16,384 rows): chunk ids count up
        # from 1 in the store and are never reused, so the last one given bounds
        # this client's keys, deleted chunks' included.
        top = self.store.last_chunk_id()
        base = self.client_id << LOCAL_BITS

        def run() -> list[int]:
            out: list[int] = []
            for low in range(0, top + 1, _KEY_WINDOW):
                rows = self._client.query(
                    self.collection,
                    filter=f"id >= {base + low} and id < {base + low + _KEY_WINDOW}",
                    output_fields=["id"],
                    limit=_KEY_WINDOW,
                )
                out += [int(r["id"]) & _LOCAL_MASK for r in rows]
            return out

        return np.asarray(sorted(self._call(run)), dtype=np.uint64)

    def own_count(self) -> int:
        """This client's passages (one count query: status asks often)."""
        rows = self._call(
            lambda: self._client.query(
                self.collection,
                filter=f"client == {self.client_id}",
                output_fields=["count(*)"],
            )
        )
        return int(rows[0]["count(*)"]) if rows else 0

    def __len__(self) -> int:
        """Passages in the whole library, every client's."""
        rows = self._call(
            lambda: self._client.query(self.collection, filter="", output_fields=["count(*)"])
        )
        return int(rows[0]["count(*)"]) if rows else 0

    def save(self, path: Path) -> None:
        """Flush (the server keeps the data; ``path`` is the local index's, unused)."""
        self._call(lambda: self._client.flush(self.collection))

    # -- the store's read side -------------------------------------------------------------
    def bm25_search(
        self, query: str, limit: int, *, within: Sequence[int] | None = None
    ) -> list[tuple[int, float]]:
        """Milvus' BM25 over passage text and headings; (chunk id, score) best first."""
        if not query.strip() or limit <= 0 or (within is not None and not within):
            return []
        rows = self._call(
            lambda: self._client.search(
                self.collection,
                [query],
                anns_field="words_bm25",
                limit=limit,
                filter=self._filter(within),
                output_fields=["id"],
            )
        )
        # Milvus Lite reports BM25 as a negative distance, a server as a score.
        return [(self._local(int(r["id"])), abs(float(r["distance"]))) for r in rows[0]]

    def get_chunks(self, ids: Iterable[int]) -> dict[int, ChunkRecord]:
        """This client's chunks from the store, other clients' from Milvus."""
        ids = [int(i) for i in ids]
        out = self.store.get_chunks(i for i in ids if i <= _LOCAL_MASK)
        remote = [i for i in ids if i > _LOCAL_MASK]
        for i in range(0, len(remote), _ROWS_PER_CALL):
            part = remote[i : i + _ROWS_PER_CALL]
            rows = self._call(
                lambda part=part: self._client.get(self.collection, ids=part, output_fields=_FIELDS)
            )
            for row in rows:
                record = _record(row)
                out[record.id] = record
        return out

    def reopen(self) -> None:
        """Load the collection again (a restarted server starts with it released)."""
        self._call(self._ensure_collection)

    def close(self) -> None:
        try:
            self._client.close()
        except Exception:  # closing a client whose server is gone
            log.debug("closing the Milvus client failed", exc_info=True)

    # -- inside ----------------------------------------------------------------------------
    def _remote(self, key: int) -> int:
        return key if key > _LOCAL_MASK else (self.client_id << LOCAL_BITS) | key

    def _local(self, key: int) -> int:
        return key & _LOCAL_MASK if key >> LOCAL_BITS == self.client_id else key

    def _filter(self, within: Sequence[int] | None) -> str:
        if within is None:
            return ""
        return "id in [" + ",".join(str(self._remote(int(k))) for k in within) + "]"

    def _dense(
        self, query: Vectors, limit: int, among: list[int] | None
    ) -> tuple[Keys, npt.NDArray[np.float32]]:
        if limit <= 0 or (among is not None and not among):
            return np.empty(0, np.uint64), np.empty(0, np.float32)
        vector = np.asarray(query, dtype=np.float32).reshape(-1).tolist()
        rows = self._call(
            lambda: self._client.search(
                self.collection,
                [vector],
                anns_field="vector",
                limit=min(limit, 16_384),
                filter=self._filter(among),
                output_fields=["id"],
                search_params={"metric_type": "COSINE", "params": {"ef": max(64, limit)}},
            )
        )
        hits = rows[0]
        keys = np.asarray([self._local(int(r["id"])) for r in hits], dtype=np.uint64)
        return keys, np.asarray([float(r["distance"]) for r in hits], dtype=np.float32)

    def _row(self, record: ChunkRecord, vector: npt.NDArray[np.float32]) -> dict[str, Any]:
        heading = _HEADING_SEP.join(record.heading_path)
        return {
            "id": self._remote(record.id),
            "client": self.client_id,
            "vector": vector.tolist(),
            "path": str(record.path)[:_MAX_PATH],
            "ord": record.ord,
            "start": record.start,
            "end": record.end,
            "page": -1 if record.page is None else int(record.page),
            "heading": heading[:_MAX_PATH],
            "text": record.text[:_MAX_TEXT],
            "words": (" ".join(record.heading_path) + "\n" + record.text)[:_MAX_TEXT],
            "hash": record.content_hash,
        }

    def _ensure_collection(self) -> None:
        from pymilvus import DataType, Function, FunctionType

        c = self._client
        if c.has_collection(self.collection):
            c.load_collection(self.collection)
            return
        schema = c.create_schema(auto_id=False, description="Kenning passages")
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("client", DataType.INT64)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=self.dim)
        schema.add_field("path", DataType.VARCHAR, max_length=_MAX_PATH)
        schema.add_field("ord", DataType.INT64)
        schema.add_field("start", DataType.INT64)
        schema.add_field("end", DataType.INT64)
        schema.add_field("page", DataType.INT64)
        schema.add_field("heading", DataType.VARCHAR, max_length=_MAX_PATH)
        schema.add_field("text", DataType.VARCHAR, max_length=_MAX_TEXT)
        schema.add_field("words", DataType.VARCHAR, max_length=_MAX_TEXT, enable_analyzer=True)
        schema.add_field("words_bm25", DataType.SPARSE_FLOAT_VECTOR)
        schema.add_field("hash", DataType.VARCHAR, max_length=64)
        schema.add_function(
            Function(
                name="words_to_bm25",
                function_type=FunctionType.BM25,
                input_field_names=["words"],
                output_field_names=["words_bm25"],
            )
        )
        index = c.prepare_index_params()
        index.add_index(
            "vector",
            index_type="HNSW",
            metric_type="COSINE",
            params={"M": 16, "efConstruction": 128},
        )
        index.add_index("words_bm25", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25")
        index.add_index("client", index_type="INVERTED")
        try:
            c.create_collection(self.collection, schema=schema, index_params=index)
        except Exception:
            # Another client created it a moment before: the same schema, use it.
            if not c.has_collection(self.collection):
                raise
            c.load_collection(self.collection)

    def _call(self, run: Any) -> Any:
        """``run()``, with the server's failures as :class:`BackendUnavailableError`.

        A failed call is tried once more a second later: a connection the server
        dropped (a restart, an idle timeout) is usually back by then, and one blip
        should not put the library offline.
        """
        from pymilvus.exceptions import MilvusException

        with self._lock:
            for attempt in (1, 2):
                try:
                    return run()
                except MilvusException as exc:
                    error = BackendUnavailableError(
                        f"the Milvus library at {self.uri} did not answer ({exc.message})"
                    )
                except (ConnectionError, OSError) as exc:
                    error = BackendUnavailableError(
                        f"the Milvus library at {self.uri} cannot be reached ({exc})"
                    )
                if attempt == 1:
                    time.sleep(RETRY_SECONDS)
        self._on_unavailable(str(error))
        raise error


def client_number(store: ChunkStore) -> int:
    """This client's number in a shared library, made once and kept in the store."""
    known = store.get_meta("milvus_client")
    if known is not None:
        return int(known)
    number = secrets.randbelow((1 << CLIENT_BITS) - 1) + 1
    store.set_meta("milvus_client", str(number))
    return number


def _connect(uri: str, token: str | None) -> Any:
    try:
        from pymilvus import MilvusClient
    except ImportError as exc:
        raise EngineError(
            "The Milvus backend needs pymilvus (pip install 'kenning[milvus]')"
        ) from exc
    if "://" not in uri:
        # Milvus Lite serves in-process over gRPC and lacks calls newer clients try
        # first (AllocTimestamp: pymilvus falls back by itself); its server would
        # log each as an error with a traceback.
        logging.getLogger("grpc._server").setLevel(logging.CRITICAL)
    # pymilvus logs every failed call with a traceback; each reaches the person once,
    # as the reason in status (BackendUnavailableError), and the log once.
    logging.getLogger("pymilvus").setLevel(logging.CRITICAL)
    try:
        # pymilvus pings every 10 s even while idle; a gRPC server on default
        # settings (Milvus Lite's) counts that as abuse and drops the connection
        # ("Too many pings") while the client is busy embedding. Pings only during
        # calls, and a minute apart.
        return MilvusClient(
            uri=uri,
            token=token or "",
            timeout=10,
            grpc_options={
                "grpc.keepalive_time_ms": 60_000,
                "grpc.keepalive_permit_without_calls": False,
            },
        )
    except Exception as exc:  # pymilvus raises its own and grpc's errors here
        raise BackendUnavailableError(
            f"the Milvus library at {redacted(uri)} cannot be reached ({exc})"
        ) from exc


def _record(row: dict[str, Any]) -> ChunkRecord:
    page = int(row["page"])
    return ChunkRecord(
        id=int(row["id"]),
        file_id=-1,  # another client's file: no row in this store
        path=Path(str(row["path"])),
        ord=int(row["ord"]),
        start=int(row["start"]),
        end=int(row["end"]),
        page=None if page < 0 else page,
        heading_path=tuple(h for h in str(row["heading"]).split(_HEADING_SEP) if h),
        embed_prefix="",
        text=str(row["text"]),
        content_hash=str(row["hash"]),
    )
