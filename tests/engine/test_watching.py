"""Specification of live folder sync: the store follows the folder, live.

Real temporary folders, a real watchdog observer and the real bundled embedding
model (loaded once for the module). Every wait is on a condition with a timeout.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import Engine, EngineConfig
from engine.embedding import Embedder
from engine.library.indexing import IndexStats
from engine.library.library import STORE_FILE
from engine.library.watching import CLOSE_EVENTS

# watchdog warns when a directory moves into one created a moment before (its own
# watch bookkeeping); the engine handles that case, see the directory-move test.
pytestmark = pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning")

TIMEOUT = 20.0
REPO = Path(__file__).resolve().parents[2]


# -- helpers -----------------------------------------------------------------------------------
def wait_for(condition: Callable[[], bool], timeout: float = TIMEOUT, what: str = "") -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    done = threading.Event()
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        done.wait(0.02)


def snapshot(eng: Engine, folder: Path) -> dict[str, list[str]]:
    """Relative path -> chunk texts of everything the store holds for ``folder``."""
    record = eng.store.get_folder(folder.resolve())
    assert record is not None
    return {
        p.relative_to(record.path).as_posix(): [c.text for c in eng.store.file_chunks(p)]
        for p in eng.store.files_in_folder(record.id)
    }


def stored_paths(eng: Engine) -> set[Path]:
    return {p for rec in eng.store.folders() for p in eng.store.files_in_folder(rec.id)}


def found(eng: Engine, query: str, path: Path) -> bool:
    """True if a search for ``query`` returns a passage of ``path`` holding all its words."""
    words = query.lower().split()
    return any(
        h.path == path and all(w in h.text.lower() for w in words)
        for h in eng.search(query, limit=5)
    )


def folder_state(eng: Engine, folder: Path) -> str:
    for f in eng.status().folders:
        if f.path == folder:
            return f.state
    raise AssertionError(f"{folder} is not a folder of the engine")


def embedded_since(eng: Engine, before: IndexStats) -> int:
    return eng.live_stats.chunks_embedded - before.chunks_embedded


def copy_stats(stats: IndexStats) -> IndexStats:
    copy = IndexStats()
    copy.add(stats)
    return copy


# -- fixtures ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = (tmp_path / "notes").resolve()
    path.mkdir()
    return path


@pytest.fixture
def engine(tmp_path: Path, embedder: Embedder, backend: dict[str, str]) -> Iterator[Engine]:
    """The engine on each backend (local, and a real Milvus server: tests/conftest.py)."""
    before = set(threading.enumerate())
    eng = Engine(tmp_path / "data", EngineConfig(**backend), embedder=embedder)
    yield eng
    eng.close()
    # tqdm's monitor belongs to the model's progress bars, started on first use.
    leaked = [
        t
        for t in threading.enumerate()
        if t not in before and t.is_alive() and t.name != "tqdm_monitor"
    ]
    assert not leaked, f"threads left running: {leaked}"


def watched(eng: Engine, folder: Path) -> Engine:
    eng.add_folder(folder)
    assert eng.wait_until_idle(TIMEOUT)
    return eng


def test_short_waits_see_an_idle_watched_folder(engine: Engine, folder: Path) -> None:
    """A progress loop polls with timeouts shorter than the event grace; it must end.

    (kenning index looped forever: every 0.5 s call ran out inside the 0.6 s grace.)
    """
    (folder / "a.md").write_text("# A\n\nSome text.\n", encoding="utf-8")
    watched(engine, folder)
    assert engine.wait_until_idle(timeout=0.05)


# -- basic changes -----------------------------------------------------------------------------
def test_create_edit_delete_are_searchable(engine: Engine, folder: Path) -> None:
    watched(engine, folder)
    note = folder / "zoo.txt"
    note.write_text("Quokkas are small marsupials living on Rottnest Island.\n")
    wait_for(lambda: found(engine, "quokka Rottnest", note), what="created file in search")

    note.write_text("Axolotls regrow their limbs in Mexican lakes.\n")
    wait_for(lambda: found(engine, "axolotl limbs", note), what="edited text in search")
    assert snapshot(engine, folder) == {
        "zoo.txt": ["Axolotls regrow their limbs in Mexican lakes."]
    }

    note.unlink()
    wait_for(lambda: engine.store.get_file(note) is None, what="deleted file gone")
    assert not found(engine, "axolotl limbs", note)
    assert engine.wait_until_idle(TIMEOUT)
    status = engine.status()
    assert (status.files, status.chunks, status.vectors) == (0, 0, 0)


def test_rename_reembeds_nothing(engine: Engine, folder: Path) -> None:
    old = folder / "draft.txt"
    old.write_text("The lighthouse keeper logs every passing ship.\n")
    watched(engine, folder)
    ids = [c.id for c in engine.store.file_chunks(old)]
    before = copy_stats(engine.live_stats)

    new = folder / "final.txt"
    old.rename(new)
    wait_for(lambda: engine.store.get_file(new) is not None, what="renamed file stored")
    assert engine.wait_until_idle(TIMEOUT)
    assert engine.store.get_file(old) is None
    assert [c.id for c in engine.store.file_chunks(new)] == ids
    assert embedded_since(engine, before) == 0
    assert engine.live_stats.files_moved - before.files_moved == 1
    assert found(engine, "lighthouse keeper ship", new)


def test_moving_a_directory_repoints_every_file(engine: Engine, folder: Path) -> None:
    (folder / "trips" / "2023").mkdir(parents=True)
    texts = {
        "trips/2023/alps.txt": "We hiked across the Alps in July.\n",
        "trips/2023/coast.txt": "The coast road was closed by landslides.\n",
        "trips/plan.txt": "Next year: Patagonia by bus.\n",
    }
    for rel, text in texts.items():
        (folder / rel).write_text(text)
    watched(engine, folder)
    ids_before = {rel: [c.id for c in engine.store.file_chunks(folder / rel)] for rel in texts}
    before = copy_stats(engine.live_stats)

    (folder / "archive").mkdir()
    (folder / "trips").rename(folder / "archive" / "travel")
    moved = {rel.replace("trips/", "archive/travel/", 1): t for rel, t in texts.items()}
    wait_for(lambda: set(snapshot(engine, folder)) == set(moved), what="directory moved")
    assert engine.wait_until_idle(TIMEOUT)
    assert snapshot(engine, folder) == {rel: [t.strip()] for rel, t in moved.items()}
    for rel, ids in ids_before.items():
        new = folder / rel.replace("trips/", "archive/travel/", 1)
        assert [c.id for c in engine.store.file_chunks(new)] == ids
    assert embedded_since(engine, before) == 0

    shutil.rmtree(folder / "archive")
    wait_for(lambda: not stored_paths(engine), what="deleted directory forgotten")
    assert engine.wait_until_idle(TIMEOUT)
    assert engine.status().vectors == 0


# -- editors' save patterns --------------------------------------------------------------------
def _replace(folder: Path, name: str, text: str) -> None:
    """gedit, VS Code's atomic save: write a hidden temp file, rename it over the file."""
    tmp = folder / f".{name}.goutputstream-8XQ2"
    tmp.write_text(text)
    os.replace(tmp, folder / name)


def _vim(folder: Path, name: str, text: str) -> None:
    """vim: probe with 4913, move the file to a backup~, write anew, drop the backup."""
    swap = folder / f".{name}.swp"
    swap.write_bytes(b"b0VIM 9.0\0" * 20)
    probe = folder / "4913"
    probe.write_bytes(b"")
    probe.unlink()
    os.rename(folder / name, folder / f"{name}~")
    (folder / name).write_text(text)
    (folder / f"{name}~").unlink()
    swap.unlink()


def _jetbrains(folder: Path, name: str, text: str) -> None:
    """JetBrains safe write: new content under ___jb_tmp___, old moved to ___jb_old___."""
    tmp, old = folder / f"{name}___jb_tmp___", folder / f"{name}___jb_old___"
    tmp.write_text(text)
    os.rename(folder / name, old)
    os.rename(tmp, folder / name)
    old.unlink()


def _word(folder: Path, name: str, text: str) -> None:
    """Word: a ~$ owner file, a ~WRL temp saved, swapped in by two renames."""
    owner = folder / f"~${name}"
    owner.write_bytes(b"\x05owner" * 10)
    (folder / "~WRL0001.tmp").write_text(text)
    os.rename(folder / name, folder / "~WRL0002.tmp")
    os.rename(folder / "~WRL0001.tmp", folder / name)
    (folder / "~WRL0002.tmp").unlink()
    owner.unlink()


def _libreoffice(folder: Path, name: str, text: str) -> None:
    """LibreOffice: a .~lock file while open, saving through a lu*.tmp renamed over."""
    lock = folder / f".~lock.{name}#"
    lock.write_text("owner,host,2024")
    (folder / "lu1234abcd.tmp").write_text(text)
    os.replace(folder / "lu1234abcd.tmp", folder / name)
    lock.unlink()


SAVE_PATTERNS = {
    "replace": _replace,
    "vim": _vim,
    "jetbrains": _jetbrains,
    "word": _word,
    "libreoffice": _libreoffice,
}


@pytest.mark.parametrize("pattern", sorted(SAVE_PATTERNS))
def test_editor_save_patterns_end_as_one_update(engine: Engine, folder: Path, pattern: str) -> None:
    note = folder / "letter.txt"
    note.write_text("Dear Ada, the parcel left Leeds on Monday.\n")
    watched(engine, folder)
    save = SAVE_PATTERNS[pattern]

    # Saving the same content re-embeds nothing.
    before = copy_stats(engine.live_stats)
    save(folder, "letter.txt", "Dear Ada, the parcel left Leeds on Monday.\n")
    assert engine.wait_until_idle(TIMEOUT)
    assert embedded_since(engine, before) == 0
    assert snapshot(engine, folder) == {
        "letter.txt": ["Dear Ada, the parcel left Leeds on Monday."]
    }

    new_text = "Dear Ada, the parcel reached Glasgow on Friday.\n"
    save(folder, "letter.txt", new_text)
    wait_for(lambda: found(engine, "parcel Glasgow Friday", note), what="saved text in search")
    assert engine.wait_until_idle(TIMEOUT)
    assert snapshot(engine, folder) == {"letter.txt": [new_text.strip()]}
    assert not engine.status().errors  # temp files were never even tried


def test_half_written_file_is_indexed_whole(engine: Engine, folder: Path) -> None:
    watched(engine, folder)
    path = folder / "report.txt"
    first = "Quarterly report. Revenue grew in the northern region.\n"
    rest = "Costs fell after the warehouse moved to Rotterdam.\n"
    before = copy_stats(engine.live_stats)
    pause = threading.Event()

    def slow_writer() -> None:
        with path.open("w") as fh:
            fh.write(first)
            fh.flush()
            pause.wait(0.3)  # a slow writer: the rest arrives 0.3 s later
            fh.write(rest)

    writer = threading.Thread(target=slow_writer)
    writer.start()
    writer.join()
    wait_for(
        lambda: snapshot(engine, folder).get("report.txt") == [(first + rest).strip()],
        what="the complete file indexed",
    )
    assert engine.wait_until_idle(TIMEOUT)
    if CLOSE_EVENTS:  # the watcher saw the file still open and waited for its close
        assert engine.live_stats.files_indexed - before.files_indexed == 1


def test_growing_file_written_in_two_sessions_ends_complete(engine: Engine, folder: Path) -> None:
    watched(engine, folder)
    path = folder / "log.txt"
    path.write_text("Day one: planted tomatoes.\n")
    pause = threading.Event()
    pause.wait(0.3)  # the second session starts 0.3 s later
    with path.open("a") as fh:
        fh.write("Day two: watered the basil.\n")
    wait_for(
        lambda: (
            snapshot(engine, folder).get("log.txt")
            == ["Day one: planted tomatoes.\nDay two: watered the basil."]
        ),
        what="appended text indexed",
    )


# -- ignore rules ------------------------------------------------------------------------------
def test_default_ignore_rules(engine: Engine, folder: Path) -> None:
    watched(engine, folder)
    for rel in [
        ".git/config",
        "node_modules/pkg/readme.txt",
        "__pycache__/notes.txt",
        ".venv/lib/site.txt",
        ".hidden.txt",
        "draft.txt~",
        "~$report.txt",
        ".report.txt.swp",
        "download.part",
    ]:
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("Ignored words about kangaroos.\n")
    (folder / "kept.txt").write_text("Kept words about wombats.\n")
    wait_for(lambda: engine.store.get_file(folder / "kept.txt") is not None, what="kept file")
    assert engine.wait_until_idle(TIMEOUT)
    assert set(snapshot(engine, folder)) == {"kept.txt"}
    assert not engine.status().errors


def test_kenningignore_is_reloaded_live(engine: Engine, folder: Path) -> None:
    (folder / "diary.txt").write_text("A private diary entry about a secret picnic.\n")
    (folder / "recipe.txt").write_text("Soup recipe with leeks and potatoes.\n")
    watched(engine, folder)
    assert set(snapshot(engine, folder)) == {"diary.txt", "recipe.txt"}

    (folder / ".kenningignore").write_text("diary.txt\nprivate/\n*.log\n")
    wait_for(lambda: set(snapshot(engine, folder)) == {"recipe.txt"}, what="diary dropped")

    (folder / "private").mkdir()
    (folder / "private" / "plans.txt").write_text("Private plans.\n")
    (folder / "build.log").write_text("compiler output\n")
    (folder / "todo.txt").write_text("Buy leeks.\n")
    wait_for(lambda: "todo.txt" in snapshot(engine, folder), what="todo indexed")
    assert engine.wait_until_idle(TIMEOUT)
    assert set(snapshot(engine, folder)) == {"recipe.txt", "todo.txt"}

    (folder / ".kenningignore").write_text("private/\n")
    wait_for(
        lambda: (
            set(snapshot(engine, folder)) == {"recipe.txt", "todo.txt", "diary.txt", "build.log"}
        ),
        what="un-ignored files indexed",
    )


# -- folders that go away, problems that are not fatal -----------------------------------------
def test_vanished_folder_is_missing_then_recovers(engine: Engine, folder: Path) -> None:
    (folder / "a.txt").write_text("Alpha notes about owls.\n")
    watched(engine, folder)
    away = folder.parent / "elsewhere"
    folder.rename(away)  # unmounted, or moved away
    wait_for(lambda: folder_state(engine, folder) == "missing", what="state missing")
    assert set(snapshot(engine, folder)) == {"a.txt"}  # kept for when it comes back

    (away / "b.txt").write_text("Beta notes about badgers.\n")
    away.rename(folder)
    wait_for(lambda: set(snapshot(engine, folder)) == {"a.txt", "b.txt"}, what="rescanned")
    assert folder_state(engine, folder) in {"ready", "indexing", "queued"}

    # Deleted and recreated: the new directory is watched, not the dead one.
    shutil.rmtree(folder)
    wait_for(lambda: folder_state(engine, folder) == "missing", what="state missing again")
    folder.mkdir()
    (folder / "c.txt").write_text("Gamma notes about geese.\n")
    wait_for(lambda: set(snapshot(engine, folder)) == {"c.txt"}, what="recreated folder indexed")
    (folder / "d.txt").write_text("Delta notes about ducks.\n")
    wait_for(lambda: "d.txt" in snapshot(engine, folder), what="new watch works")
    assert engine.wait_until_idle(TIMEOUT)
    assert folder_state(engine, folder) == "ready"


def test_permission_denied_and_symlink_loops_are_reported(
    engine: Engine, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = folder / "locked"
    locked.mkdir()
    (locked / "secret.txt").write_text("Unreadable.\n")
    (folder / "loop").symlink_to(folder / "loop")  # ELOOP on every stat
    (folder / "up").symlink_to(folder)  # a directory loop, never followed
    (folder / "fine.txt").write_text("Readable notes about herons.\n")
    if os.geteuid() == 0:  # root reads anything: make the directory refuse by hand
        real_scandir = os.scandir

        def scandir(path: str | os.PathLike[str]) -> object:
            if Path(os.fsdecode(path)) == locked:
                raise PermissionError(13, "Permission denied", str(path))
            return real_scandir(path)

        monkeypatch.setattr("engine.library.scanning.os.scandir", scandir)
    else:
        locked.chmod(0)
    try:
        watched(engine, folder)
        assert set(snapshot(engine, folder)) == {"fine.txt"}
        reasons = {e.path.name: e.reason for e in engine.status().errors}
        assert reasons["locked"] == "permission denied"
        assert "loop" in reasons
        # Live: a new loop is reported too, and the watcher keeps working.
        (folder / "loop2").symlink_to(folder / "loop2")
        (folder / "more.txt").write_text("More notes about egrets.\n")
        wait_for(lambda: "more.txt" in snapshot(engine, folder), what="watcher still works")
        wait_for(lambda: "loop2" in {e.path.name for e in engine.status().errors})
    finally:
        locked.chmod(0o755)


def test_remove_folder_stops_watching(engine: Engine, folder: Path) -> None:
    (folder / "a.txt").write_text("Notes about otters.\n")
    watched(engine, folder)
    engine.remove_folder(folder)
    assert engine.wait_until_idle(TIMEOUT)
    (folder / "b.txt").write_text("Notes about beavers.\n")
    assert engine.wait_until_idle(TIMEOUT)
    assert not stored_paths(engine)
    assert engine.status().folders == ()


def test_status_counts_pending_changes_as_queued(engine: Engine, folder: Path) -> None:
    slow = EngineConfig(debounce_seconds=1.0)
    engine.close()
    with Engine(engine.data_dir, slow, embedder=engine.embedder) as eng:
        watched(eng, folder)
        (folder / "a.txt").write_text("Notes about lynxes.\n")
        wait_for(lambda: eng.status().queued >= 1, what="pending change counted")
        assert eng.wait_until_idle(TIMEOUT)
        assert eng.store.get_file(folder / "a.txt") is not None
        assert eng.status().queued == 0


# -- the store equals a fresh index, whatever happened -------------------------------------------
WORDS = ["apple", "river", "stone", "cloud", "maple", "tiger", "ember", "frost", "lemon", "harbor"]
NAMES = ["a.txt", "b.md", "c.txt", "d1/e.txt", "d1/f.md", "d2/g.txt", "d3/h.txt"]
DIRS = ["d1", "d2", "d3", "d4"]
texts = st.lists(st.sampled_from(WORDS), min_size=1, max_size=6).map(" ".join)
names = st.sampled_from(NAMES)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("write"), names, texts),
        st.tuples(st.just("atomic"), names, texts),
        st.tuples(st.just("delete"), names, st.just("")),
        st.tuples(st.just("rename"), names, names),
        st.tuples(st.just("movedir"), st.sampled_from(DIRS), st.sampled_from(DIRS)),
    ),
    min_size=1,
    max_size=12,
)


def apply_op(root: Path, op: tuple[str, str, str]) -> None:
    kind, a, b = op
    src = root / a
    if kind in {"write", "atomic"}:
        src.parent.mkdir(parents=True, exist_ok=True)
        if kind == "write":
            src.write_text(b)
        else:
            tmp = src.with_name(f".{src.name}.tmp")
            tmp.write_text(b)
            os.replace(tmp, src)
    elif kind == "delete":
        if src.is_file():
            src.unlink()
    elif kind == "rename":
        dst = root / b
        if src.is_file() and src != dst:
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
    elif kind == "movedir":
        dst = root / b
        if src.is_dir() and not dst.exists():
            src.rename(dst)


@settings(
    max_examples=8,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(ops=operations)
def test_store_equals_a_fresh_index_after_any_changes(
    embedder: Embedder, ops: list[tuple[str, str, str]]
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = (Path(tmp) / "folder").resolve()
        (root / "d1").mkdir(parents=True)
        (root / "a.txt").write_text("apple river")
        (root / "d1" / "e.txt").write_text("stone cloud")
        with Engine(Path(tmp) / "live", embedder=embedder) as live:
            watched(live, root)
            for op in ops:
                apply_op(root, op)
            assert live.wait_until_idle(TIMEOUT)
            got = snapshot(live, root)
            status = live.status()
            assert status.vectors == status.chunks
        with Engine(Path(tmp) / "fresh", embedder=embedder) as fresh:
            expected = snapshot(watched(fresh, root), root)
        assert got == expected


# -- a crash in the middle of a burst ----------------------------------------------------------
_CHILD = """
import sys
import engine.library.indexing
from engine import Engine, EngineConfig
engine.library.indexing._FLUSH_CHUNKS = 16  # commit every few files: kills land between
eng = Engine(sys.argv[1], EngineConfig(embed_batch_size=4))
eng.add_folder(sys.argv[2])
eng.wait_until_idle(600)
"""


def test_killed_during_a_burst_converges_on_restart(
    tmp_path: Path, folder: Path, embedder: Embedder
) -> None:
    for i in range(200):
        words = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(40))
        (folder / f"n{i:03d}.txt").write_text(f"Note {i}. {words}\n")
    data = tmp_path / "data"
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(data), str(folder)], cwd=REPO)

    def files_stored() -> int:
        if not (data / STORE_FILE).exists():
            return 0
        try:
            with sqlite3.connect(f"file:{data / STORE_FILE}?mode=ro", uri=True) as conn:
                return int(conn.execute("SELECT count(*) FROM files").fetchone()[0])
        except sqlite3.Error:
            return 0

    try:
        wait_for(lambda: files_stored() > 0, timeout=120, what="child started indexing")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert 0 < files_stored() < 200, "the child was not killed mid-burst"

    # Changes while nothing was running: found by start-up reconciliation.
    (folder / "n000.txt").unlink()
    (folder / "n199.txt").write_text("Rewritten note about comets.\n")
    (folder / "extra.txt").write_text("A new note about meteors.\n")
    with Engine(data, embedder=embedder) as eng:
        assert eng.wait_until_idle(120)
        on_disk = {p.name for p in folder.iterdir()}
        assert set(snapshot(eng, folder)) == on_disk
        for path in stored_paths(eng):
            text = path.read_text()
            for chunk in eng.store.file_chunks(path):
                assert text[chunk.start : chunk.end] == chunk.text
        status = eng.status()
        assert status.vectors == status.chunks > 0
        assert found(eng, "comets", folder / "n199.txt")


def test_a_burst_of_new_files_is_all_found_by_its_code_words(engine: Engine, folder: Path) -> None:
    """500 new files while searching: 12 of them could not be found by their unique
    code word afterwards. Every one was stored; equal fused scores (a keyword-only
    hit against a dense-only one) went to the older chunk. Now each file is stored,
    embedded and the first hit for its code word."""
    import random
    import string

    for i in range(20):
        (folder / f"seed{i}.md").write_text(f"Seed note {i} about gardens.\n")
    watched(engine, folder)
    rng = random.Random(0)
    codes: dict[str, str] = {}
    for i in range(500):
        code = "".join(rng.choice(string.ascii_lowercase) for _ in range(8))
        name = f"d{i % 7}/burst{i}.md"
        codes[name] = code
        (folder / name).parent.mkdir(exist_ok=True)
        (folder / name).write_text(
            f"# Burst {i}\n\nThe code word is {code}. Some filler about rivers and hills.\n"
        )
        if i % 50 == 0:
            engine.search("rivers and hills", limit=3)  # searching while the burst lands
    assert engine.wait_until_idle(600)
    status = engine.status()
    assert status.files == 520 and status.vectors == status.chunks
    lost = [n for n, code in codes.items() if engine.search(code, limit=1)[0].path != folder / n]
    assert lost == []
