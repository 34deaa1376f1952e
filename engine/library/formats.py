"""Slides, sheets, OpenDocument text, notebooks and mail: parsers beyond the basics.

Each turns a file into the same :class:`~engine.library.parsing.ParsedDocument`
as every other format, with a well-kept library where the format needs one
(python-pptx, openpyxl, odfpy; the standard library's ``csv``, ``json``,
``email``). What each keeps, so citations and the viewer point somewhere a
person recognises:

* .pptx: each slide is a page (its number is the slide number), its title a
  heading; text boxes, tables and speaker notes in slide order.
* .xlsx and .csv: each sheet a heading; each row one line, ``Row 12: Name: Ada;
  Year: 1843`` when the first row names the columns, so a row reads as text.
* .odt: paragraphs, lists and tables in order; ``text:h`` outline levels as headings.
* .ipynb: markdown cells (their headings kept) and code cells; outputs are left
  out (images and widgets are base64 blobs, not prose).
* .eml: subject as heading, sender, recipients and date, the plain (or HTML) body,
  then each attachment parsed as a file of its own type, within a size limit.
* .mbox: every message as in .eml, each message a page.

Bounds: at most :data:`MAX_ROWS` rows per workbook or CSV file and
:data:`MAX_SLIDES` slides, with a note saying what was left out; attachments over
:data:`MAX_ATTACHMENT_BYTES` and nested mail past one level are listed, not read;
password-protected Office files are refused with that reason.

Called only through :func:`engine.library.parsing.parse_bytes` (the parsers are
registered there by suffix and imported on first use).
"""

from __future__ import annotations

import csv
import email
import email.policy
import io
import json
import re
from collections.abc import Iterable, Sequence
from email.message import EmailMessage, MIMEPart
from pathlib import Path
from typing import Any

from engine.errors import ParseError
from engine.library.parsing import (
    ParsedDocument,
    _Blocks,
    _html_blocks,
    _oversized_parts,
    _Rejected,
    decode_text,
    markdown_headings,
)

MAX_ROWS = 100_000  # per workbook or CSV file: a million-row sheet is a database, not a note
MAX_SLIDES = 5_000
MAX_CELL_CHARS = 2_000  # a cell holding a whole document is cut there
MAX_COLUMNS = 500  # cells read per row
# Rows looked at per file, empty ones included: a sheet of ten million blank rows
# must stop too. Worksheets are streamed (openpyxl's read-only mode), so a sheet
# whose XML passes the 64 MB part limit is still read up to MAX_ROWS, within this.
MAX_SCANNED_ROWS = 10 * MAX_ROWS
MAX_ATTACHMENT_BYTES = 16 * 1024 * 1024
MAX_MESSAGES = 50_000  # per mbox
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # password-protected OOXML is an OLE file


class _Pages:
    """:class:`_Blocks` that also remember where each page (slide, message) starts."""

    def __init__(self) -> None:
        self.blocks = _Blocks()
        self.page_starts: list[int] = []

    def new_page(self) -> None:
        self.page_starts.append(self.blocks.next_start)

    def document(self, kind: str, note: str | None = None) -> ParsedDocument:
        doc = self.blocks.document(kind)
        return ParsedDocument(doc.text, kind, doc.headings, tuple(self.page_starts), note)


def _refuse_encrypted(data: bytes, label: str, streamed: tuple[str, ...] = ()) -> None:
    if data.startswith(_OLE_MAGIC):
        raise _Rejected(f"password-protected or legacy {label} (not an Office Open XML file)")
    too_big = _oversized_parts(data, label, streamed)
    if too_big:
        raise _Rejected(too_big)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = str(value).strip()
    return text[:MAX_CELL_CHARS]


# --- slides --------------------------------------------------------------------------------


def parse_pptx(data: bytes) -> ParsedDocument:
    """Each slide a page: its title as a heading, then its text, tables and notes."""
    from pptx import Presentation

    _refuse_encrypted(data, "PPTX")
    deck = Presentation(io.BytesIO(data))
    pages = _Pages()
    slides = list(deck.slides)
    for number, slide in enumerate(slides[:MAX_SLIDES], start=1):
        pages.new_page()
        title_shape = slide.shapes.title
        title = title_shape.text_frame.text.strip() if title_shape is not None else ""
        pages.blocks.add(f"Slide {number}: {title}" if title else f"Slide {number}", level=1)
        for shape in slide.shapes:
            if title_shape is not None and shape.shape_id == title_shape.shape_id:
                continue
            for text in _shape_texts(shape):
                pages.blocks.add(text)
        if slide.has_notes_slide:
            notes = slide.notes_slide.notes_text_frame
            if notes is not None and notes.text.strip():
                pages.blocks.add(f"Notes: {notes.text.strip()}")
    note = None
    if len(slides) > MAX_SLIDES:
        note = f"only the first {MAX_SLIDES:,} of {len(slides):,} slides are indexed"
    return pages.document("pptx", note)


def _shape_texts(shape: Any) -> Iterable[str]:
    """The text of a shape: its paragraphs, a table's rows, a group's members."""
    if getattr(shape, "has_text_frame", False) and shape.has_text_frame:
        for paragraph in shape.text_frame.paragraphs:
            text = "".join(run.text for run in paragraph.runs).strip()
            if text:
                yield text
    if getattr(shape, "has_table", False) and shape.has_table:
        for row in shape.table.rows:
            cells = [_cell(cell.text) for cell in row.cells]
            if any(cells):
                yield " | ".join(cells)
    for member in getattr(shape, "shapes", ()):  # a group shape
        yield from _shape_texts(member)


# --- sheets --------------------------------------------------------------------------------


class _Rows:
    """Rows rendered as lines, with the first row as column names when it names them."""

    def __init__(self, blocks: _Blocks, budget: int) -> None:
        self.blocks = blocks
        self.budget = budget  # rows left for the whole file
        self.cut = False  # rows past the budget were left unread

    def add_table(self, title: str | None, rows: Iterable[Sequence[Any]]) -> None:
        if title:
            self.blocks.add(title, level=1)
        header: list[str] | None = None
        lines: list[str] = []
        for number, raw in enumerate(rows, start=1):
            if number > MAX_SCANNED_ROWS:
                self.cut = True
                break
            cells = [_cell(v) for v in raw[:MAX_COLUMNS]]
            if not any(cells):
                continue
            if header is None and number == 1 and _names_columns(cells):
                header = cells
                lines.append("Columns: " + "; ".join(c for c in cells if c))
                continue
            if self.budget <= 0:
                self.cut = True  # stop reading: a million-row sheet is not read to its end
                break
            self.budget -= 1
            if header is not None:
                named = [
                    f"{header[i]}: {c}" if i < len(header) and header[i] else c
                    for i, c in enumerate(cells)
                    if c
                ]
                lines.append(f"Row {number}: " + "; ".join(named))
            else:
                lines.append(f"Row {number}: " + " | ".join(cells))
            if len(lines) >= 50:  # one block per 50 rows keeps blocks (and passages) short
                self.blocks.add("\n".join(lines))
                lines = []
        self.blocks.add("\n".join(lines))

    def note(self) -> str | None:
        return f"only the first {MAX_ROWS:,} rows are indexed" if self.cut else None


def _names_columns(cells: list[str]) -> bool:
    """Whether a first row looks like column names: text, no numbers, mostly filled."""
    filled = [c for c in cells if c]
    return (
        len(filled) >= 2
        and len(filled) >= len(cells) / 2
        and all(not _NUMBER.fullmatch(c) for c in filled)
        and len(set(filled)) == len(filled)
    )


_NUMBER = re.compile(r"[-+]?[\d.,]+%?")


def parse_xlsx(data: bytes) -> ParsedDocument:
    """Every sheet (a heading) with its rows as lines; values, not formulas."""
    import openpyxl

    # Worksheets are streamed row by row (read-only mode) and stop at the row limits;
    # every other part (shared strings, styles) is loaded whole and stays capped.
    _refuse_encrypted(data, "XLSX", streamed=("xl/worksheets/",))
    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    blocks = _Blocks()
    rows = _Rows(blocks, MAX_ROWS)
    try:
        for sheet in workbook.worksheets:
            rows.add_table(f"Sheet: {sheet.title}", sheet.iter_rows(values_only=True))
    finally:
        workbook.close()
    doc = blocks.document("xlsx")
    return ParsedDocument(doc.text, "xlsx", doc.headings, (), rows.note())


def parse_csv(data: bytes) -> ParsedDocument:
    """A CSV (or TSV) file: the delimiter sniffed, rows as lines."""
    text = decode_text(data)
    if text is None:
        raise _Rejected("not text in any known encoding")
    sample = text[:8192]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    blocks = _Blocks()
    rows = _Rows(blocks, MAX_ROWS)
    rows.add_table(None, csv.reader(io.StringIO(text, newline=""), dialect))
    doc = blocks.document("csv")
    return ParsedDocument(doc.text, "csv", doc.headings, (), rows.note())


# --- OpenDocument text -----------------------------------------------------------------------


def parse_odt(data: bytes) -> ParsedDocument:
    """Headings, paragraphs, list items and table cells of an .odt, in document order."""
    from odf import teletype
    from odf.namespaces import TEXTNS
    from odf.opendocument import load

    _refuse_encrypted(data, "ODT")
    document = load(io.BytesIO(data))
    blocks = _Blocks()

    def walk(node: Any) -> None:
        for child in node.childNodes:
            qname = getattr(child, "qname", None)
            if qname == (TEXTNS, "h"):
                level = int(child.getAttrNS(TEXTNS, "outline-level") or 1)
                blocks.add(teletype.extractText(child).strip(), level=min(max(level, 1), 6))
            elif qname == (TEXTNS, "p"):
                blocks.add(teletype.extractText(child).strip())
            elif getattr(child, "childNodes", None):
                walk(child)

    walk(document.text)
    return blocks.document("odt")


# --- notebooks -----------------------------------------------------------------------------


def parse_ipynb(data: bytes) -> ParsedDocument:
    """Markdown and code cells of a Jupyter notebook; outputs left out."""
    try:
        notebook = json.loads(data)
        cells = notebook["cells"]
    except (ValueError, KeyError, TypeError) as error:
        raise _Rejected(f"not a Jupyter notebook ({error.__class__.__name__})") from error
    if not isinstance(cells, list):
        raise _Rejected("not a Jupyter notebook (no list of cells)")
    language = (
        notebook.get("metadata", {}).get("kernelspec", {}).get("language", "")
        if isinstance(notebook.get("metadata"), dict)
        else ""
    )
    blocks = _Blocks()
    for cell in cells:
        if not isinstance(cell, dict):
            continue
        source = cell.get("source", "")
        text = ("".join(source) if isinstance(source, list) else str(source)).strip()
        if not text:
            continue
        if cell.get("cell_type") == "markdown":
            blocks.add_document(text, markdown_headings(text))
        elif cell.get("cell_type") == "code":
            blocks.add(f"```{language}\n{text}\n```")
    return blocks.document("ipynb")


# --- mail ----------------------------------------------------------------------------------


def parse_eml(data: bytes) -> ParsedDocument:
    """One e-mail: subject, who and when, the body, then its attachments."""
    pages = _Pages()
    skipped: list[str] = []
    _add_message(pages.blocks, _message(data), skipped, depth=0)
    return pages.document("eml", _skipped_note(skipped))


def parse_mbox(data: bytes) -> ParsedDocument:
    """Every message of an mbox file, each a page, in the file's order."""
    pages = _Pages()
    skipped: list[str] = []
    messages = _split_mbox(data)
    for raw in messages[:MAX_MESSAGES]:
        pages.new_page()
        _add_message(pages.blocks, _message(raw), skipped, depth=0)
    if len(messages) > MAX_MESSAGES:
        skipped.append(f"{len(messages) - MAX_MESSAGES:,} messages past the first {MAX_MESSAGES:,}")
    return pages.document("mbox", _skipped_note(skipped))


_MBOX_FROM = re.compile(rb"^From [^\n]*\n", re.MULTILINE)
_MBOX_QUOTED_FROM = re.compile(rb"^>(>*From )", re.MULTILINE)


def _split_mbox(data: bytes) -> list[bytes]:
    """The messages of an mbox: each starts at a line beginning with ``From ``."""
    if not data.startswith(b"From "):
        raise _Rejected("not an mbox file (it does not start with a 'From ' line)")
    found = list(_MBOX_FROM.finditer(data))
    starts = [m.end() for m in found]
    ends = [*(m.start() for m in found[1:]), len(data)]
    return [_MBOX_QUOTED_FROM.sub(rb"\1", data[s:e]) for s, e in zip(starts, ends, strict=True)]


def _message(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _add_message(blocks: _Blocks, message: EmailMessage, skipped: list[str], depth: int) -> None:
    subject = str(message.get("Subject", "") or "").strip() or "(no subject)"
    blocks.add(subject, level=1 + depth)
    who = [f"{name}: {message[name]}" for name in ("From", "To", "Cc", "Date") if message.get(name)]
    blocks.add("\n".join(who))
    body = message.get_body(preferencelist=("plain", "html"))
    if body is not None:
        content = _payload_text(body)
        if body.get_content_subtype() == "html":
            blocks.extend(_html_blocks(content.encode("utf-8")))
        else:
            blocks.add(content.strip())
    for part in message.iter_attachments():
        _add_attachment(blocks, part, skipped, depth)


def _payload_text(part: MIMEPart) -> str:
    try:
        return str(part.get_content())
    except (LookupError, ValueError):  # an unknown charset: decode the bytes ourselves
        raw = part.get_payload(decode=True)
        return (decode_text(raw) or "") if isinstance(raw, bytes) else ""


def _add_attachment(blocks: _Blocks, part: MIMEPart, skipped: list[str], depth: int) -> None:
    from engine.library.parsing import parse_bytes

    name = part.get_filename() or f"attachment.{part.get_content_subtype()}"
    if part.get_content_type() == "message/rfc822":
        if depth >= 1:
            skipped.append(f"{name} (mail inside mail inside mail)")
            return
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], EmailMessage):
            _add_message(blocks, inner[0], skipped, depth + 1)
        return
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes) or not payload:
        return
    if len(payload) > MAX_ATTACHMENT_BYTES:
        limit = MAX_ATTACHMENT_BYTES // (1024 * 1024)
        skipped.append(f"{name} ({len(payload) / 1048576:,.0f} MB, limit {limit} MB)")
        return
    if Path(name).suffix.lower() in (".eml", ".mbox") and depth >= 1:
        skipped.append(f"{name} (mail inside mail inside mail)")
        return
    try:
        document = parse_bytes(Path(name), payload)
    except ParseError as error:
        skipped.append(f"{name} ({error.reason})")
        return
    if not document.text.strip():
        return
    blocks.add(f"Attachment: {name}", level=2 + depth)
    blocks.add_document(document.text, document.headings, deeper=2 + depth)


def _skipped_note(skipped: list[str]) -> str | None:
    if not skipped:
        return None
    shown = "; ".join(skipped[:5]) + ("; …" if len(skipped) > 5 else "")
    return f"not read: {shown}"
