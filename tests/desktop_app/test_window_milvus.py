"""The window on a shared Milvus library: it says the library is shared, and when
the server cannot be reached it says so instead of looking live."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QSettings

from desktop_app.bridge import EngineBridge
from desktop_app.main_window import MainWindow
from engine import EngineConfig

pytest.importorskip("pymilvus")


def _window(qtbot: Any, tmp_path: Path, embedder: Any, uri: str) -> MainWindow:
    config = EngineConfig(
        backend="milvus", milvus_uri=uri, milvus_library="w" + uuid.uuid4().hex[:12]
    )
    bridge = EngineBridge(tmp_path / "data", config, embedder=embedder, warm_up=False)
    settings = QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat)
    win = MainWindow(bridge, settings, config_path=tmp_path / "config.toml")
    qtbot.addWidget(win)
    with qtbot.waitSignal(bridge.sig_ready, timeout=60_000):
        win.show()
    return win


def test_a_shared_library_is_shown_as_shared(
    qtbot: Any, tmp_path: Path, embedder: Any, notes: Path, milvus_server: Any
) -> None:
    win = _window(qtbot, tmp_path, embedder, milvus_server.uri)
    try:
        win.add_folder(notes)
        qtbot.waitUntil(lambda: win.sync_label.text() == "● Live · shared", timeout=120_000)
        assert milvus_server.uri.removeprefix("http://") in win.sync_label.toolTip()
    finally:
        win.close()
        win.bridge.shutdown()


def test_an_unreachable_library_is_shown_offline(
    qtbot: Any, tmp_path: Path, embedder: Any, notes: Path
) -> None:
    from tests.engine.milvus_server import free_port

    win = _window(qtbot, tmp_path, embedder, f"http://127.0.0.1:{free_port()}")
    try:
        win.add_folder(notes)
        qtbot.waitUntil(lambda: win.sync_label.text() == "⚠ Library offline", timeout=60_000)
        assert "kept here" in win.sync_label.toolTip()
    finally:
        win.close()
        win.bridge.shutdown()
