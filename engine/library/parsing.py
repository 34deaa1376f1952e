"""Turn files into text with offsets, page numbers and headings.

One parser per file type, chosen by suffix and, for unknown suffixes, by sniffing the
content. Plain-text formats keep the decoded file exactly (offsets in ``text`` are
offsets in the decoded file), so citations can point back into the original. Rich
formats (HTML, PDF, DOCX, EPUB) are flattened into blocks separated by a blank line.

Every failure, including bugs in the third-party parsers on hostile input, surfaces as
:class:`ParseError`, because one bad file must never stop a folder from being indexed.
"""

from __future__ import annotations

import bisect
import codecs
import dataclasses
import io
import itertools
import os
import re
import stat
import sys
import typing
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import ParseError
from engine.library import ocr


@dataclass(frozen=True)
class Heading:
    """A heading inside a document's extracted text."""

    start: int  # character offset in ParsedDocument.text where the heading's line starts
    level: int  # 1 is the top level (Markdown '#', HTML h1, DOCX 'Heading 1')
    title: str


@dataclass(frozen=True)
class ParsedDocument:
    """A document's extracted text plus where its pages and headings start."""

    text: str
    # "text", "markdown", "rst", "html", "pdf", "docx", "epub", "code", "pptx", "xlsx",
    # "csv", "odt", "ipynb", "eml", "mbox", "image" (read by OCR)
    kind: str
    headings: tuple[Heading, ...] = ()
    # page_starts[i] is the offset where page i + 1 begins; empty when pages do not apply.
    page_starts: tuple[int, ...] = ()
    # Read only in part (a truncated file): what the person should know.
    note: str | None = None
    # Scanned pages OCR has still to read (a later pass goes on, see ocr.read_pages),
    # of how many.
    ocr_left: int = 0
    ocr_total: int = 0

    def page_at(self, offset: int) -> int | None:
        """1-based page number containing ``offset``, or None for unpaged documents."""
        if not self.page_starts:
            return None
        return max(1, bisect.bisect_right(self.page_starts, offset))

    def heading_path_at(self, offset: int) -> tuple[str, ...]:
        """Titles of the enclosing headings at ``offset``, outermost first."""
        path: list[tuple[int, str]] = []
        for heading in self.headings:
            if heading.start > offset:
                break
            while path and path[-1][0] >= heading.level:
                path.pop()
            path.append((heading.level, heading.title))
        return tuple(title for _, title in path)


_CODE_SUFFIXES = (
    ".py .pyi .js .jsx .ts .tsx .java .kt .scala .c .h .cc .cpp .hpp .cs .go .rs .rb .php"
    " .swift .lua .r .jl .pl .sh .bash .zsh .ps1 .bat .toml .yaml .yml .json .xml .ini"
    " .cfg .conf .css .scss .sql .tex .bib .org .adoc"
)
# Plain-text suffixes and the kind each yields; the text is the decoded file, unchanged.
_TEXT_KINDS: dict[str, str] = {
    **dict.fromkeys((".txt", ".text", ".log"), "text"),
    **dict.fromkeys((".md", ".markdown", ".mdown", ".mkd"), "markdown"),
    ".rst": "rst",
    **dict.fromkeys(_CODE_SUFFIXES.split(), "code"),
}
_HTML_SUFFIXES = frozenset({".html", ".htm", ".xhtml"})
_SNIFF_BYTES = 8192
_BLOCK_SEPARATOR = "\n\n"
_MIB = 1024 * 1024


class _Rejected(Exception):
    """Raised inside a parser with a reason meant for the person; becomes a ParseError."""


def _short(error: BaseException) -> str:
    """``Type: first line of the message``, short enough for a status line."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:120]}" if lines else type(error).__name__


# Control bytes that do not occur in text: everything below 0x20 except \t \n \v \f \r
# and ESC (terminal colour codes in logs), plus DEL.
_CONTROL_BYTES = bytes([*range(0x00, 0x09), *range(0x0E, 0x1B), *range(0x1C, 0x20), 0x7F])


def looks_binary(data: bytes) -> bool:
    """Whether ``data`` looks like a binary file rather than text.

    Only the first 8 KiB are looked at, so this is cheap on huge files. A NUL byte is a
    near-certain sign of binary data (text encodings with NULs, UTF-16/32, are detected
    by their BOM before this check); otherwise more than 10% control bytes also counts.

    >>> looks_binary(b"hello\\n"), looks_binary(b"\\x89PNG\\r\\n\\x1a\\n\\x00")
    (False, True)
    """
    sample = data[:_SNIFF_BYTES]
    if b"\x00" in sample:
        return True
    if not sample:
        return False
    controls = len(sample) - len(sample.translate(None, _CONTROL_BYTES))
    return controls > len(sample) // 10


def decode_text(data: bytes) -> str | None:
    """Decode a text file without changing a character, or return None if nothing fits.

    BOMs decide first (UTF-32, UTF-16, UTF-8; the BOM itself is dropped), then strict
    UTF-8, then charset-normalizer's guess. Its guesses are unreliable on short Western
    European text (cp1252 often loses to cp1257 or cp1250 by a hair), and cp1252 is by far
    the most common legacy encoding on desktops, so it wins whenever it is nearly as good.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    import charset_normalizer

    matches = charset_normalizer.from_bytes(data)
    best = matches.best()
    if best is None:
        return None
    for match in matches:
        if match.encoding == "cp1252" and match.chaos <= best.chaos + _CP1252_CHAOS_MARGIN:
            return str(match)
    return str(best)


_CP1252_CHAOS_MARGIN = 0.1  # how much more "mess" cp1252 may show and still be preferred


# UTF-32 comes first: its little-endian BOM begins with the UTF-16 one.
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
    (codecs.BOM_UTF8, "utf-8-sig"),
)

# --- Markdown and reStructuredText headings ----------------------------------------------

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})", re.MULTILINE)
_FRONT_MATTER = re.compile(
    r"\A---[ \t]*\r?\n.*?^(?:---|\.\.\.)[ \t]*\r?$", re.MULTILINE | re.DOTALL
)
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+([^\n]*))?$", re.MULTILINE)
_SETEXT = re.compile(r"^( {0,3}[^\s#>][^\r\n]*)\r?\n {0,3}(=+|-{2,})[ \t]*\r?$", re.MULTILINE)
_RST_TITLE = re.compile(r"^([^\s\r\n][^\r\n]*)\r?\n(([!-/:-@\[-`{-~])\3*)[ \t]*\r?$", re.MULTILINE)
_RST_ADORNMENT = re.compile(r"([!-/:-@\[-`{-~])\1*[ \t]*\r?")


def _markdown_excluded(text: str) -> list[tuple[int, int]]:
    """Spans where '#' and underlines are not headings: front matter and fenced code.

    Fences are paired by scanning only the fence lines, so the cost is independent of
    the text length between them; an unclosed fence runs to the end, as in CommonMark.
    """
    spans: list[tuple[int, int]] = []
    front = _FRONT_MATTER.match(text)
    if front:
        spans.append((0, front.end()))
    opener: re.Match[str] | None = None
    for fence in _FENCE.finditer(text):
        if opener is None:
            opener = fence
        elif fence[1][0] == opener[1][0] and len(fence[1]) >= len(opener[1]):
            spans.append((opener.start(), fence.end()))
            opener = None
    if opener is not None:
        spans.append((opener.start(), len(text)))
    return sorted(spans)


def _inside(spans: list[tuple[int, int]], offset: int) -> bool:
    index = bisect.bisect_right(spans, (offset, sys.maxsize)) - 1
    return index >= 0 and offset < spans[index][1]


def _atx_title(raw: str) -> str:
    """Drop an optional closing run of '#'; it must follow a space, so "C#" stays."""
    title = raw.strip()
    bare = title.rstrip("#")
    if not bare or bare[-1] in " \t":
        return bare.rstrip()
    return title


def markdown_headings(text: str) -> tuple[Heading, ...]:
    """ATX (``# Title``) and setext (``Title`` over ``===``) headings, in text order.

    >>> markdown_headings("# A\\ntext\\nB\\n---\\n")
    (Heading(start=0, level=1, title='A'), Heading(start=9, level=2, title='B'))
    """
    excluded = _markdown_excluded(text)
    found: list[Heading] = []
    for match in _ATX.finditer(text):
        if not _inside(excluded, match.start()):
            found.append(Heading(match.start(), len(match[1]), _atx_title(match[2] or "")))
    for match in _SETEXT.finditer(text):
        if not _inside(excluded, match.start()) and not _FENCE.match(match[1]):
            level = 1 if match[2][0] == "=" else 2
            found.append(Heading(match.start(), level, match[1].strip()))
    return tuple(sorted(found, key=lambda heading: heading.start))


def rst_headings(text: str) -> tuple[Heading, ...]:
    """reStructuredText section titles: a line underlined (and maybe overlined) by
    punctuation at least as long as the title. Levels follow the order in which the
    adornment styles first appear, as docutils does. A heading with an overline starts
    at the overline.

    >>> rst_headings("Top\\n===\\n\\nSub\\n---\\n")
    (Heading(start=0, level=1, title='Top'), Heading(start=9, level=2, title='Sub'))
    """
    styles: dict[tuple[str, bool], int] = {}
    found: list[Heading] = []
    for match in _RST_TITLE.finditer(text):
        title, underline = match[1].strip(), match[2]
        if len(underline) < max(len(title), 3) or _RST_ADORNMENT.fullmatch(match[1]):
            continue
        start = match.start()
        line_start = text.rfind("\n", 0, max(start - 1, 0)) + 1
        above = text[line_start : max(start - 1, 0)].rstrip("\r \t")
        overlined = start > 0 and above == underline
        style = (underline[0], overlined)
        level = styles.setdefault(style, len(styles) + 1)
        found.append(Heading(line_start if overlined else start, level, title))
    return tuple(found)


# --- Rich formats: blocks joined by blank lines --------------------------------------------


@dataclass
class _Blocks:
    """Text assembled block by block, remembering where each heading lands."""

    parts: list[str] = field(default_factory=list)
    length: int = 0
    headings: list[Heading] = field(default_factory=list)

    def add(self, block: str, *, level: int = 0) -> None:
        """Append a non-empty block; ``level`` > 0 also records it as a heading."""
        if not block:
            return
        if self.parts:
            self.parts.append(_BLOCK_SEPARATOR)
            self.length += len(_BLOCK_SEPARATOR)
        if level > 0:
            self.headings.append(Heading(self.length, level, block))
        self.parts.append(block)
        self.length += len(block)

    @property
    def next_start(self) -> int:
        """Where the next block will begin (after a separator, once there is text)."""
        return self.length + (len(_BLOCK_SEPARATOR) if self.parts else 0)

    def add_document(self, text: str, headings: Sequence[Heading], *, deeper: int = 0) -> None:
        """Append ``text`` as the next block with its own headings, ``deeper`` levels
        further down (level 6 at most): a notebook cell, an e-mail attachment."""
        shift = self.next_start
        self.add(text)
        self.headings += [
            Heading(h.start + shift, min(h.level + deeper, 6), h.title) for h in headings
        ]

    def extend(self, other: _Blocks) -> None:
        """Append all of ``other`` as the next block, keeping its headings."""
        self.add_document("".join(other.parts), other.headings)

    def document(self, kind: str) -> ParsedDocument:
        return ParsedDocument("".join(self.parts), kind, tuple(self.headings))


_SPACES = re.compile(r"\s+")
_HTML_DROPPED = frozenset({"script", "style", "nav", "noscript", "template"})
_HTML_HEADINGS = {f"h{level}": level for level in range(1, 7)}
_HTML_BLOCK_NAMES = (
    "p li ul ol dl dt dd pre td th tr table thead tbody tfoot caption blockquote div section"
    " article main header footer aside figure figcaption address form fieldset details"
    " summary body html hr"
)
_HTML_BLOCKS = frozenset(_HTML_BLOCK_NAMES.split())


def _collapse(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def _html_blocks(data: bytes) -> _Blocks:
    """The readable blocks of an HTML/XHTML document, its ``<title>`` first if no h1.

    Walks the tree once with an explicit stack (deeply nested pages would overflow
    Python's recursion limit), skipping dropped elements on the way rather than searching
    for them first, which would cost as much as the walk. Inline text accumulates until
    the next block boundary, where its whitespace is collapsed as a browser would;
    ``<br>`` survives as a newline.
    """
    from bs4 import BeautifulSoup
    from bs4.element import CData, NavigableString, Tag

    body, title = _Blocks(), ""
    inline: list[str] = []

    def flush() -> None:
        lines = "".join(inline).split("\n")
        inline.clear()
        body.add("\n".join(filter(None, (_collapse(line) for line in lines))))

    stack: list[object] = [BeautifulSoup(data, "lxml")]
    while stack:
        node = stack.pop()
        if node is flush:
            flush()
        elif type(node) in (NavigableString, CData):
            inline.append(_SPACES.sub(" ", str(node)))
        elif not isinstance(node, Tag) or node.name in _HTML_DROPPED:
            continue
        elif node.name == "title":
            title = title or _collapse(node.get_text())
        elif node.name in _HTML_HEADINGS:
            flush()
            body.add(_collapse(node.get_text()), level=_HTML_HEADINGS[node.name])
        elif node.name == "pre":
            flush()
            body.add(node.get_text().strip("\r\n").rstrip())
        elif node.name == "br":
            inline.append("\n")
        else:
            if node.name in _HTML_BLOCKS:
                flush()
                stack.append(flush)
            stack.extend(reversed(node.contents))
    flush()
    if not title or any(heading.level == 1 for heading in body.headings):
        return body
    titled = _Blocks()
    titled.add(title, level=1)
    titled.extend(body)
    return titled


def _parse_html(data: bytes) -> ParsedDocument:
    return _html_blocks(data).document("html")


# Bounds on what a ZIP-based document (DOCX, EPUB) may unpack to, checked from the
# archive's headers before anything is inflated: a DOCX whose XML inflated to 1 GB
# reached 2.6 GB RSS before it was refused. ``zipfile`` never returns more than a
# member's declared size, so the headers can be trusted for memory.
MAX_PART_BYTES = 64 * _MIB
MAX_UNPACKED_BYTES = 256 * _MIB
# DOCX text is streamed beyond this much (see _stream_docx); the indexer's own cap
# (EngineConfig.max_text_chars) decides how much of it is kept.
MAX_STREAMED_CHARS = 16_000_000
MAX_STREAMED_BYTES = 512 * _MIB  # of inflated XML read by _stream_docx at most


def _oversized_parts(data: bytes, label: str, streamed: tuple[str, ...] = ()) -> str | None:
    """Why the archive is too big to unpack whole, or None when it is not.

    Parts named by a ``streamed`` prefix are read as a stream by their parser,
    which stops at its own limits; they may reach :data:`MAX_STREAMED_BYTES`.
    """
    import zipfile

    try:
        infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        raise _Rejected(f"corrupt or unreadable {label}: {_short(error)}") from error
    whole = [i for i in infos if not i.filename.startswith(streamed or ("\0",))]
    for info in infos:
        limit = MAX_PART_BYTES if info in whole else MAX_STREAMED_BYTES
        if info.file_size > limit:
            return (
                f"{label} part {info.filename} unpacks to {info.file_size / _MIB:,.0f} MB"
                f" (limit {limit / _MIB:.0f} MB)"
            )
    total = sum(info.file_size for info in whole)
    if total > MAX_UNPACKED_BYTES:
        return (
            f"{label} unpacks to {total / _MIB:,.0f} MB (limit {MAX_UNPACKED_BYTES / _MIB:.0f} MB)"
        )
    return None


def _parse_epub(data: bytes) -> ParsedDocument:
    """Spine documents in reading order, each flattened like an HTML page."""
    import ebooklib
    from ebooklib import epub

    too_big = _oversized_parts(data, "EPUB")
    if too_big:
        raise _Rejected(too_big)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        book = epub.read_epub(io.BytesIO(data), {"ignore_ncx": True})
    blocks = _Blocks()
    for item_id, *_ in book.spine:
        item = book.get_item_with_id(item_id)
        if item is not None and item.get_type() == ebooklib.ITEM_DOCUMENT:
            blocks.extend(_html_blocks(item.get_content()))
    return blocks.document("epub")


_DOCX_HEADING_STYLE = re.compile(r"heading\s*([1-9])|(title)", re.IGNORECASE)


def _parse_docx(data: bytes) -> ParsedDocument:
    """Paragraphs and table cells in document order; 'Title' counts as a level-1 heading.

    python-docx holds the whole XML tree (3 GB for a 1 MB file of 300 MB of plain
    paragraphs); an archive too big for that is streamed instead (:func:`_stream_docx`).
    """
    import docx
    from docx.table import Table

    if _oversized_parts(data, "DOCX"):
        return _stream_docx(data)
    document = docx.Document(io.BytesIO(data))
    blocks = _Blocks()
    for item in document.iter_inner_content():
        if isinstance(item, Table):
            seen: set[object] = set()  # python-docx repeats a merged cell in every slot
            for cell in (cell for row in item.rows for cell in row.cells):
                if cell._tc not in seen:
                    seen.add(cell._tc)
                    blocks.add(cell.text.strip())
            continue
        style = item.style.name if item.style is not None else ""
        heading = _DOCX_HEADING_STYLE.fullmatch(style or "")
        level = 0 if heading is None else int(heading[1] or 1)
        blocks.add(item.text.strip(), level=level)
    return blocks.document("docx")


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_DOCX_HEADING_ID = re.compile(r"heading([1-9])|(title)", re.IGNORECASE)


def _stream_docx(data: bytes) -> ParsedDocument:
    """Paragraphs of ``word/document.xml`` read one at a time, in bounded memory.

    For archives too big to unpack whole: only the main part is opened, as a
    stream; each paragraph is dropped from the tree once read, and reading stops
    after :data:`MAX_STREAMED_CHARS` characters of text. Headings come from the
    paragraph's style id ("Heading1", "Title"), without ``styles.xml``.
    """
    import zipfile

    from lxml import etree

    blocks = _Blocks()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive, archive.open("word/document.xml") as xml:
            # No huge_tree: libxml2's own limit (a text node of 10 MB) refuses a bomb
            # of one giant run early; with it, a 1 GB run reached 1.5 GB RSS.
            parser = etree.iterparse(
                _Bounded(xml, MAX_STREAMED_BYTES),
                events=("end",),
                tag=f"{_W}p",
                resolve_entities=False,
            )
            for _, paragraph in parser:
                if paragraph.getparent() is not None and paragraph.getparent().tag == f"{_W}p":
                    continue  # a paragraph nested in another's text box: read with it
                parts = []
                for node in paragraph.iter(f"{_W}t", f"{_W}tab", f"{_W}br"):
                    parts.append(node.text or "" if node.tag == f"{_W}t" else " ")
                style = paragraph.find(f"{_W}pPr/{_W}pStyle")
                heading = (
                    _DOCX_HEADING_ID.fullmatch(style.get(f"{_W}val", ""))
                    if style is not None
                    else None
                )
                blocks.add(
                    "".join(parts).strip(), level=0 if heading is None else int(heading[1] or 1)
                )
                paragraph.clear()
                while paragraph.getprevious() is not None:  # siblings already read
                    del paragraph.getparent()[0]
                if blocks.length > MAX_STREAMED_CHARS:
                    break
    except KeyError as error:
        raise _Rejected("not a Word document (no word/document.xml)") from error
    except etree.XMLSyntaxError as error:
        if blocks.length and "limit" not in str(error).lower():
            return blocks.document("docx")  # cut off at the byte bound: keep what was read
        raise _Rejected(f"DOCX text that cannot be read safely: {_short(error)}") from error
    return blocks.document("docx")


class _Bounded(io.RawIOBase):
    """A stream that ends after ``limit`` bytes of ``inner`` (an inflating ZIP member)."""

    def __init__(self, inner: typing.IO[bytes], limit: int) -> None:
        self._inner, self._left = inner, limit

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        size = self._left if size is None or size < 0 else min(size, self._left)
        data = self._inner.read(size)
        self._left -= len(data)
        return data


def cap_text(document: ParsedDocument, max_chars: int) -> tuple[ParsedDocument, str | None]:
    """The document cut to at most ``max_chars`` characters, and a note saying so.

    Cuts at the last line break (or space) before the limit, so no word is split;
    headings and pages past the cut go with the text. Bounds the time and memory
    every later step takes on one file (a 50 MB one-line log was still being
    tokenized after 15 minutes at 6.9 GB).
    """
    text = document.text
    if len(text) <= max_chars:
        return document, None
    cut = max(text.rfind("\n", 0, max_chars), text.rfind(" ", 0, max_chars))
    cut = cut if cut > max_chars // 2 else max_chars
    kept = ParsedDocument(
        text[:cut],
        document.kind,
        tuple(h for h in document.headings if h.start < cut),
        tuple(p for p in document.page_starts if p < cut),
        document.note,
    )
    note = (
        f"only the first {cut / 1e6:.1f} million characters are indexed: its text is longer"
        f" than the limit per file ({max_chars / 1e6:.0f} million)"
    )
    return kept, note


def _parse_pdf(data: bytes) -> ParsedDocument:
    """Page texts joined by blank lines, with where each page starts.

    A page whose text cannot be extracted contributes an empty page rather than failing
    the whole document; only when no page yields text is the file rejected.
    """
    import pypdf
    from pypdf.errors import DependencyError, FileNotDecryptedError

    truncated = False
    try:
        try:
            reader = pypdf.PdfReader(io.BytesIO(data), strict=False)
        except Exception:
            repaired = _close_truncated_pdf(data)
            if repaired is None:
                raise
            reader = pypdf.PdfReader(io.BytesIO(repaired), strict=False)
            truncated = True
        if reader.is_encrypted and not reader.decrypt(""):
            raise _Rejected("encrypted PDF")
        pages = list(reader.pages)
    except _Rejected:
        raise
    except (DependencyError, FileNotDecryptedError) as error:  # AES needs `cryptography`
        raise _Rejected("encrypted PDF") from error
    except Exception as error:
        raise _Rejected(f"corrupt or unreadable PDF: {_short(error)}") from error

    texts: list[str] = []
    failure: Exception | None = None
    for page in pages:
        try:
            texts.append(page.extract_text().strip())
        except Exception as error:
            failure = failure or error
            texts.append("")
    scanned = [n for n, text in enumerate(texts) if len(text) < _SCANNED_BELOW_CHARS]
    ocr_note, ocr_left = None, 0
    if scanned and failure is None and not truncated and ocr.available():
        read = _ocr_pdf_pages(data, texts, scanned)
        ocr_note = _ocr_note(read)
        ocr_left = read.left if read.remembered and read.done < ocr.MAX_OCR_PAGES else 0
    if not any(texts):
        if truncated:
            raise _Rejected("truncated PDF: no complete page with text")
        if failure is not None:
            raise _Rejected(f"corrupt or unreadable PDF: {_short(failure)}")
        if ocr_left:  # the first scanned pages were blank: a later pass goes on
            return ParsedDocument(
                "", "pdf", note=ocr_note, ocr_left=ocr_left, ocr_total=len(scanned)
            )
        if ocr_note:
            raise _Rejected(f"no text found: {ocr_note}")
        if not ocr.available():
            raise _Rejected("no extractable text (a scanned PDF; OCR is not installed)")
        raise _Rejected("no extractable text, and OCR found none on its pages")
    note = ocr_note
    if truncated:
        note = (
            f"the PDF is cut short: its {len(pages)} complete pages are indexed, the rest is lost"
        )
    paged = _paged(texts, "pdf", note)
    return dataclasses.replace(paged, ocr_left=ocr_left, ocr_total=len(scanned))


# A page whose text layer holds fewer characters than this is read by OCR (a scan
# often carries a stray page number or a scanner's stamp as text).
_SCANNED_BELOW_CHARS = 16


def _ocr_pdf_pages(data: bytes, texts: list[str], pages: list[int]) -> ocr.PagesRead:
    """Fill ``texts[n]`` for the scanned ``pages`` by OCR (:func:`engine.library.ocr.read_pages`).

    Pages are rendered and recognised one at a time, so memory stays that of one page.
    """
    with ocr.pdf_renderer(data) as render:
        read = ocr.read_pages(data, pages, render)
    for n, text in read.texts.items():
        texts[n] = text
    return read


def _ocr_note(read: ocr.PagesRead) -> str | None:
    said = []
    if read.failed:
        failed = read.failed
        said.append(
            f"OCR failed on {', '.join(failed[:5])}" + (" and more" if len(failed) > 5 else "")
        )
    if read.left and read.remembered and read.done < ocr.MAX_OCR_PAGES:
        said.append(
            f"OCR has read {read.done} of its {read.total} scanned pages so far; "
            "the rest are read in the background"
        )
    elif read.left:
        limit = (
            f"{ocr.MAX_OCR_PAGES} pages"
            if read.done >= ocr.MAX_OCR_PAGES
            else f"{ocr.OCR_SECONDS:.0f} s at a time"
        )
        said.append(
            f"only the first {read.done} of {read.total} scanned pages are read by OCR "
            f"(the limit per file: {limit})"
        )
    return "; ".join(said) or None


def _parse_image(data: bytes) -> ParsedDocument:
    """An image of text (a photo of a page, a screenshot, a multi-page TIFF scan), by OCR;
    each frame is a page, within the same limits as a scanned PDF's pages."""
    if not ocr.available():
        raise _Rejected("an image (OCR is not installed, so its text cannot be read)")
    try:
        frames = ocr.open_image(data)
    except ValueError as error:
        raise _Rejected(str(error)) from error
    read = ocr.read_pages(data, range(len(frames)), frames.__getitem__)
    if not read.texts:
        if read.left and read.remembered:  # the first frames were blank: go on later
            return ParsedDocument(
                "", "image", note=_ocr_note(read), ocr_left=read.left, ocr_total=read.total
            )
        if read.failed:  # say why, not just that nothing came out
            raise _Rejected(f"OCR failed: {'; '.join(read.failed[:3])}")
        raise _Rejected("no text found in the image")
    texts = [read.texts.get(n, "") for n in range(len(frames))]
    while texts and not texts[-1]:  # frames not read yet, or blank, at the end
        texts.pop()
    left = read.left if read.remembered and read.done < ocr.MAX_OCR_PAGES else 0
    paged = _paged(texts, "image", _ocr_note(read))
    return dataclasses.replace(paged, ocr_left=left, ocr_total=read.total)


def _paged(texts: list[str], kind: str, note: str | None) -> ParsedDocument:
    """Page texts joined by blank lines, with where each page starts."""
    separated = (len(text) + len(_BLOCK_SEPARATOR) for text in texts[:-1])
    starts = tuple(itertools.accumulate(separated, initial=0))
    return ParsedDocument(_BLOCK_SEPARATOR.join(texts), kind, page_starts=starts, note=note)


_PDF_OBJECT = re.compile(rb"(?<![0-9])([0-9]+)\s+([0-9]+)\s+obj\b")
_PDF_CATALOG = re.compile(rb"([0-9]+)\s+0\s+obj\s*<<(?:(?!endobj).){0,400}?/Type\s*/Catalog", re.S)


def _close_truncated_pdf(data: bytes) -> bytes | None:
    """A truncated PDF (a download or copy cut short) given back its missing tail.

    The cross-reference table and trailer come last in a PDF, so a cut file has
    neither, and pypdf gives up on all of it. Rebuilt from where each ``N 0 obj``
    starts and which object is the catalog, its complete pages read as usual (a
    page whose objects were cut off reads as empty). None when the file is not
    cut short (it ends with ``%%EOF``) or has no catalog to start from.
    """
    if b"%%EOF" in data[-1024:]:
        return None
    catalog = _PDF_CATALOG.search(data)
    if catalog is None:
        return None
    starts = [(m.start(), int(m[1])) for m in _PDF_OBJECT.finditer(data) if m[2] == b"0"]
    offsets: dict[int, int] = {}
    end = 0
    for (start, number), (following, _) in zip(starts, [*starts[1:], (len(data), 0)], strict=True):
        closed = data.find(b"endobj", start, following)
        if closed >= 0:  # complete objects only: the one cut in half is left out
            offsets[number] = start
            end = closed + len(b"endobj")
    if not offsets:
        return None
    size = max(offsets) + 1
    body = data[:end] + b"\n"
    table = [b"xref\n0 %d\n0000000000 65535 f \n" % size]
    for number in range(1, size):
        where = offsets.get(number)
        table.append(b"%010d 00000 n \n" % where if where is not None else b"0000000000 65535 f \n")
    trailer = b"trailer\n<< /Size %d /Root %s 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        size,
        catalog[1],
        len(body),
    )
    return body + b"".join(table) + trailer


# --- Registry and entry points ---------------------------------------------------------


def _parse_text(data: bytes, kind: str) -> ParsedDocument:
    utf16 = _utf16_without_bom(data)
    if utf16 is not None:
        return _text_document(utf16, kind)
    if not data.startswith(tuple(bom for bom, _ in _BOMS)) and looks_binary(data):
        raise _Rejected("binary file")
    text = decode_text(data)
    if text is None:
        raise _Rejected("unknown text encoding")
    return _text_document(text, kind)


def _text_document(text: str, kind: str) -> ParsedDocument:
    find_headings = _HEADING_FINDERS.get(kind)
    return ParsedDocument(text, kind, find_headings(text) if find_headings else ())


def _utf16_without_bom(data: bytes) -> str | None:
    """Decode UTF-16 (LE or BE) that has no byte-order mark, or return None.

    Windows tools write it (PowerShell's ``>``, ``reg export``); it was read as
    binary for its NUL bytes. Recognised when, in the first 8 KiB, nearly every
    other byte is NUL on one side only (ASCII-range text), and the whole file then
    decodes strictly to printable text.
    """
    sample = data[: _SNIFF_BYTES - _SNIFF_BYTES % 2]
    if len(sample) < 4 or len(data) % 2 or data.startswith(tuple(b for b, _ in _BOMS)):
        return None
    pairs = len(sample) // 2
    even_nul = sample[0::2].count(0)
    odd_nul = sample[1::2].count(0)
    if odd_nul >= 0.6 * pairs and even_nul <= 0.02 * pairs:
        encoding = "utf-16-le"
    elif even_nul >= 0.6 * pairs and odd_nul <= 0.02 * pairs:
        encoding = "utf-16-be"
    else:
        return None
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        return None
    if looks_binary(text[:_SNIFF_BYTES].encode("utf-8", "surrogatepass")):
        return None
    return text


_HEADING_FINDERS = {"markdown": markdown_headings, "rst": rst_headings}


def _formats(name: str) -> Callable[[bytes], ParsedDocument]:
    """A parser of :mod:`engine.library.formats`, imported on first use (it imports this)."""

    def parse(data: bytes) -> ParsedDocument:
        from engine.library import formats

        parser: Callable[[bytes], ParsedDocument] = getattr(formats, name)
        return parser(data)

    return parse


# Pictures of text, read by OCR (engine.library.ocr); each frame is a page.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")

_RICH_PARSERS: dict[str, Callable[[bytes], ParsedDocument]] = {
    **dict.fromkeys(_HTML_SUFFIXES, _parse_html),
    ".pdf": _parse_pdf,
    ".docx": _parse_docx,
    ".epub": _parse_epub,
    **{f".{kind}": _formats(f"parse_{kind}") for kind in ("pptx", "xlsx", "odt", "ipynb")},
    **{f".{kind}": _formats(f"parse_{kind}") for kind in ("csv", "eml", "mbox")},
    ".tsv": _formats("parse_csv"),
    **dict.fromkeys(IMAGE_SUFFIXES, _parse_image),
}

_KINDS = {
    **_TEXT_KINDS,
    **{s: "html" if s in _HTML_SUFFIXES else s[1:] for s in _RICH_PARSERS},
    **dict.fromkeys(IMAGE_SUFFIXES, "image"),
}
SUPPORTED_SUFFIXES: frozenset[str] = frozenset(_KINDS)
"""Lowercase suffixes (with the dot) with a dedicated parser. Files with other suffixes
are still parsed when their content sniffs as text, HTML or PDF."""

_HTML_START = re.compile(rb"\s*(?:<!doctype\s+html|<html)", re.IGNORECASE)


def _sniff(data: bytes) -> Callable[[bytes], ParsedDocument]:
    """Pick a parser from the content alone, for files with an unknown suffix."""
    if data.startswith(b"%PDF-"):
        return _parse_pdf
    if _HTML_START.match(data[:_SNIFF_BYTES]):
        return _parse_html
    return lambda content: _parse_text(content, "text")


def parse_bytes(path: Path, data: bytes) -> ParsedDocument:
    """Parse ``data`` (the content of ``path``) by suffix, then by sniffing content.

    Args:
        path: Where the bytes came from; only its suffix is used, and it names the file
            in errors.
        data: The whole file content.

    Returns:
        The extracted text with its headings and, for PDFs, page starts. For plain-text
        kinds ("text", "markdown", "rst", "code") ``text`` is exactly the decoded file.

    Raises:
        ParseError: For every failure, never anything else: binary content, unknown
            encoding, encrypted or corrupt files, and any unexpected exception raised
            by a third-party parser (reported by its type and message).
    """
    suffix = path.suffix.lower()
    try:
        if suffix in _TEXT_KINDS:
            return _parse_text(data, _TEXT_KINDS[suffix])
        parser = _RICH_PARSERS.get(suffix) or _sniff(data)
        return parser(data)
    except _Rejected as rejected:
        raise ParseError(path, str(rejected)) from rejected
    except Exception as error:
        label = suffix.lstrip(".").upper() if suffix in _RICH_PARSERS else "file"
        raise ParseError(path, f"corrupt or unreadable {label}: {_short(error)}") from error


def read_regular_file(path: Path, *, max_bytes: int) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``max_bytes``.

    Opened non-blocking and checked with ``fstat`` on the open descriptor: a named
    pipe swapped in after the folder was scanned blocked ``open`` (and indexing
    with it) until something wrote to the pipe, and a check by name before opening
    would leave that race open.

    Raises:
        ParseError: Missing, not a regular file, unreadable, or too large.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    flags |= getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError as error:
        raise ParseError(path, "file not found") from error
    except PermissionError as error:
        raise ParseError(path, "permission denied") from error
    except OSError as error:
        raise ParseError(path, f"cannot read file: {error.strerror or error}") from error
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ParseError(path, f"not a regular file ({file_type(info.st_mode)})")
        if info.st_size > max_bytes:
            raise ParseError(path, f"file is larger than {max_bytes / _MIB:.3g} MB")
        chunks, size = [], 0
        while size <= max_bytes:  # the file may have grown since fstat()
            chunk = os.read(fd, min(max_bytes + 1 - size, 8 * _MIB))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        data = b"".join(chunks)
    except OSError as error:
        raise ParseError(path, f"cannot read file: {error.strerror or error}") from error
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise ParseError(path, f"file is larger than {max_bytes / _MIB:.3g} MB")
    return data


def file_type(mode: int) -> str:
    """What a non-regular file is, in words for the status list."""
    for test, name in (
        (stat.S_ISFIFO, "named pipe"),
        (stat.S_ISSOCK, "socket"),
        (stat.S_ISCHR, "character device"),
        (stat.S_ISBLK, "block device"),
        (stat.S_ISDIR, "directory"),
    ):
        if test(mode):
            return name
    return "special file"


def parse_file(path: Path, *, max_bytes: int) -> ParsedDocument:
    """Read and parse the file at ``path``.

    Args:
        path: The file to read.
        max_bytes: Larger files are refused before being read, to bound memory use.

    Returns:
        The parsed document; an empty file gives empty text.

    Raises:
        ParseError: If the file is missing, not a regular file, unreadable, too large,
            or cannot be parsed (see :func:`parse_bytes`).
    """
    data = read_regular_file(path, max_bytes=max_bytes)
    if not data:
        return ParsedDocument("", _KINDS.get(path.suffix.lower(), "text"))
    return parse_bytes(path, data)
