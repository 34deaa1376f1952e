"""Corrections: the durable store, the exact memory and its gate, and the whole loop."""

from __future__ import annotations

import dataclasses
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from engine import Engine, EngineConfig
from engine.embedding import Embedder
from engine.errors import StoreError
from engine.generation import Generator
from engine.learning.corrections import FORMAT_VERSION, Correction, CorrectionStore
from engine.learning.memory import (
    CorrectionMemory,
    answer_kind,
    entity_overlap,
    entity_tokens,
    kinds_agree,
    mask_entities,
)


# -- the store ---------------------------------------------------------------------------
def test_store_add_get_forget_and_revision(tmp_path: Path) -> None:
    store = CorrectionStore(tmp_path / "c.sqlite3")
    assert store.revision == 0
    first = store.add("Who wrote Emma?", "Jane Austen", answer_id="abc")
    second = store.add("Capital of Peru?", "Lima")
    assert (first.id, second.id) == (1, 2)
    assert store.get(first.id) == first
    assert [c.id for c in store.active()] == [1, 2]
    revision = store.revision
    gone = store.forget(first.id)
    assert gone.forgotten and store.revision > revision
    assert [c.id for c in store.active()] == [2]
    assert [c.id for c in store.all()] == [1, 2]
    assert store.get(99) is None
    with pytest.raises(KeyError):
        store.forget(99)
    with pytest.raises(ValueError):
        store.add("  ", "x")
    store.close()


def test_supersede_and_forget_brings_the_older_back(tmp_path: Path) -> None:
    store = CorrectionStore(tmp_path / "c.sqlite3")
    old = store.add("Where is the key?", "in the drawer")
    new = store.add("Where is the key?", "under the mat")
    store.supersede([old.id], new.id)
    assert [c.id for c in store.active()] == [new.id]
    assert store.get(old.id).superseded_by == new.id  # type: ignore[union-attr]
    store.forget(new.id)
    assert [c.id for c in store.active()] == [old.id]
    store.close()


def test_ratings_derived_from_a_correction_go_with_it(tmp_path: Path) -> None:
    store = CorrectionStore(tmp_path / "c.sqlite3")
    fix = store.add("q", "a")
    store.add_rating("q", 7, True, correction_id=fix.id)
    store.add_rating("q", 8, False, answer_id="x")
    assert [r.chunk_id for r in store.ratings()] == [7, 8]
    store.forget(fix.id)
    assert [r.chunk_id for r in store.ratings()] == [8]
    store.close()


def test_store_survives_reopen_and_refuses_newer_format(tmp_path: Path) -> None:
    path = tmp_path / "c.sqlite3"
    store = CorrectionStore(path)
    store.add("q", "a")
    store.close()
    again = CorrectionStore(path)
    assert [c.answer for c in again.active()] == ["a"] and again.revision == 1
    again.close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={FORMAT_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreError):
        CorrectionStore(path)


# -- the memory and its gate (real embedder) ---------------------------------------------
def _fix(id_: int, question: str, answer: str) -> Correction:
    return Correction(id_, question, answer, float(id_))


def test_entities_and_masking() -> None:
    assert entity_tokens("Where was Danielle Darrieux born in 1917?") == [
        "danielle",
        "darrieux",
        "1917",
    ]
    assert mask_entities("Who employed Gaston Tessier?") == "Who employed someone?"
    assert entity_overlap("Where was Marie Curie born?", "Where was Pierre Curie born?") == 0.5


def test_memory_gate_takes_paraphrases_and_refuses_near_misses(embedder: Embedder) -> None:
    memory = CorrectionMemory(embedder)
    memory.add(
        [
            _fix(1, "What is the mother tongue of Danielle Darrieux?", "English"),
            _fix(2, "Where was Marie Curie born?", "Lisbon"),
        ]
    )
    hit = memory.lookup("What was Danielle Darrieux's native language?")
    assert hit is not None and hit.correction.id == 1
    assert memory.lookup("What is the mother tongue of Danielle Darrieux?") is not None
    assert memory.lookup("Where was Danielle Darrieux born?") is None  # other relation
    assert memory.lookup("What is the mother tongue of Léon Blum?") is None  # other subject
    assert memory.lookup("Where was Pierre Curie born?") is None  # a name differs
    assert memory.lookup("How do I reset my router?") is None
    memory.remove([1])
    assert memory.lookup("What is the mother tongue of Danielle Darrieux?") is None
    assert memory.ids() == [2]


def test_question_words_that_ask_for_different_kinds_never_match() -> None:
    assert answer_kind("Who founded Acme Robotics?") == "person"
    assert answer_kind("Where was Acme Robotics founded?") == "place"
    assert answer_kind("How many moons does Mars have?") == "amount"
    assert answer_kind("In which city was Acme Robotics founded?") is None
    assert not kinds_agree("Who founded Acme Robotics?", "Where was Acme Robotics founded?")
    assert kinds_agree("Where was Ada Lovelace born?", "What is the birthplace of Ada Lovelace?")


def test_two_relations_of_one_subject_are_both_held(embedder: Embedder) -> None:
    memory = CorrectionMemory(embedder)
    facts = [
        ("Where was Nikola Tesla born?", "Porto"),
        ("Where did Nikola Tesla die?", "Prague"),
        ("What is the occupation of Ella Fitzgerald?", "librarian"),
        ("Who is the employer of Ella Fitzgerald?", "Lego"),
        ("Where was Granite Labs founded?", "Leipzig"),
        ("Who founded Granite Labs?", "Omar Haddad"),
    ]
    for i, (question, answer) in enumerate(facts, start=1):
        assert memory.same_fact(question) == []  # another relation: nothing replaced
        memory.add([_fix(i, question, answer)])
    for i, (question, _answer) in enumerate(facts, start=1):
        hit = memory.lookup(question)
        assert hit is not None and hit.correction.id == i
    assert memory.lookup("Who founded Acme Robotics?") is None  # another subject


def test_a_recorrection_of_the_same_fact_replaces_the_older(embedder: Embedder) -> None:
    memory = CorrectionMemory(embedder)
    memory.add(
        [
            _fix(1, "Where was Nikola Tesla born?", "Porto"),
            _fix(2, "Where did Nikola Tesla die?", "Prague"),
        ]
    )
    assert [m.correction.id for m in memory.same_fact("where was Nikola Tesla born")] == [1]
    assert memory.same_fact("Where was Marie Curie born?") == []


def test_cached_vectors_rebuild_the_same_memory(embedder: Embedder, tmp_path: Path) -> None:
    store = CorrectionStore(tmp_path / "c.sqlite3")
    fix = store.add("Where was Marie Curie born?", "Lisbon")
    first = CorrectionMemory(embedder)
    rows = first.add([fix])
    store.save_vectors(embedder.model_id, [(fix.id, rows[0].tobytes())])
    assert store.load_vectors("another model") == {}
    cached = np.frombuffer(store.load_vectors(embedder.model_id)[fix.id], dtype=np.float32)
    second = CorrectionMemory(embedder)
    second.add([fix], vectors=cached[None, :])
    a, b = (
        first.lookup("What is Marie Curie's birthplace?"),
        second.lookup("What is Marie Curie's birthplace?"),
    )
    assert a is not None and b is not None and a.probability == pytest.approx(b.probability)
    with pytest.raises(ValueError):
        second.add([fix], vectors=cached[None, :10])
    store.close()


# -- the whole loop through the engine (real embedder, generator, SQLite, USearch) --------
NOTES = {
    "pets.md": "# Pets\n\nOur cat Miso is a Maine Coon. Miso sleeps on the blue sofa.\n",
    "office.md": "# Office\n\nThe Lisbon office opens at nine in the morning on weekdays.\n",
    "garden.md": "# Garden\n\nThe tomatoes in the garden were planted in April by Rosa.\n",
}


@pytest.fixture(scope="module")
def engine(
    tmp_path_factory: pytest.TempPathFactory, embedder: Embedder, generator: Generator
) -> Iterator[Engine]:
    notes = tmp_path_factory.mktemp("notes")
    for name, text in NOTES.items():
        (notes / name).write_text(text, encoding="utf-8")
    config = EngineConfig(max_new_tokens=8, adapter_auto_after=0, adapter_idle_seconds=0)
    with Engine(
        tmp_path_factory.mktemp("data"), config, embedder=embedder, generator=generator
    ) as eng:
        eng.add_folder(notes)
        assert eng.wait_until_idle(120)
        yield eng


def test_correct_then_ask_again_rephrase_override_and_forget(engine: Engine) -> None:
    question = "What breed of cat is Miso?"
    before = engine.ask(question)
    unrelated = engine.ask("When does the Lisbon office open?")
    assert before.correction is None

    fix = engine.record_correction(question, "a Norwegian Forest cat", answer_id=before.answer_id)
    streamed: list[str] = []
    after = engine.ask(question, on_token=streamed.append)
    assert after.text == "a Norwegian Forest cat" == "".join(streamed)
    assert after.correction is not None and after.correction.id == fix.id
    assert after.correction.created_at == fix.created_at  # cited with its date
    assert any(hit.path.name == "pets.md" for hit in after.sources)  # passages still shown

    rephrased = engine.ask("Which breed is Miso the cat?")
    assert rephrased.correction is not None and rephrased.correction.id == fix.id
    assert engine.ask("When does the Lisbon office open?").text == unrelated.text

    other = engine.record_correction("Where does Miso sleep?", "on the red chair")
    newer = engine.record_correction(question, "a Siamese")
    assert "Siamese" in engine.ask(question).text
    listed = {c.id: c for c in engine.corrections()}
    assert listed[fix.id].superseded_by == newer.id
    assert listed[other.id].in_effect  # another question about Miso is kept
    assert engine.ask("Where does Miso sleep?").text == "on the red chair"
    engine.forget_correction(other.id)

    # Correcting an answer that came from a correction replaces it, even when the
    # question is worded too differently for the same-fact rule.
    wording = "Miso is what kind of cat?"
    assert not engine.learning.memory().same_fact(wording)  # the rule alone would keep both
    shown = engine.ask(wording)
    assert shown.correction is not None and shown.correction.id == newer.id
    reworded = engine.record_correction(wording, "a Bengal", answer_id=shown.answer_id)
    assert {c.id: c for c in engine.corrections()}[newer.id].superseded_by == reworded.id
    assert engine.ask(question).text == "a Bengal"
    engine.forget_correction(reworded.id)
    assert engine.ask(question).text == "a Siamese"  # undo brings the replaced one back

    engine.forget_correction(newer.id)
    assert engine.ask(question).text == "a Norwegian Forest cat"  # the older one is back
    gone = engine.forget_correction(fix.id)
    assert gone.forgotten
    restored = engine.ask(question)
    assert restored.correction is None and restored.text == before.text


def test_memory_can_be_turned_off(tmp_path: Path, embedder: Embedder, generator: Generator) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    for name, text in NOTES.items():
        (notes / name).write_text(text, encoding="utf-8")
    data = tmp_path / "data"
    on = EngineConfig(max_new_tokens=8, adapter_auto_after=0, adapter_idle_seconds=0)
    with Engine(data, on, embedder=embedder, generator=generator) as engine:
        engine.add_folder(notes)
        assert engine.wait_until_idle(120)
        fix = engine.record_correction("Who planted the tomatoes?", "Tomas")
        assert "Tomas" in engine.ask("Who planted the tomatoes?").text
    # One engine per data dir: the same library reopened with the memory off.
    off = dataclasses.replace(on, use_correction_memory=False)
    with Engine(data, off, embedder=embedder, generator=generator) as engine:
        answer = engine.ask("Who planted the tomatoes?")
        assert answer.correction is None and "Tomas" not in answer.text
        assert [c.id for c in engine.corrections()][-1] == fix.id  # durable, shared


CHILD = textwrap.dedent(
    """
    import sys, time
    from engine import Engine
    eng = Engine(sys.argv[1])
    fix = eng.record_correction("What is the wifi password?", "heron-42")
    print(fix.id, flush=True)
    time.sleep(60)
    """
)


def test_kill_right_after_record_correction_loses_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(data)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()  # record_correction has returned
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait()
    store = CorrectionStore(data / "corrections.sqlite3")
    saved = store.get(int(line))
    store.close()
    assert saved is not None and saved.answer == "heron-42" and not saved.forgotten
