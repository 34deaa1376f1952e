"""Shared fixtures: the real bundled embedding model, loaded once per test session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def embedder():  # type: ignore[no-untyped-def]
    """The bundled all-MiniLM-L6-v2, shared: loading it takes seconds."""
    from engine.embedding import Embedder

    return Embedder(device="cpu")


@pytest.fixture(scope="session")
def generator(tmp_path_factory):  # type: ignore[no-untyped-def]
    """The bundled SmolLM2 answer model, shared: dequantized once per session."""
    from engine.generation import Generator, bundled_generator_path

    return Generator(
        bundled_generator_path(),
        cache_root=tmp_path_factory.mktemp("models"),
        device="cpu",
        threads=2,
    )


@pytest.fixture(scope="session")
def milvus_server(tmp_path_factory):  # type: ignore[no-untyped-def]
    """One real Milvus (Lite) server for the session; each test gets its own library."""
    pytest.importorskip("pymilvus")
    from tests.engine.milvus_server import MilvusServer

    server = MilvusServer(tmp_path_factory.mktemp("milvus"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["local", "milvus"])
def backend(request):  # type: ignore[no-untyped-def]
    """EngineConfig fields for each place passages can live: the same tests run on both."""
    if request.param == "local":
        return {}
    import uuid

    server = request.getfixturevalue("milvus_server")
    return {
        "backend": "milvus",
        "milvus_uri": server.uri,
        "milvus_library": "t" + uuid.uuid4().hex[:12],
    }
