"""A second start of Kenning hands its request to the running window.

Real local sockets (QLocalServer/QLocalSocket) and real processes: the second
start is ``python -m desktop_app`` exactly as a desktop shortcut runs it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QDir
from PySide6.QtNetwork import QLocalServer

from desktop_app import single_instance
from desktop_app.single_instance import InstanceServer, hand_over, server_name

ENV = dict(os.environ, QT_QPA_PLATFORM="offscreen")


def _second_start(data_dir: Path, *flags: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "desktop_app", "--data-dir", str(data_dir), *flags],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(("flags", "request_"), [(("--quick-ask",), "quick-ask"), ((), "show")])
def test_a_second_start_hands_over_and_exits(
    qtbot: Any, tmp_path: Path, flags: tuple[str, ...], request_: str
) -> None:
    server = InstanceServer(tmp_path / "data")
    assert server.listen()
    try:
        with qtbot.waitSignal(server.sig_request, timeout=60_000) as asked:
            proc = _second_start(tmp_path / "data", *flags)
        assert asked.args == [request_]
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert f"the running window took it ({request_})" in out
        assert not (tmp_path / "data" / "kenning.sqlite3").exists()  # it opened nothing
    finally:
        server.close()


def test_the_kenning_command_routes_quick_ask_to_the_window(qtbot: Any, tmp_path: Path) -> None:
    """``kenning --quick-ask``, what a desktop shortcut runs, reaches the window's code."""
    server = InstanceServer(tmp_path / "data")
    assert server.listen()
    kenning = "import sys; from engine.cli import main; sys.exit(main())"
    try:
        with qtbot.waitSignal(server.sig_request, timeout=60_000) as asked:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    kenning,
                    "--quick-ask",
                    "--data-dir",
                    str(tmp_path / "data"),
                ],
                env=ENV,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        assert asked.args == ["quick-ask"]
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
    finally:
        server.close()


def test_nobody_listening_means_open_the_window(tmp_path: Path) -> None:
    assert hand_over(tmp_path / "data", "show") is False
    with pytest.raises(ValueError, match="unknown request"):
        hand_over(tmp_path / "data", "format-disk")


def test_another_library_is_another_window(qtbot: Any, tmp_path: Path) -> None:
    assert server_name(tmp_path / "a") != server_name(tmp_path / "b")
    assert server_name(tmp_path / "a") == server_name(tmp_path / "x" / ".." / "a")
    server = InstanceServer(tmp_path / "a")
    assert server.listen()
    try:
        assert hand_over(tmp_path / "b", "show") is False
    finally:
        server.close()


@pytest.mark.skipif(sys.platform == "win32", reason="named pipes leave no stale file")
def test_a_socket_left_by_a_crash_is_replaced(tmp_path: Path) -> None:
    name = server_name(tmp_path / "data")
    stale = Path(QDir.tempPath()) / name
    leftover = socket.socket(socket.AF_UNIX)
    leftover.bind(str(stale))  # bound, never listening: what a killed process leaves
    leftover.close()
    try:
        assert stale.exists()
        assert hand_over(tmp_path / "data", "show") is False
        server = InstanceServer(tmp_path / "data")
        assert server.listen()
        server.close()
    finally:
        stale.unlink(missing_ok=True)


def test_a_hung_window_is_reported_not_doubled(tmp_path: Path) -> None:
    """A listener that never answers (its GUI thread stuck): None, not a second window."""
    mute = QLocalServer()
    assert mute.listen(server_name(tmp_path / "data"))
    try:
        started = time.monotonic()
        assert hand_over(tmp_path / "data", "quick-ask", timeout_ms=300) is None
        assert time.monotonic() - started < 5
    finally:
        mute.close()


def test_a_stranger_on_the_socket_is_answered_and_ignored(qtbot: Any, tmp_path: Path) -> None:
    from PySide6.QtNetwork import QLocalSocket

    server = InstanceServer(tmp_path / "data")
    assert server.listen()
    heard: list[str] = []
    server.sig_request.connect(heard.append)
    try:
        stranger = QLocalSocket()
        stranger.connectToServer(server.name)
        assert stranger.waitForConnected(1000)
        stranger.write(b"GET / HTTP/1.1\n")
        stranger.flush()
        qtbot.waitUntil(lambda: stranger.bytesAvailable() > 0, timeout=5000)
        assert bytes(stranger.readAll().data()) == b"unknown\n"
        stranger.abort()
        assert heard == []
        assert single_instance.REQUESTS == ("show", "quick-ask")
    finally:
        server.close()


def test_the_running_window_opens_quick_ask_for_a_shortcut(tmp_path: Path) -> None:
    """End to end: the real window process, then ``kenning --quick-ask`` as a shortcut runs it."""
    data_dir = tmp_path / "data"
    first = subprocess.Popen(
        [sys.executable, "-m", "desktop_app", "--data-dir", str(data_dir), "--quit-after", "3600"],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert first.stdout is not None
        deadline = time.monotonic() + 240
        for line in first.stdout:
            if line.strip() == "kenning: ready" or time.monotonic() > deadline:
                break
        second = _second_start(data_dir, "--quick-ask")
        out, err = second.communicate(timeout=60)
        assert second.returncode == 0, err
        assert "the running window took it (quick-ask)" in out
    finally:
        first.terminate()
        _, first_err = first.communicate(timeout=30)
    assert "a second start asked for quick-ask" in first_err
