"""Text out of pictures of text: scanned PDF pages and image files, by OCR.

A scanned page has no text layer, so without OCR it is invisible to search. The
recogniser is RapidOCR (PaddleOCR's PP-OCRv4 detection and recognition models on
ONNX Runtime); ``rapidocr_onnxruntime``'s wheel carries the models, so nothing is
downloaded, ever. PDF pages are rendered with PDFium (``pypdfium2``).

OCR returns boxes of words with no order a person would read them in. This module
puts them back into lines (boxes on one baseline) and columns (a two-column page
is read down the left column, then the right; a title or footer across both stays
where it is), and separates paragraphs at vertical gaps, so chunking and quoting
work on the recognised text as on any page's text layer.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import io
import itertools
import re
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

# Rendering resolution for scanned PDF pages: PP-OCR's models read 10 pt text
# reliably from about 150 dpi up; more only costs time.
RENDER_DPI = 200
# OCR of one file in one pass at most, in seconds (a page takes 6-12 s on 2 cores):
# one scan must not hold the folder's only writer for minutes (a file gets about a
# minute in all, embedding included). With a page memory (the engine's, see
# :func:`remembering`) the next pass recalls the pages read and goes on from there,
# so a long scan is read a few pages a pass, in the background; without one (a
# parse outside the engine) the pages left are listed in the note.
OCR_SECONDS = 40.0
# Scanned pages read by OCR per file in all (a 1,000-page scan is ~2.5 h on 2 cores).
MAX_OCR_PAGES = 1000
# Pixels per image at most (a decompression bomb opens as a tiny file).
MAX_PIXELS = 60_000_000
# Boxes the recogniser is this unsure of are dropped (its scores are 0-1).
MIN_SCORE = 0.5

T = TypeVar("T")
_lock = threading.Lock()
_engine: Any = None


class PageMemory(Protocol):
    """Pages recognised in earlier passes, by document content (see ``ocr_pages``)."""

    def recall(self, document: str) -> dict[int, tuple[str, str | None]]:
        """Page number -> (text, why OCR failed on it or None)."""
        ...

    def remember(self, document: str, page: int, text: str, failure: str | None) -> None: ...


_memory: contextvars.ContextVar[PageMemory | None] = contextvars.ContextVar(
    "ocr_page_memory", default=None
)


@contextlib.contextmanager
def remembering(memory: PageMemory | None) -> Iterator[None]:
    """OCR within this block recalls and remembers pages in ``memory``.

    A context variable rather than a parameter: parsers call each other (an
    e-mail's attached scan), and only the indexer knows where the memory lives.
    """
    token = _memory.set(memory)
    try:
        yield
    finally:
        _memory.reset(token)


@dataclass
class PagesRead:
    """What OCR of a document's scanned pages gave, this pass and before."""

    texts: dict[int, str]  # page number -> recognised text (pages with text only)
    failed: list[str]  # "page N (why)"
    done: int  # pages read by OCR, in this pass or an earlier one
    total: int  # scanned pages in the document
    remembered: bool  # a page memory was there: the rest follow in a later pass

    @property
    def left(self) -> int:
        return self.total - self.done


def read_pages(data: bytes, pages: Sequence[int], image_of: Callable[[int], Any]) -> PagesRead:
    """OCR of ``pages`` of the document ``data``, one at a time, within :data:`OCR_SECONDS`.

    Pages an earlier pass read are recalled from the page memory, if there is one;
    each page read now is remembered at once (a kill loses at most one page). The
    document is keyed by a digest of its own bytes, so an attachment's pages never
    mix with its container's. A page that fails is remembered with its reason and
    not tried again.
    """
    memory = _memory.get()
    key = hashlib.blake2b(data, digest_size=16).hexdigest()
    known = memory.recall(key) if memory is not None else {}
    texts = {n: known[n][0] for n in pages if n in known and known[n][0]}
    failed = [f"page {n + 1} ({known[n][1]})" for n in pages if n in known and known[n][1]]
    done = sum(n in known for n in pages)
    todo = [n for n in pages if n not in known][: max(0, MAX_OCR_PAGES - done)]
    for n in within_budget(todo):
        try:
            text, failure = recognise(image_of(n)), None
        except Exception as error:  # one bad page must not lose the others
            text, failure = "", f"{type(error).__name__}: {str(error)[:160]}"
            failed.append(f"page {n + 1} ({failure})")
        done += 1
        if text:
            texts[n] = text
        if memory is not None:
            memory.remember(key, n, text, failure)
    return PagesRead(texts, failed, done, len(pages), memory is not None)


class OcrUnavailable(Exception):
    """The OCR library is not installed (it is an optional part of Kenning)."""


def available() -> bool:
    """Whether OCR can run here (``rapidocr_onnxruntime`` and ``pypdfium2`` import)."""
    try:
        import pypdfium2  # noqa: F401
        import rapidocr_onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def _recogniser() -> Any:
    """The process's one RapidOCR engine, loaded on first use (~0.5 s)."""
    global _engine
    if _engine is None:
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError as exc:
            raise OcrUnavailable("OCR is not installed (pip install rapidocr-onnxruntime)") from exc
        _engine = RapidOCR()
    return _engine


@dataclass(frozen=True)
class Box:
    """One recognised piece of text and where it sits on the page (pixels)."""

    left: float
    top: float
    right: float
    bottom: float
    text: str

    @property
    def height(self) -> float:
        return self.bottom - self.top


def recognise(image: Any) -> str:
    """The text of ``image`` (a PIL image), in reading order; "" when it holds none."""
    import numpy as np

    picture = np.asarray(image.convert("RGB"))
    boxes = _boxes(picture)
    return respace(reading_order(boxes, width=float(picture.shape[1])))


def _boxes(picture: Any) -> list[Box]:
    """The recogniser's boxes of ``picture`` (an RGB array) it is sure enough of."""
    # Without the angle classifier: it turned one line in ten of small type upside
    # down (and the recogniser then read it as nothing, or as noise).
    with _lock:  # one recognition at a time: ONNX Runtime already uses every core
        result, _ = _recogniser()(picture, use_cls=False)
    boxes = []
    for points, text, score in result or []:
        if float(score) < MIN_SCORE or not str(text).strip():
            continue
        xs = [float(p[0]) for p in points]
        ys = [float(p[1]) for p in points]
        boxes.append(Box(min(xs), min(ys), max(xs), max(ys), str(text).strip()))
    return boxes


_RUN = re.compile(r"[A-Za-z]{12,}")
_GLUED_COMMA = re.compile(r"([,;])(?=[A-Za-z])")
# A sentence's full stop glued to the next one's capital ("model.He"); initials and
# abbreviations ("U.S.Grant") have a capital before the stop and are left alone.
_GLUED_STOP = re.compile(r"(?<=[a-z]{2}[.!?])(?=[A-Z][a-z])")
# The letter o read for a zero inside a number ("2,0o0", "2oth").
_O_FOR_ZERO = re.compile(r"(?<=\d)[oO](?=[\doO]|[,.]\d|th\b|s\b)|(?<=\d[,.])[oO](?=[\doO])")


def respace(text: str) -> str:
    """Put back the spaces the recogniser dropped between English words.

    PP-OCR's recognition model (trained mostly on Chinese, which has no spaces)
    sometimes reads a line of English as one run of letters; ``wordninja`` (a
    unigram model of English word frequencies) splits such runs into words. Real
    long words are single words to it, so they stay whole.

    >>> respace("the communistscametopower,and then Internationalization")
    'the communists came to power, and then Internationalization'

    The recogniser also writes Chinese full-width commas (NFKC folds them), glues
    sentences together and reads zeros as the letter o:

    >>> respace("in the 2oth century，more than 2,0o0 men.Then U.S.Grant came")
    'in the 20th century, more than 2,000 men. Then U.S.Grant came'
    """
    text = unicodedata.normalize("NFKC", text)
    text = _O_FOR_ZERO.sub("0", _O_FOR_ZERO.sub("0", text))  # twice: "0o0" overlaps
    try:
        import wordninja
    except ImportError:  # OCR still works, with the recogniser's spacing
        pass
    else:
        text = _RUN.sub(lambda run: " ".join(wordninja.split(run.group(0))), text)
    return _GLUED_STOP.sub(" ", _GLUED_COMMA.sub(r"\1 ", text))


def reading_order(boxes: Sequence[Box], *, width: float) -> str:
    """Lines, columns and paragraphs from unordered boxes.

    >>> b = lambda x, y, t: Box(x, y, x + 40, y + 10, t)
    >>> print(reading_order([b(0, 0, "Title"), b(0, 20, "left"), b(60, 20, "right"),
    ...     b(0, 32, "more"), b(60, 32, "text")], width=100))
    Title
    <BLANKLINE>
    left right
    more text
    >>> wide = lambda y, t: Box(0, y, 190, y + 10, t)
    >>> col = lambda x, y, t: Box(x, y, x + 80, y + 10, t)
    >>> print(reading_order([wide(0, "Head"), col(0, 20, "a1"), col(110, 20, "b1"),
    ...     col(0, 32, "a2"), col(110, 32, "b2"), col(0, 44, "a3"), col(110, 44, "b3")],
    ...     width=200))
    Head
    <BLANKLINE>
    a1
    a2
    a3
    <BLANKLINE>
    b1
    b2
    b3
    """
    if not boxes:
        return ""
    split = _column_split(boxes, width)
    if split is None:
        return _paragraphs(_lines(list(boxes)))
    blocks: list[str] = []
    pending: list[Box] = []
    for box in sorted(boxes, key=lambda b: b.top):
        if box.left < split < box.right:  # across both columns: a title, a footer
            blocks += _two_columns(pending, split)
            pending = []
            blocks.append(_paragraphs(_lines([box])))
        else:
            pending.append(box)
    blocks += _two_columns(pending, split)
    return "\n\n".join(b for b in blocks if b)


def _two_columns(boxes: list[Box], split: float) -> list[str]:
    left = [b for b in boxes if b.right <= split]
    right = [b for b in boxes if b.left >= split]
    return [_paragraphs(_lines(left)), _paragraphs(_lines(right))]


def _column_split(boxes: Sequence[Box], width: float) -> float | None:
    """The x of a gutter between two columns, or None for a one-column page.

    A gutter is a vertical line in the middle band of the page that few boxes
    cross (titles may), with plenty of text on both sides of it.
    """
    best: tuple[int, float] | None = None
    for step in range(30, 71, 2):
        x = width * step / 100
        crossing = sum(1 for b in boxes if b.left < x < b.right)
        if best is None or crossing < best[0]:
            best = (crossing, x)
    assert best is not None
    crossing, x = best
    left = sum(1 for b in boxes if b.right <= x)
    right = sum(1 for b in boxes if b.left >= x)
    if crossing > 0.15 * len(boxes) or min(left, right) < max(3, 0.2 * len(boxes)):
        return None
    # Both sides must hold lines at the same heights, or it is one ragged column;
    # and where a left and a right box share a line, the gap between them must be a
    # gutter, not a word space (the detector splits long lines too).
    gaps = []
    for a in (b for b in boxes if b.right <= x):
        beside = [
            c.left - a.right
            for c in boxes
            if c.left >= x and abs((c.top + c.bottom) - (a.top + a.bottom)) < a.height
        ]
        if beside:
            gaps.append(min(beside) / max(1.0, a.height))
    if len(gaps) < 0.3 * min(left, right) or sorted(gaps)[len(gaps) // 2] < 1.5:
        return None
    return x


def _lines(boxes: list[Box]) -> list[list[Box]]:
    """Boxes on one baseline (their vertical middles within half a line) form a line."""
    lines: list[list[Box]] = []
    for box in sorted(boxes, key=lambda b: (b.top + b.bottom) / 2):
        middle = (box.top + box.bottom) / 2
        if lines:
            last = lines[-1]
            last_middle = sum((b.top + b.bottom) / 2 for b in last) / len(last)
            if abs(middle - last_middle) < 0.5 * max(box.height, last[0].height):
                last.append(box)
                continue
        lines.append([box])
    return [sorted(line, key=lambda b: b.left) for line in lines]


def _paragraphs(lines: list[list[Box]]) -> str:
    """Lines joined by newlines; a gap taller than a line starts a new paragraph."""
    if not lines:
        return ""
    heights = sorted(b.height for line in lines for b in line)
    typical = heights[len(heights) // 2]
    out = " ".join(b.text for b in lines[0])
    for above, line in itertools.pairwise(lines):
        gap = min(b.top for b in line) - max(b.bottom for b in above)
        out += ("\n\n" if gap > 0.9 * typical else "\n") + " ".join(b.text for b in line)
    return out


def open_image(data: bytes) -> list[Any]:
    """The frames of an image file (several for a multi-page TIFF), as PIL images.

    Raises:
        ValueError: Too many pixels (the reason is the message), or not an image.
    """
    from PIL import Image, ImageSequence, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # larger raises DecompressionBombError
    try:
        image = Image.open(io.BytesIO(data))
        if image.width * image.height > MAX_PIXELS:
            raise ValueError(
                f"image of {image.width}x{image.height} pixels "
                f"(limit {MAX_PIXELS // 1_000_000} megapixels)"
            )
        frames = []
        for n, frame in enumerate(ImageSequence.Iterator(image)):
            if n >= MAX_OCR_PAGES:
                break
            frame.load()
            frames.append(frame.copy())
    except Image.DecompressionBombError as exc:
        raise ValueError(f"image too large to open safely ({exc})") from exc
    except UnidentifiedImageError as exc:  # no image format at all: bytes named .png
        raise ValueError("binary file") from exc
    except OSError as exc:
        raise ValueError(f"not a readable image ({exc})") from exc
    return frames


@contextlib.contextmanager
def pdf_renderer(data: bytes) -> Iterator[Callable[[int], Any]]:
    """A function from a 0-based page number to its PIL image at :data:`RENDER_DPI`.

    PDFium opens the document once, at the first page asked for, so a file it
    cannot open fails there, like any page that cannot be rendered.
    """
    import pypdfium2 as pdfium

    opened: list[Any] = []

    def render(n: int) -> Any:
        if not opened:
            opened.append(pdfium.PdfDocument(data))
        page = opened[0][n]
        try:
            return page.render(scale=RENDER_DPI / 72).to_pil()
        finally:
            page.close()

    try:
        yield render
    finally:
        for document in opened:
            document.close()


def within_budget(pages: Iterable[T]) -> Iterator[T]:
    """``pages`` until :data:`OCR_SECONDS` have passed since the first (always one):
    one scan must not hold the folder's only writer for minutes."""
    started = time.monotonic()
    for n, page in enumerate(pages):
        if n and time.monotonic() - started > OCR_SECONDS:
            return
        yield page
