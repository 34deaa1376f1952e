"""The check that runs before Qt: a missing display or X11 library is one sentence, not SIGABRT."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from desktop_app import platform_check
from desktop_app.platform_check import EXIT_NO_DISPLAY, check, package_manager, platform_name


def test_platform_name_follows_qt_rules() -> None:
    assert platform_name(["-platform", "offscreen"], {"QT_QPA_PLATFORM": "xcb"}) == "offscreen"
    assert platform_name([], {"QT_QPA_PLATFORM": "wayland;xcb"}) == "wayland"
    if sys.platform.startswith("linux"):
        assert platform_name([], {}) == "xcb"
        wayland = {"XDG_SESSION_TYPE": "wayland", "WAYLAND_DISPLAY": "wayland-0"}
        assert platform_name([], wayland) == "wayland"


def test_install_command_matches_the_distribution(tmp_path: Path) -> None:
    for os_id, manager in [
        ('ID=fedora\nID_LIKE=""', "dnf"),
        ("ID=ubuntu\nID_LIKE=debian", "apt"),
        ("ID=manjaro\nID_LIKE=arch", "pacman"),
        ('ID="opensuse-tumbleweed"\nID_LIKE="opensuse suse"', "zypper"),
        ("ID=something-else", "apt"),
    ]:
        release = tmp_path / "os-release"
        release.write_text(os_id + "\n", encoding="utf-8")
        assert package_manager(release) == manager, os_id
    assert package_manager(tmp_path / "missing") == "apt"


def test_missing_libraries_are_named() -> None:
    libc = "libc.so.6" if sys.platform.startswith("linux") else None
    names = ["libkenning-never-installed.so.9"] + ([libc] if libc else [])
    assert platform_check.missing_libraries(names) == ["libkenning-never-installed.so.9"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ldconfig and sonames: Linux")
def test_a_library_bundled_with_the_build_counts_as_present(tmp_path: Path) -> None:
    # The Linux build carries the xcb helpers beside Qt's plugin, off the loader's
    # path: the check must find them there, or it would send people to install
    # what they already have.
    real = platform_check.system_library("libz.so.1")
    assert real is not None and real.is_file(), "ldconfig lists zlib on every Linux"
    shutil.copy(real, tmp_path / "libkenning-bundled.so.1")
    assert platform_check.missing_libraries(["libkenning-bundled.so.1"]) == [
        "libkenning-bundled.so.1"
    ]
    assert platform_check.missing_libraries(["libkenning-bundled.so.1"], bundled=tmp_path) == []
    assert platform_check.system_library("libkenning-never-installed.so.9") is None


def test_missing_library_report_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setattr(platform_check, "missing_libraries", lambda: ["libxcb-cursor.so.0"])
    monkeypatch.setattr(platform_check, "package_manager", lambda: "dnf")
    problem = platform_check.quick_check("xcb", {"DISPLAY": ":0"})
    assert problem is not None
    report = problem.report()
    assert "libxcb-cursor.so.0" in report
    assert "sudo dnf install -y xcb-util-cursor" in report
    assert "kenning ask" in report  # what still works


def test_headless_platforms_need_nothing() -> None:
    assert check(["-platform", "offscreen"], {}) is None
    assert check([], {"QT_QPA_PLATFORM": "minimal"}) is None
    assert check([], {"QT_QPA_PLATFORM": "xcb", "KENNING_SKIP_PLATFORM_CHECK": "1"}) is None


def _launch(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "desktop_app", "--data-dir", str(tmp_path / "data")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_no_display_exits_with_a_sentence_not_an_abort(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["QT_QPA_PLATFORM"] = "xcb"
    done = _launch(env, tmp_path)
    assert done.returncode == EXIT_NO_DISPLAY, done.stderr
    assert "no display" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists()  # nothing was opened or written


def test_unreachable_display_exits_with_a_sentence(tmp_path: Path) -> None:
    """DISPLAY names a server that is not there: whether the X11 libraries are
    installed (the probe fails) or not (the quick check does), the exit is clean."""
    env = dict(os.environ, QT_QPA_PLATFORM="xcb", DISPLAY=":97")
    env.pop("WAYLAND_DISPLAY", None)
    done = _launch(env, tmp_path)
    assert done.returncode == EXIT_NO_DISPLAY, done.stderr
    assert done.stderr.startswith("kenning: ")
    assert "Traceback" not in done.stderr and "core dumped" not in done.stderr
