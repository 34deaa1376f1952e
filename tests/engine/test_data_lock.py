"""One writer per data dir, readers beside it: real processes on one library.

A window and a ``kenning watch`` on one data dir both ran before, and the first
one's vector index silently went stale; now the second writer is refused with
who holds the library, ``kenning search`` reads beside the writer, and a killed
writer leaves no stale lock.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine import DataDirInUseError, Engine
from engine.library.read_only import LibraryReader


def test_a_second_engine_on_one_data_dir_is_refused(tmp_path: Path, embedder) -> None:
    with Engine(tmp_path / "data", embedder=embedder):
        with pytest.raises(DataDirInUseError) as refused:
            Engine(tmp_path / "data", embedder=embedder)
        assert f"pid {os.getpid()}" in str(refused.value)
        assert "--data-dir" in str(refused.value)
    with Engine(tmp_path / "data", embedder=embedder) as again:  # released on close
        assert again.status().files == 0


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "engine.cli", *args]


def _wait_for(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return False


@pytest.mark.skipif(sys.platform == "win32", reason="uses SIGKILL")
def test_reader_beside_a_writer_process_and_no_stale_lock(tmp_path: Path, embedder) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "ferry.md").write_text("The ferry to the island leaves at noon.\n")
    data = tmp_path / "data"
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    writer = subprocess.Popen(
        _cli("watch", str(notes), "--data-dir", str(data)),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert writer.stdout is not None
        assert _wait_for(lambda: "Watching" in (writer.stdout.readline() or ""), 240)
        # A second writer in this process is refused, naming the holder.
        with pytest.raises(DataDirInUseError, match=rf"kenning watch, pid {writer.pid}"):
            Engine(data, embedder=embedder)
        # The CLI's search reads beside it.
        done = subprocess.run(
            _cli("search", "ferry island", "--json", "--data-dir", str(data)),
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "reading it without changes" in done.stderr
        assert json.loads(done.stdout)[0]["path"].endswith("ferry.md")
        # A file the writer indexes later is found by the reader, densely too,
        # once the writer has saved its index.
        # The reader embeds with the writer's own encoder (int8, the default).
        with LibraryReader(data) as library:
            assert library.embedder.model_id == library.store.get_meta("embedding_model")
            (notes / "owl.md").write_text("The barn owl nests above the hayloft.\n")
            assert _wait_for(
                lambda: any(
                    h.path.name == "owl.md"
                    for h in library.search("where does the bird live", limit=3, mode="dense")
                ),
                120,
            )
            assert library.status().files == 2
    finally:
        writer.send_signal(signal.SIGKILL)  # no clean close: the lock must not outlive it
        writer.wait(timeout=30)
    with Engine(data, embedder=embedder) as engine:
        assert engine.wait_until_idle(timeout=120)
        assert engine.status().files == 2


def test_the_lock_is_released_from_any_thread(tmp_path: Path) -> None:
    """The window opens an engine on one thread and may close it on another; a
    thread-local lock stayed held, and the restarted engine was refused."""
    import threading

    from engine.data_lock import DataDirLock

    first = DataDirLock(tmp_path)
    opener = threading.Thread(target=first.acquire)
    opener.start()
    opener.join()
    first.release()  # on this thread
    second = DataDirLock(tmp_path)
    second.acquire()
    second.release()
