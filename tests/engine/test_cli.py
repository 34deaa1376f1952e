"""The ``kenning`` command as a person types it: a real process per call, real files.

Bad input gets one line on stderr and a documented exit code, never a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import EXIT_NOT_A_FOLDER, EXIT_OK, EXIT_USAGE


def kenning(*args: str | bytes, cwd: Path | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "engine.cli", *args],
        capture_output=True,
        timeout=300,
        cwd=cwd,
        env=dict(os.environ, HF_HUB_OFFLINE="1"),
        check=False,
    )


def assert_refused(done: subprocess.CompletedProcess[bytes], code: int, words: str) -> None:
    err = done.stderr.decode("utf-8", "replace")
    assert done.returncode == code, err
    assert words in err
    assert "Traceback" not in err


def test_data_dir_that_is_a_file_or_cannot_be_created(tmp_path: Path) -> None:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    assert_refused(kenning("status", "--data-dir", str(a_file)), EXIT_USAGE, "is a file")
    inside_file = a_file / "data"
    assert_refused(
        kenning("status", "--data-dir", str(inside_file)), EXIT_USAGE, "cannot create the data"
    )


def test_empty_arguments_are_usage_errors(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "note.md").write_text("should not be indexed by an empty path")
    assert_refused(kenning("index", "", "--data-dir", data, cwd=cwd), EXIT_USAGE, "empty path")
    assert_refused(kenning("ask", "", "--data-dir", data), EXIT_USAGE, "give some words")
    assert_refused(kenning("search", "  ", "--data-dir", data), EXIT_USAGE, "give some words")


def test_the_root_folder_is_refused_with_a_reason(tmp_path: Path) -> None:
    done = kenning("index", "/", "--data-dir", str(tmp_path / "data"))
    assert_refused(done, EXIT_NOT_A_FOLDER, "whole disk")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX argv carries raw bytes")
def test_index_search_and_odd_arguments(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "cafe.md").write_text("The café on the corner opens at seven.\n", encoding="utf-8")
    data = str(tmp_path / "data")
    done = kenning("index", str(notes), "--data-dir", data)
    assert done.returncode == EXIT_OK, done.stderr
    assert b"Indexed 1 files" in done.stdout
    # An argument with a byte that is not UTF-8, and a limit no one needs.
    odd = kenning(
        "search", b"caf\xff opens", "--limit", "1000000000000", "--json", "--data-dir", data
    )
    assert odd.returncode == EXIT_OK, odd.stderr
    hits = json.loads(odd.stdout)
    assert hits and hits[0]["path"].endswith("cafe.md")


def test_which_folders_are_refused(tmp_path: Path) -> None:
    from engine.library.scanning import refused_folder

    assert "whole disk" in (refused_folder(Path("/").resolve()) or "")
    if sys.platform.startswith("linux"):
        assert "system files" in (refused_folder(Path("/proc")) or "")
        assert "system files" in (refused_folder(Path("/usr/lib/python3")) or "")
    assert refused_folder(Path.home()) is None  # its caches are hidden folders, skipped
    assert refused_folder(tmp_path) is None


def test_prepare_fills_the_per_user_cache_once(tmp_path: Path) -> None:
    """``make run`` runs ``kenning prepare``: the generator is dequantized into the
    per-user cache then, not at the first question, and only once per model file."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", KENNING_CACHE_DIR=str(tmp_path / "cache"))

    def prepare() -> str:
        done = subprocess.run(
            [sys.executable, "-m", "engine.cli", "prepare"],
            capture_output=True,
            text=True,
            env=env,
            timeout=900,
            check=False,
        )
        assert done.returncode == EXIT_OK, done.stderr
        return done.stdout

    first = prepare()
    assert "Preparing the answer model" in first and "(from the cache)" not in first
    assert any((tmp_path / "cache").glob("*/config.json"))
    assert "(from the cache)" in prepare()
