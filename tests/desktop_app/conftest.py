"""GUI test fixtures: offscreen Qt, a real window on a real engine in a temporary data dir."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QSettings

from desktop_app.bridge import EngineBridge
from desktop_app.main_window import MainWindow

NOTES = {
    "dentist.md": "# Appointments\n\nThe dentist appointment is on Tuesday at 3pm, Dr. Molar.\n",
    "garden.md": "# Garden\n\nTomatoes need six hours of sun. Water the basil every morning.\n",
    "bread.md": "# Sourdough\n\n## Baking\n\nBake the loaf at 250 degrees for forty minutes.\n",
}


@pytest.fixture(scope="session")
def generator(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The bundled SmolLM2, dequantized once per session into a temporary cache."""
    from engine.generation import Generator

    return Generator(cache_root=tmp_path_factory.mktemp("models"), device="cpu", threads=2)


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    """A folder of three small Markdown notes."""
    folder = tmp_path / "notes"
    folder.mkdir()
    for name, text in NOTES.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder.resolve()


@pytest.fixture
def settings(tmp_path: Path) -> QSettings:
    """GUI settings in the test's own file, never the person's."""
    return QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def window(qtbot: Any, tmp_path: Path, embedder: Any, settings: QSettings) -> Iterator[MainWindow]:
    """The main window on a started engine with an empty data dir."""
    # No warm-up: it would load (dequantize) the answer model these tests never use.
    bridge = EngineBridge(tmp_path / "data", embedder=embedder, warm_up=False)
    win = MainWindow(bridge, settings, config_path=tmp_path / "config.toml")
    qtbot.addWidget(win)
    with qtbot.waitSignal(bridge.sig_ready, timeout=60_000):
        win.show()
    yield win
    win.close()
    bridge.shutdown()


@pytest.fixture
def answering_window(
    qtbot: Any, tmp_path: Path, embedder: Any, generator: Any, settings: QSettings
) -> Iterator[MainWindow]:
    """The main window on a started engine that can answer (both real models)."""
    bridge = EngineBridge(tmp_path / "data", embedder=embedder, generator=generator)
    win = MainWindow(bridge, settings, config_path=tmp_path / "config.toml")
    qtbot.addWidget(win)
    with qtbot.waitSignal(bridge.sig_ready, timeout=60_000):
        win.show()
    yield win
    win.close()
    bridge.shutdown()
