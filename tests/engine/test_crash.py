"""kill -9 at any moment during indexing, reopen: the store equals a fresh index."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from engine import Engine

CHILD = textwrap.dedent(
    """
    import sys
    from engine import Engine, EngineConfig
    # Save the vector index often so kills land before, during and after saves.
    with Engine(sys.argv[1], EngineConfig(index_save_interval=0.05, embed_batch_size=8)) as eng:
        eng.add_folder(sys.argv[2])
        eng.wait_until_idle(600)
    """
)


def _make_folder(root: Path, n_files: int = 120) -> Path:
    rng = random.Random(7)
    words = [
        "apple",
        "river",
        "stone",
        "cloud",
        "maple",
        "ember",
        "orbit",
        "velvet",
        "anchor",
        "prism",
    ]
    root.mkdir()
    for i in range(n_files):
        paragraphs = [
            " ".join(rng.choice(words) for _ in range(rng.randint(20, 90))) + f" note{i}."
            for _ in range(rng.randint(1, 4))
        ]
        (root / f"note_{i:03d}.md").write_text(f"# Note {i}\n\n" + "\n\n".join(paragraphs))
    return root


def _snapshot(engine: Engine) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for folder in engine.store.folders():
        for path in engine.store.files_in_folder(folder.id):
            out[str(path)] = [c.text for c in engine.store.file_chunks(path)]
    return out


def _stored_files(data: Path) -> int:
    db = data / "kenning.sqlite3"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=0.1) as conn:
            return int(conn.execute("SELECT count(*) FROM files").fetchone()[0])
    except sqlite3.Error:
        return 0


@pytest.mark.slow
def test_kill_during_indexing_then_reopen_converges(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    folder = _make_folder(tmp_path / "notes")
    with Engine(tmp_path / "fresh", embedder=embedder) as fresh:
        fresh.add_folder(folder)
        assert fresh.wait_until_idle(300)
        expected = _snapshot(fresh)
    assert len(expected) == 120

    data = tmp_path / "data"
    # Kill three times at growing depths: each run resumes where the last one died.
    for kill_after_files in (10, 45, 90):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(data), str(folder)])
        try:
            deadline = time.monotonic() + 120
            while _stored_files(data) < kill_after_files and child.poll() is None:
                assert time.monotonic() < deadline, "child made no progress"
                time.sleep(0.01)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()

    with Engine(data, embedder=embedder) as engine:
        assert engine.wait_until_idle(300)
        assert _snapshot(engine) == expected
        status = engine.status()
        assert status.vectors == status.chunks
        keys = np.sort(engine.library.index.keys())  # type: ignore[union-attr]
        assert keys.tolist() == sorted(engine.store.chunk_ids())
        assert not engine.status().errors
