"""The local models every room shares, each loaded once, on first use.

The embedder serves the library (passages and the queries that search them); the
bundled MiniLM serves what compares questions with questions, or sentences with
sentences (the correction memory's gate, the ratings' similarity floor, the
summary's redundancy cut-off): their thresholds were fitted on MiniLM's cosines,
which another model (E5's bunch near 0.8) would not match. When the library uses
MiniLM too, the two are one object. The generator serves the reader room's
generator pipelines and learning's adapter. The span reader is the reader
room's own (:class:`engine.reader.answering.Answering`).
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable
from pathlib import Path

from engine.config import EngineConfig, default_cache_dir
from engine.embedding import Embedder, bundled_embedding_model_path
from engine.generation import Generator
from engine.multilingual import MULTILINGUAL_MODEL, multilingual_model_path


def embedding_model_path(name: str | None) -> Path:
    """The folder ``EngineConfig.embedding_model`` names: None for the bundled MiniLM,
    "multilingual-e5-small" (made on first use, see :mod:`engine.multilingual`), or
    a local sentence-transformers folder.

    Raises:
        ModelNotAvailableError: the model's package is not installed.
    """
    if not name:
        return bundled_embedding_model_path()
    if name == MULTILINGUAL_MODEL:
        return multilingual_model_path(default_cache_dir())
    return Path(name).expanduser()


class Models:
    """Lazily loaded, shared embedder and generator.

    Args:
        config: Which models, on which device, with how many threads.
        embedder: An already loaded embedder to share (tests, benchmarks).
        generator: An already loaded generator to share.
    """

    def __init__(
        self,
        config: EngineConfig,
        *,
        embedder: Embedder | None = None,
        generator: Generator | None = None,
    ) -> None:
        self.config = config
        self._embedder = embedder
        self._embedder_lock = threading.Lock()
        self._minilm: Embedder | None = None
        self._generator = generator
        self._generator_lock = threading.Lock()

    @property
    def embedder(self) -> Embedder:
        """The embedding model, loaded on first use (a few seconds on CPU)."""
        with self._embedder_lock:
            if self._embedder is None:
                cfg = self.config
                self._embedder = Embedder(
                    embedding_model_path(cfg.embedding_model),
                    device=cfg.device,
                    threads=cfg.torch_threads,
                    precision=cfg.encoder_precision,
                )
            return self._embedder

    @property
    def minilm(self) -> Embedder:
        """The bundled all-MiniLM-L6-v2, for question-to-question similarity.

        The library's embedder when that is MiniLM (the default), else loaded
        beside it on first use (90 MB).
        """
        library = self.embedder
        with self._embedder_lock:
            if library.path.resolve() == bundled_embedding_model_path().resolve():
                return library
            if self._minilm is None:
                cfg = self.config
                self._minilm = Embedder(
                    device=cfg.device,
                    threads=cfg.torch_threads,
                    precision=cfg.encoder_precision,
                )
            return self._minilm

    @property
    def generator(self) -> Generator:
        """The answer model, loaded on first use (dequantized once, then cached)."""
        with self._generator_lock:
            if self._generator is None:
                cfg = self.config
                self._generator = Generator(
                    cfg.generator_model,
                    cache_root=default_cache_dir(),
                    device=cfg.device,
                    dtype=cfg.generator_dtype,
                    threads=cfg.torch_threads,
                )
            return self._generator


def load_quietly(load: Callable[[], object]) -> float:
    """Run ``load`` with the cyclic garbage collector held off, then freeze the heap.

    Loading torch, transformers and two models allocates ~0.5 M long-lived objects,
    and each full (generation 2) collection walks all of them with the GIL held:
    the window froze for 85-250 ms at a time while the models loaded, and about
    once a minute afterwards (measured with ``gc.callbacks`` beside the bench's GUI
    timer; the gaps matched the collections to the millisecond). ``gc.freeze``
    moves what is loaded out of the collector's sight for good, so later full
    collections only walk objects made since.

    Returns:
        Seconds it took.
    """
    started = time.perf_counter()
    gc.disable()
    try:
        load()
    finally:
        gc.freeze()
        gc.enable()
    return time.perf_counter() - started
