"""Widgets and the bridge's answer plumbing, fast: no models (a fake engine for stop)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QSettings, Qt, QUrl

from desktop_app.bridge import EngineBridge, load_settings, save_settings
from desktop_app.widgets.ask import QuestionBox, Transcript
from desktop_app.widgets.settings import SettingsDialog, needs_reindex
from desktop_app.widgets.sources import SourcesPanel, span_snippet
from desktop_app.widgets.viewer import DocumentViewer


def test_question_history_walks_with_up_and_down(qtbot: Any) -> None:
    box = QuestionBox()
    qtbot.addWidget(box)
    asked: list[str] = []
    box.sig_ask.connect(asked.append)
    for question in ("first question", "second question"):
        qtbot.keyClicks(box, question)
        qtbot.keyClick(box, Qt.Key.Key_Return)
    qtbot.keyClicks(box, "draft")

    qtbot.keyClick(box, Qt.Key.Key_Up)
    assert box.text() == "second question"
    qtbot.keyClick(box, Qt.Key.Key_Up)
    qtbot.keyClick(box, Qt.Key.Key_Up)  # stays at the oldest
    assert box.text() == "first question"
    qtbot.keyClick(box, Qt.Key.Key_Down)
    qtbot.keyClick(box, Qt.Key.Key_Down)
    assert box.text() == "draft"  # back to what was being typed
    with qtbot.waitSignal(box.sig_stop):
        qtbot.keyClick(box, Qt.Key.Key_Escape)
    assert asked == ["first question", "second question"]


@dataclass
class FakeHit:
    path: Path
    start: int
    end: int
    text: str
    score: float = 0.9
    chunk_id: int = 7
    page: int | None = None
    heading_path: tuple[str, ...] = ()


@dataclass
class FakeCitation:
    source: int
    start: int
    end: int
    text: str


@dataclass
class FakeAnswer:
    question: str
    text: str
    sources: list[Any]
    cited: list[int]
    citations: list[Any]
    abstained: bool = False
    answer_id: str = "a1"
    timings: dict[str, float] = field(default_factory=dict)


def _answer() -> FakeAnswer:
    text = "The dentist appointment is on Tuesday at 3pm, Dr. Molar."
    hit = FakeHit(Path("/notes/dentist.md"), 16, 16 + len(text), text)
    start = text.index("Tuesday at 3pm")
    cite = FakeCitation(0, 16 + start, 16 + start + 14, "Tuesday at 3pm")
    return FakeAnswer("When?", "Tuesday at 3pm", [hit], [0], [cite])


def test_transcript_streams_tokens_and_citation_markers_click(qtbot: Any) -> None:
    transcript = Transcript()
    qtbot.addWidget(transcript)
    transcript.add_turn("When?")
    for piece in ("Tuesday", " at", " 3pm"):
        transcript.append_token(piece)
    assert "Tuesday at 3pm" in transcript.toPlainText()
    transcript.finish(_answer())
    assert "Tuesday at 3pm [1]" in transcript.toPlainText()
    with qtbot.waitSignal(transcript.sig_citation_clicked) as clicked:
        transcript.anchorClicked.emit(QUrl("cite:0:0"))
    assert clicked.args == [0, 0]


def test_transcript_quotes_the_evidence_with_the_answer_highlighted(qtbot: Any) -> None:
    from engine.reader.answer import Answer, Citation, Evidence

    text = "The dentist appointment is on Tuesday at 3pm, Dr. Molar."
    hit = FakeHit(Path("/notes/dentist.md"), 16, 16 + len(text), text)
    at = text.index("Tuesday at 3pm")
    answered = Answer(
        "When?",
        "Tuesday at 3pm",
        [hit],
        [0],
        [Citation(0, 16 + at, 30 + at, "Tuesday at 3pm")],
        False,
        "a1",
        evidence=Evidence(0, 16, 16 + len(text), text, at, at + 14),
        certainty=0.9,
    )
    transcript = Transcript()
    qtbot.addWidget(transcript)
    transcript.add_turn("When?")
    transcript.finish(answered)
    shown = transcript.toPlainText()
    assert f"From the source (sure): “{text}”" in shown
    assert "background-color:#fff3a3" in transcript.toHtml()  # the span is marked
    abstained = Answer(
        "Who?",
        "The documents do not say.",
        [hit],
        [],
        [],
        True,
        "a2",
        evidence=Evidence(0, 16, 16 + len(text), text),
        certainty=0.1,
    )
    transcript.add_turn("Who?")
    transcript.finish(abstained)
    assert f"The closest passage says: “{text}”" in transcript.toPlainText()


def test_source_card_marks_the_cited_span(qtbot: Any) -> None:
    panel = SourcesPanel()
    qtbot.addWidget(panel)
    panel.show_answer(_answer(), {0: 3})
    label = panel.cards[0].label.text()
    assert "dentist.md" in label and "line 3" in label and "score 0.90" in label
    assert ">Tuesday at 3pm</span>" in label
    with qtbot.waitSignal(panel.sig_view) as viewed:
        panel.cards[0].view_button.click()
    assert viewed.args[1] == (16 + 30, 16 + 44)
    assert span_snippet("abc def", 4, 7, "red").endswith(
        '<span style="background-color:red">def</span>'
    )


@dataclass
class FakeDocument:
    text: str
    kind: str = "markdown"

    def page_at(self, _offset: int) -> int | None:
        return None


def test_viewer_highlights_the_span_past_an_emoji(qtbot: Any) -> None:
    viewer = DocumentViewer()
    qtbot.addWidget(viewer)
    text = "# Notes 😀\n\nline two\nThe dentist is on Tuesday.\n"
    start = text.index("Tuesday")
    viewer.show_document("/notes/a.md", FakeDocument(text), (start, start + 7))
    assert viewer.highlighted_text() == "Tuesday"
    assert "line 4" in viewer.heading.text()


class SlowEngine:
    """Streams a token every few milliseconds until told to stop or 10,000 are out."""

    def __init__(self) -> None:
        self.stopped_early = threading.Event()

    def ask(self, question: str, *, on_token: Any, conversation_id: Any, within: Any) -> Any:
        for _ in range(10_000):
            try:
                on_token("x")
            except Exception:
                self.stopped_early.set()
                raise
            threading.Event().wait(0.002)
        raise AssertionError("never stopped")


def test_stop_ends_generation_and_discards_tokens(qtbot: Any, tmp_path: Path) -> None:
    bridge = EngineBridge(tmp_path / "unused", poll_status=False)
    engine = SlowEngine()
    for thread in bridge._lanes._threads.values():
        thread.start()
    bridge._lanes._owner.context = engine
    bridge._ready = True
    try:
        tokens: list[str] = []
        bridge.sig_answer_token.connect(lambda _id, piece: tokens.append(piece))
        with qtbot.waitSignal(bridge.sig_answer_token, timeout=10_000):
            ask_id = bridge.ask("anything")
        with qtbot.waitSignal(bridge.sig_answer_ended, timeout=10_000):
            bridge.stop_answer(ask_id)
        seen = len(tokens)
        assert engine.stopped_early.wait(10)
        qtbot.wait(50)  # tokens already queued for the GUI thread are dropped, not shown
        assert len(tokens) == seen
    finally:
        bridge._lanes._owner.context = None
        bridge.shutdown()


def test_settings_dialog_says_when_to_reindex_and_saves(qtbot: Any, tmp_path: Path) -> None:
    from engine import EngineConfig

    config = EngineConfig()
    dialog = SettingsDialog(config, tmp_path / "data")
    qtbot.addWidget(dialog)
    assert dialog.note.text() == ""
    dialog.device.setCurrentText("cpu")
    assert "restarts" in dialog.note.text()
    dialog.chunk.setValue(150)
    dialog.ignore.setPlainText("*.log\nbuild/\n")
    assert "re-indexes" in dialog.note.text()
    new, data_dir = dialog.values()
    assert needs_reindex(config, new)
    assert (new.max_chunk_tokens, new.ignore_patterns, new.device) == (
        150,
        ("*.log", "build/"),
        "cpu",
    )
    assert data_dir == tmp_path / "data"
    save_settings(new, tmp_path / "config.toml")
    assert load_settings(tmp_path / "config.toml") == new


def test_settings_dialog_points_the_library_at_a_milvus_server(qtbot: Any, tmp_path: Path) -> None:
    from engine import EngineConfig

    config = EngineConfig()
    dialog = SettingsDialog(config, tmp_path / "data")
    qtbot.addWidget(dialog)
    assert not dialog.milvus_uri.isEnabled()  # the default library is on this computer
    dialog.backend.setCurrentIndex(dialog.backend.findData("milvus"))
    assert dialog.milvus_uri.isEnabled() and "not valid" in dialog.note.text()  # no address
    dialog.milvus_uri.setText("http://milvus.team:19530")
    dialog.milvus_library.setText("lab_notes")
    dialog.milvus_token.setText("alice:s3cret")
    assert "other library" in dialog.note.text()
    new, _ = dialog.values()
    assert (new.backend, new.milvus_uri, new.milvus_library, new.milvus_token) == (
        "milvus",
        "http://milvus.team:19530",
        "lab_notes",
        "alice:s3cret",
    )
    save_settings(new, tmp_path / "config.toml")
    assert load_settings(tmp_path / "config.toml") == new


def test_window_remembers_history_and_tab(qtbot: Any, tmp_path: Path) -> None:
    from desktop_app.main_window import MainWindow

    settings = QSettings(str(tmp_path / "gui.ini"), QSettings.Format.IniFormat)
    first = MainWindow(EngineBridge(tmp_path / "unused", poll_status=False), settings)
    qtbot.addWidget(first)
    first.question_box.set_history(["one", "two"])
    first.tabs.setCurrentIndex(1)
    first.close()
    second = MainWindow(EngineBridge(tmp_path / "unused", poll_status=False), settings)
    qtbot.addWidget(second)
    assert second.question_box.history == ["one", "two"]
    assert second.tabs.currentIndex() == 1


def test_dark_theme_palette_and_high_dpi_icon(qtbot: Any) -> None:
    from PySide6.QtGui import QPalette

    from desktop_app.app import app_icon, dark_palette

    palette = dark_palette()
    window = palette.color(QPalette.ColorRole.Window)
    text = palette.color(QPalette.ColorRole.WindowText)
    assert window.lightness() < 80 < 200 < text.lightness()  # light text on a dark window
    sizes = {size.width() for size in app_icon().availableSizes()}
    assert {16, 32, 256} <= sizes  # a sharp icon at 1x and at high DPI


def test_welcome_text_is_never_cut_off(qtbot: Any) -> None:
    """On a tall window the wrapped label got its one-line height and lost its last line."""
    from PySide6.QtWidgets import QLabel

    from desktop_app.widgets.welcome import WelcomePage

    page = WelcomePage()
    qtbot.addWidget(page)
    label = page.findChild(QLabel)
    assert label is not None and "drop a folder onto this window" in label.text()
    for size in [(900, 600), (1400, 1000), (640, 420)]:
        page.resize(*size)
        page.show()
        qtbot.wait(10)
        assert label.height() >= label.heightForWidth(label.width()), size


def test_idle_line_says_how_many_corrections_wait_and_when_they_are_learned() -> None:
    from desktop_app.widgets.progress import describe_idle
    from engine.status import FolderStatus, Status

    folder = FolderStatus(Path("/notes"), 3, 9, None, "ready", ())
    base = Status((folder,), 3, 9, 9, 0, False, None, ())
    assert "waiting" not in describe_idle(base)
    waiting = Status((folder,), 3, 9, 9, 0, False, None, (), False, 2, 41.6)
    assert describe_idle(waiting).endswith(
        "· 2 corrections waiting to be learned (next round in about 42 s)"
    )
    due = Status((folder,), 3, 9, 9, 0, False, None, (), False, 1, 0.0)
    assert describe_idle(due).endswith("1 correction waiting to be learned (next round starting)")


def test_settings_offer_the_multilingual_embedder_as_a_re_embedding_not_a_re_index(
    qtbot: Any, tmp_path: Path
) -> None:
    from desktop_app.bridge import missing_embedders
    from engine import EngineConfig
    from engine.multilingual import INSTALL_HINT, MULTILINGUAL_MODEL, multilingual_available

    config = EngineConfig()
    # Without the wheels the choice is shown greyed, with how to install it.
    absent = SettingsDialog(config, tmp_path / "data", missing={MULTILINGUAL_MODEL: INSTALL_HINT})
    qtbot.addWidget(absent)
    at = absent.embedding.choice.findData(MULTILINGUAL_MODEL)
    assert at > 0
    item = absent.embedding.choice.model().item(at)  # type: ignore[attr-defined]
    assert not item.isEnabled()
    assert item.toolTip() == INSTALL_HINT
    assert (MULTILINGUAL_MODEL in missing_embedders()) != multilingual_available()
    dialog = SettingsDialog(config, tmp_path / "data", missing=missing_embedders())
    qtbot.addWidget(dialog)
    item = dialog.embedding.choice.model().item(at)  # type: ignore[attr-defined]
    assert item.isEnabled() == multilingual_available()
    dialog.embedding.choice.setCurrentIndex(at)
    new, _ = dialog.values()
    assert new.embedding_model == MULTILINGUAL_MODEL
    assert not needs_reindex(config, new)
    assert "re-embeds" in dialog.note.text()
    # Opened again on the saved choice, the dialog shows it, not a local folder.
    again = SettingsDialog(new, tmp_path / "data")
    qtbot.addWidget(again)
    assert again.embedding.choice.currentData() == MULTILINGUAL_MODEL
    assert again.values()[0].embedding_model == MULTILINGUAL_MODEL


def test_settings_keep_the_float32_encoder_available_as_a_re_embedding(
    qtbot: Any, tmp_path: Path
) -> None:
    from engine import EngineConfig
    from engine.config import load_config, save_config

    config = EngineConfig()
    dialog = SettingsDialog(config, tmp_path / "data")
    qtbot.addWidget(dialog)
    assert dialog.precision.currentData() == "int8"
    dialog.precision.setCurrentIndex(dialog.precision.findData("float32"))
    new, _ = dialog.values()
    assert new.encoder_precision == "float32"
    assert not needs_reindex(config, new)
    assert "re-embeds" in dialog.note.text()
    save_config(new, tmp_path / "settings.toml")
    again = load_config(tmp_path / "settings.toml")
    assert again.encoder_precision == "float32"
    shown = SettingsDialog(again, tmp_path / "data")
    qtbot.addWidget(shown)
    assert shown.precision.currentData() == "float32"
