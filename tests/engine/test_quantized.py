"""The int8 encoder: made from the bundled weights, cached, near float32, never mixed.

Real parts: the bundled MiniLM exported and quantized by ONNX Runtime into a
private cache (about 15 s, once per session), a real engine and USearch index.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from engine import Engine, EngineConfig
from engine import quantized as quantized_module
from engine.embedding import Embedder, precision_of

pytestmark = pytest.mark.skipif(
    not quantized_module.available(), reason="onnx and onnxruntime are dependencies"
)

NOTES = {
    "tower.md": "The Eiffel Tower in Paris was finished in 1889 for the World's Fair.",
    "canberra.md": "Canberra, not Sydney, is the capital city of Australia.",
    "bees.md": "Honey bees communicate the direction of flowers with a waggle dance.",
    "bread.md": "Sourdough bread rises because wild yeast and lactic acid bacteria ferment it.",
    "violin.md": "Antonio Stradivari built his most famous violins in Cremona around 1700.",
}
QUESTIONS = {
    "When was the Eiffel Tower finished?": "tower.md",
    "What is the capital of Australia?": "canberra.md",
    "How do bees tell each other where flowers are?": "bees.md",
    "Why does sourdough rise?": "bread.md",
    "Where did Stradivari make his violins?": "violin.md",
}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("encoder-cache")


@pytest.fixture(scope="module")
def int8(cache: Path) -> Embedder:
    return Embedder(device="cpu", precision="int8", cache_root=cache)


def test_the_int8_encoder_is_made_once_and_stays_near_float32(
    int8: Embedder, embedder: Embedder, cache: Path
) -> None:
    assert int8.precision == "int8"
    assert int8.model_id == embedder.model_id + ":int8"
    assert precision_of(int8.model_id) == "int8"
    assert precision_of(embedder.model_id) == "float32"
    (made,) = cache.glob("encoders/*/model.onnx")
    stamp = made.stat().st_mtime_ns
    again = Embedder(device="cpu", precision="int8", cache_root=cache)
    assert made.stat().st_mtime_ns == stamp  # loaded from the cache, not made again
    texts = list(NOTES.values()) + list(QUESTIONS)
    a, b = embedder.embed(texts), again.embed(texts)
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    assert float((a * b).sum(axis=1).min()) > 0.97
    # Each question still finds its note, as with float32.
    names = list(NOTES)
    passages = again.embed(list(NOTES.values()), kind="passage")
    found = [names[int(np.argmax(passages @ again.embed_query(q)))] for q in QUESTIONS]
    assert found == list(QUESTIONS.values())


def test_a_damaged_cache_file_is_made_again(tmp_path: Path) -> None:
    first = Embedder(device="cpu", precision="int8", cache_root=tmp_path)
    (made,) = tmp_path.glob("encoders/*/model.onnx")
    made.write_bytes(b"\x00not an onnx file" * 100)
    second = Embedder(device="cpu", precision="int8", cache_root=tmp_path)
    assert second.precision == "int8"
    text = ["Canberra is the capital of Australia."]
    assert float(first.embed(text)[0] @ second.embed(text)[0]) > 0.999


def test_without_the_onnx_tools_it_says_so_and_embeds_in_float32(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(quantized_module, "available", lambda: False)
    with caplog.at_level(logging.WARNING):
        fallback = Embedder(device="cpu", precision="int8", cache_root=tmp_path)
    assert fallback.precision == "float32"
    assert not fallback.model_id.endswith(":int8")
    assert "onnx" in caplog.text and "float32" in caplog.text


def test_switching_precision_re_embeds_the_library_and_never_mixes_vectors(
    tmp_path: Path, int8: Embedder, embedder: Embedder
) -> None:
    folder, data = tmp_path / "notes", tmp_path / "data"
    folder.mkdir()
    for name, text in NOTES.items():
        (folder / name).write_text(text, encoding="utf-8")
    with Engine(data, EngineConfig(encoder_precision="float32"), embedder=embedder) as engine:
        engine.add_folder(folder)
        assert engine.wait_until_idle(120)
        assert engine.store.get_meta("embedding_model") == embedder.model_id
    with Engine(data, EngineConfig(), embedder=int8) as engine:
        assert engine.wait_until_idle(120)
        assert engine.store.get_meta("embedding_model") == int8.model_id
        assert engine.status().vectors == len(NOTES)
        for question, name in QUESTIONS.items():
            assert engine.search(question, 1, mode="dense")[0].path.name == name


def test_the_engine_embeds_in_int8_by_default(tmp_path: Path, cache: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("KENNING_CACHE_DIR", str(cache))
    assert EngineConfig().encoder_precision == "int8"
    with Engine(tmp_path / "data") as engine:
        assert engine.embedder.precision == "int8"
    with pytest.raises(ValueError, match="encoder_precision"):
        EngineConfig(encoder_precision="int4")


def test_onnx_runtime_loads_after_a_vector_index_was_made() -> None:
    """USearch loaded before ONNX Runtime crashed the process at ORT's import (a
    segmentation fault): the vector index loads ORT first."""
    import subprocess
    import sys

    code = (
        "from engine.library.vector_index import USearchIndex\n"
        "USearchIndex(4)\n"
        "import onnxruntime\n"
        "print('loaded', onnxruntime.get_device())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "loaded" in done.stdout
