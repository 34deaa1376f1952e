"""The int8 encoder: the embedding model's transformer in ONNX Runtime, quantized.

Embedding is nearly all of indexing's cost, and on a CPU int8 matrix products
(VNNI, AVX2) are about twice float32's. Made here from the local model's own
weights, once, and cached per user: the transformer is exported to ONNX, its
attention, layer norms and GELUs fused by ONNX Runtime's transformer optimizer,
and its weights quantized to int8 per channel (activations dynamically, per
batch). Nothing is downloaded. Tokenizing and pooling stay the
sentence-transformers model's own, so prompts and pooling modes carry over.

The file is ONNX (protobuf): loading it runs no code, unlike a pickle.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import ModelNotAvailableError

log = logging.getLogger(__name__)

# Bump when the export or quantization changes: the cache key holds it, so an old
# file is made again (and vectors stored under the old id are re-embedded).
FORMAT = 1
FILE_NAME = "model.onnx"
_FUSED_TYPES = {"bert": "bert", "roberta": "bert", "xlm-roberta": "bert", "mpnet": "bert"}
_build_lock = threading.Lock()


def available() -> bool:
    """Whether ONNX Runtime and the ONNX tools to make the file are installed."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def cached_encoder(st_model: Any, model_id: str, cache_root: Path) -> Path:
    """The int8 ONNX file of ``st_model``'s transformer, made on first use.

    Args:
        st_model: The loaded sentence-transformers model (its first module is the
            transformer exported here).
        model_id: The float32 model's id (name and weight digest): the cache key.
        cache_root: The per-user model cache.

    Raises:
        ModelNotAvailableError: it cannot be made (ONNX tools missing, export failed).
    """
    folder = cache_root / "encoders" / f"{model_id.replace(':', '-')}-int8-v{FORMAT}"
    target = folder / FILE_NAME
    with _build_lock:
        if target.is_file():
            return target
        if not available():
            raise ModelNotAvailableError("the int8 encoder needs onnx and onnxruntime")
        log.warning("making the int8 encoder for %s (once, about 20 s)", model_id)
        folder.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".making-", dir=folder.parent))
        try:
            _make(st_model, work)
            os.replace(work, folder)  # whole or not at all, for every process
        except FileExistsError:  # another process finished first
            pass
        except OSError as exc:
            if not target.is_file():
                raise ModelNotAvailableError(f"cannot write the int8 encoder: {exc}") from exc
        except Exception as exc:  # the exporter's and quantizer's many failure kinds
            raise ModelNotAvailableError(f"cannot make the int8 encoder: {exc}") from exc
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return target


def _make(st_model: Any, work: Path) -> None:
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    transformer = st_model[0].auto_model.eval()
    names = _input_names(st_model)
    sample = st_model.preprocess(["a first sample", "and a second, longer sample text"])

    class Hidden(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: Any) -> Any:
            return self.model(**dict(zip(names, inputs, strict=True))).last_hidden_state

    exported = work / "float32.onnx"
    axes = {name: {0: "batch", 1: "tokens"} for name in (*names, "last_hidden_state")}
    # Eager attention traces to the plain graph the optimizer fuses into one op;
    # SDPA's masking traces to a tangle it leaves alone (and int8 was then slower).
    attention = transformer.config._attn_implementation
    transformer.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            torch.onnx.export(
                Hidden(transformer),
                tuple(sample[name] for name in names),
                str(exported),
                input_names=list(names),
                output_names=["last_hidden_state"],
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
    finally:
        transformer.set_attn_implementation(attention)
    fused = _fuse(exported, transformer.config)
    quantize_dynamic(
        str(fused),
        str(work / FILE_NAME),
        weight_type=QuantType.QInt8,
        per_channel=True,
        extra_options={"DefaultTensorType": 1},  # float: fused ops hide their types
    )
    for stale in work.glob("*.onnx"):
        if stale.name != FILE_NAME:
            stale.unlink()


def _fuse(exported: Path, config: Any) -> Path:
    """Fuse attention, layer norms and GELUs (1.15x in float32, and int8 keeps it)."""
    model_type = _FUSED_TYPES.get(getattr(config, "model_type", ""))
    if model_type is None:
        return exported
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(
        str(exported),
        model_type=model_type,
        num_heads=int(config.num_attention_heads),
        hidden_size=int(config.hidden_size),
    )
    fused = exported.with_name("fused.onnx")
    optimized.save_model_to_file(str(fused))
    return fused


def _input_names(st_model: Any) -> tuple[str, ...]:
    keys = st_model.preprocess(["x"]).keys()
    return tuple(k for k in ("input_ids", "attention_mask", "token_type_ids") if k in keys)


class OnnxTransformer:
    """Runs the int8 file: token embeddings for a tokenized batch.

    Args:
        path: The file :func:`cached_encoder` made.
        threads: Intra-op threads; 0 for one per core.
    """

    def __init__(self, path: Path, st_model: Any, *, threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or (os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # its warnings about unused initializers are noise
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # a damaged cache file: made again next time
            shutil.rmtree(path.parent, ignore_errors=True)
            raise ModelNotAvailableError(f"unreadable int8 encoder {path}: {exc}") from exc
        self.names = _input_names(st_model)

    def token_embeddings(self, features: dict[str, Any]) -> Any:
        """The transformer's last hidden states as a torch tensor, for the pooling."""
        import torch

        feed = {name: features[name].numpy().astype(np.int64) for name in self.names}
        hidden = self.session.run(["last_hidden_state"], feed)[0]
        return torch.from_numpy(hidden)
