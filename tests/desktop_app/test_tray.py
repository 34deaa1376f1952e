"""Quick ask from the tray: the small window asks through the real bridge and engine."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QSystemTrayIcon

from desktop_app.main_window import MainWindow
from desktop_app.tray import QuickAsk, install_tray, quick_answer_html
from engine.reader.answer import Evidence


def test_quick_ask_answers_with_the_quoted_sentence(
    qtbot: Any, window: MainWindow, notes: Path
) -> None:
    window.add_folder(notes)
    qtbot.waitUntil(
        lambda: (window.folders.folder_row(notes) or {}).get("Files") == "3", timeout=180_000
    )
    qtbot.waitUntil(lambda: (window.folders.folder_row(notes) or {}).get("State") == "Ready")
    quick = QuickAsk(window.bridge)
    qtbot.addWidget(quick)
    quick.open()
    quick.question.setText("When is the dentist appointment?")
    with qtbot.waitSignal(window.bridge.sig_answer_done, timeout=300_000):
        qtbot.keyClick(quick.question, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: quick.ask_id is None)
    shown = quick.answer.text()
    assert "dentist.md" in shown and "Tuesday" in shown
    assert window.transcript.toPlainText() == ""  # the main window's transcript is untouched


def test_an_abstention_still_shows_the_closest_sentence() -> None:
    answer = SimpleNamespace(
        text="The documents do not say.",
        abstained=True,
        certainty_label="unsure",
        evidence=Evidence(0, 0, 10, "Water the basil <daily>."),
        sources=[SimpleNamespace(path=Path("/notes/garden.md"))],
    )
    shown = quick_answer_html(answer)
    assert "The closest passage says <i>garden.md</i>" in shown
    assert "&lt;daily&gt;" in shown  # file text is escaped, never markup


def test_the_tray_appears_only_where_there_is_one(qtbot: Any, window: MainWindow) -> None:
    quick = QuickAsk(window.bridge)
    qtbot.addWidget(quick)
    tray = install_tray(quick, window)
    assert (tray is not None) == QSystemTrayIcon.isSystemTrayAvailable()
    if tray is not None:
        assert [a.text() for a in tray.menu.actions() if a.text()] == [
            "Ask Kenning…",
            "Show Kenning",
            "Quit",
        ]
        tray.hide()
