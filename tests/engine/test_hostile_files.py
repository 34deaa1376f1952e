"""Files that used to stall or exhaust the indexer: each is read within bounds or skipped
with its reason, and the good files beside it are indexed (real files, real parsers)."""

from __future__ import annotations

import io
import os
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

from engine.errors import ParseError
from engine.library import parsing
from engine.library.parsing import cap_text, parse_bytes, parse_file, read_regular_file
from engine.library.scanning import IgnoreRules, scan_folder
from tests.engine.documents import make_docx, make_epub

fifo_only = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")


@fifo_only
def test_a_named_pipe_is_refused_without_blocking(tmp_path: Path) -> None:
    pipe = tmp_path / "note.md"
    os.mkfifo(pipe)
    result: list[BaseException] = []

    def read() -> None:
        try:
            read_regular_file(pipe, max_bytes=1000)
        except BaseException as exc:
            result.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(5.0)
    assert not reader.is_alive(), "opening a named pipe blocked"
    assert isinstance(result[0], ParseError)
    assert result[0].reason == "not a regular file (named pipe)"


@fifo_only
def test_scan_lists_special_files_with_their_reason(tmp_path: Path) -> None:
    (tmp_path / "good.md").write_text("# Good\n", encoding="utf-8")
    os.mkfifo(tmp_path / "pipe.txt")
    if sys.platform.startswith("linux"):
        (tmp_path / "null.txt").symlink_to("/dev/null")
    report = scan_folder(tmp_path, IgnoreRules(tmp_path))
    assert [f.path.name for f in report.files] == ["good.md"]
    problems = {p.name: reason for p, reason in report.problems}
    assert problems["pipe.txt"] == "not a regular file (named pipe)"
    if sys.platform.startswith("linux"):
        assert problems["null.txt"] == "not a regular file (character device)"


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_byte_order_mark_is_text(encoding: str) -> None:
    text = "Meeting notes\r\nThe budget review is on Friday, café at 10.\r\n"
    document = parse_bytes(Path("notes.txt"), text.encode(encoding))
    assert document.text == text
    assert parse_bytes(Path("notes"), text.encode(encoding)).text == text  # sniffed too


def test_binary_with_nul_bytes_is_still_binary() -> None:
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
    with pytest.raises(ParseError, match="binary"):
        parse_bytes(Path("image.txt"), png)


def test_cap_text_cuts_at_a_break_and_says_so() -> None:
    document = parse_bytes(Path("log.md"), ("# Log\n\n" + "word " * 2000).encode())
    kept, note = cap_text(document, 1000)
    assert len(kept.text) <= 1000 and kept.text.endswith("word")
    assert kept.headings == document.headings
    assert note is not None and "limit per file" in note
    assert cap_text(document, 10**9) == (document, None)


def _big_docx(paragraphs: int) -> bytes:
    """A DOCX whose document.xml is written as a stream: as python-docx would, in bulk."""
    body = (
        '<w:p><w:pPr><w:pStyle w:val="Heading1"/></w:pPr><w:r><w:t>Chapter</w:t></w:r></w:p>'
        + "<w:p><w:r><w:t>Plain paragraph of ordinary words, again and again.</w:t></w:r></w:p>"
        * paragraphs
    )
    xml = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
        f"<w:body>{body}</w:body></w:document>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", xml)
    return out.getvalue()


def test_a_docx_too_big_to_unpack_is_streamed_in_bounded_text(monkeypatch) -> None:
    monkeypatch.setattr(parsing, "MAX_PART_BYTES", 1_000_000)
    monkeypatch.setattr(parsing, "MAX_STREAMED_CHARS", 200_000)
    data = _big_docx(40_000)  # ~3.6 MB of XML in a ~30 KB file
    assert len(data) < 100_000
    started = time.perf_counter()
    document = parse_bytes(Path("huge.docx"), data)
    assert time.perf_counter() - started < 10
    assert document.kind == "docx"
    assert document.text.startswith("Chapter\n\nPlain paragraph of ordinary words")
    assert 200_000 < len(document.text) < 210_000  # stopped just past the bound
    assert [(h.level, h.title) for h in document.headings] == [(1, "Chapter")]


def test_streamed_docx_reads_like_python_docx(tmp_path: Path, monkeypatch) -> None:
    path = make_docx(tmp_path / "report.docx")
    whole = parse_file(path, max_bytes=10_000_000)
    monkeypatch.setattr(parsing, "MAX_PART_BYTES", 10)  # every part is "too big"
    streamed = parse_file(path, max_bytes=10_000_000)
    assert streamed.text == whole.text
    assert streamed.headings == whole.headings


def test_an_epub_that_unpacks_too_big_is_refused_before_inflating(tmp_path: Path) -> None:
    out = io.BytesIO()
    with (
        zipfile.ZipFile(make_epub(tmp_path / "book.epub")) as good,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as bomb,
    ):
        for info in good.infolist():
            bomb.writestr(info, good.read(info))
        with bomb.open("OEBPS/padding.xhtml", "w") as member:  # 100 MB of spaces
            for _ in range(100):
                member.write(b" " * 1_048_576)
    assert len(out.getvalue()) < 1_000_000
    with pytest.raises(ParseError, match=r"EPUB part OEBPS/padding.xhtml unpacks to 100 MB"):
        parse_bytes(Path("bomb.epub"), out.getvalue())


@fifo_only
def test_engine_indexes_the_good_files_beside_hostile_ones(tmp_path: Path, embedder) -> None:
    """A named pipe, a one-line log over the text cap, UTF-16 without BOM and good notes
    in one watched folder: the good ones are found, each other one is listed with why."""
    from engine import Engine, EngineConfig

    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "dentist.md").write_text("The dentist appointment is Tuesday at 3pm.\n")
    os.mkfifo(folder / "pipe.md")
    (folder / "minified.json").write_text(
        '{"code":"zebracorn"' + ',"k":"value"' * 200_000 + "}", encoding="utf-8"
    )  # 2.6 MB on one line
    (folder / "windows.txt").write_bytes("Quarterly hedgehog census results.\n".encode("utf-16-le"))
    config = EngineConfig(max_text_chars=100_000)
    started = time.perf_counter()
    with Engine(tmp_path / "data", config, embedder=embedder) as engine:
        engine.add_folder(folder)
        assert engine.wait_until_idle(timeout=300)
        reasons = {Path(e.path).name: e.reason for e in engine.status().errors}
        assert reasons["pipe.md"] == "not a regular file (named pipe)"
        assert "limit per file" in reasons["minified.json"]
        assert "dentist" in engine.search("dentist appointment", limit=1)[0].text
        assert engine.search("hedgehog census", limit=1)[0].path.name == "windows.txt"
        assert engine.search("zebracorn", limit=1, mode="bm25")[0].path.name == "minified.json"
        closing = time.perf_counter()
    assert time.perf_counter() - closing < 10
    assert time.perf_counter() - started < 240


def test_one_file_embeds_at_most_its_word_piece_budget(tmp_path: Path, embedder) -> None:
    """Embedding time is linear in word pieces, so the per-file budget is in word
    pieces: dense text (here a one-line JSON) stops at it, with the reason listed."""
    from engine import Engine, EngineConfig

    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "dump.json").write_text(
        '{"code":"zebracorn"' + ',"k":"value"' * 20_000 + "}", encoding="utf-8"
    )
    config = EngineConfig(max_file_tokens=3_000)
    with Engine(tmp_path / "data", config, embedder=embedder) as engine:
        engine.add_folder(folder)
        assert engine.wait_until_idle(timeout=300)
        (error,) = engine.status().errors
        assert "only its first" in error.reason and "limit per file" in error.reason
        stored = engine.store.counts()[1]
        assert 1 <= stored <= 3_000 // 100, f"{stored} passages for a 3,000 word-piece budget"
        assert engine.search("zebracorn", limit=1, mode="bm25")[0].path.name == "dump.json"


posix_bytes_names = pytest.mark.skipif(
    sys.platform in ("win32", "darwin"), reason="needs a file system that stores any bytes"
)


@posix_bytes_names
def test_file_names_that_are_not_utf8_are_stored_and_found(tmp_path: Path, embedder) -> None:
    """``bad\\xff.md`` aborted the whole folder's sync (0 of 26 files stored), at scan
    time and through the watcher alike."""
    from engine import Engine

    folder = tmp_path / "notes"
    folder.mkdir()
    root = os.fsencode(folder)
    with open(root + b"/bad\xff.md", "wb") as f:
        f.write(b"The zanzibar shipment arrives on Monday.\n")
    for i in range(5):
        (folder / f"good{i}.md").write_text(f"Good note {i} about orchard apples.\n")
    with Engine(tmp_path / "data", embedder=embedder) as engine:
        engine.add_folder(folder)
        assert engine.wait_until_idle(timeout=120)
        assert engine.status().files == 6
        hit = engine.search("zanzibar shipment", limit=1)[0]
        assert os.fsencode(hit.path) == root + b"/bad\xff.md"  # the exact bytes
        # Through the watcher: a new odd directory and a good file in one burst.
        os.mkdir(root + b"/dir\xfe")
        with open(root + b"/dir\xfe/inner.md", "wb") as f:
            f.write(b"The quokka festival is in spring.\n")
        (folder / "later.md").write_text("The narwhal lecture moved to Thursday.\n")
        assert engine.wait_until_idle(timeout=120)
        assert engine.search("quokka festival", limit=1)[0].path.name == "inner.md"
        assert engine.search("narwhal lecture", limit=1)[0].path.name == "later.md"
        # Renaming the odd directory keeps its file, and deleting it forgets it.
        os.rename(root + b"/dir\xfe", root + b"/dir\xfd")
        assert engine.wait_until_idle(timeout=120)
        moved = engine.search("quokka festival", limit=1)[0].path
        assert os.fsencode(moved) == root + b"/dir\xfd/inner.md"
        os.remove(root + b"/bad\xff.md")
        assert engine.wait_until_idle(timeout=120)
        assert all("zanzibar" not in h.text for h in engine.search("zanzibar shipment"))
    with Engine(tmp_path / "data", embedder=embedder) as engine:  # and after a restart
        assert engine.wait_until_idle(timeout=120)
        assert engine.status().files == 7


def test_a_truncated_pdf_gives_its_complete_pages(tmp_path: Path) -> None:
    """A download cut short lost the whole file before; its complete pages are read."""
    from tests.engine.documents import make_pdf

    data = make_pdf([["Page one about apples."], ["Page two about rivers."], ["Page three."]])
    document = parse_bytes(Path("cut.pdf"), data[: int(len(data) * 0.6)])
    assert document.text == "Page one about apples.\n\nPage two about rivers."
    assert document.page_starts == (0, 24)
    assert document.note is not None and "cut short" in document.note
    assert parse_bytes(Path("whole.pdf"), data).note is None
    with pytest.raises(ParseError, match="truncated PDF"):
        parse_bytes(Path("stub.pdf"), data[: int(len(data) * 0.2)])
