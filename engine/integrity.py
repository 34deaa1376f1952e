"""Noticing a damaged store at open, and keeping what cannot be rebuilt.

Corruption the store did not notice: a SQLite page garbled in the middle of
``kenning.sqlite3`` left ``status`` saying ready and ``index`` saying "Indexed
300 files" while every search died with a raw ``sqlite3.DatabaseError``, and a
corrupt ``corrections.sqlite3`` broke search too. Each store now runs SQLite's
``quick_check`` when it opens and says which file is damaged. What is derived
(the chunk store, the answer history) is moved aside and rebuilt; the person's
corrections are never overwritten: a copy is made at each clean shutdown, and a
damaged file is left as it is for the person to restore from that copy.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from pathlib import Path

from engine.errors import StoreDamagedError

BACKUP_SUFFIX = ".bak"


def check_sqlite(conn: sqlite3.Connection, path: Path, what: str) -> None:
    """Raise :class:`StoreDamagedError` unless ``PRAGMA quick_check`` finds ``path`` sound.

    ``quick_check`` reads every page (milliseconds for a few MB, about a second per
    GB) but skips the slow index-content comparison of ``integrity_check``.
    """
    try:
        rows = conn.execute("PRAGMA quick_check(5)").fetchall()
    except sqlite3.DatabaseError as exc:
        raise StoreDamagedError(path, what, str(exc)) from exc
    found = [str(r[0]) for r in rows]
    if found != ["ok"]:
        raise StoreDamagedError(path, what, "; ".join(found)[:300])


def move_aside(path: Path) -> Path:
    """Rename a damaged database (and its WAL files) out of the way; returns the new name."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        source = Path(str(path) + suffix)
        if source.exists():
            os.replace(source, Path(str(target) + suffix))
    return target


def backup_sqlite(conn: sqlite3.Connection, path: Path) -> Path:
    """Copy the open database to ``path`` + ``.bak`` atomically (SQLite's online backup)."""
    dest = Path(str(path) + BACKUP_SUFFIX)
    tmp = dest.with_name(dest.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    copy = sqlite3.connect(tmp)
    try:
        conn.backup(copy)
    finally:
        copy.close()
    with open(tmp, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, dest)
    return dest
