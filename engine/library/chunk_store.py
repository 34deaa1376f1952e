"""SQLite store: folders, files, chunks with offsets and hashes, and BM25 (FTS5).

Everything a person reads lives here; the vector index only holds keys and
vectors. Chunk ids come from AUTOINCREMENT, so an id is never reused: a stale
key in a vector index saved before a crash can only point at a chunk that no
longer exists, never at a different one, which is what makes repair simple.
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from engine.errors import StoreDamagedError, StoreError
from engine.integrity import check_sqlite
from engine.status import FileError
from engine.store_format import reconcile_format

FORMAT_VERSION = 1
# {from_version: step}: each step upgrades an open store by one format version inside
# one transaction (see engine.store_format). Empty while format 1 is the only one.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS folders (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    added_at REAL NOT NULL,
    synced_at REAL
);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY,
    folder_id INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    content_hash TEXT NOT NULL,
    kind TEXT NOT NULL,
    indexed_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS files_folder ON files(folder_id);
CREATE INDEX IF NOT EXISTS files_hash ON files(content_hash);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
    ord INTEGER NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    page INTEGER,
    heading TEXT NOT NULL,
    embed_prefix TEXT NOT NULL,
    text TEXT NOT NULL,
    content_hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_file ON chunks(file_id);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    text, heading, content='chunks', content_rowid='id', tokenize='porter unicode61'
);
CREATE TRIGGER IF NOT EXISTS chunks_ai AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, text, heading) VALUES (new.id, new.text, new.heading);
END;
CREATE TRIGGER IF NOT EXISTS chunks_ad AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text, heading)
    VALUES ('delete', old.id, old.text, old.heading);
END;
CREATE TRIGGER IF NOT EXISTS chunks_au AFTER UPDATE OF text, heading ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, text, heading)
    VALUES ('delete', old.id, old.text, old.heading);
    INSERT INTO chunks_fts(rowid, text, heading) VALUES (new.id, new.text, new.heading);
END;
CREATE TABLE IF NOT EXISTS errors (
    path TEXT PRIMARY KEY,
    folder_id INTEGER REFERENCES folders(id) ON DELETE CASCADE,
    reason TEXT NOT NULL,
    at REAL NOT NULL,
    size INTEGER,
    mtime_ns INTEGER
);
"""

# Words too common to help BM25; dropping them also keeps FTS queries fast at scale.
_STOPWORDS = frozenset(
    """
a about above after again against all am an and any are as at be because been before
being below between both but by can could did do does doing down during each few for from
further had has have having he her here hers herself him himself his how i if in into is it
its itself just me more most my myself no nor not now of off on once only or other our ours
out over own same she should so some such than that the their theirs them then there these
they this those through to too under until up very was we were what when where which while
who whom why will with would you your yours
    """.split()
)
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class FolderRecord:
    id: int
    path: Path
    added_at: float
    synced_at: float | None


@dataclass(frozen=True)
class FileRecord:
    id: int
    folder_id: int
    path: Path
    size: int
    mtime_ns: int
    content_hash: str
    kind: str


@dataclass(frozen=True)
class ChunkRecord:
    id: int
    file_id: int
    path: Path
    ord: int
    start: int
    end: int
    page: int | None
    heading_path: tuple[str, ...]
    embed_prefix: str
    text: str
    content_hash: str


@dataclass(frozen=True)
class NewChunk:
    """A chunk to write: ``id`` is None for a new row, or the id of a row to keep."""

    id: int | None
    ord: int
    start: int
    end: int
    page: int | None
    heading_path: tuple[str, ...]
    embed_prefix: str
    text: str
    content_hash: str


@dataclass(frozen=True)
class FileWrite:
    """One file's new content for :meth:`ChunkStore.write_files`."""

    folder_id: int
    path: Path
    size: int
    mtime_ns: int
    content_hash: str
    kind: str
    chunks: Sequence[NewChunk]


_HEADING_SEP = "\x1f"  # unit separator: cannot appear in a heading title we keep


class ChunkStore:
    """The SQLite database of an engine's data dir.

    One connection writes (the engine worker's); searches get a connection per
    thread, which WAL lets read while the writer writes.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._write_lock = threading.RLock()
        try:
            conn = self._conn()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path} is not a Kenning store: {exc}") from exc
        try:
            check_sqlite(conn, path, "search index")
        except StoreDamagedError as damaged:
            damaged.folders = self._readable_folders(conn)
            self.close()
            raise
        try:
            conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            self.close()
            raise StoreError(f"{path} is not a Kenning store: {exc}") from exc
        version = self.get_meta("format_version")
        if version is None:
            self.set_meta("format_version", str(FORMAT_VERSION))
        else:
            try:
                self._upgrade(int(version))
            except StoreError:
                self.close()
                raise

    @staticmethod
    def _readable_folders(conn: sqlite3.Connection) -> list[Path]:
        """The folders a damaged store still lists, to rebuild it from them."""
        try:
            return [_fs(str(r[0])) for r in conn.execute("SELECT path FROM folders")]
        except sqlite3.DatabaseError:
            return []

    def _upgrade(self, found: int) -> None:
        """Run the migration steps from format ``found``, all in one transaction.

        Raises:
            StoreVersionError: a newer Kenning wrote the store, or no step exists.
        """
        with self.transaction() as conn:
            steps = {v: functools.partial(step, conn) for v, step in MIGRATIONS.items()}
            if reconcile_format("search index", self.path, found, FORMAT_VERSION, steps):
                conn.execute(
                    "INSERT OR REPLACE INTO meta(key, value) VALUES ('format_version', ?)",
                    (str(FORMAT_VERSION),),
                )

    # -- connections -------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode: a power cut may lose the last commits but never corrupts.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=10000")
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic write: everything inside commits together or not at all."""
        with self._write_lock:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def close_between_writes(self, timeout: float) -> None:
        """Close once no transaction is open (or after ``timeout``: WAL keeps it atomic).

        For a writer that cannot be waited for; its next statement opens a new
        connection, which ends with the process.
        """
        held = self._write_lock.acquire(timeout=timeout)
        try:
            self.close()
        finally:
            if held:
                self._write_lock.release()

    def close(self) -> None:
        with self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    # -- meta --------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self._conn().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        self.set_metas({key: value})

    def set_metas(self, values: dict[str, str | None]) -> None:
        """Set (or, for None, delete) several keys in one transaction: all or none."""
        with self.transaction() as conn:
            for key, value in values.items():
                if value is None:
                    conn.execute("DELETE FROM meta WHERE key = ?", (key,))
                else:
                    conn.execute(
                        "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value)
                    )

    # -- folders -----------------------------------------------------------------------------
    def add_folder(self, path: Path) -> FolderRecord:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO folders(path, added_at) VALUES (?, ?)",
                (_db(path), time.time()),
            )
        folder = self.get_folder(path)
        assert folder is not None  # just inserted
        return folder

    def get_folder(self, path: Path) -> FolderRecord | None:
        row = (
            self._conn()
            .execute(
                "SELECT id, path, added_at, synced_at FROM folders WHERE path = ?", (_db(path),)
            )
            .fetchone()
        )
        return None if row is None else FolderRecord(row[0], _fs(row[1]), row[2], row[3])

    def folders(self) -> list[FolderRecord]:
        rows = (
            self._conn()
            .execute("SELECT id, path, added_at, synced_at FROM folders ORDER BY path")
            .fetchall()
        )
        return [FolderRecord(r[0], _fs(r[1]), r[2], r[3]) for r in rows]

    def mark_folder_synced(self, folder_id: int) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE folders SET synced_at = ? WHERE id = ?", (time.time(), folder_id))

    def remove_folder(self, folder_id: int) -> list[int]:
        """Delete a folder with its files, chunks and errors; returns the removed chunk ids."""
        with self.transaction() as conn:
            ids = [
                r[0]
                for r in conn.execute(
                    "SELECT c.id FROM chunks c JOIN files f ON c.file_id = f.id"
                    " WHERE f.folder_id = ?",
                    (folder_id,),
                )
            ]
            conn.execute("DELETE FROM folders WHERE id = ?", (folder_id,))
        return ids

    # -- files -------------------------------------------------------------------------------
    def get_file(self, path: Path) -> FileRecord | None:
        row = self._conn().execute(_FILE_SELECT + " WHERE path = ?", (_db(path),)).fetchone()
        return None if row is None else _file(row)

    def files_in_folder(self, folder_id: int) -> dict[Path, FileRecord]:
        rows = self._conn().execute(_FILE_SELECT + " WHERE folder_id = ?", (folder_id,))
        return {_fs(r[2]): _file(r) for r in rows}

    def file_stamps(self, folder_id: int) -> dict[str, tuple[int, int]]:
        """(size, mtime_ns) of each file of a folder, keyed by :func:`stored_path`.

        What a sync compares the disk with: plain strings, since building and
        hashing a ``Path`` per row took most of re-opening a 20k-file folder.
        """
        rows = self._conn().execute(
            "SELECT path, size, mtime_ns FROM files WHERE folder_id = ?", (folder_id,)
        )
        return {str(r[0]): (int(r[1]), int(r[2])) for r in rows}

    def files_under(self, path: Path) -> list[FileRecord]:
        """The file stored at ``path`` and every file stored beneath it (a directory)."""
        rows = self._conn().execute(
            _FILE_SELECT + f" WHERE {_UNDER.format(column='path')} ORDER BY path", _under(path)
        )
        return [_file(r) for r in rows]

    def files_with_hash(self, content_hash: str, folder_id: int) -> list[FileRecord]:
        """Files of a folder whose whole content has this hash (move detection).

        The unary ``+`` keeps SQLite off the ``files_folder`` index: with it the
        planner walked every file of the folder for each call (2.6 ms at 20k files,
        once per new file), where ``files_hash`` finds the one or two rows at once.
        """
        rows = self._conn().execute(
            _FILE_SELECT + " WHERE content_hash = ? AND +folder_id = ?", (content_hash, folder_id)
        )
        return [_file(r) for r in rows]

    def chunk_hashes(self, file_id: int) -> list[tuple[int, str]]:
        """(id, content_hash) of a file's chunks in document order."""
        rows = self._conn().execute(
            "SELECT id, content_hash FROM chunks WHERE file_id = ? ORDER BY ord", (file_id,)
        )
        return [(int(r[0]), str(r[1])) for r in rows]

    def write_file(
        self,
        *,
        folder_id: int,
        path: Path,
        size: int,
        mtime_ns: int,
        content_hash: str,
        kind: str,
        chunks: Sequence[NewChunk],
    ) -> tuple[list[int], list[int]]:
        """Replace a file's chunks in one transaction, keeping rows whose id is given.

        Returns:
            (ids of inserted chunks in the order of the new rows, ids of deleted chunks).
        """
        write = FileWrite(folder_id, path, size, mtime_ns, content_hash, kind, chunks)
        return self.write_files([write])[0]

    def write_files(self, writes: Sequence[FileWrite]) -> list[tuple[list[int], list[int]]]:
        """:meth:`write_file` for many files in one transaction.

        The indexer writes a whole embedding batch at once: a folder of small notes
        is one file per passage, and a commit per file cost more than the rows.

        Returns:
            (inserted ids, deleted ids) of each write, in order.
        """
        with self.transaction() as conn:
            return [self._write_file(conn, w) for w in writes]

    @staticmethod
    def _write_file(conn: sqlite3.Connection, w: FileWrite) -> tuple[list[int], list[int]]:
        path = _db(w.path)
        now = time.time()
        row = conn.execute("SELECT id FROM files WHERE path = ?", (path,)).fetchone()
        if row is None:
            cur = conn.execute(
                "INSERT INTO files(folder_id, path, size, mtime_ns, content_hash, kind,"
                " indexed_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (w.folder_id, path, w.size, w.mtime_ns, w.content_hash, w.kind, now),
            )
            file_id = int(cur.lastrowid or 0)
            old_ids: set[int] = set()
        else:
            file_id = int(row[0])
            conn.execute(
                "UPDATE files SET folder_id = ?, size = ?, mtime_ns = ?, content_hash = ?,"
                " kind = ?, indexed_at = ? WHERE id = ?",
                (w.folder_id, w.size, w.mtime_ns, w.content_hash, w.kind, now, file_id),
            )
            old_ids = {
                int(r[0])
                for r in conn.execute("SELECT id FROM chunks WHERE file_id = ?", (file_id,))
            }
        kept = {c.id for c in w.chunks if c.id is not None}
        removed = sorted(old_ids - kept)
        conn.executemany("DELETE FROM chunks WHERE id = ?", [(i,) for i in removed])
        inserted: list[int] = []
        for c in w.chunks:
            if c.id is not None:
                conn.execute(
                    "UPDATE chunks SET ord = ?, start = ?, end = ?, page = ? WHERE id = ?",
                    (c.ord, c.start, c.end, c.page, c.id),
                )
                continue
            cur = conn.execute(
                "INSERT INTO chunks(file_id, ord, start, end, page, heading, embed_prefix,"
                " text, content_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    file_id,
                    c.ord,
                    c.start,
                    c.end,
                    c.page,
                    _HEADING_SEP.join(c.heading_path),
                    c.embed_prefix,
                    c.text,
                    c.content_hash,
                ),
            )
            inserted.append(int(cur.lastrowid or 0))
        conn.execute("DELETE FROM errors WHERE path = ?", (path,))
        return inserted, removed

    def touch_file(self, file_id: int, *, size: int, mtime_ns: int) -> None:
        """Record a new mtime for a file whose content hash did not change."""
        with self.transaction() as conn:
            conn.execute(
                "UPDATE files SET size = ?, mtime_ns = ? WHERE id = ?", (size, mtime_ns, file_id)
            )

    def delete_file(self, path: Path) -> list[int]:
        """Forget a file; returns its chunk ids for the vector index."""
        with self.transaction() as conn:
            ids = [
                int(r[0])
                for r in conn.execute(
                    "SELECT c.id FROM chunks c JOIN files f ON c.file_id = f.id WHERE f.path = ?",
                    (_db(path),),
                )
            ]
            conn.execute("DELETE FROM files WHERE path = ?", (_db(path),))
            conn.execute("DELETE FROM errors WHERE path = ?", (_db(path),))
        return ids

    def move_path(self, old: Path, new: Path, folder_id: int) -> int:
        """Re-point a file, or every file under a directory, to a new path. No re-embedding.

        Returns:
            The number of files moved.
        """
        old_s, new_s = _db(old), _db(new)
        with self.transaction() as conn:
            # A file already recorded at the destination is replaced by the moved one.
            conn.execute("DELETE FROM files WHERE path = ? AND path != ?", (new_s, old_s))
            moved = conn.execute(
                "UPDATE files SET path = ?, folder_id = ? WHERE path = ?", (new_s, folder_id, old_s)
            ).rowcount
            prefix = old_s.rstrip("/") + "/"
            rows = conn.execute(
                "SELECT id, path FROM files WHERE substr(path, 1, ?) = ?", (len(prefix), prefix)
            ).fetchall()
            for file_id, path in rows:
                conn.execute(
                    "UPDATE files SET path = ?, folder_id = ? WHERE id = ?",
                    (new_s.rstrip("/") + "/" + path[len(prefix) :], folder_id, file_id),
                )
            conn.execute("DELETE FROM errors WHERE path = ?", (old_s,))
        return int(moved) + len(rows)

    # -- errors ------------------------------------------------------------------------------
    def record_error(
        self,
        path: Path,
        folder_id: int | None,
        reason: str,
        *,
        size: int | None = None,
        mtime_ns: int | None = None,
    ) -> None:
        """Remember why a path was skipped; with size and mtime, it is not retried until
        the file changes (a damaged PDF is not parsed again at every start)."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO errors(path, folder_id, reason, at, size, mtime_ns)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (_db(path), folder_id, reason, time.time(), size, mtime_ns),
            )

    def failed_files(self, folder_id: int) -> dict[Path, tuple[int | None, int | None]]:
        """Skipped paths of a folder with the (size, mtime_ns) they had when they failed."""
        rows = self._conn().execute(
            "SELECT path, size, mtime_ns FROM errors WHERE folder_id = ?", (folder_id,)
        )
        return {_fs(r[0]): (r[1], r[2]) for r in rows}

    def clear_error(self, path: Path) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM errors WHERE path = ?", (_db(path),))

    def errors(self, folder_id: int | None = None) -> list[FileError]:
        sql = "SELECT path, reason, at FROM errors"
        args: tuple[int, ...] = ()
        if folder_id is not None:
            sql, args = sql + " WHERE folder_id = ?", (folder_id,)
        rows = self._conn().execute(sql + " ORDER BY path", args).fetchall()
        return [FileError(_fs(r[0]), r[1], r[2]) for r in rows]

    # -- reading -----------------------------------------------------------------------------
    def counts(self, folder_id: int | None = None) -> tuple[int, int]:
        """(files, chunks), for one folder or all."""
        conn = self._conn()
        if folder_id is None:
            files = conn.execute("SELECT count(*) FROM files").fetchone()[0]
            chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        else:
            files = conn.execute(
                "SELECT count(*) FROM files WHERE folder_id = ?", (folder_id,)
            ).fetchone()[0]
            chunks = conn.execute(
                "SELECT count(*) FROM chunks c JOIN files f ON c.file_id = f.id"
                " WHERE f.folder_id = ?",
                (folder_id,),
            ).fetchone()[0]
        return int(files), int(chunks)

    def content_hashes(self) -> set[str]:
        """The content digests of every stored file."""
        rows = self._conn().execute("SELECT DISTINCT content_hash FROM files").fetchall()
        return {str(h) for (h,) in rows}

    def last_chunk_id(self) -> int:
        """The largest chunk id ever given (AUTOINCREMENT's counter: deleted ones too)."""
        row = (
            self._conn().execute("SELECT seq FROM sqlite_sequence WHERE name = 'chunks'").fetchone()
        )
        return int(row[0]) if row else 0

    def chunk_ids(self) -> list[int]:
        return [int(r[0]) for r in self._conn().execute("SELECT id FROM chunks")]

    def get_chunks(self, ids: Iterable[int]) -> dict[int, ChunkRecord]:
        ids = list(ids)
        out: dict[int, ChunkRecord] = {}
        conn = self._conn()
        for i in range(0, len(ids), 500):
            part = ids[i : i + 500]
            marks = ",".join("?" * len(part))
            rows = conn.execute(
                "SELECT c.id, c.file_id, f.path, c.ord, c.start, c.end, c.page, c.heading,"
                " c.embed_prefix, c.text, c.content_hash FROM chunks c JOIN files f"
                f" ON c.file_id = f.id WHERE c.id IN ({marks})",
                part,
            )
            for r in rows:
                out[int(r[0])] = ChunkRecord(
                    id=int(r[0]),
                    file_id=int(r[1]),
                    path=_fs(r[2]),
                    ord=int(r[3]),
                    start=int(r[4]),
                    end=int(r[5]),
                    page=r[6],
                    heading_path=tuple(h for h in str(r[7]).split(_HEADING_SEP) if h),
                    embed_prefix=str(r[8]),
                    text=str(r[9]),
                    content_hash=str(r[10]),
                )
        return out

    def file_chunks(self, path: Path) -> list[ChunkRecord]:
        """A file's chunks in document order."""
        rows = self._conn().execute(
            "SELECT c.id FROM chunks c JOIN files f ON c.file_id = f.id WHERE f.path = ?"
            " ORDER BY c.ord",
            (_db(path),),
        )
        ids = [int(r[0]) for r in rows]
        found = self.get_chunks(ids)
        return [found[i] for i in ids]

    def bm25_search(
        self, query: str, limit: int, *, within: Sequence[int] | None = None
    ) -> list[tuple[int, float]]:
        """BM25 over chunk text and headings; (chunk id, score) best first, score > 0.

        Args:
            within: Only these chunk ids (a scope: see :meth:`chunk_ids_under`).
        """
        match = fts_query(query)
        if not match or limit <= 0 or (within is not None and not within):
            return []
        sql = (
            "SELECT rowid, bm25(chunks_fts, 1.0, 0.5) AS s FROM chunks_fts WHERE chunks_fts MATCH ?"
        )
        params: list[object] = [match]
        if within is not None:
            sql += " AND rowid IN (SELECT value FROM json_each(?))"
            params.append(json.dumps([int(i) for i in within]))
        rows = self._conn().execute(sql + " ORDER BY s LIMIT ?", (*params, limit)).fetchall()
        return [(int(r[0]), -float(r[1])) for r in rows]

    def chunk_ids_under(self, path: Path) -> list[int]:
        """Ids of every chunk of the file at ``path``, or of the files beneath it."""
        rows = self._conn().execute(
            "SELECT chunks.id FROM chunks JOIN files ON files.id = chunks.file_id"
            f" WHERE {_UNDER.format(column='files.path')}",
            _under(path),
        )
        return [int(r[0]) for r in rows]


def fts_query(text: str) -> str:
    """An FTS5 MATCH expression ORing the query's content words, each quoted.

    >>> fts_query('What is the "capital" of France?')
    '"capital" OR "france"'
    """
    words = [w.lower() for w in _WORD.findall(text)]
    content = [w for w in words if w not in _STOPWORDS] or words
    seen: dict[str, None] = dict.fromkeys(content)
    return " OR ".join(f'"{w}"' for w in seen)


_FILE_SELECT = "SELECT id, folder_id, path, size, mtime_ns, content_hash, kind FROM files"
# A path and everything beneath it, as a range scan on the path index: "d/" <= p < "d0"
# holds exactly the paths starting with "d/", since "0" is the character after "/".
_UNDER = "({column} = ? OR ({column} >= ? AND {column} < ?))"


def _under(path: Path) -> tuple[str, str, str]:
    """The parameters of :data:`_UNDER` for ``path``."""
    base = _db(path).rstrip("/")
    return base, base + "/", base + "0"


def _file(row: Sequence[object]) -> FileRecord:
    return FileRecord(
        id=int(row[0]),  # type: ignore[call-overload]
        folder_id=int(row[1]),  # type: ignore[call-overload]
        path=_fs(str(row[2])),
        size=int(row[3]),  # type: ignore[call-overload]
        mtime_ns=int(row[4]),  # type: ignore[call-overload]
        content_hash=str(row[5]),
        kind=str(row[6]),
    )


# -- paths -----------------------------------------------------------------------------------
# POSIX file names are bytes. Python hands a name that is not valid UTF-8 (common on
# disks written by other systems) over as a str with lone surrogates, which SQLite
# cannot store: one such name aborted a whole folder's sync. Each lone surrogate is
# stored as NUL plus two hex digits; NUL never occurs in a real path, so the form is
# unambiguous and round-trips, and every other path is stored unchanged.
_SURROGATE = re.compile("[\udc80-\udcff]")
_ESCAPED = re.compile("\x00([0-9a-f]{2})")


def stored_path(path: Path | str) -> str:
    """``path`` as a store writes it (see :func:`_db`); for the library's other stores."""
    return _db(path)


def path_from_store(text: str) -> Path:
    """A path a store wrote back as the file system's path (see :func:`_fs`)."""
    return _fs(text)


def _db(path: Path | str) -> str:
    """``path`` as stored: itself, with undecodable bytes escaped."""
    text = str(path)
    return _SURROGATE.sub(lambda m: f"\x00{ord(m[0]) - 0xDC00:02x}", text)


def _fs(text: str) -> Path:
    """A stored path back as the file system's path (inverse of :func:`_db`)."""
    if "\x00" not in text:
        return Path(text)
    return Path(_ESCAPED.sub(lambda m: chr(0xDC00 + int(m[1], 16)), text))
