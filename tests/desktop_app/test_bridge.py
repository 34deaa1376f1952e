"""The bridge: engine calls off the GUI thread, results and failures back as signals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from desktop_app.bridge import EngineBridge
from desktop_app.main_window import MainWindow


def test_a_newer_search_replaces_an_older_one(qtbot: Any, window: MainWindow) -> None:
    bridge = window.bridge
    seen: list[str] = []
    bridge.sig_search_results.connect(lambda query, _hits: seen.append(query))

    with qtbot.waitSignal(bridge.sig_search_results, timeout=30_000):
        bridge.search("dent")
        bridge.search("dentist")

    assert seen == ["dentist"]


def test_an_engine_that_cannot_start_is_reported_not_hung(qtbot: Any, tmp_path: Path) -> None:
    not_a_dir = tmp_path / "data"
    not_a_dir.write_text("a file where the data dir should be")
    bridge = EngineBridge(not_a_dir, poll_status=False)
    try:
        with qtbot.waitSignal(bridge.sig_error, timeout=30_000) as started:
            bridge.start()
        assert started.args[0] == "Kenning could not start"
        assert "Traceback" not in started.args[1]
        assert "Traceback" in started.args[2]

        with qtbot.waitSignal(bridge.sig_error, timeout=30_000) as searched:
            bridge.search("anything")
        assert searched.args[1].startswith("Kenning did not start.")
    finally:
        bridge.shutdown()
    assert not bridge._threads["index"].isRunning()
