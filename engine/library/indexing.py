"""Bring the store and the vector index in line with files on disk.

Work is incremental at three levels: a file whose size and mtime match is not
opened; a file whose content hash matches is not parsed; within a changed file
only chunks whose content hash is new are embedded (as Khoj's server does), and
the rest keep their ids and vectors.

Write order keeps crashes harmless: the SQLite transaction commits first, then
the vector index is updated in memory and saved now and then. After a crash the
saved index may lack vectors of committed chunks (re-embedded from their stored
text by :meth:`Indexer.repair`) or hold keys of deleted chunks (removed); ids are
never reused, so it can never hold a wrong vector for a live id.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.config import EngineConfig
from engine.embedding import Embedder
from engine.errors import ParseError
from engine.library import ocr
from engine.library.chunk_store import (
    ChunkStore,
    FileRecord,
    FileWrite,
    FolderRecord,
    NewChunk,
    path_from_store,
    stored_path,
)
from engine.library.chunking import Chunk, split_document
from engine.library.ocr_pages import OcrPages
from engine.library.parsing import cap_text, parse_bytes, read_regular_file
from engine.library.scanning import IgnoreRules, ScannedFile, scan_folder
from engine.library.vector_index import VectorIndex
from engine.progress import Progress
from engine.writer import Cancelled

log = logging.getLogger(__name__)

# Chunks embedded per flush across files: enough for length-sorted batches to pad
# little, few enough that progress and cancel stay responsive.
_FLUSH_CHUNKS = 256


@dataclass
class IndexStats:
    """What one round of indexing did; benchmarks and tests read it."""

    files_seen: int = 0
    files_skipped_unchanged: int = 0
    files_indexed: int = 0
    files_failed: int = 0
    files_deleted: int = 0
    files_moved: int = 0
    chunks_embedded: int = 0
    chunks_reused: int = 0
    chunks_deleted: int = 0

    def add(self, other: IndexStats) -> None:
        for name in vars(self):
            setattr(self, name, getattr(self, name) + getattr(other, name))


_BIG_FILE_BYTES = 1 << 20


@dataclass
class _Prepared:
    """A parsed, chunked file waiting for its new chunks' vectors."""

    folder_id: int
    scanned: ScannedFile
    content_hash: str
    kind: str
    chunks: list[NewChunk]
    to_embed: list[int]  # positions in chunks that need a vector
    embed_texts: list[str]
    note: str | None = None  # what the person should know though it was indexed
    ocr_left: int = 0  # scanned pages OCR reads in a later pass


class Indexer:
    """Does the engine's writes; called only from the engine's worker thread."""

    def __init__(
        self,
        store: ChunkStore,
        index: VectorIndex,
        embedder: Callable[[], Embedder],
        config: EngineConfig,
        *,
        on_index_changed: Callable[[], None] = lambda: None,
        ocr_pages: OcrPages | None = None,
    ) -> None:
        self.store = store
        self.index = index
        self._embedder = embedder
        self.config = config
        self._on_index_changed = on_index_changed
        self.ocr_pages = ocr_pages

    @property
    def embedder(self) -> Embedder:
        return self._embedder()

    # -- folders ---------------------------------------------------------------------------
    def sync_folder(
        self, folder: FolderRecord, progress: Progress, cancel: threading.Event
    ) -> IndexStats:
        """Index new and changed files of a folder and forget the ones gone from disk."""
        stats = IndexStats()
        rules = IgnoreRules(folder.path, self.config.ignore_patterns)
        progress.begin(f"Scanning {folder.path}")
        report = scan_folder(folder.path, rules)
        for path, reason in report.problems:
            self.store.record_error(path, folder.id, reason)
        known = self.store.file_stamps(folder.id)
        failed = self.store.failed_files(folder.id)
        on_disk = {stored_path(f.path): f for f in report.files}
        changed = [
            f
            for key, f in on_disk.items()
            if known.get(key) != (f.size, f.mtime_ns)
            and (not failed or failed.get(f.path) != (f.size, f.mtime_ns))
        ]
        # Reasons for files that are gone from disk would only confuse.
        problems = {path for path, _ in report.problems}
        for path in set(failed) - {f.path for f in report.files} - problems:
            self.store.clear_error(path)
        stats.files_seen = len(report.files)
        stats.files_skipped_unchanged = len(report.files) - len(changed)
        # Big files last: one that takes minutes to embed (a 600-page book, a huge
        # export) must not keep the rest of the folder out of search meanwhile.
        changed.sort(key=lambda f: f.size >= _BIG_FILE_BYTES)
        progress.begin(f"Indexing {folder.path}", total=len(changed))
        # New files first: one renamed while Kenning was closed takes over its old
        # record (and vectors) before the old path is forgotten.
        self.index_files(folder.id, changed, progress, cancel, stats)
        gone = set(self.store.file_stamps(folder.id)) - set(on_disk)
        for key in sorted(gone):
            self._delete(path_from_store(key), stats)
        self.store.mark_folder_synced(folder.id)
        return stats

    def remove_folder(self, folder: FolderRecord) -> int:
        """Forget a folder and everything indexed from it; returns chunks removed."""
        ids = self.store.remove_folder(folder.id)
        self._remove_vectors(ids)
        return len(ids)

    # -- files -----------------------------------------------------------------------------
    def index_files(
        self,
        folder_id: int,
        files: Sequence[ScannedFile],
        progress: Progress,
        cancel: threading.Event,
        stats: IndexStats,
    ) -> None:
        """Parse, chunk and embed files, batching embeddings across files for throughput."""
        batch: list[_Prepared] = []
        pending = 0
        for scanned in files:
            if cancel.is_set():
                raise Cancelled
            progress.set_current(str(scanned.path))
            prepared = self._prepare(folder_id, scanned, stats)
            if prepared is None:
                progress.advance(1, str(scanned.path))
                continue
            batch.append(prepared)
            pending += len(prepared.embed_texts)
            if pending >= _FLUSH_CHUNKS:
                self._flush(batch, stats, progress)
                batch, pending = [], 0
        self._flush(batch, stats, progress)

    def index_path(
        self, folder_id: int, path: Path, stats: IndexStats, *, again: bool = False
    ) -> None:
        """(Re)index one file right now, or forget it if it is gone.

        ``again``: parse it even if its content is unchanged (OCR goes on with the
        next scanned pages; only passages that are new get embedded).
        """
        try:
            st = path.stat()
        except OSError:
            self._delete(path, stats)
            return
        scanned = ScannedFile(path, st.st_size, st.st_mtime_ns)
        prepared = self._prepare(folder_id, scanned, stats, again=again)
        if prepared is not None:
            self._flush([prepared], stats, Progress())

    def delete_path(self, path: Path, stats: IndexStats) -> None:
        self._delete(path, stats)

    def delete_tree(self, path: Path, stats: IndexStats) -> None:
        """Forget the file at ``path`` or every file stored beneath the directory ``path``."""
        for record in self.store.files_under(path):
            self._delete(record.path, stats)
        self.store.clear_error(path)

    def move_path(self, old: Path, new: Path, folder_id: int, stats: IndexStats) -> int:
        """Re-point a stored file or directory to its new path, keeping every vector.

        Whatever was stored at the destination is replaced, and its vectors are
        removed here, since the store's own replace only cascades the rows.

        Returns:
            Files moved; 0 when nothing was stored under ``old`` (a temp file).
        """
        if not self.store.files_under(old):
            return 0
        old_prefix = str(old).rstrip("/") + "/"
        for record in self.store.files_under(new):
            if record.path != old and not str(record.path).startswith(old_prefix):
                self._delete(record.path, stats)
        moved = self.store.move_path(old, new, folder_id)
        self._repoint(new)
        if self.ocr_pages is not None:
            self.ocr_pages.move(old, new, folder_id)
        stats.files_moved += moved
        return moved

    def _repoint(self, path: Path) -> None:
        """A backend that keeps each passage's path (Milvus: other clients read it
        there) learns the new one; the vectors stay as they are."""
        repoint = getattr(self.index, "repoint", None)
        if repoint is not None:
            repoint(np.asarray(self.store.chunk_ids_under(path), dtype=np.uint64))

    def _prepare(
        self, folder_id: int, scanned: ScannedFile, stats: IndexStats, *, again: bool = False
    ) -> _Prepared | None:
        path = scanned.path
        if scanned.size > self.config.max_file_bytes:
            limit = self.config.max_file_bytes // 2**20
            self._fail(scanned, folder_id, f"file is larger than {limit} MB", stats)
            return None
        try:
            data = read_regular_file(path, max_bytes=self.config.max_file_bytes)
        except ParseError as exc:
            self._fail(scanned, folder_id, exc.reason, stats)
            return None
        content_hash = hashlib.blake2b(data, digest_size=16).hexdigest()
        record = self.store.get_file(path)
        if record is None:
            record = self._adopt_moved(folder_id, path, content_hash, stats)
        if record is not None and record.content_hash == content_hash and not again:
            self.store.touch_file(record.id, size=scanned.size, mtime_ns=scanned.mtime_ns)
            self.store.clear_error(path)
            stats.files_skipped_unchanged += 1
            return None
        cfg = self.config
        try:
            with ocr.remembering(self.ocr_pages):
                document = parse_bytes(path, data)
        except ParseError as exc:
            self._fail(scanned, folder_id, exc.reason, stats)
            self._ocr_done(path)
            return None
        if self.ocr_pages is not None:
            if document.ocr_left:
                total = document.ocr_total
                self.ocr_pages.mark_pending(
                    path, folder_id, content_hash, done=total - document.ocr_left, total=total
                )
            else:
                self._ocr_done(path)
        text_length = len(document.text)
        document, note = cap_text(document, cfg.max_text_chars)
        note = document.note or note
        chunks = split_document(
            document,
            self.embedder.tokenizer,
            max_tokens=cfg.max_chunk_tokens,
            min_tokens=cfg.min_chunk_tokens,
            overlap_tokens=cfg.overlap_tokens,
            token_limit=self.embedder.max_tokens,
        )
        keep = within_budget(chunks, cfg.max_file_chunks, cfg.max_file_tokens)
        if keep < len(chunks):
            share = chunks[keep].start / max(1, text_length)
            part = f"{share:.0%}" if share >= 0.01 else "under 1%"
            note = (
                f"only its first {keep} passages ({part} of its text) are indexed: "
                "the limit per file"
            )
            chunks = chunks[:keep]
        prepared = self._plan(folder_id, scanned, content_hash, document.kind, chunks, record)
        prepared.note = note
        prepared.ocr_left = document.ocr_left
        return prepared

    def _ocr_done(self, path: Path) -> None:
        if self.ocr_pages is not None:
            self.ocr_pages.clear_pending(path)

    def _adopt_moved(
        self, folder_id: int, path: Path, content_hash: str, stats: IndexStats
    ) -> FileRecord | None:
        """A new file with the content of a stored file gone from disk is that file, moved.

        Catches renames no event paired up: made while Kenning was closed, or
        into a directory created a moment before (its watch came too late).
        """
        for candidate in self.store.files_with_hash(content_hash, folder_id):
            if not candidate.path.exists():
                stats.files_moved += self.store.move_path(candidate.path, path, folder_id)
                self._repoint(path)
                return self.store.get_file(path)
        return None

    def _plan(
        self,
        folder_id: int,
        scanned: ScannedFile,
        content_hash: str,
        kind: str,
        chunks: list[Chunk],
        record: FileRecord | None,
    ) -> _Prepared:
        """Match new chunks to stored ones by content hash; only the rest get embedded."""
        reusable: dict[str, list[int]] = {}
        if record is not None:
            for chunk_id, h in self.store.chunk_hashes(record.id):
                reusable.setdefault(h, []).append(chunk_id)
        planned: list[NewChunk] = []
        to_embed: list[int] = []
        for ord_, c in enumerate(chunks):
            ids = reusable.get(c.content_hash)
            reuse = ids.pop(0) if ids else None
            if reuse is None:
                to_embed.append(ord_)
            planned.append(
                NewChunk(
                    id=reuse,
                    ord=ord_,
                    start=c.start,
                    end=c.end,
                    page=c.page,
                    heading_path=c.heading_path,
                    embed_prefix=c.embed_text[: len(c.embed_text) - len(c.text)],
                    text=c.text,
                    content_hash=c.content_hash,
                )
            )
        return _Prepared(
            folder_id,
            scanned,
            content_hash,
            kind,
            planned,
            to_embed,
            [chunks[i].embed_text for i in to_embed],
        )

    def _flush(self, batch: list[_Prepared], stats: IndexStats, progress: Progress) -> None:
        if not batch:
            return
        texts = [t for p in batch for t in p.embed_texts]
        vectors = self.embedder.embed(
            texts, batch_size=self.config.embed_batch_size, kind="passage"
        )
        writes = [
            FileWrite(
                p.folder_id,
                p.scanned.path,
                p.scanned.size,
                p.scanned.mtime_ns,
                p.content_hash,
                p.kind,
                p.chunks,
            )
            for p in batch
        ]
        # One transaction and one vector add for the batch: in a folder of small
        # notes a file is one passage, and per-file commits and adds cost more than
        # the rows (a crash after the commit is what repair re-embeds).
        results = self.store.write_files(writes)
        keys: list[int] = []
        kept_rows: list[int] = []
        removed_all: list[int] = []
        offset = 0
        for p, (inserted, removed) in zip(batch, results, strict=True):
            n = len(p.embed_texts)
            keys += inserted
            kept_rows += range(offset, offset + len(inserted))
            removed_all += removed
            if p.note:  # listed with the skipped files, so the person knows what is missing
                self.store.record_error(
                    p.scanned.path,
                    p.folder_id,
                    p.note,
                    size=p.scanned.size,
                    mtime_ns=p.scanned.mtime_ns,
                )
            offset += n
            stats.files_indexed += 1
            stats.chunks_embedded += n
            stats.chunks_reused += len(p.chunks) - n
            stats.chunks_deleted += len(removed)
        if keys:
            self.index.add(np.asarray(keys, dtype=np.uint64), vectors[kept_rows])
        self._remove_vectors(removed_all)
        for p in batch:
            progress.advance(1, str(p.scanned.path))
        self._on_index_changed()

    def _delete(self, path: Path, stats: IndexStats) -> None:
        self._ocr_done(path)
        ids = self.store.delete_file(path)
        self._remove_vectors(ids)
        stats.files_deleted += 1
        stats.chunks_deleted += len(ids)

    def _remove_vectors(self, ids: Sequence[int]) -> None:
        if ids:
            self.index.remove(np.asarray(ids, dtype=np.uint64))
            self._on_index_changed()

    def _fail(self, scanned: ScannedFile, folder_id: int, reason: str, stats: IndexStats) -> None:
        log.info("skipped %s: %s", scanned.path, reason)
        self.store.record_error(
            scanned.path, folder_id, reason, size=scanned.size, mtime_ns=scanned.mtime_ns
        )
        stats.files_failed += 1

    # -- crash repair ----------------------------------------------------------------------
    def repair(self, progress: Progress, cancel: threading.Event) -> tuple[int, int]:
        """Make the vector index hold exactly the store's chunks.

        Returns:
            (vectors re-embedded from stored text, stale keys removed).
        """
        stale = self.remove_stale()
        embedded, _left = self.embed_missing(progress, cancel, task="Repairing the vector index")
        if stale or embedded:
            log.warning("repaired vector index: %d re-embedded, %d stale", embedded, stale)
        return embedded, stale

    def remove_stale(self) -> int:
        """Drop the index's keys that no stored chunk has; how many there were."""
        stored = np.asarray(self.store.chunk_ids(), dtype=np.uint64)
        stale = np.setdiff1d(self.index.keys(), stored, assume_unique=True)
        if len(stale):
            self.index.remove(stale)
            self._on_index_changed()
        return len(stale)

    def embed_missing(
        self,
        progress: Progress,
        cancel: threading.Event,
        *,
        task: str,
        limit: int | None = None,
    ) -> tuple[int, int]:
        """Embed, from their stored text, the chunks the index lacks (at most ``limit``).

        Progress counts every stored chunk, those already in the index as done, so a
        job resumed in slices shows one bar.

        Returns:
            (chunks embedded now, chunks still missing).
        """
        stored = np.asarray(self.store.chunk_ids(), dtype=np.uint64)
        missing = np.setdiff1d(stored, self.index.keys(), assume_unique=True)
        if not len(missing):
            return 0, 0
        now = missing if limit is None else missing[:limit]
        progress.begin(task, total=len(stored), done=len(stored) - len(missing))
        step = _FLUSH_CHUNKS
        for i in range(0, len(now), step):
            if cancel.is_set():
                raise Cancelled
            part = [int(k) for k in now[i : i + step]]
            records = self.store.get_chunks(part)
            keys = [k for k in part if k in records]
            texts = [records[k].embed_prefix + records[k].text for k in keys]
            self.index.add(
                np.asarray(keys, dtype=np.uint64), self.embedder.embed(texts, kind="passage")
            )
            progress.advance(len(part))
            self._on_index_changed()
        return len(now), len(missing) - len(now)


def within_budget(chunks: list[Chunk], max_chunks: int, max_tokens: int) -> int:
    """How many of ``chunks`` (from the start) fit both per-file limits.

    >>> from engine.library.chunking import Chunk
    >>> c = Chunk(0, 1, "a", "a", 100, None, (), "h")
    >>> within_budget([c] * 5, 10, 250), within_budget([c] * 5, 3, 10_000), within_budget([c], 9, 1)
    (2, 3, 1)
    """
    total = 0
    for n, chunk in enumerate(chunks[:max_chunks]):
        total += chunk.tokens
        if total > max_tokens:
            return max(1, n)
    return min(len(chunks), max_chunks)
