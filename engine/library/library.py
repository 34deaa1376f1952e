"""The library: the folders a person chose, kept indexed and searchable.

:class:`Library` owns the chunk store, the vector index and the folder watcher.
Every write to them is a job on the engine's :class:`~engine.writer.Writer`;
searches run on the caller's thread beside it. It knows nothing of answers or
corrections: the learning room hands it ranking boosts, already computed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from engine.config import EngineConfig
from engine.embedding import Embedder, bundled_embedding_model_path, model_id_of, precision_of
from engine.errors import (
    BackendUnavailableError,
    EngineError,
    FolderNotFoundError,
    FolderRefusedError,
    ModelNotAvailableError,
    StoreDamagedError,
    StoreError,
)
from engine.integrity import move_aside
from engine.library.chunk_store import ChunkRecord, ChunkStore
from engine.library.indexing import Indexer, IndexStats
from engine.library.milvus_passages import describe_backend
from engine.library.ocr_pages import FILE_NAME as OCR_PAGES_FILE
from engine.library.ocr_pages import OcrPages
from engine.library.retrieval import Hit, PassageTexts, SearchMode, apply_boosts
from engine.library.retrieval import search as hybrid_search
from engine.library.scanning import refused_folder
from engine.library.vector_index import SuccessorIndex, USearchIndex, VectorIndex
from engine.library.watching import EVENT_GRACE_SECONDS, ChangeSet, FolderWatcher, apply_change_set
from engine.status import FolderStatus
from engine.writer import Cancelled, Writer

log = logging.getLogger(__name__)

STORE_FILE = "kenning.sqlite3"
# Before embedding models could change in the background: one index file, holding
# the vectors of the model the store's meta names. Adopted under its new name.
INDEX_FILE = "vectors.usearch"
INDEX_GLOB = "vectors-*.usearch"
# Passages re-embedded per writer job when the embedding model changes; then the
# job queues its continuation, so file changes meanwhile wait at most one slice
# (about 20 s with multilingual-e5-small on two CPU cores).
REEMBED_SLICE = 512
REEMBED_JOB = "re-embed"
OCR_JOB = "ocr"
RECONNECT_JOB = "reconnect"
SAVE_JOB = "save-index"
# Seconds between tries to reach a Milvus library that stopped answering.
RECONNECT_SECONDS = 10.0
# Layout of the vector index file; a different one is rebuilt from the store.
INDEX_FORMAT = 1
# More hits than anyone reads; a larger limit (10**12 tried to allocate 21.8 TiB) is cut.
MAX_SEARCH_LIMIT = 1000


def open_store(data_dir: Path) -> ChunkStore:
    """The chunk store; a damaged one is moved aside and rebuilt from the files.

    Everything in it is derived from the folders' files, so the damaged copy is
    kept (``kenning.sqlite3.damaged-<time>``) and the folders it still lists are
    indexed again into a new store; the vector index goes with it (its keys
    are the old store's ids). Status lists what happened.
    """
    path = data_dir / STORE_FILE
    try:
        return ChunkStore(path)
    except StoreDamagedError as damaged:
        kept = move_aside(path)
        for index in (data_dir / INDEX_FILE, *data_dir.glob(INDEX_GLOB)):
            index.unlink(missing_ok=True)
        log.error("%s Rebuilding it from the files; the damaged copy is %s", damaged, kept)
        store = ChunkStore(path)
        for folder in damaged.folders:
            store.add_folder(folder)
        store.record_error(
            path,
            None,
            f"the search index was damaged ({damaged.detail}); it is rebuilt from your "
            f"files, the damaged copy is kept as {kept.name}",
        )
        return store


def index_file(model_id: str) -> str:
    """The file name of the vector index holding one embedding model's vectors.

    One file per model, so that while a new model's vectors are made the old
    ones stay searchable, and the switch is one write of the store's meta: a
    crash on either side of it leaves a store whose meta names a complete file.
    """
    return f"vectors-{hashlib.sha256(model_id.encode()).hexdigest()[:12]}.usearch"


def served_index_path(data_dir: Path, store: ChunkStore) -> tuple[Path, str | None]:
    """The index file searches read, and the id of the model that made it."""
    served = store.get_meta("embedding_model")
    legacy = data_dir / INDEX_FILE
    if served is None:
        return legacy, None
    path = data_dir / index_file(served)
    return (legacy if legacy.exists() and not path.exists() else path), served


def model_path_for(store: ChunkStore, model_id: str) -> Path | None:
    """Where the embedding model ``model_id`` is on this machine, if it still is.

    Looked for where the store recorded it, then among the models Kenning knows
    (the bundled MiniLM; multilingual-e5-small, made again if its packages are
    installed), by the id computed from each folder's files, without loading.
    """
    from engine.config import default_cache_dir
    from engine.multilingual import MULTILINGUAL_MODEL, multilingual_model_path

    places: list[Path] = []
    recorded = store.get_meta("embedding_path")
    if recorded:
        places.append(Path(recorded))
    with contextlib.suppress(ModelNotAvailableError):  # a wheel-less install
        places.append(bundled_embedding_model_path())
    if model_id.startswith(MULTILINGUAL_MODEL + ":"):
        try:
            places.append(multilingual_model_path(default_cache_dir()))
        except ModelNotAvailableError as exc:
            log.warning("the multilingual model is not available: %s", exc)
    for place in places:
        if place.is_dir() and model_id_of(place, precision_of(model_id)) == model_id:
            return place
    return None


def scope_ids(store: ChunkStore, within: Path | str) -> list[int]:
    """The chunk ids of the file ``within``, or of every file beneath the folder.

    Raises:
        FolderNotFoundError: nothing is indexed there (outside the library,
            skipped, or not indexed yet).
    """
    path = Path(within).expanduser().resolve()
    ids = store.chunk_ids_under(path)
    if not ids:
        raise FolderNotFoundError(
            f"Nothing is indexed at {path}: it is outside your folders, was skipped "
            "(see status), or is not indexed yet"
        )
    return ids


def folder_statuses(store: ChunkStore, state: Callable[[Path], str]) -> tuple[FolderStatus, ...]:
    """Each folder's counts and skipped files, in the state ``state(path)`` names."""
    folders = []
    for rec in store.folders():
        files, chunks = store.counts(rec.id)
        errors = tuple(store.errors(rec.id))
        folders.append(
            FolderStatus(rec.path, files, chunks, rec.synced_at, state(rec.path), errors)
        )
    return tuple(folders)


class Library:
    """Index folders, keep them in sync with the disk, search them.

    Args:
        data_dir: Where the chunk store and the vector index live.
        config: Chunking, search and watching settings.
        writer: Runs every write; the library submits to it and never writes itself.
        embedder: Returns the embedding model (loaded on first use).

    Opening reads the store (rebuilt if damaged); :meth:`start` then starts the
    watcher and queues the vector index's opening and a sync of every folder.
    """

    def __init__(
        self,
        data_dir: Path,
        config: EngineConfig,
        writer: Writer,
        embedder: Callable[[], Embedder],
    ) -> None:
        self.data_dir = data_dir
        self.config = config
        self.store = open_store(data_dir)
        self.ocr_pages = OcrPages(data_dir / OCR_PAGES_FILE)
        self._writer = writer
        self._embedder = embedder
        self._index: VectorIndex | None = None
        self._index_path: Path | None = None
        # While a new embedding model's vectors are made: the old index and the
        # model that embeds queries for it (None: keyword search only meanwhile).
        self._served: tuple[USearchIndex, Embedder] | None = None
        self._successor: str | None = None  # the new model's id, while it is filled
        self._index_ready = threading.Event()
        self._index_dirty = False
        self._last_save = time.monotonic()
        self._save_timer: threading.Timer | None = None
        self._keywords: ThreadPoolExecutor | None = None
        self._closed = False
        self._threads_lock = threading.Lock()
        self._startup_error: BaseException | None = None
        # A Milvus library that cannot be reached: why, shown in status and the window
        # until a reconnect succeeds (see _backend_down).
        self.backend_problem: str | None = None
        self._retry: threading.Timer | None = None
        self.last_stats = IndexStats()
        self.live_stats = IndexStats()  # totals of every change set the watcher handed over
        self.totals = IndexStats()  # totals of all indexing work: syncs and change sets
        self._watcher = FolderWatcher(
            debounce=config.debounce_seconds,
            on_changes=self._submit_changes,
            on_reappeared=self._submit_sync,
            on_pending=writer.hold,
            on_error=lambda folder, reason: self.store.record_error(folder, None, reason),
            ignore_patterns=config.ignore_patterns,
            exclude=(data_dir.resolve(),),
        )

    def start(self) -> None:
        """Watch every folder and queue the index's opening and a sync of each."""
        self._watcher.start()
        self._writer.submit("Opening the index", self._open_index)
        for folder in self.store.folders():
            # Watch before the start-up sync, so nothing changed during it is missed.
            self._watcher.watch(folder.path)
            self._submit_sync(folder.path)
        self._continue_ocr_later()  # a long scan's OCR resumes where it stopped

    # -- folders -------------------------------------------------------------------------
    def add_folder(self, path: Path | str) -> None:
        """Index a folder recursively in the background; returns at once.

        Raises:
            FolderNotFoundError: ``path`` is empty or not an existing directory.
            FolderRefusedError: the root or a system directory (see
                :func:`engine.library.scanning.refused_folder`).
        """
        if not str(path).strip():
            raise FolderNotFoundError("No folder given (an empty path)")
        folder = Path(path).expanduser().resolve()
        if not folder.is_dir():
            raise FolderNotFoundError(f"Not a folder: {folder}")
        refusal = refused_folder(folder)
        if refusal:
            raise FolderRefusedError(refusal)
        self.store.add_folder(folder)
        self._watcher.watch(folder)
        self._submit_sync(folder)

    def remove_folder(self, path: Path | str) -> None:
        """Forget a folder and every chunk indexed from it (in the background)."""
        folder = Path(path).expanduser().resolve()
        self._watcher.unwatch(folder)

        def run(cancel: threading.Event) -> None:
            record = self.store.get_folder(folder)
            if record is not None:
                self._indexer().remove_folder(record)

        self._writer.submit(f"Removing {folder}", run, folder)

    def resync(self) -> None:
        """Re-scan every folder for changes made behind the engine's back."""
        for folder in self.store.folders():
            self._submit_sync(folder.path)
        if self._successor is not None:  # a cancelled re-embedding goes on
            self._writer.submit_once(REEMBED_JOB, "Re-embedding your passages", self._reembed)
        self._continue_ocr_later()

    @property
    def watch_grace(self) -> float:
        """How long a file just written may take to reach the watcher (0: none watched)."""
        return EVENT_GRACE_SECONDS if self._watcher.folders else 0.0

    # -- search --------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """Whether the vector index is open (searches before it wait for it)."""
        return self._index_ready.is_set() and self._startup_error is None

    @property
    def index(self) -> VectorIndex | None:
        """The vector index writes go to, once open."""
        return self._index

    @property
    def reembedding(self) -> bool:
        """Whether a new embedding model's vectors are being made (old ones searched)."""
        return self._successor is not None

    def search(
        self,
        query: str,
        limit: int = 10,
        *,
        mode: SearchMode | str = SearchMode.HYBRID,
        fusion: str | None = None,
        boosts: dict[int, float] | None = None,
        within: Path | str | None = None,
    ) -> list[Hit]:
        """The passages that best match ``query``, best first.

        Args:
            boosts: Score added per chunk id (rated passages of similar questions);
                a boosted passage the search missed is brought in.
            within: Only passages of this file, or of the files under this folder.

        Raises:
            StoreError: the store was damaged after it was opened.
            FolderNotFoundError: nothing is indexed at ``within``.
        """
        limit = max(1, min(limit, MAX_SEARCH_LIMIT))
        index: VectorIndex = self.wait_for_index()
        embedder = self._embedder()
        mode = SearchMode(mode)
        served = self._served
        if self._successor is not None:
            # Re-embedding for a new model: the new index is still partial.
            if served is not None:
                index, embedder = served
            else:
                mode = SearchMode.BM25  # the old model is gone: words only
        cfg = self.config
        scope = self.scope(within) if within is not None else None
        if scope is not None and boosts:
            allowed = set(scope)
            boosts = {k: v for k, v in boosts.items() if k in allowed}
        try:
            hits = hybrid_search(
                query,
                store=self.passages,
                index=index,
                embedder=embedder,
                limit=max(limit, cfg.candidates) if boosts else limit,
                mode=mode,
                candidates=cfg.candidates,
                fusion=fusion or cfg.fusion,
                dense_weight=cfg.dense_weight,
                rrf_k=cfg.rrf_k,
                within=scope,
                beside=self._keyword_threads(),
            )
            if not boosts:
                return hits
            extra = self.passages.get_chunks(k for k, v in boosts.items() if v > 0)
        except sqlite3.DatabaseError as exc:  # damage that appeared after open
            raise StoreError(
                f"The search index {self.store.path} is damaged ({exc}). Restart Kenning: "
                "it checks the file at start and rebuilds it from your files."
            ) from exc
        return apply_boosts(hits, boosts, extra.values())[:limit]

    @property
    def passages(self) -> PassageTexts:
        """Where passages are read and keyword-searched: the store, or for a Milvus
        library the collection every client writes to (this client's from the store)."""
        index = self._index
        return index if isinstance(index, PassageTexts) else self.store

    def scope(self, within: Path | str) -> list[int]:
        """The chunk ids of the file ``within``, or of every file beneath the folder
        (see :func:`scope_ids`)."""
        return scope_ids(self.store, within)

    def chunks_in_order(self, ids: Iterable[int]) -> list[ChunkRecord]:
        """The chunks ``ids`` by file, then in document order (for reading them out)."""
        found = self.passages.get_chunks(ids)
        return sorted(found.values(), key=lambda c: (str(c.path), c.ord))

    def wait_for_index(self) -> VectorIndex:
        """The vector index, waiting for it to open; re-raises what kept it from opening."""
        if not self._index_ready.wait(timeout=600):
            raise EngineError("the vector index did not open in time")
        if self._startup_error is not None:
            raise self._startup_error
        assert self._index is not None
        return self._index

    # -- status --------------------------------------------------------------------------
    def folder_statuses(self) -> tuple[FolderStatus, ...]:
        """Each folder's counts, skipped files and state (indexing, queued, ready, missing)."""
        running = self._writer.running
        queued = self._writer.queued_folders()

        def state(path: Path) -> str:
            if not path.is_dir():
                return "missing"
            if running is not None and running.folder == path:
                return "indexing"
            return "queued" if path in queued else "ready"

        return folder_statuses(self.store, state)

    def record_error(self, path: Path, reason: str) -> None:
        """Show ``reason`` about ``path`` in status (a store beside the library, damaged)."""
        self.store.record_error(path, None, reason)

    # -- on the writer -------------------------------------------------------------------
    def after_job(self, queue_empty: bool) -> None:
        """Save the vector index a while after the writer ran out of work.

        Not at once: a save rewrites the whole file (79 ms at 20k passages, seconds
        at a million), and a person editing a note makes a change set every few
        seconds. Whatever a crash loses meanwhile, repair re-embeds from the store.
        """
        if not (queue_empty and self._index_dirty) or self._closed:
            return
        if self._save_timer is not None and self._save_timer.is_alive():
            return
        self._save_timer = threading.Timer(
            self.config.index_save_interval,
            lambda: self._writer.submit_once(SAVE_JOB, "Saving the vector index", self._idle_save),
        )
        self._save_timer.daemon = True
        self._save_timer.start()

    def _keyword_threads(self) -> ThreadPoolExecutor:
        """Threads for BM25 beside dense search, made on the first search."""
        with self._threads_lock:
            if self._keywords is None:
                self._keywords = ThreadPoolExecutor(2, thread_name_prefix="kenning-keywords")
            return self._keywords

    def _idle_save(self, cancel: threading.Event) -> None:
        if self._index_dirty:
            self._save_index()

    def close(self, *, writer_stopped: bool) -> None:
        """Save the index and close the store.

        Args:
            writer_stopped: False when the writer is still in a step (a model still
                loading): then the store is closed between two writes and the vector
                index left unsaved, to be repaired from the store at the next open.
        """
        if writer_stopped:
            if self._index is not None and self._index_dirty:
                self._save_index()
            self.store.close()
        else:
            self.store.close_between_writes(timeout=1.0)
        self.ocr_pages.close()
        if self._retry is not None:
            self._retry.cancel()
        self._closed = True
        if self._save_timer is not None:
            self._save_timer.cancel()
            self._save_timer.join(timeout=1.0)
        with self._threads_lock:
            if self._keywords is not None:
                self._keywords.shutdown(wait=True)
                self._keywords = None
        close = getattr(self._index, "close", None)
        if close is not None:  # a Milvus library's connection
            close()

    def stop_watching(self) -> None:
        """Stop the watcher: no change set may arrive after the writer's last job."""
        self._watcher.stop()

    def _submit_sync(self, folder: Path) -> None:
        def run(cancel: threading.Event) -> None:
            record = self.store.get_folder(folder)
            if record is None:
                return
            if not folder.is_dir():
                log.warning("folder missing: %s", folder)
                return
            self.last_stats = self._indexer().sync_folder(record, self._writer.progress, cancel)
            self.totals.add(self.last_stats)
            self.ocr_pages.prune(self.store.content_hashes())  # pages of files gone
            self._continue_ocr_later()

        self._writer.submit(f"Indexing {folder}", run, folder)

    def _submit_changes(self, changes: ChangeSet) -> None:
        """Queue a change set from the watcher as one job on the writer."""
        folder = changes.folder

        def run(cancel: threading.Event) -> None:
            record = self.store.get_folder(folder)
            if record is None:
                return  # removed meanwhile
            if not folder.is_dir():
                self._watcher.mark_lost(folder)  # a full sync on its return catches up
                return
            stats = IndexStats()
            rules = self._watcher.rules(folder)
            progress = self._writer.progress
            try:
                retry = apply_change_set(
                    self._indexer(), record, changes, rules, progress, cancel, stats
                )
            finally:
                self.last_stats = stats
                self.live_stats.add(stats)
                self.totals.add(stats)
            for path in retry:
                self._watcher.requeue(folder, path)
            self._continue_ocr_later()

        self._writer.submit(f"Updating {folder}", run, folder)

    # -- OCR of long scans, a pass at a time ---------------------------------------------
    def _continue_ocr_later(self) -> None:
        """Queue the next OCR pass of a long scan, after the work already queued."""
        if self.ocr_pages.pending():
            self._writer.submit_once(OCR_JOB, "Reading scanned pages (OCR)", self._continue_ocr)

    def _continue_ocr(self, cancel: threading.Event) -> None:
        """One pass (about :data:`engine.library.ocr.OCR_SECONDS`) over the oldest
        unfinished scan: its next pages are read, its new passages embedded.

        One job a pass, so file changes, searches' index and pausing get their turn
        between passes; the pages read are kept at once (``ocr_pages``), so a cancel
        or a kill loses at most the page being read.
        """
        pending = self.ocr_pages.pending()
        if not pending or cancel.is_set():
            return
        scan = pending[0]
        folder = next((f for f in self.store.folders() if f.id == scan.folder_id), None)
        if folder is None or not scan.path.is_file():
            self.ocr_pages.clear_pending(scan.path)  # its folder was removed, or it is gone
            if folder is not None:
                self._indexer().delete_path(scan.path, IndexStats())
        else:
            progress = self._writer.progress
            task = f"Reading the scanned pages of {scan.path.name} (OCR, in the background)"
            progress.begin(task, total=scan.total, done=scan.done)
            progress.set_current(str(scan.path))
            stats = IndexStats()
            self._indexer().index_path(scan.folder_id, scan.path, stats, again=True)
            after = next((p for p in self.ocr_pages.pending() if p.path == scan.path), None)
            progress.advance((after.done if after else scan.total) - scan.done, str(scan.path))
            self.totals.add(stats)
        if not cancel.is_set():  # cancelled: the next start (or resync) goes on
            self._continue_ocr_later()

    def _open_index(self, cancel: threading.Event) -> None:
        """Load the vector index and make it agree with the store (crash repair).

        When the configured embedding model is not the one whose vectors the store
        holds, searches keep using the old vectors (and the old model for queries)
        while the new ones are made from the stored texts, in slices on the writer;
        the switch is one meta write when the last slice is done.
        """
        try:
            embedder = self._embedder()
        except BaseException as exc:
            self._startup_error = exc  # searches re-raise it instead of waiting forever
            self._index_ready.set()
            raise
        if self.config.backend == "milvus":
            self._open_milvus(embedder, cancel)
            return
        store, data = self.store, self.data_dir
        if store.get_meta("index_format") not in (None, str(INDEX_FORMAT)):
            # Another layout: every vector file is stale, rebuilt from the stored texts.
            for stale in (data / INDEX_FILE, *data.glob(INDEX_GLOB)):
                stale.unlink(missing_ok=True)
            store.set_metas({"embedding_model": None, "index_format": str(INDEX_FORMAT)})
        served_path, served_id = served_index_path(data, store)
        if served_id is not None and served_path.name == INDEX_FILE:
            os.replace(served_path, data / index_file(served_id))  # adopt the old name
        wanted = embedder.model_id
        path = data / index_file(wanted)
        index = _load_or_new(path, embedder.dim)
        if served_id in (None, wanted):
            self._record_model(embedder)
            self._remove_other_indexes(keep=(path,))
            self._index, self._index_path = index, path
            self._index_ready.set()
            self._indexer().repair(self._writer.progress, cancel)
            return
        old = self._served_model(served_id)
        served: tuple[USearchIndex, Embedder] | None = None
        old_path = data / index_file(served_id)
        if old is not None and old_path.exists():
            served = (_load_or_new(old_path, old.dim), old)
            Indexer(self.store, served[0], lambda: old, self.config).remove_stale()
        self._remove_other_indexes(keep=(path, old_path))
        self._served, self._successor = served, wanted
        self._index = SuccessorIndex(index, served[0]) if served else index
        self._index_path = path
        self._index_ready.set()
        log.warning(
            "embedding model changed (%s -> %s): re-embedding the stored passages; "
            "searches use %s meanwhile",
            served_id,
            wanted,
            "the old vectors" if served else "keywords only",
        )
        self._reembed(cancel)

    def _open_milvus(self, embedder: Embedder, cancel: threading.Event) -> None:
        """Connect to the Milvus library and make it hold this client's chunks.

        A server that cannot be reached leaves searches failing with the reason and
        a reconnect queued every :data:`RECONNECT_SECONDS`; the store keeps every
        chunk meanwhile, and repair fills in what the server missed once it is back.
        Another embedding model's passages are another collection: switching models
        re-embeds this client's chunks into it (searches see them as they arrive).
        """
        from engine.library.milvus_passages import MilvusPassages

        try:
            passages = MilvusPassages.for_config(
                self.config, self.store, embedder, on_unavailable=self._backend_down
            )
        except BackendUnavailableError as exc:
            self._startup_error = exc  # searches say why instead of waiting
            self._index_ready.set()
            self._backend_down(str(exc))
            return
        except EngineError as exc:  # pymilvus not installed: no use trying again
            log.error("%s", exc)
            self._startup_error = exc
            self.backend_problem = str(exc)
            self._index_ready.set()
            return
        self._record_model(embedder)
        self._index, self._index_path = passages, self.data_dir / "milvus"
        self._startup_error = None
        self._index_ready.set()
        self._indexer().repair(self._writer.progress, cancel)
        self.backend_problem = None

    @property
    def backend(self) -> str:
        """Where the passages live, in words (no credentials)."""
        return describe_backend(self.config)

    def _backend_down(self, reason: str) -> None:
        """The Milvus library stopped answering: say so, and try again later."""
        if self.backend_problem is None:
            log.error("%s; indexing goes on locally and resumes there when it is back", reason)
        self.backend_problem = reason
        if self._retry is not None and self._retry.is_alive():
            return
        self._retry = threading.Timer(
            RECONNECT_SECONDS,
            lambda: self._writer.submit_once(
                RECONNECT_JOB, "Reconnecting to the Milvus library", self._reconnect
            ),
        )
        self._retry.daemon = True
        self._retry.start()

    def _reconnect(self, cancel: threading.Event) -> None:
        """Open the Milvus library again, repair what it missed, and sync every folder."""
        self._retry = None
        embedder = self._embedder()
        index = self._index
        if index is None or self._startup_error is not None:
            self._open_milvus(embedder, cancel)
        else:
            index.reopen()  # type: ignore[attr-defined]  # a restarted server released it
            self._indexer().repair(self._writer.progress, cancel)
            self.backend_problem = None
        if self.backend_problem is None:
            for folder in self.store.folders():
                self._submit_sync(folder.path)

    def vector_count(self) -> int:
        """Vectors this library holds of this client's chunks (equal to the chunks once
        repair is done); 0 while a remote library cannot be reached."""
        index = self._index
        if index is None:
            return 0
        try:
            own_count = getattr(index, "own_count", None)  # a shared library: ours only
            return own_count() if own_count is not None else len(index)
        except EngineError:
            return 0

    def _reembed(self, cancel: threading.Event) -> None:
        """One slice of re-embedding for the new model; queues the next, or switches."""
        if self._successor is None:
            return
        embedder = self._embedder()
        searched = "the old model" if self._served else "keywords only (the old model is gone)"
        task = (
            f"Re-embedding your passages for {embedder.path.name}; search uses {searched} meanwhile"
        )
        indexer = self._indexer()
        try:
            _done, left = indexer.embed_missing(
                self._writer.progress, cancel, task=task, limit=REEMBED_SLICE
            )
        except Cancelled:
            self._save_index()  # the next start resumes from here
            raise
        if left:
            self._writer.submit_once(REEMBED_JOB, task, self._reembed)
            return
        # The switch: the full new index on disk first, then one meta write names it.
        self._save_index()
        self._record_model(embedder)
        old = self._served
        self._served, self._successor = None, None
        if isinstance(self._index, SuccessorIndex):
            self._index = self._index.successor
        assert self._index_path is not None
        self._remove_other_indexes(keep=(self._index_path,))
        if old is not None:
            log.warning("re-embedding done: searches use %s", embedder.path.name)

    def _record_model(self, embedder: Embedder) -> None:
        self.store.set_metas(
            {
                "embedding_model": embedder.model_id,
                "embedding_path": str(embedder.path),
                "embedding_dim": str(embedder.dim),
                "index_format": str(INDEX_FORMAT),
            }
        )

    def _served_model(self, model_id: str) -> Embedder | None:
        """The model that made the stored vectors, if it is still on this machine."""
        place = model_path_for(self.store, model_id)
        if place is None:
            return None
        try:
            cfg = self.config
            return Embedder(
                place,
                device=cfg.device,
                threads=cfg.torch_threads,
                precision=precision_of(model_id),
            )
        except Exception as exc:  # an unloadable old model: keywords only then
            log.warning("cannot load the old embedding model %s: %s", place, exc)
            return None

    def _remove_other_indexes(self, keep: tuple[Path, ...]) -> None:
        """Delete vector files of models that are neither searched nor being made."""
        for path in self.data_dir.glob(INDEX_GLOB):
            if path not in keep:
                path.unlink(missing_ok=True)

    def _indexer(self) -> Indexer:
        if self._index is None:
            raise EngineError("the vector index is not open")
        return Indexer(
            self.store,
            self._index,
            self._embedder,
            self.config,
            on_index_changed=self._mark_dirty,
            ocr_pages=self.ocr_pages,
        )

    def _mark_dirty(self) -> None:
        self._index_dirty = True
        if time.monotonic() - self._last_save > self.config.index_save_interval:
            self._save_index()

    def _save_index(self) -> None:
        if self._index is None or self._index_path is None:
            return
        self._index_dirty = False
        self._index.save(self._index_path)
        served = self._served
        if served is not None and self._successor is not None:
            served_id = self.store.get_meta("embedding_model")
            if served_id:  # removals reached the old vectors too
                served[0].save(self.data_dir / index_file(served_id))
        self._last_save = time.monotonic()


def _load_or_new(path: Path, dim: int) -> USearchIndex:
    """The index saved at ``path``, or an empty one (repair fills it from the store)."""
    if path.exists():
        try:
            return USearchIndex.load(path, dim)
        except ValueError as exc:
            log.warning("%s; rebuilding it from the stored chunk texts", exc)
    return USearchIndex(dim)
