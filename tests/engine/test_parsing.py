"""Specification of engine.library.parsing: text, offsets, pages and headings per file type."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import ParseError
from engine.library.parsing import (
    SUPPORTED_SUFFIXES,
    Heading,
    ParsedDocument,
    looks_binary,
    parse_bytes,
    parse_file,
)
from tests.engine.documents import make_docx, make_epub, make_pdf


def reason_of(path: Path, data: bytes) -> str:
    with pytest.raises(ParseError) as caught:
        parse_bytes(path, data)
    return caught.value.reason


# --- plain text -------------------------------------------------------------------------------

MARKDOWN = (
    "---\ntitle: front matter\n---\n"
    "# Guide #\r\n"
    "Intro text.\n\n"
    "Setup\n=====\n\n"
    "```python\n# a comment, not a heading\n```\n\n"
    "## Install\n"
    "Run it.\n\n"
    "Usage\n-----\n"
    "Done.\n"
)


def test_markdown_text_is_the_decoded_file_and_heading_offsets_are_exact() -> None:
    data = MARKDOWN.encode()
    document = parse_bytes(Path("guide.md"), data)

    assert document.text == data.decode()
    assert document.kind == "markdown"
    assert [(h.level, h.title) for h in document.headings] == [
        (1, "Guide"),
        (1, "Setup"),
        (2, "Install"),
        (2, "Usage"),
    ]
    for heading, line in zip(
        document.headings, ["# Guide #", "Setup\n===", "## Install", "Usage\n---"], strict=True
    ):
        assert document.text[heading.start :].startswith(line)
    install = document.text.index("Run it.")
    assert document.heading_path_at(install) == ("Setup", "Install")
    assert document.page_at(install) is None


def test_rst_levels_follow_order_of_adornment_styles() -> None:
    text = (
        "=====\nTitle\n=====\n\nIntro.\n\nSection\n-------\n\nBody.\n\nSub\n~~~\n\nOther\n-----\n"
    )
    document = parse_bytes(Path("doc.rst"), text.encode())

    assert document.kind == "rst"
    assert [(h.start, h.level, h.title) for h in document.headings] == [
        (0, 1, "Title"),
        (text.index("Section"), 2, "Section"),
        (text.index("Sub\n"), 3, "Sub"),
        (text.index("Other"), 2, "Other"),
    ]


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1"])
def test_single_byte_western_text_is_decoded(encoding: str) -> None:
    text = "Café, résumé, naïve façade, déjà vu, Grüße aus München.\n"
    if encoding == "cp1252":
        text += "“Quoted” — dashed.\n"
    document = parse_bytes(Path("notes.txt"), text.encode(encoding))
    assert document.text == text
    assert document.kind == "text"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-8-sig"])
def test_text_with_bom_is_decoded_and_bom_dropped(encoding: str) -> None:
    text = "Zürich ünd Ωmega\r\nline two\n"
    data = text.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data
    assert parse_bytes(Path("notes.txt"), data).text == text


def test_code_keeps_every_character() -> None:
    source = "def f():\r\n\treturn 1  \n\n\n"
    document = parse_bytes(Path("mod.py"), source.encode())
    assert document == ParsedDocument(source, "code")


def test_unknown_or_missing_suffix_is_sniffed_as_text() -> None:
    data = "plain wörds, no suffix\n".encode()
    assert parse_bytes(Path("notes.weird"), data) == ParsedDocument(data.decode(), "text")
    assert parse_bytes(Path("README"), data).kind == "text"
    assert parse_bytes(Path("download"), make_pdf([["Sniffed."]])).kind == "pdf"
    assert parse_bytes(Path("saved"), b"<!DOCTYPE html><h1>Hi</h1>").headings[0].title == "Hi"


def test_binary_content_is_rejected() -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
    assert looks_binary(png)
    assert not looks_binary(b"just text\n\twith a tab\x1b[0m\n")
    assert reason_of(Path("image.png"), png) == "binary file"
    assert reason_of(Path("fake.txt"), png) == "binary file"


# --- rich formats ----------------------------------------------------------------------------


def test_html_drops_scripts_and_records_headings_at_their_offsets() -> None:
    html = b"""<!DOCTYPE html><html><head><title>Page title</title>
    <style>p { color: red }</style></head><body>
    <nav><a href="/">Home</a></nav><script>alert("x")</script>
    <h1>Main   <em>topic</em></h1><p>First
       paragraph.</p><h2>Details</h2><ul><li>one</li><li>two</li></ul>
    <table><tr><td>cell</td></tr></table></body></html>"""
    document = parse_bytes(Path("page.html"), html)

    assert document.kind == "html"
    assert document.text == "Main topic\n\nFirst paragraph.\n\nDetails\n\none\n\ntwo\n\ncell"
    assert document.headings == (
        Heading(0, 1, "Main topic"),
        Heading(document.text.index("Details"), 2, "Details"),
    )
    assert "alert" not in document.text
    assert "Home" not in document.text
    assert document.heading_path_at(document.text.index("two")) == ("Main topic", "Details")


def test_html_title_is_a_heading_only_without_h1() -> None:
    document = parse_bytes(Path("p.htm"), b"<title>Notes</title><h2>Part</h2><p>x</p>")
    assert document.text.startswith("Notes\n\nPart")
    assert [h.title for h in document.headings] == ["Notes", "Part"]


def test_pdf_pages_are_separated_and_numbered() -> None:
    data = make_pdf([["First page text.", "More on one."], ["Second page text."]])
    document = parse_bytes(Path("doc.pdf"), data)

    assert document.kind == "pdf"
    assert document.page_starts[0] == 0 and len(document.page_starts) == 2
    assert document.page_at(document.text.index("More on one")) == 1
    assert document.page_at(document.text.index("Second page")) == 2
    assert "\n\nSecond page text." in document.text


def test_pdf_without_text_encrypted_or_corrupt_is_rejected() -> None:
    import pypdf

    # A blank page: no text layer, and OCR (tests/engine/test_ocr.py) finds nothing on it.
    assert reason_of(Path("scan.pdf"), make_pdf([[]])).startswith("no extractable text")

    writer = pypdf.PdfWriter(clone_from=io.BytesIO(make_pdf([["secret"]])))
    writer.encrypt(user_password="pw", algorithm="RC4-128")
    encrypted = io.BytesIO()
    writer.write(encrypted)
    assert reason_of(Path("locked.pdf"), encrypted.getvalue()) == "encrypted PDF"

    truncated = make_pdf([["Hello"]])[:40]
    assert reason_of(Path("bad.pdf"), truncated).startswith("corrupt or unreadable PDF")


def test_docx_paragraphs_tables_and_heading_path(tmp_path: Path) -> None:
    document = parse_file(make_docx(tmp_path / "report.docx"), max_bytes=10_000_000)

    assert document.kind == "docx"
    assert document.text.split("\n\n") == [
        "Annual Report",
        "Finances",
        "Revenue grew steadily.",
        "Costs",
        "Costs fell.",
        "Rent",
        "1200",
        "Outlook",
        "Bright.",
    ]
    assert [(h.level, h.title) for h in document.headings] == [
        (1, "Annual Report"),
        (1, "Finances"),
        (2, "Costs"),
        (1, "Outlook"),
    ]
    for heading in document.headings:
        assert document.text[heading.start :].startswith(heading.title)
    assert document.heading_path_at(document.text.index("1200")) == ("Finances", "Costs")


def test_epub_chapters_in_spine_order_with_headings(tmp_path: Path) -> None:
    document = parse_file(make_epub(tmp_path / "book.epub"), max_bytes=10_000_000)

    assert document.kind == "epub"
    assert document.text.index("Call me Ishmael.") < document.text.index("The whale.")
    assert [h.title for h in document.headings if h.level == 1] == ["Chapter 1", "Chapter 2"]
    assert document.heading_path_at(document.text.index("The whale.")) == ("Chapter 2",)


@pytest.mark.parametrize("suffix", [".docx", ".epub", ".pdf"])
def test_corrupt_rich_files_raise_only_parse_error(suffix: str) -> None:
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("word/document.xml", "<not-closed")
        zipped.writestr("mimetype", "application/epub+zip")
    for data in (b"", b"garbage \x00\xff", archive.getvalue(), b"%PDF-1.4\n1 0 obj <<"):
        with pytest.raises(ParseError):
            parse_bytes(Path("broken" + suffix), data)


# --- files on disk ---------------------------------------------------------------------------


def test_empty_file_gives_empty_text(tmp_path: Path) -> None:
    empty = tmp_path / "empty.md"
    empty.write_bytes(b"")
    assert parse_file(empty, max_bytes=100) == ParsedDocument("", "markdown")


def test_file_over_limit_is_rejected_before_parsing(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * 2_000_000)
    with pytest.raises(ParseError, match="file is larger than") as caught:
        parse_file(big, max_bytes=1_048_576)
    assert caught.value.reason == "file is larger than 1 MB"


def test_missing_file_and_directory_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ParseError) as missing:
        parse_file(tmp_path / "nope.txt", max_bytes=100)
    assert missing.value.reason == "file not found"
    with pytest.raises(ParseError) as directory:
        parse_file(tmp_path, max_bytes=100)
    assert directory.value.reason == "not a regular file (directory)"


def test_parse_file_matches_parse_bytes(tmp_path: Path) -> None:
    path = tmp_path / "guide.markdown"
    path.write_bytes(MARKDOWN.encode())
    assert parse_file(path, max_bytes=10_000) == parse_bytes(path, MARKDOWN.encode())


# --- robustness ------------------------------------------------------------------------------

PREFIXES = [b"", b"%PDF-1.4\n", b"PK\x03\x04", b"<html><h1>", b"\xff\xfe", b"# T\n"]


@settings(max_examples=150, deadline=None)
@given(
    suffix=st.sampled_from(sorted(SUPPORTED_SUFFIXES | {"", ".bin"})),
    prefix=st.sampled_from(PREFIXES),
    body=st.binary(max_size=1024),
)
def test_arbitrary_bytes_raise_nothing_but_parse_error(
    suffix: str, prefix: bytes, body: bytes
) -> None:
    try:
        document = parse_bytes(Path("file" + suffix), prefix + body)
    except ParseError:
        return
    for heading in document.headings:
        assert 0 <= heading.start <= len(document.text)


# Any text without control characters (those sniff as binary) or a leading BOM character.
PRINTABLE = st.characters(exclude_categories=("Cc", "Cs"), exclude_characters="\ufeff")


@given(text=st.text(PRINTABLE | st.sampled_from("\n\r\t #=-`~"), max_size=300))
def test_markdown_text_round_trips_any_unicode(text: str) -> None:
    document = parse_bytes(Path("x.md"), text.encode())
    assert document.text == text
    starts = [heading.start for heading in document.headings]
    assert starts == sorted(starts)
