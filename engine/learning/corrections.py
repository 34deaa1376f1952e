"""Durable corrections and source ratings: the record every adaptation layer reads.

A correction is what a person said the answer to a question should be. It is
committed to SQLite (WAL, ``synchronous=FULL``) before :meth:`CorrectionStore.add`
returns, so a crash right after the call loses nothing. Corrections are never
deleted: forgetting one marks it, so an undo can be listed and audited, and the
``revision`` counter lets a background trainer tell whether anything changed
since it last looked.

A newer correction of the same fact *supersedes* an older one (the memory layer
decides what "the same fact" is); forgetting the newer one brings the older back.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.errors import StoreDamagedError, StoreError
from engine.integrity import backup_sqlite, check_sqlite
from engine.store_format import reconcile_format

FORMAT_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS corrections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    answer_id TEXT,
    created_at REAL NOT NULL,
    forgotten_at REAL,
    superseded_by INTEGER REFERENCES corrections(id)
);
CREATE TABLE IF NOT EXISTS ratings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    question TEXT NOT NULL,
    chunk_id INTEGER NOT NULL,
    helpful INTEGER NOT NULL,
    answer_id TEXT,
    correction_id INTEGER REFERENCES corrections(id),
    created_at REAL NOT NULL,
    forgotten_at REAL
);
CREATE INDEX IF NOT EXISTS ratings_correction ON ratings(correction_id);
CREATE TABLE IF NOT EXISTS vectors (
    correction_id INTEGER PRIMARY KEY REFERENCES corrections(id),
    model_id TEXT NOT NULL,
    data BLOB NOT NULL
);
"""

_CORRECTION_COLUMNS = "id, question, answer, answer_id, created_at, forgotten_at, superseded_by"
_RATING_COLUMNS = "id, question, chunk_id, helpful, answer_id, correction_id, created_at"


@dataclass(frozen=True)
class Correction:
    """A person's corrected answer to a question.

    Attributes:
        id: Never reused (AUTOINCREMENT), so adapters and caches can key on it.
        question: The question as asked when the answer was corrected.
        answer: The corrected answer, verbatim.
        created_at: Unix time of the correction (shown as its date when cited).
        answer_id: The logged answer it corrects, if it came from one.
        forgotten: Undone by the person; no layer may use it any more.
        superseded_by: A newer correction of the same fact that replaced this one.
    """

    id: int
    question: str
    answer: str
    created_at: float
    answer_id: str | None = None
    forgotten: bool = False
    superseded_by: int | None = None

    @property
    def in_effect(self) -> bool:
        """Neither forgotten nor replaced by a newer correction."""
        return not self.forgotten and self.superseded_by is None


@dataclass(frozen=True)
class Rating:
    """A judgement that a passage did (or did not) help answer a question.

    ``correction_id`` is set for ratings the engine derived from a correction (the
    passages that contain the corrected answer); forgetting the correction drops them.
    """

    id: int
    question: str
    chunk_id: int
    helpful: bool
    answer_id: str | None
    correction_id: int | None
    created_at: float


class CorrectionStore:
    """Corrections and ratings in one small SQLite file, safe to share between threads.

    Args:
        path: The database file (created with WAL journaling).

    Raises:
        StoreError: the file was written by a newer Kenning.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            # Never rebuilt: a damaged file is left as it is (see engine.integrity).
            check_sqlite(self._conn, self.path, "corrections")
        except StoreDamagedError:
            self._conn.close()
            raise
        self._conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before add() returns, even across a power cut.
        self._conn.execute("PRAGMA synchronous=FULL")
        version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
        try:
            reconcile_format("corrections", self.path, version, FORMAT_VERSION)
        except StoreError:
            self._conn.close()
            raise
        self._conn.executescript(_SCHEMA)
        self._conn.execute(f"PRAGMA user_version={FORMAT_VERSION}")

    def backup(self) -> Path:
        """Copy the corrections to ``corrections.sqlite3.bak`` (at each clean shutdown)."""
        with self._lock:
            return backup_sqlite(self._conn, self.path)

    # -- corrections ---------------------------------------------------------------------
    def add(self, question: str, answer: str, *, answer_id: str | None = None) -> Correction:
        """Store a correction durably and return it.

        Raises:
            ValueError: the question or the answer is blank.
        """
        if not question.strip() or not answer.strip():
            raise ValueError("a correction needs a question and an answer")
        now = time.time()
        with self._lock, self._transaction():
            cur = self._conn.execute(
                "INSERT INTO corrections (question, answer, answer_id, created_at) "
                "VALUES (?, ?, ?, ?)",
                (question, answer, answer_id, now),
            )
            self._bump()
            new_id = cur.lastrowid
        assert new_id is not None
        return Correction(new_id, question, answer, now, answer_id)

    def get(self, correction_id: int) -> Correction | None:
        """The correction with this id (forgotten or not), or None."""
        with self._lock:
            row = self._conn.execute(
                f"SELECT {_CORRECTION_COLUMNS} FROM corrections WHERE id = ?", (correction_id,)
            ).fetchone()
        return _correction(row) if row else None

    def all(self) -> list[Correction]:
        """Every correction ever recorded, forgotten ones included, oldest first."""
        return self._select("")

    def active(self) -> list[Correction]:
        """The corrections in effect (not forgotten, not superseded), oldest first.

        This is what a trainer should learn from: a superseded correction states an
        answer the person has since replaced.
        """
        return self._select("WHERE forgotten_at IS NULL AND superseded_by IS NULL")

    def forget(self, correction_id: int) -> Correction:
        """Undo a correction: mark it forgotten, drop its derived ratings, and bring
        back any older correction it had superseded.

        Raises:
            KeyError: no correction has this id.
        """
        now = time.time()
        with self._lock, self._transaction():
            row = self._conn.execute(
                f"SELECT {_CORRECTION_COLUMNS} FROM corrections WHERE id = ?", (correction_id,)
            ).fetchone()
            if row is None:
                raise KeyError(correction_id)
            if row[5] is None:
                self._conn.execute(
                    "UPDATE corrections SET forgotten_at = ? WHERE id = ?", (now, correction_id)
                )
                self._conn.execute(
                    "UPDATE corrections SET superseded_by = NULL WHERE superseded_by = ?",
                    (correction_id,),
                )
                self._conn.execute(
                    "UPDATE ratings SET forgotten_at = ? "
                    "WHERE correction_id = ? AND forgotten_at IS NULL",
                    (now, correction_id),
                )
                self._bump()
            row = self._conn.execute(
                f"SELECT {_CORRECTION_COLUMNS} FROM corrections WHERE id = ?", (correction_id,)
            ).fetchone()
        return _correction(row)

    def supersede(self, old_ids: list[int], new_id: int) -> None:
        """Mark older corrections of the same fact as replaced by ``new_id``."""
        if not old_ids:
            return
        with self._lock, self._transaction():
            self._conn.executemany(
                "UPDATE corrections SET superseded_by = ? WHERE id = ? AND id != ?",
                [(new_id, old, new_id) for old in old_ids],
            )
            self._bump()

    @property
    def revision(self) -> int:
        """Grows by one with every change (add, forget, supersede, rating); never falls."""
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()
        return int(row[0]) if row else 0

    # -- ratings -------------------------------------------------------------------------
    def add_rating(
        self,
        question: str,
        chunk_id: int,
        helpful: bool,
        *,
        answer_id: str | None = None,
        correction_id: int | None = None,
    ) -> Rating:
        """Store a passage rating durably and return it."""
        now = time.time()
        with self._lock, self._transaction():
            cur = self._conn.execute(
                "INSERT INTO ratings (question, chunk_id, helpful, answer_id, correction_id, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (question, chunk_id, int(helpful), answer_id, correction_id, now),
            )
            self._bump()
            new_id = cur.lastrowid
        assert new_id is not None
        return Rating(new_id, question, chunk_id, helpful, answer_id, correction_id, now)

    def ratings(self) -> list[Rating]:
        """The ratings in effect (not dropped with a forgotten correction), oldest first."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_RATING_COLUMNS} FROM ratings WHERE forgotten_at IS NULL ORDER BY id"
            ).fetchall()
        return [Rating(r[0], r[1], int(r[2]), bool(r[3]), r[4], r[5], float(r[6])) for r in rows]

    # -- cached embeddings (a cache: losing it only costs re-embedding) -----------------
    def save_vectors(self, model_id: str, rows: Sequence[tuple[int, bytes]]) -> None:
        """Keep the memory's embeddings of corrections (raw float32 bytes, never pickle)."""
        with self._lock, self._transaction():
            self._conn.executemany(
                "INSERT OR REPLACE INTO vectors (correction_id, model_id, data) VALUES (?, ?, ?)",
                [(cid, model_id, data) for cid, data in rows],
            )

    def load_vectors(self, model_id: str) -> dict[int, bytes]:
        """Cached embeddings by correction id, for the given embedding model only."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT correction_id, data FROM vectors WHERE model_id = ?", (model_id,)
            ).fetchall()
        return {int(r[0]): bytes(r[1]) for r in rows}

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- helpers -------------------------------------------------------------------------
    def _select(self, where: str) -> list[Correction]:
        with self._lock:
            rows = self._conn.execute(
                f"SELECT {_CORRECTION_COLUMNS} FROM corrections {where} ORDER BY id"
            ).fetchall()
        return [_correction(r) for r in rows]

    def _bump(self) -> None:
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES ('revision', '1') ON CONFLICT(key) "
            "DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )

    def _transaction(self) -> _Transaction:
        return _Transaction(self._conn)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on error (the connection is autocommit)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._conn.execute("COMMIT" if exc_type is None else "ROLLBACK")


def _correction(row: tuple[object, ...]) -> Correction:
    return Correction(
        id=int(row[0]),  # type: ignore[call-overload]
        question=str(row[1]),
        answer=str(row[2]),
        answer_id=None if row[3] is None else str(row[3]),
        created_at=float(row[4]),  # type: ignore[arg-type]
        forgotten=row[5] is not None,
        superseded_by=None if row[6] is None else int(row[6]),  # type: ignore[call-overload]
    )
