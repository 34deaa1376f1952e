"""What OCR has read so far: page texts by document, and the files it goes on with.

OCR costs 6-12 s a page on two cores, so a 300-page scanned book cannot be read in
the one pass a file gets (about 40 s, :data:`engine.library.ocr.OCR_SECONDS`).
Each page read is kept here at once, keyed by a digest of the document's bytes;
the next pass recalls them and reads the next pages, until the book is done. The
files whose OCR is not finished are kept here too, so the work resumes after a
restart or a kill. It is a cache: a damaged file is moved aside and started
afresh (the pages are read again), never a reason for Kenning not to start.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from engine.integrity import check_sqlite, move_aside
from engine.library.chunk_store import path_from_store, stored_path

log = logging.getLogger(__name__)

FILE_NAME = "ocr-pages.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS pages (
    document TEXT NOT NULL,
    page INTEGER NOT NULL,
    text TEXT NOT NULL,
    failure TEXT,
    PRIMARY KEY (document, page)
);
CREATE TABLE IF NOT EXISTS pending (
    path TEXT PRIMARY KEY,
    folder_id INTEGER NOT NULL,
    document TEXT NOT NULL,
    done INTEGER NOT NULL,
    total INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class Pending:
    """A file whose OCR goes on: ``done`` of its ``total`` scanned pages are read."""

    path: Path
    folder_id: int
    done: int
    total: int


class OcrPages:
    """Page texts OCR has read (an :class:`engine.library.ocr.PageMemory`) and the
    files whose OCR goes on in a later pass."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        try:
            self._db = self._open()
        except sqlite3.DatabaseError as exc:
            aside = move_aside(path)
            log.warning("OCR page cache %s is damaged (%s): moved to %s", path, exc, aside.name)
            self._db = self._open()

    @property
    def _conn(self) -> sqlite3.Connection:
        """The connection, opened again after :meth:`close` (the engine closes its
        files at exit while a writer job may still be finishing)."""
        if self._db is None:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA synchronous=NORMAL")
        return self._db

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            check_sqlite(conn, self.path, "OCR page cache")
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
        except Exception as exc:
            conn.close()
            raise sqlite3.DatabaseError(str(exc)) from exc
        return conn

    # -- the page memory ---------------------------------------------------------------------
    def recall(self, document: str) -> dict[int, tuple[str, str | None]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT page, text, failure FROM pages WHERE document = ?", (document,)
            ).fetchall()
        return {int(page): (str(text), failure) for page, text, failure in rows}

    def remember(self, document: str, page: int, text: str, failure: str | None) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO pages(document, page, text, failure) VALUES (?, ?, ?, ?)",
                (document, page, text, failure),
            )

    # -- files whose OCR goes on -------------------------------------------------------------
    def mark_pending(
        self, path: Path, folder_id: int, content_hash: str, *, done: int, total: int
    ) -> None:
        """``path`` has scanned pages left: ``done`` of ``total`` are read."""
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO pending(path, folder_id, document, done, total) "
                "VALUES (?, ?, ?, ?, ?)",
                (stored_path(path), folder_id, content_hash, done, total),
            )

    def clear_pending(self, path: Path) -> None:
        with self._lock:
            self._conn.execute("DELETE FROM pending WHERE path = ?", (stored_path(path),))

    def move(self, old: Path, new: Path, folder_id: int) -> None:
        """A file or folder renamed: its files' OCR goes on at the new place."""
        with self._lock:
            rows = self._conn.execute("SELECT path FROM pending").fetchall()
            was, now = stored_path(old), stored_path(new)
            prefix = was.rstrip("/") + "/"
            for (path,) in rows:
                if path == was or path.startswith(prefix):
                    moved = now + path[len(was) :]
                    self._conn.execute(
                        "UPDATE pending SET path = ?, folder_id = ? WHERE path = ?",
                        (moved, folder_id, path),
                    )

    def prune(self, documents: set[str]) -> int:
        """Forget the pages of documents not in ``documents``; returns pages forgotten."""
        with self._lock:
            known = {d for (d,) in self._conn.execute("SELECT DISTINCT document FROM pages")}
            gone = known - documents
            for document in gone:
                self._conn.execute("DELETE FROM pages WHERE document = ?", (document,))
            return len(gone)

    def pending(self) -> list[Pending]:
        """Files with scanned pages still to read, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT path, folder_id, done, total FROM pending ORDER BY rowid"
            ).fetchall()
        return [Pending(path_from_store(p), int(f), int(d), int(t)) for p, f, d, t in rows]

    def close(self) -> None:
        """Close the file (its WAL is folded back in); a later call opens it again."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
