"""A library on Milvus: shared by two clients, a server that goes away, crash repair.

Every test runs against a real Milvus server (Milvus Lite's gRPC server in its own
process, started by the tests); the contract tests of test_engine.py and
test_watching.py run on it too, through the ``backend`` fixture.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

pytest.importorskip("pymilvus")

import engine.library.library as library_module
from engine import BackendUnavailableError, Engine, EngineConfig
from engine.config import load_config, save_config
from tests.engine.milvus_server import MilvusServer


def _config(uri: str, library: str | None = None) -> EngineConfig:
    return EngineConfig(
        backend="milvus", milvus_uri=uri, milvus_library=library or "t" + uuid.uuid4().hex[:12]
    )


def _wait(condition, timeout: float = 60.0, what: str = "") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def test_two_clients_share_one_library(tmp_path: Path, embedder, milvus_server) -> None:  # type: ignore[no-untyped-def]
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    mine.mkdir()
    theirs.mkdir()
    (mine / "quokka.md").write_text("Quokkas are small marsupials living on Rottnest Island.\n")
    (theirs / "axolotl.md").write_text("The axolotl is a salamander from Lake Xochimilco.\n")
    cfg = _config(milvus_server.uri)
    with (
        Engine(tmp_path / "a", cfg, embedder=embedder) as a,
        Engine(tmp_path / "b", cfg, embedder=embedder) as b,
    ):
        a.add_folder(mine)
        b.add_folder(theirs)
        assert a.wait_until_idle(120) and b.wait_until_idle(120)
        # Each client indexed only its own folder, and finds the other's passage.
        assert (a.status().chunks, b.status().chunks) == (1, 1)
        assert a.status().backend == f"Milvus at {milvus_server.uri}"
        remote = a.search("salamander from a Mexican lake", limit=1)[0]
        assert remote.path == theirs / "axolotl.md"
        assert (
            "Xochimilco" in remote.text
            and remote.text == (theirs / "axolotl.md").read_text()[remote.start : remote.end]
        )
        local = b.search("marsupials on Rottnest", limit=1)[0]
        assert local.path == mine / "quokka.md"
        assert b.search("Rottnest", mode="bm25", limit=1)[0].path == mine / "quokka.md"
        # A rename on one client is seen by the other, with nothing embedded again.
        embedded = a.totals.chunks_embedded
        (mine / "quokka.md").rename(mine / "island.md")
        _wait(lambda: a.store.get_file(mine / "island.md") is not None, what="rename")
        assert a.wait_until_idle(60)
        assert a.totals.chunks_embedded == embedded
        assert b.search("marsupials on Rottnest", limit=1)[0].path == mine / "island.md"
        # Scoped to one of this client's files, the other's passages stay out.
        assert {h.path for h in a.search("island", within=mine)} == {mine / "island.md"}


def test_a_server_that_goes_away_loses_nothing_and_indexing_resumes(
    tmp_path: Path, embedder, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(library_module, "RECONNECT_SECONDS", 0.5)
    server = MilvusServer(tmp_path / "server")
    server.start()
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "first.md").write_text("The lighthouse keeper logs every passing ship.\n")
    try:
        with Engine(tmp_path / "data", _config(server.uri), embedder=embedder) as eng:
            eng.add_folder(folder)
            assert eng.wait_until_idle(120)
            assert eng.status().vectors == 1 and eng.status().backend_problem is None

            server.stop()
            (folder / "second.md").write_text("Okapis are giraffe relatives from the Congo.\n")
            _wait(lambda: eng.status().backend_problem is not None, what="the outage noticed")
            _wait(lambda: eng.status().chunks == 2, what="the new file stored locally")
            status = eng.status()
            assert server.uri in status.backend_problem
            assert status.files == 2  # the store kept it: nothing is lost
            with pytest.raises(BackendUnavailableError, match="Milvus library"):
                eng.search("okapi")

            server.start()
            _wait(
                lambda: (
                    eng.status().backend_problem is None
                    and eng.status().vectors == eng.status().chunks == 2
                ),
                timeout=120,
                what="indexing resumed",
            )
            assert eng.search("giraffe relatives", limit=1)[0].path == folder / "second.md"
    finally:
        server.stop()


def test_a_library_that_lost_writes_is_repaired_at_open(
    tmp_path: Path, embedder, milvus_server
) -> None:  # type: ignore[no-untyped-def]
    """A kill between the store's commit and Milvus' write (or a server that lost
    unflushed rows) leaves passages missing: the next open re-embeds them."""
    folder = tmp_path / "notes"
    folder.mkdir()
    for i, word in enumerate(["comets", "meteors", "asteroids"]):
        (folder / f"n{i}.md").write_text(f"A note about {word} and the night sky.\n")
    cfg = _config(milvus_server.uri)
    with Engine(tmp_path / "data", cfg, embedder=embedder) as eng:
        eng.add_folder(folder)
        assert eng.wait_until_idle(120)
        index = eng.library.index
        lost = eng.store.file_chunks(folder / "n1.md")[0].id
        index.remove(__import__("numpy").asarray([lost], dtype="uint64"))
        assert eng.status().vectors == 2
    with Engine(tmp_path / "data", cfg, embedder=embedder) as eng:
        assert eng.wait_until_idle(120)
        status = eng.status()
        assert status.vectors == status.chunks == 3
        assert eng.search("meteors", limit=1)[0].path == folder / "n1.md"
        assert (eng.last_stats.files_indexed, eng.last_stats.files_skipped_unchanged) == (0, 3)


def test_an_unreachable_server_is_said_at_once(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    from tests.engine.milvus_server import free_port

    uri = f"http://alice:s3cret@127.0.0.1:{free_port()}"
    with Engine(tmp_path / "data", _config(uri), embedder=embedder) as eng:
        _wait(lambda: eng.status().backend_problem is not None, what="the failure")
        status = eng.status()
        assert "s3cret" not in status.backend and "s3cret" not in status.backend_problem
        assert "127.0.0.1" in status.backend_problem
        with pytest.raises(BackendUnavailableError):
            eng.search("anything")


def test_settings_keep_the_server_and_its_credentials_private(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    cfg = EngineConfig(
        backend="milvus", milvus_uri="http://milvus.example:19530", milvus_token="alice:s3cret"
    )
    save_config(cfg, path)
    assert path.stat().st_mode & 0o077 == 0  # the token is this user's alone
    assert load_config(path) == cfg
    assert "s3cret" not in repr(cfg)
    with pytest.raises(ValueError, match="milvus_uri"):
        EngineConfig(backend="milvus")


def test_a_second_process_reads_a_milvus_library_beside_the_writer(
    tmp_path: Path, embedder, milvus_server
) -> None:  # type: ignore[no-untyped-def]
    from engine.library.read_only import LibraryReader

    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "bees.md").write_text("Honey bees dance to show where the flowers are.\n")
    cfg = _config(milvus_server.uri)
    with Engine(tmp_path / "data", cfg, embedder=embedder) as eng:
        eng.add_folder(folder)
        assert eng.wait_until_idle(120)
        with LibraryReader(tmp_path / "data", cfg, embedder=embedder) as reader:
            hits = reader.search("how do bees tell each other about flowers", limit=1)
            assert hits[0].path == folder / "bees.md" and hits[0].similarity is not None


def test_without_pymilvus_the_reason_is_said(tmp_path: Path, embedder, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import builtins

    real_import = builtins.__import__

    def no_pymilvus(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name == "pymilvus" or name.startswith("pymilvus."):
            raise ImportError("No module named 'pymilvus'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pymilvus)
    with Engine(tmp_path / "data", _config("http://127.0.0.1:1"), embedder=embedder) as eng:
        _wait(lambda: eng.status().backend_problem is not None, what="the reason")
        assert "kenning[milvus]" in eng.status().backend_problem
        with pytest.raises(Exception, match="pymilvus"):
            eng.search("anything")


def test_hybrid_search_quality_holds_on_both_backends(tmp_path: Path, embedder, backend) -> None:  # type: ignore[no-untyped-def]
    """The QA fixture's 343 questions (a regression check, not the headline figure:
    bench_backends measures third-party questions): hybrid hit@5 as on the local
    backend (0.991 in docs/benchmarks.md) within a point, on both."""
    from bench.common import write_articles

    questions = [q for q in write_articles(tmp_path / "articles") if not q.impossible]
    with Engine(tmp_path / "data", EngineConfig(**backend), embedder=embedder) as eng:
        eng.add_folder(tmp_path / "articles")
        assert eng.wait_until_idle(600)
        found = 0
        for q in questions:
            hits = eng.search(q.question, limit=5)
            found += any(
                h.path == q.path and h.start <= q.answer_start and q.answer_end <= h.end
                for h in hits
            )
    assert found / len(questions) >= 0.98
