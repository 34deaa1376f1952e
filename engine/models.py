"""The local models every room shares, each loaded once, on first use.

The embedder serves the library (passages) and learning (questions of the
correction memory and the feedback); the generator serves the reader room's
generator pipelines and learning's adapter. The span reader is the reader
room's own (:class:`engine.reader.answering.Answering`).
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable

from engine.config import EngineConfig, default_cache_dir
from engine.embedding import Embedder
from engine.generation import Generator


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
        self._generator = generator
        self._generator_lock = threading.Lock()

    @property
    def embedder(self) -> Embedder:
        """The embedding model, loaded on first use (a few seconds on CPU)."""
        with self._embedder_lock:
            if self._embedder is None:
                cfg = self.config
                self._embedder = Embedder(
                    cfg.embedding_model, device=cfg.device, threads=cfg.torch_threads
                )
            return self._embedder

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
