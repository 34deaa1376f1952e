"""Engine settings: one frozen dataclass, saved as TOML in the user's config dir."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import platformdirs
import tomllib

APP_NAME = "Kenning"
# Version of the settings file's layout (its top-level ``format_version`` key).
# 2: dense_weight may be left out, meaning the weight fitted for the embedder.
CONFIG_FORMAT = 2

log = logging.getLogger(__name__)


def default_data_dir() -> Path:
    """The platform's per-user data dir (``~/.local/share/Kenning`` on Linux)."""
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def default_cache_dir() -> Path:
    """Where models made from the shipped files are cached, per user, shared by every
    library (``~/.cache/Kenning/models`` on Linux; ``KENNING_CACHE_DIR`` overrides).

    The bundled GGUF generator is dequantized once (10-40 s): keyed by the model
    file's hash, a second data dir does not pay again.
    """
    override = os.environ.get("KENNING_CACHE_DIR")
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)) / "models"


def default_config_path() -> Path:
    """Where :func:`save_config` writes and :func:`load_config` reads settings."""
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)) / "config.toml"


@dataclass(frozen=True)
class EngineConfig:
    """What the engine can be tuned with. Every field has a default that works offline."""

    # Local sentence-transformers folder; None means the bundled all-MiniLM-L6-v2.
    embedding_model: str | None = None
    # "auto" picks CUDA, then MPS, then CPU.
    device: str = "auto"
    # "int8": on a CPU the encoder runs quantized in ONNX Runtime (made once from the
    # local weights): queries embed 5x and passages 1.2-1.3x faster at the same
    # retrieval quality (docs/benchmarks.md); "float32" is the model as shipped.
    # Switching re-embeds the stored passages in the background.
    encoder_precision: str = "int8"
    # Word pieces per chunk, excluding [CLS]/[SEP]. MiniLM truncates at 256 with them,
    # so the chunker never exceeds max_chunk_tokens + overlap_tokens <= 254.
    max_chunk_tokens: int = 200
    # Chunks of at least this many tokens may end at a content-chosen paragraph break;
    # below it paragraphs are merged so tiny chunks do not flood the index.
    min_chunk_tokens: int = 48
    # Tail of the previous chunk repeated at the start of the next one, so a sentence
    # cut at a boundary is still found whole.
    overlap_tokens: int = 32
    # Files above this size are skipped with a reason instead of stalling the indexer.
    max_file_bytes: int = 64 * 1024 * 1024
    # Text indexed per file, in characters; the rest is left out and the file listed
    # with a note. Prose of this length fills about max_file_chunks passages: one huge
    # log or minified file must not hold the folder's only writer for minutes.
    max_text_chars: int = 2_000_000
    # Passages embedded per file: text that tokenizes densely (minified JSON: ~2
    # characters per token) reaches it before max_text_chars.
    max_file_chunks: int = 2000
    # Word pieces embedded per file. Embedding time is linear in them (about 3,000 a
    # second on 2 CPU cores for full passages), so this bounds one file's time at
    # ~45 s: about a 250-page book. Dense text (JSON, CSV rows) reaches it first.
    max_file_tokens: int = 128_000
    # Texts per forward pass of the embedding model. Texts are length-sorted first, so
    # small batches waste little padding, and a search waits for at most one batch.
    embed_batch_size: int = 16
    # "convex": weighted sum of min-max normalised dense and BM25 scores (measured best);
    # "rrf": reciprocal rank fusion.
    fusion: str = "convex"
    # Weight of the dense score in convex fusion; BM25 gets the rest. None: the weight
    # fitted for the embedding model in use (retrieval.DENSE_WEIGHTS).
    dense_weight: float | None = None
    # Reciprocal rank fusion constant (Cormack et al. 2009 use 60).
    rrf_k: int = 60
    # Candidates fetched from each retriever before fusion.
    candidates: int = 50
    # Where passages live: "local" (USearch vectors beside the SQLite store) or
    # "milvus" (one Milvus collection a team shares; engine.library.milvus_passages).
    backend: str = "local"
    # The Milvus library: a server or cluster URL ("http://host:19530"), or a local
    # file path for Milvus Lite (embedded, one process). Credentials go in
    # milvus_token ("user:password" or an API key); neither is ever logged.
    milvus_uri: str | None = None
    milvus_token: str | None = field(default=None, repr=False)
    # The library's name on that server: people sharing one library use one name;
    # one server holds several libraries under different names.
    milvus_library: str = "kenning"
    # Seconds between background saves of the vector index while writing.
    index_save_interval: float = 5.0
    # Extra ignore patterns (gitignore syntax) applied to every watched folder.
    ignore_patterns: tuple[str, ...] = field(default_factory=tuple)
    # Quiet period after the last file event before a change set is processed.
    debounce_seconds: float = 0.15
    # CPU threads for torch; 0 leaves torch's default.
    torch_threads: int = 0
    # Answer model: a local HF model folder or .gguf file; None is the bundled SmolLM2-135M.
    generator_model: str | None = None
    # "auto" is float32 on CPU, float16 on GPUs; or "float32", "bfloat16", "float16".
    generator_dtype: str = "auto"
    # "reader" reads the answer span with the trained span reader (resources/reader;
    # docs/benchmarks.md has its figures on third-party questions); "extractive" picks
    # a span by the generator's PMI (the earlier pipeline); "generative" lets the
    # generator write freely (the naive baseline).
    answer_strategy: str = "reader"
    # The span reader: a folder with reader.json and its adapter; None is the bundled one.
    reader_model: str | None = None
    # Answer when the calibrated probability that the best-rated passage's span answers
    # the question reaches this; None uses the operating point in reader.json.
    reader_threshold: float | None = None
    # The reader learns from corrections whose answer a retrieved passage holds (a
    # round of seconds on the writer after each; engine.learning.reader_learning).
    reader_learning: bool = True
    # Rescore the reader's four best spans with the generator's PMI at this weight
    # (0: off, the reader alone). bench_reader measures what it adds, and its cost.
    reader_rescore_weight: float = 0.0
    # Passages retrieved for an answer.
    answer_passages: int = 3
    # Sentences of those passages whose spans are scored in extractive mode.
    answer_sentences: int = 2
    # Prompt tokens spent on sources in generative mode (SmolLM2 prefill is ~1 s per
    # 500 tokens on two CPU cores).
    answer_context_tokens: int = 512
    # Most tokens of a generated answer.
    max_new_tokens: int = 48
    # Abstain when no retrieved passage reaches this cosine with the question (a floor
    # for off-topic questions), or when more than abstain_uncovered of the question's
    # content words appear in none of them (on-topic questions the text does not
    # answer). Both calibrated on the QA fixture's calibration articles (bench_answers).
    abstain_similarity: float = 0.3
    abstain_uncovered: float = 0.2
    # Layer 1 of learning from corrections: answer a question (or a paraphrase) from a
    # stored correction at once. Off to measure the adapted generator alone.
    use_correction_memory: bool = True
    # ... and only when the reader reads the new question like the corrected one over the
    # best passage (SpanReader.agreement at least this; 0: off). The gate alone lets 10.0%
    # of other questions about a corrected SQuAD paragraph through, this check 2.6% (test
    # split), keeping all 67 held-out fixture paraphrases the gate takes; the floor is the
    # highest keeping 95% of calibration's rightful passes (bench.probe_memory_gate).
    memory_min_agreement: float = 0.35
    # Layer 3: a rating's boost at full strength, in units of the search's best score.
    feedback_weight: float = 0.5
    # A rating moves passages only for queries at least this similar (cosine) to the
    # rated question; the boost falls linearly to zero here (see engine.learning.feedback).
    feedback_min_similarity: float = 0.7
    # Layer 2: the generator itself learns the corrections (LoRA adapters, see
    # engine.learning.adapter). A round starts by itself once this many corrections
    # are pending (0: only on Engine.consolidate) ...
    adapter_auto_after: int = 5
    # ... or when any is pending and no question came for this many seconds (0: never):
    # a round costs minutes of both CPU cores, so it waits for the person to step away.
    adapter_idle_seconds: float = 600.0
    # LoRA rank, AdamW learning rate and passes per round over the new corrections.
    # Measured (bench_adapter): 1e-3 x 6 epochs left the loss at 0.28 and recalled only
    # 38-54% of corrections; 3e-3 x 12 epochs reached 0.07 and recalled all of them.
    adapter_rank: int = 8
    adapter_learning_rate: float = 3e-3
    adapter_epochs: int = 12
    # Replayed examples (older corrections, the base model's own answers) per new one.
    adapter_replay_ratio: float = 1.0
    # Seed of LoRA initialisation and example order, so a round can be repeated.
    adapter_seed: int = 0
    # Let an adapted generator answer from memory when its gate passes (False: never).
    use_generator_recall: bool = True
    # The recall gate (engine.learning.recall): the adapted model's mean log p of its
    # closed-book answer must exceed the base model's by the margin and reach the
    # floor. Calibrated on the edits fixture's calibration split (bench_adapter,
    # 2026-12-01). Behind the correction memory (the default), recall only sees what
    # the memory did not answer, and near misses count against all layers together:
    # at most 2% of those near misses and document questions may pass, which leaves
    # the adapter answering alone only when it is all but certain.
    recall_min_margin: float = 11.4
    recall_min_logp: float = -0.02
    # With use_correction_memory=False the adapter answers alone: at most 5% of
    # document questions may pass (near misses then pass 0.27 of the time; measured).
    recall_alone_min_margin: float = 2.0
    recall_alone_min_logp: float = -0.19

    def __post_init__(self) -> None:
        if self.max_chunk_tokens + self.overlap_tokens > 254:
            raise ValueError("max_chunk_tokens + overlap_tokens must stay within 254 word pieces")
        if not 0 < self.min_chunk_tokens <= self.max_chunk_tokens:
            raise ValueError("min_chunk_tokens must be in (0, max_chunk_tokens]")
        if self.fusion not in ("convex", "rrf"):
            raise ValueError("fusion must be 'convex' or 'rrf'")
        if self.encoder_precision not in ("float32", "int8"):
            raise ValueError("encoder_precision must be 'float32' or 'int8'")
        if self.backend not in ("local", "milvus"):
            raise ValueError("backend must be 'local' or 'milvus'")
        if self.backend == "milvus" and not (self.milvus_uri or "").strip():
            raise ValueError("backend 'milvus' needs milvus_uri (a server URL or a file path)")
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,200}", self.milvus_library):
            raise ValueError("milvus_library must be a letter then letters, digits or _")
        if self.dense_weight is not None and not 0.0 <= self.dense_weight <= 1.0:
            raise ValueError("dense_weight must be within [0, 1]")
        if self.embed_batch_size < 1 or self.candidates < 1 or self.rrf_k < 1:
            raise ValueError("embed_batch_size, candidates and rrf_k must be positive")
        if self.answer_strategy not in ("reader", "extractive", "generative"):
            raise ValueError("answer_strategy must be 'reader', 'extractive' or 'generative'")
        if self.answer_passages < 1 or self.answer_sentences < 1 or self.max_new_tokens < 1:
            raise ValueError("answer_passages, answer_sentences, max_new_tokens must be positive")
        if not 0.0 <= self.abstain_uncovered <= 1.0:
            raise ValueError("abstain_uncovered must be within [0, 1]")


def load_config(path: Path | None = None) -> EngineConfig:
    """Read settings from TOML, ignoring unknown keys so old files keep working."""
    path = path or default_config_path()
    if not path.exists():
        return EngineConfig()
    with path.open("rb") as fh:
        document = tomllib.load(fh)
    raw: dict[str, Any] = document.get("engine", {})
    version = int(document.get("format_version", CONFIG_FORMAT))
    if version > CONFIG_FORMAT:
        # Settings are read key by key, so a newer file still gives every key this
        # build knows; a settings file must never keep Kenning from starting.
        log.warning(
            "%s is from a newer Kenning (format %d): reading the keys known here", path, version
        )
    known = {f.name for f in fields(EngineConfig)}
    values = {k: v for k, v in raw.items() if k in known}
    if version < 2 and values.get("dense_weight") == 0.5:
        # Format 1 wrote every field, so its 0.5 was the one default of that time, not
        # a choice: dropped, it becomes the weight fitted for the embedder in use.
        del values["dense_weight"]
    if "ignore_patterns" in values:
        values["ignore_patterns"] = tuple(values["ignore_patterns"])
    return EngineConfig(**values)


def save_config(config: EngineConfig, path: Path | None = None) -> None:
    """Write settings atomically (temp file + rename), so a crash never leaves half a file."""
    path = path or default_config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# Kenning settings", f"format_version = {CONFIG_FORMAT}", "", "[engine]"]
    for key, value in asdict(config).items():
        if value is None:
            continue
        lines.append(f"{key} = {_toml_value(value)}")
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if config.milvus_token:  # credentials: readable by this user only
        os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")
