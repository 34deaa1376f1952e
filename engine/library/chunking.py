"""Split a parsed document into chunks the embedder can read whole.

Chunks are measured in the embedder's own word pieces, so none is silently
truncated, and keep exact character offsets into the document text.

Boundaries are content-defined so that editing one paragraph moves at most the
chunks around it: paragraphs of at least ``min_tokens`` always end a chunk, and
runs of short paragraphs end a chunk where a paragraph's hash says so (as
content-defined chunking does for bytes). A greedy "fill to N tokens" packer
would instead shift every later boundary after an edit and force re-embedding
the rest of the file.

Example (``tokenizer`` is the embedder's)::

    doc = ParsedDocument(text="# Title\n\nFirst paragraph.\n\nSecond one.", kind="markdown",
                         headings=(Heading(0, 1, "Title"),))
    [c.text for c in split_document(doc, tokenizer, min_tokens=4)]
    # -> ['# Title\n\nFirst paragraph.\n\nSecond one.']: too short to split
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.library.parsing import ParsedDocument

_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?。！？])[\"')\]]*\s+|\n")


@dataclass(frozen=True)
class Chunk:
    """A passage of a document, ready to embed."""

    start: int  # offset of the first character in the document text
    end: int  # offset one past the last character
    text: str  # document.text[start:end]
    embed_text: str  # what the embedder reads: heading path + text, within its token limit
    tokens: int  # word pieces of embed_text, without special tokens
    page: int | None
    heading_path: tuple[str, ...]
    content_hash: str  # of embed_text: equal hashes can reuse the stored vector


@dataclass(frozen=True)
class _Unit:
    start: int
    end: int
    tokens: int
    opens_section: bool  # a heading or page starts here: never merge it into the previous chunk
    cut: bool  # the unit ends inside a paragraph, so the next chunk repeats its tail
    heading_only: bool = False  # nothing but a heading line: never a chunk of its own


_RAW: dict[int, tuple[Any, Any]] = {}


def _raw_tokenizer(tokenizer: Any) -> Any:
    """The Rust tokenizer under a fast Hugging Face one, without truncation or padding.

    The wrapper's call re-configures truncation and builds a ``BatchEncoding`` each
    time: in a folder of small notes that was 40% of indexing beyond embedding.
    Same word pieces and offsets. None for a tokenizer without a Rust backend.
    """
    held = _RAW.get(id(tokenizer))
    if held is not None and held[0] is tokenizer:
        return held[1]
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    from tokenizers import Tokenizer

    raw = Tokenizer.from_str(backend.to_str())
    raw.no_truncation()
    raw.no_padding()
    _RAW[id(tokenizer)] = (tokenizer, raw)  # holding it keeps its id from being reused
    return raw


class _TokenCounter:
    """Counts word pieces of any span after tokenizing the whole text once."""

    # Text is tokenized in pieces of about this many characters, cut at whitespace:
    # one call on a multi-megabyte line held every offset pair of it as Python
    # tuples at once (gigabytes for a minified file).
    PIECE = 64_000

    def __init__(self, text: str, tokenizer: Any) -> None:
        self.starts: list[int] = []
        raw = _raw_tokenizer(tokenizer)
        lo = 0
        while lo < len(text):
            hi = min(len(text), lo + self.PIECE)
            if hi < len(text):
                cut = max(text.rfind(" ", lo, hi), text.rfind("\n", lo, hi))
                hi = cut + 1 if cut > lo else hi  # no whitespace: cut anyway
            offsets: Sequence[tuple[int, int]]
            if raw is not None:
                offsets = raw.encode(text[lo:hi], add_special_tokens=False).offsets
            else:
                offsets = tokenizer(
                    text[lo:hi],
                    add_special_tokens=False,
                    return_offsets_mapping=True,
                    return_attention_mask=False,
                    return_token_type_ids=False,
                    verbose=False,
                )["offset_mapping"]
            self.starts.extend(lo + s for s, _ in offsets)
            lo = hi

    def count(self, start: int, end: int) -> int:
        return bisect.bisect_left(self.starts, end) - bisect.bisect_left(self.starts, start)

    def offset_after(self, start: int, n_tokens: int) -> int:
        """Offset of the token ``n_tokens`` after the first token at or after ``start``."""
        i = bisect.bisect_left(self.starts, start) + n_tokens
        return self.starts[i] if i < len(self.starts) else -1


def split_document(
    doc: ParsedDocument,
    tokenizer: Any,
    *,
    max_tokens: int = 200,
    min_tokens: int = 48,
    overlap_tokens: int = 32,
    token_limit: int = 254,
) -> list[Chunk]:
    """Chunk ``doc`` at paragraph and heading boundaries.

    Args:
        doc: The parsed document.
        tokenizer: The embedder's Hugging Face tokenizer (fast, with offsets).
        max_tokens: Most word pieces of document text per chunk, before overlap.
        min_tokens: Chunks shorter than this are merged with the next paragraph.
        overlap_tokens: Tail repeated from a chunk that ended inside a paragraph.
        token_limit: Hard cap on the embedded text (model limit minus special tokens).

    Returns:
        Chunks in document order; empty for a document with no visible text.
    """
    text = doc.text
    if not text.strip():
        return []
    counter = _TokenCounter(text, tokenizer)
    units = _units(doc, counter, max_tokens)
    spans = _pack(units, text, max_tokens=max_tokens, min_tokens=min_tokens)
    chunks: list[Chunk] = []
    for start, end, previous_cut in spans:
        if previous_cut and chunks:
            start = _overlap_start(text, counter, chunks[-1].start, start, overlap_tokens)
        chunks.append(_make_chunk(doc, tokenizer, counter, start, end, token_limit))
    return chunks


def _units(doc: ParsedDocument, counter: _TokenCounter, max_tokens: int) -> list[_Unit]:
    """Paragraphs (split further where one exceeds ``max_tokens``)."""
    text = doc.text
    # Headings and page starts open a new chunk, so a citation names one section and one page.
    titles = {h.start: h.title for h in doc.headings}
    heading_starts = set(titles) | set(doc.page_starts)
    breaks = (m.end() for m in _PARAGRAPH_BREAK.finditer(text))
    cuts = sorted({0, len(text), *heading_starts, *breaks})
    units: list[_Unit] = []
    for a, b in itertools.pairwise(cuts):
        start, end = _strip(text, a, b)
        if start >= end:
            continue
        opens = a in heading_starts
        tokens = counter.count(start, end)
        if tokens <= max_tokens:
            only = start in titles and _bare(text[start:end]) == _bare(titles[start])
            units.append(_Unit(start, end, tokens, opens, cut=False, heading_only=only))
            continue
        pieces = list(_split_long(text, counter, start, end, max_tokens))
        for i, (s, e) in enumerate(pieces):
            last = i == len(pieces) - 1
            units.append(_Unit(s, e, counter.count(s, e), opens and i == 0, cut=not last))
    return units


def _split_long(
    text: str, counter: _TokenCounter, start: int, end: int, max_tokens: int
) -> list[tuple[int, int]]:
    """Split an oversized paragraph at sentence ends, else at token boundaries."""
    bounds = [start] + [m.end() for m in _SENTENCE_END.finditer(text, start, end)] + [end]
    pieces: list[tuple[int, int]] = []
    piece_start = start
    for a, b in itertools.pairwise(bounds):
        if counter.count(piece_start, b) <= max_tokens:
            continue
        if a > piece_start:
            pieces.append((piece_start, a))
            piece_start = a
        while counter.count(piece_start, b) > max_tokens:  # one sentence too long
            cut = counter.offset_after(piece_start, max_tokens)
            if cut <= piece_start:
                break
            pieces.append((piece_start, cut))
            piece_start = cut
    pieces.append((piece_start, end))
    return [s for s in (_strip(text, a, b) for a, b in pieces) if s[0] < s[1]]


def _pack(
    units: list[_Unit], text: str, *, max_tokens: int, min_tokens: int
) -> list[tuple[int, int, bool]]:
    """Group units into (start, end, follows_a_cut) spans with content-defined ends."""
    spans: list[tuple[int, int, bool]] = []
    current: list[_Unit] = []
    tokens = 0
    follows_cut = False

    def flush() -> None:
        nonlocal current, tokens, follows_cut
        if current:
            spans.append((current[0].start, current[-1].end, follows_cut))
            follows_cut = current[-1].cut
        current, tokens = [], 0

    for unit in units:
        # A heading directly followed by a subheading stays with the text below them.
        only_headings = all(u.heading_only for u in current)
        opens = unit.opens_section and not only_headings
        if current and (opens or tokens + unit.tokens > max_tokens):
            flush()
        current.append(unit)
        tokens += unit.tokens
        if unit.cut or (
            tokens >= min_tokens and (unit.tokens >= min_tokens or _is_anchor(text, unit))
        ):
            flush()
    flush()
    return spans


def _is_anchor(text: str, unit: _Unit) -> bool:
    """Half of all short paragraphs may end a chunk, chosen by content, not by position."""
    return hashlib.blake2b(text[unit.start : unit.end].encode(), digest_size=2).digest()[0] % 2 == 0


def _overlap_start(
    text: str, counter: _TokenCounter, prev_start: int, start: int, overlap_tokens: int
) -> int:
    """Start of the repeated tail: the last sentence start within ``overlap_tokens``."""
    window_start = start
    i = bisect.bisect_left(counter.starts, start) - overlap_tokens
    if i >= 0:
        window_start = max(prev_start, counter.starts[i])
    sentence_starts = [m.end() for m in _SENTENCE_END.finditer(text, window_start, start)]
    if sentence_starts and sentence_starts[0] < start:
        return sentence_starts[0]
    return window_start


def _make_chunk(
    doc: ParsedDocument,
    tokenizer: Any,
    counter: _TokenCounter,
    start: int,
    end: int,
    token_limit: int,
) -> Chunk:
    body = doc.text[start:end]
    heading_path = doc.heading_path_at(start)
    body_tokens = counter.count(start, end)
    prefix = _heading_prefix(heading_path, body, tokenizer, token_limit - body_tokens)
    embed_text = prefix + body
    tokens = body_tokens + (_count(tokenizer, prefix) if prefix else 0)
    return Chunk(
        start=start,
        end=end,
        text=body,
        embed_text=embed_text,
        tokens=tokens,
        page=doc.page_at(start),
        heading_path=heading_path,
        content_hash=hashlib.blake2b(embed_text.encode(), digest_size=16).hexdigest(),
    )


def _heading_prefix(heading_path: tuple[str, ...], body: str, tokenizer: Any, budget: int) -> str:
    """Heading path to prepend for the embedder, dropped if the body already starts with it.

    Chunks far from their heading lose the subject ("It was founded in 1890"); the
    path gives it back. Outer headings are dropped first when the budget is tight.
    """
    path = [h for h in heading_path if h and h not in body[: len(h) + 8]]
    while path:
        prefix = " > ".join(path) + "\n"
        if _count(tokenizer, prefix) <= budget:
            return prefix
        path = path[1:]
    return ""


def _count(tokenizer: Any, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _bare(text: str) -> str:
    """Heading text without Markdown/reST adornment, for comparing with a title."""
    return " ".join(text.strip("#=-~^*+` \t\r\n").split()).lower()


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
