"""Retrieval feedback: ratings move passages for similar questions and for no others."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from engine import Engine, EngineConfig
from engine.embedding import Embedder
from engine.generation import Generator
from engine.learning.feedback import decayed_boosts
from engine.library.chunk_store import ChunkRecord
from engine.library.retrieval import Hit, apply_boosts


# -- the arithmetic (no models) -----------------------------------------------------------
def test_boost_decays_with_cosine_and_vanishes_below_the_floor() -> None:
    rated = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]], dtype=np.float32)
    query = np.array([1.0, 0.0], dtype=np.float32)
    boosts = decayed_boosts(
        query, rated, [1, 2, 3], np.array([1.0, -1.0, 1.0]), weight=0.5, min_similarity=0.6
    )
    assert boosts[1] == pytest.approx(0.5)  # same question: full strength
    assert boosts[2] == pytest.approx(-0.5 * (0.8 - 0.6) / 0.4)  # similar: partial, negative
    assert 3 not in boosts  # unrelated: nothing


def test_ratings_of_one_passage_do_not_add_up_past_one_rating() -> None:
    rated = np.array([[1.0, 0.0]] * 3, dtype=np.float32)
    boosts = decayed_boosts(
        np.array([1.0, 0.0], dtype=np.float32),
        rated,
        [4, 4, 4],
        np.ones(3),
        weight=0.5,
        min_similarity=0.6,
    )
    assert boosts == {4: 0.5}


def _hit(chunk: int, score: float) -> Hit:
    return Hit(Path(f"{chunk}.md"), 0, 1, "x", score, chunk, chunk_ids=(chunk,))


def test_apply_boosts_reranks_and_brings_in_a_missing_passage() -> None:
    hits = [_hit(1, 0.9), _hit(2, 0.6), _hit(3, 0.3)]
    record = ChunkRecord(9, 1, Path("9.md"), 0, 0, 5, None, (), "", "extra", "h")
    ranked = apply_boosts(hits, {3: 0.8, 1: -0.5, 9: 0.2}, [record])
    assert [h.chunk_id for h in ranked] == [3, 2, 1, 9]
    assert apply_boosts(hits, {}) == [_hit(1, 1.0), _hit(2, 0.6 / 0.9), _hit(3, 0.3 / 0.9)]


# -- through the engine (real embedder, generator, SQLite, USearch) -----------------------
NOTES = {
    "tea.md": "# Tea\n\nGreen tea is grown on the hills of Shizuoka and picked in May.\n",
    "tea_shop.md": "# Tea shop\n\nThe corner shop sells green tea from Uji in small tins.\n",
    "office.md": "# Office\n\nThe Lisbon office opens at nine in the morning on weekdays.\n",
    "bikes.md": "# Bikes\n\nThe red bicycle needs new brake pads before the spring ride.\n",
}


@pytest.fixture()
def engine(tmp_path: Path, embedder: Embedder, generator: Generator) -> Iterator[Engine]:
    notes = tmp_path / "notes"
    notes.mkdir()
    for name, text in NOTES.items():
        (notes / name).write_text(text, encoding="utf-8")
    config = EngineConfig(max_new_tokens=4, adapter_auto_after=0, adapter_idle_seconds=0)
    with Engine(tmp_path / "data", config, embedder=embedder, generator=generator) as eng:
        eng.add_folder(notes)
        assert eng.wait_until_idle(120)
        yield eng


def _order(hits: list[Hit]) -> list[str]:
    return [h.path.name for h in hits]


def test_rating_moves_a_passage_for_a_similar_question_only(engine: Engine) -> None:
    question = "Where does our green tea come from?"
    similar = "Where does the green tea we drink come from?"
    unrelated = "When does the Lisbon office open?"
    before_similar = _order(engine.search(similar, limit=4))
    before_unrelated = engine.search(unrelated, limit=4)
    loser = engine.search(question, limit=4)[1]  # the runner-up passage
    answer = engine.ask(question)

    engine.rate_source(answer.answer_id, loser.chunk_id, helpful=True)

    after_similar = _order(engine.search(similar, limit=4))
    assert after_similar[0] == loser.path.name != before_similar[0]
    assert engine.search(unrelated, limit=4) == before_unrelated  # untouched, scores too


def test_unhelpful_rating_pushes_a_passage_down(engine: Engine) -> None:
    question = "Where does our green tea come from?"
    top = engine.search(question, limit=4)[0]
    engine.rate_source(engine.ask(question).answer_id, top.chunk_id, helpful=False)
    assert _order(engine.search("Where does the green tea we drink come from?", limit=4))[0] != (
        top.path.name
    )
    with pytest.raises(KeyError):
        engine.rate_source("no-such-answer", top.chunk_id, helpful=True)


def test_a_correction_boosts_the_passage_holding_its_answer_until_forgotten(
    engine: Engine,
) -> None:
    question = "Which town is our green tea from?"
    similar = "Which town does the green tea come from?"
    before = _order(engine.search(similar, limit=4))
    holder = "tea_shop.md" if before[0] == "tea.md" else "tea.md"
    answer = "Uji" if holder == "tea_shop.md" else "Shizuoka"
    fix = engine.record_correction(question, answer)
    assert _order(engine.search(similar, limit=4))[0] == holder
    engine.forget_correction(fix.id)
    assert _order(engine.search(similar, limit=4)) == before
