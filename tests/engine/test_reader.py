"""The trained span reader: real weights from resources/, a real engine, real files."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import Engine, EngineConfig, ModelNotAvailableError
from engine.embedding import Embedder
from engine.learning.reader_learning import LabelledReading
from engine.library.retrieval import Hit
from engine.reader import SpanReader, bundled_reader_path
from engine.reader.model import (
    CONFIG_NAME,
    READER_FORMAT,
    WEIGHTS_NAME,
    ReaderGuess,
    Selection,
    Span,
)
from engine.reader.span_answers import choose

ROOT = Path(__file__).resolve().parents[2]

NOTES = {
    "space.md": (
        "# Mars\n\nThe rover Perseverance landed in Jezero Crater in February 2021. "
        "It carries a small helicopter called Ingenuity, which first flew in April 2021.\n"
    ),
    "bread.md": (
        "# Sourdough\n\nFeed the starter with rye flour twice a day. "
        "Bake the loaf at 250 degrees for forty minutes, then let it cool on a rack.\n"
    ),
    "club.md": (
        "# Chess club\n\nThe chess club meets on Tuesdays in the library basement. "
        "Its treasurer, Marta Oliveira, keeps the membership fees in a tin box, "
        "and the club's oldest member, Henrik Dahl, teaches the openings.\n"
    ),
}


def without_generator(**changes: object) -> EngineConfig:
    """No generator rounds or recall: what the reader and the memory do alone."""
    config = EngineConfig(use_generator_recall=False, adapter_auto_after=0, adapter_idle_seconds=0)
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]


@contextlib.contextmanager
def indexed(
    data: Path, config: EngineConfig, embedder: Embedder, reader: SpanReader, notes: Path
) -> Iterator[Engine]:
    """An engine on ``data`` with the notes indexed."""
    with Engine(data, config, embedder=embedder, reader=reader) as eng:
        eng.add_folder(notes)
        assert eng.wait_until_idle(120)
        yield eng


@pytest.fixture(scope="module")
def reader() -> SpanReader:
    return SpanReader.load()


@pytest.fixture(scope="module")
def notes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("notes")
    for name, text in NOTES.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def engine(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder, reader: SpanReader, notes: Path
) -> Iterator[Engine]:
    config = EngineConfig(adapter_auto_after=0, adapter_idle_seconds=0)
    with indexed(tmp_path_factory.mktemp("data"), config, embedder, reader, notes) as eng:
        yield eng


def test_the_shipped_reader_is_versioned_safetensors_and_small() -> None:
    folder = bundled_reader_path()
    config = json.loads((folder / CONFIG_NAME).read_text())
    assert config["format_version"] == READER_FORMAT == 2
    assert config["selection"] is not None, "the shipped reader carries its calibration"
    assert config["weights"] == WEIGHTS_NAME
    # Every layer and the head in float16, without the embeddings (those are MiniLM's).
    assert (folder / WEIGHTS_NAME).stat().st_size < 24 * 1024 * 1024
    assert not list(folder.glob("*.bin")), "weights are safetensors only, never pickles"


def test_reader_answers_with_the_right_span_and_sentence(engine: Engine, notes: Path) -> None:
    answer = engine.ask("Where did the rover Perseverance land?")
    assert not answer.abstained
    assert "Jezero Crater" in answer.text
    citation = answer.citations[0]
    source = answer.sources[citation.source]
    assert source.path.name == "space.md"
    text = source.path.read_text(encoding="utf-8")
    assert text[citation.start : citation.end] == answer.text
    ev = answer.evidence
    assert ev is not None
    assert ev.text == "The rover Perseverance landed in Jezero Crater in February 2021."
    assert text[ev.start : ev.end] == ev.text
    assert ev.text[ev.answer_start : ev.answer_end] == answer.text
    assert answer.certainty is not None and answer.certainty_label in ("sure", "fairly sure")


def test_reader_reads_a_name_out_of_a_longer_sentence(engine: Engine) -> None:
    answer = engine.ask("Who keeps the chess club's membership fees?")
    assert not answer.abstained
    assert answer.text == "Marta Oliveira"


def test_off_library_question_abstains_and_quotes_the_closest_sentence(engine: Engine) -> None:
    answer = engine.ask("What is the boiling point of liquid nitrogen?")
    assert answer.abstained
    assert answer.text == "The documents do not say."
    assert answer.sources, "the nearest passages are still shown"
    assert answer.evidence is not None and answer.evidence.answer_start == 0


def test_missing_or_corrupt_reader_files_give_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "reader"
    shutil.copytree(bundled_reader_path(), broken)
    (broken / WEIGHTS_NAME).write_bytes(b"\x00not a safetensors file" * 10)
    with pytest.raises(ModelNotAvailableError, match="cannot be loaded"):
        SpanReader.load(broken)
    (broken / WEIGHTS_NAME).unlink()
    with pytest.raises(ModelNotAvailableError, match="weights are missing"):
        SpanReader.load(broken)
    (broken / CONFIG_NAME).write_text("{ not json")
    with pytest.raises(ModelNotAvailableError, match="cannot be read"):
        SpanReader.load(broken)
    (broken / CONFIG_NAME).write_text(json.dumps({"format_version": 99}))
    with pytest.raises(ModelNotAvailableError, match="format 99"):
        SpanReader.load(broken)
    with pytest.raises(ModelNotAvailableError):
        SpanReader.load(tmp_path / "nowhere")


def test_an_engine_with_a_broken_reader_raises_on_ask(tmp_path: Path, embedder: Embedder) -> None:
    config = EngineConfig(reader_model=str(tmp_path / "missing"))
    with (
        Engine(tmp_path / "data", config, embedder=embedder) as eng,
        pytest.raises(ModelNotAvailableError),
    ):
        eng.ask("Anything?")


def test_reader_batches_windows_of_a_long_passage(reader: SpanReader) -> None:
    filler = "The weather was mild and nothing else happened that day. " * 60
    passage = filler + "The treasure was buried under the old oak by Captain Reyes."
    guess = reader.read("Who buried the treasure?", [passage, "Unrelated text."])
    assert guess.best is not None
    assert "Reyes" in guess.best.text
    assert guess.best.passage == 0
    assert len(guess.null_scores) == 2
    assert guess.passage_best[0] == guess.best, "each passage keeps its own best span"
    assert guess.passage_best[1] is not None and guess.passage_best[1].passage == 1


def test_a_reader_of_the_old_format_is_refused_with_how_to_fix_it(tmp_path: Path) -> None:
    old = tmp_path / "old"
    shutil.copytree(bundled_reader_path(), old)
    raw = json.loads((old / CONFIG_NAME).read_text())
    raw["format_version"] = 1
    (old / CONFIG_NAME).write_text(json.dumps(raw))
    with pytest.raises(ModelNotAvailableError, match=r"format 1.*retrain"):
        SpanReader.load(old)


def test_a_correction_teaches_the_reader_and_forgetting_restores_it(
    tmp_path: Path, embedder: Embedder, reader: SpanReader, notes: Path
) -> None:
    # The memory and the generator's recall are off: only the reader can carry it over.
    config = without_generator(use_correction_memory=False)
    with indexed(tmp_path / "data", config, embedder, reader, notes) as eng:
        similar = "Which member of the chess club teaches the openings?"
        before = eng.ask(similar)
        assert "Henrik Dahl" in before.text
        # Asked before the correction, about the same passage: the round replays the
        # shipped reader's answer to it, so learning the correction leaves it alone.
        other = "Who keeps the chess club's membership fees?"
        assert "Marta Oliveira" in eng.ask(other).text
        oldest = "Who is the oldest member of the chess club?"
        assert "Henrik Dahl" in eng.ask(oldest).text
        # The person says otherwise; the corrected answer is in the passage.
        correction = eng.record_correction(
            "Who teaches the openings at the chess club?", "Marta Oliveira"
        )
        assert eng.wait_until_idle(600)
        assert eng.reader_version == 1
        after = eng.ask(similar)
        assert "Marta Oliveira" in after.text, after.text
        assert "Henrik Dahl" in eng.ask(oldest).text
        unrelated = eng.ask("Where did the rover Perseverance land?")
        assert "Jezero Crater" in unrelated.text
        eng.forget_correction(correction.id)
        assert eng.reader_version == 0  # at once, before any retraining
        assert eng.ask(similar).text == before.text
        assert eng.wait_until_idle(600)
        assert eng.ask(similar).text == before.text
        assert eng.reader_versions() == [1]


def test_the_reader_reads_two_wordings_alike_and_another_question_apart(
    reader: SpanReader,
) -> None:
    passage = NOTES["club.md"]
    stored = "Who teaches the openings at the chess club?"
    alike = reader.agreement(
        stored, "Which member of the chess club teaches the openings?", passage
    )
    apart = reader.agreement(stored, "Who is the treasurer of the chess club?", passage)
    assert reader.agreement(stored, stored, passage) == pytest.approx(1.0, abs=1e-5)
    assert alike > 0.8 > 0.2 > apart


def test_a_correction_does_not_answer_another_question_about_its_passage(
    tmp_path: Path, embedder: Embedder, reader: SpanReader, notes: Path
) -> None:
    # The memory's gate takes "Who meets at the chess club on Tuesdays?" for a wording
    # of the corrected question (p 0.73); the reader reads the two apart (agreement
    # 0.05, under the 0.35 floor). The shipped reader throughout: no learning round.
    config = without_generator(reader_learning=False)
    with indexed(tmp_path / "data", config, embedder, reader, notes) as eng:
        # Both asked before the correction: the reader answered them from the passage.
        wording = "Which member of the chess club teaches the openings?"
        other = "Who meets at the chess club on Tuesdays?"
        assert eng.ask(wording).correction is None and eng.ask(other).correction is None
        stored = "Who teaches the openings at the chess club?"
        eng.record_correction(stored, "Marta Oliveira")
        paraphrase = eng.ask(wording)
        assert paraphrase.correction is not None and paraphrase.text == "Marta Oliveira"
        assert eng.learning.lookup(other) is not None, "the gate alone would answer it"
        assert eng.ask(other).correction is None
        # A reader round replays the reader's answers to the questions asked about the
        # passage, less those the memory answers: by the same test as ask, the wording
        # is left out (its old answer is the one corrected) and the other question kept.
        hit = eng.search(other, limit=1)[0]
        example = LabelledReading(
            1, stored, hit.text, "Marta Oliveira", hit.text.index("Marta"), str(hit.path),
            hit.start, hit.end,
        )  # fmt: skip
        cited = eng.answering.log().questions_citing(str(hit.path), hit.start, hit.end)
        assert {wording, other} <= set(cited)
        asked = eng.learning._asked_about(example)
        assert other in asked and wording not in asked
    unchecked = dataclasses.replace(config, memory_min_agreement=0.0)
    with Engine(tmp_path / "data", unchecked, embedder=embedder, reader=reader) as eng:
        assert eng.ask(other).correction is not None


def test_the_training_command_runs_end_to_end_on_a_tiny_slice(tmp_path: Path) -> None:
    out = tmp_path / "reader"
    done = subprocess.run(
        [sys.executable, "-m", "bench.train_reader", "--tiny", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (out / WEIGHTS_NAME).is_file() and (out / "replay.json").is_file()
    trained = SpanReader.load(out)
    assert trained.config.training["command"].endswith("--tiny")
    assert trained.read("Who?", ["It was Ada."]).best is not None


def test_a_superseded_correction_keeps_its_example_and_a_forgotten_one_loses_it(
    tmp_path: Path,
) -> None:
    from engine.learning.reader_learning import ReaderLearning, find_example

    learning = ReaderLearning(tmp_path / "reader", bundled_reader_path())
    example = find_example(1, "Who teaches?", "Henrik Dahl", [NOTES["club.md"]])
    assert example is not None
    learning.add(example)
    learning.retire({1})  # superseded: it may come back into effect, so it stays
    assert set(learning.examples()) == {1}
    assert learning.pending({1}) and not learning.pending(set())
    learning.drop({1})  # forgotten for good
    assert learning.examples() == {}
    assert learning.current() == 0


def test_selection_weighs_retrieval_against_the_readers_raw_scores() -> None:
    # Raw span scores are not comparable across passages: a calibrated model that
    # trusts the retrieval cosine picks the first passage's span over a louder one.
    hits = [
        Hit(Path("a.md"), 0, 30, "Ada Lovelace wrote the notes.", 0.9, 1, similarity=0.8),
        Hit(Path("b.md"), 0, 30, "Charles Babbage built it.", 0.5, 2, similarity=0.3),
    ]
    quiet = Span(0, 0, 12, "Ada Lovelace", 4.0)
    loud = Span(1, 0, 15, "Charles Babbage", 9.0)
    guess = ReaderGuess([loud, quiet], [0.0, 0.0], [quiet, loud])
    trusting = Selection(("score", "similarity"), (0.1, 20.0), -10.0, 0.5)
    span, p = choose(trusting, guess, hits)
    assert span == quiet and p > 0.5
    raw = Selection(("score",), (1.0,), 0.0, 0.5)
    assert choose(raw, guess, hits)[0] == loud
    assert choose(None, guess, hits) == (loud, 1.0), "uncalibrated: the raw best, answered"


def test_the_answer_history_finds_the_questions_asked_about_a_passage(tmp_path: Path) -> None:
    from engine.reader.answer import Answer, Citation
    from engine.reader.answer_log import AnswerLog

    log = AnswerLog(tmp_path / "answers.db")
    hits = [
        Hit(Path("/n/club.md"), 10, 200, "x", 1.0, 1),
        Hit(Path("/n/bread.md"), 0, 90, "y", 1.0, 2),
    ]
    for n, (question, source, start) in enumerate(
        [("Who teaches?", 0, 40), ("When does it meet?", 0, 150), ("How long?", 1, 5)]
    ):
        citation = Citation(source, start, start + 20, "z")
        log.record(Answer(question, "a", hits, [source], [citation], False, f"id{n}"))
    try:
        assert set(log.questions_citing("/n/club.md", 0, 100)) == {"Who teaches?"}
        assert set(log.questions_citing("/n/club.md", 0, 1000)) == {
            "Who teaches?",
            "When does it meet?",
        }
        assert log.questions_citing("/n/space.md", 0, 1000) == []
    finally:
        log.close()
