"""The bridge: engine calls off the GUI thread, results and failures back as signals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

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
    assert not bridge.is_running


def test_models_load_in_the_background_right_after_start(
    qtbot: Any, tmp_path: Path, embedder: Any, generator: Any
) -> None:
    bridge = EngineBridge(tmp_path / "data", embedder=embedder, generator=generator)
    try:
        with qtbot.waitSignal(bridge.sig_models_ready, timeout=60_000) as warmed:
            bridge.start()
        assert warmed.args[0] >= 0.0
        # What is loaded is frozen out of the collector's full passes (they froze the window).
        import gc

        assert gc.get_freeze_count() > 0 and gc.isenabled()
    finally:
        bridge.shutdown()


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        # The generator answers (and loads at start) in the extractive pipeline.
        ({"generator_model": "broken.gguf", "answer_strategy": "extractive"}, "not a GGUF file"),
        ({"reader_model": "no-reader"}, "reader"),  # the default: the span reader
    ],
)
def test_a_broken_answer_model_is_reported_once_loading_starts(
    qtbot: Any, tmp_path: Path, embedder: Any, settings: dict[str, str], said: str
) -> None:
    from engine import EngineConfig

    (tmp_path / "broken.gguf").write_bytes(b"not a model")
    config = EngineConfig(
        **{k: str(tmp_path / v) if k.endswith("_model") else v for k, v in settings.items()}
    )
    bridge = EngineBridge(tmp_path / "data", config, embedder=embedder, poll_status=False)
    try:
        with qtbot.waitSignal(bridge.sig_error, timeout=60_000) as failed:
            bridge.start()
        assert failed.args[0] == "Could not load the models"
        assert said in failed.args[1] and "Traceback" not in failed.args[1]
    finally:
        bridge.shutdown()
