"""Asked questions and their answers, kept so corrections and follow-ups can refer to them."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from pathlib import Path

from engine.errors import StoreDamagedError, StoreError
from engine.integrity import check_sqlite, move_aside
from engine.reader.answer import Answer
from engine.store_format import reconcile_format

log = logging.getLogger(__name__)


class AnswerLog:
    """Questions and answers in a small SQLite file, so corrections can refer to them.

    Args:
        path: The database file (created with WAL journaling).
    """

    FORMAT_VERSION = 2  # 2: correction_id, the correction an answer was taken from

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        try:
            check_sqlite(self._conn, Path(path), "answer history")
        except StoreDamagedError:
            # History only: the damaged file is kept aside, answering goes on.
            self._conn.close()
            log.warning("answer history %s is damaged; kept as %s", path, move_aside(Path(path)))
            self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
        try:
            reconcile_format(
                "answer history",
                Path(path),
                version,
                self.FORMAT_VERSION,
                {1: self._add_correction_id},
            )
        except StoreError:
            self._conn.close()
            raise
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS answers (answer_id TEXT PRIMARY KEY, "
            "conversation_id TEXT, question TEXT NOT NULL, retrieval_query TEXT NOT NULL, "
            "answer TEXT NOT NULL, abstained INTEGER NOT NULL, citations TEXT NOT NULL, "
            "created_at REAL NOT NULL, correction_id INTEGER)"
        )
        self._conn.execute("CREATE INDEX IF NOT EXISTS answers_conv ON answers(conversation_id)")
        self._conn.execute(f"PRAGMA user_version={self.FORMAT_VERSION}")

    def _add_correction_id(self) -> None:
        self._conn.execute("ALTER TABLE answers ADD COLUMN correction_id INTEGER")

    def record(self, answer: Answer) -> None:
        """Store an answer under its ``answer_id``."""
        cites = [
            {"path": str(answer.sources[c.source].path), "start": c.start, "end": c.end}
            for c in answer.citations
        ]
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO answers (answer_id, conversation_id, question, "
                "retrieval_query, answer, abstained, citations, created_at, correction_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    answer.answer_id,
                    answer.conversation_id,
                    answer.question,
                    answer.retrieval_query,
                    answer.text,
                    int(answer.abstained),
                    json.dumps(cites),
                    time.time(),
                    answer.correction.id if answer.correction is not None else None,
                ),
            )

    def last_turn(self, conversation_id: str) -> tuple[str, str] | None:
        """(question, answer) of the conversation's latest turn; answer is "" if abstained."""
        with self._lock:
            row = self._conn.execute(
                "SELECT question, answer, abstained FROM answers WHERE conversation_id = ? "
                "ORDER BY created_at DESC LIMIT 1",
                (conversation_id,),
            ).fetchone()
        if row is None:
            return None
        return str(row[0]), "" if row[2] else str(row[1])

    def correction_of(self, answer_id: str) -> int | None:
        """The id of the correction an answer was taken from (None: it was not, or unknown)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT correction_id FROM answers WHERE answer_id = ?", (answer_id,)
            ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def questions_citing(self, path: str, start: int, end: int) -> list[str]:
        """Questions (distinct, latest first) whose answers cited ``path`` inside
        [``start``, ``end``): what a person asked about one passage."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT a.question, MAX(a.created_at) AS t FROM answers AS a, "
                "json_each(a.citations) AS c WHERE json_extract(c.value, '$.path') = ? "
                "AND json_extract(c.value, '$.start') < ? AND json_extract(c.value, '$.end') > ? "
                "GROUP BY a.question ORDER BY t DESC",
                (path, end, start),
            ).fetchall()
        return [str(r[0]) for r in rows]

    def get(self, answer_id: str) -> dict[str, object] | None:
        """The stored record of an answer, or None."""
        with self._lock:
            cur = self._conn.execute("SELECT * FROM answers WHERE answer_id = ?", (answer_id,))
            row = cur.fetchone()
            names = [d[0] for d in cur.description]
        return dict(zip(names, row, strict=True)) if row else None

    def conversations(self, limit: int = 200) -> list[dict[str, object]]:
        """Conversations, latest first: id, first question, turns, last ``created_at``.

        Read by the desktop window to reopen a conversation; answers asked without a
        conversation id are left out.
        """
        with self._lock:
            rows = self._conn.execute(
                "SELECT conversation_id, COUNT(*), MAX(created_at), "
                "(SELECT question FROM answers AS f WHERE f.conversation_id = a.conversation_id "
                "ORDER BY created_at LIMIT 1) FROM answers AS a "
                "WHERE conversation_id IS NOT NULL GROUP BY conversation_id "
                "ORDER BY MAX(created_at) DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            {
                "conversation_id": r[0],
                "turns": int(r[1]),
                "created_at": float(r[2]),
                "question": r[3],
            }
            for r in rows
        ]

    def turns(self, conversation_id: str) -> list[dict[str, object]]:
        """The stored answers of one conversation, oldest first, citations decoded."""
        with self._lock:
            cur = self._conn.execute(
                "SELECT * FROM answers WHERE conversation_id = ? ORDER BY created_at",
                (conversation_id,),
            )
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
        turns = [dict(zip(names, row, strict=True)) for row in rows]
        for turn in turns:
            turn["citations"] = json.loads(str(turn["citations"]))
            turn["abstained"] = bool(turn["abstained"])
        return turns

    def close(self) -> None:
        with self._lock:
            self._conn.close()
