"""Scanned PDFs and images are read by the real OCR (RapidOCR's bundled models).

The pages are rendered here with Pillow's own font, so the text is known; the
recogniser, PDFium and the engine are the real ones.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest

from engine.errors import ParseError
from engine.library import ocr
from engine.library.indexing import IndexStats
from engine.library.parsing import parse_bytes

pytestmark = pytest.mark.skipif(not ocr.available(), reason="OCR (rapidocr-onnxruntime) missing")

PAGE = (1200, 800)


def page_image(lines: list[str], size: int = 40):
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("L", PAGE, 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=size)
    for n, line in enumerate(lines):
        draw.text((60, 60 + n * int(size * 1.6)), line, font=font, fill=0)
    return image


def image_bytes(image, kind: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, kind, **options)
    return out.getvalue()


def words(text: str) -> set[str]:
    return {w.strip(".,").lower() for w in text.split()}


def test_an_image_of_text_is_read_in_reading_order() -> None:
    picture = page_image(["The lighthouse keeper", "logged seventeen storms", "in March."])
    doc = parse_bytes(Path("scan.png"), image_bytes(picture, "PNG"))
    assert doc.kind == "image"
    assert {"lighthouse", "keeper", "seventeen", "storms", "march"} <= words(doc.text)
    assert doc.text.index("lighthouse") < doc.text.index("storms") < doc.text.index("March")


def test_a_scanned_pdf_keeps_its_pages_and_is_found_on_the_right_one(
    tmp_path: Path, embedder
) -> None:
    from engine import Engine

    first = page_image(["Minutes of the garden committee", "Tomatoes were planted early."])
    second = page_image(["The treasurer reported", "a surplus of forty crowns."])
    folder = tmp_path / "notes"
    folder.mkdir()
    scan = folder / "scan.pdf"
    scan.write_bytes(
        image_bytes(first, "PDF", save_all=True, append_images=[second], resolution=100)
    )
    doc = parse_bytes(scan, scan.read_bytes())
    assert doc.kind == "pdf" and len(doc.page_starts) == 2
    assert "treasurer" in doc.text[doc.page_starts[1] :].lower()
    assert "tomatoes" in doc.text[: doc.page_starts[1]].lower()
    with Engine(tmp_path / "data", embedder=embedder) as engine:
        engine.add_folder(folder)
        assert engine.wait_until_idle(timeout=300)
        (hit,) = engine.search("surplus reported by the treasurer", limit=1)
        assert hit.path == scan and hit.page == 2
        assert "forty" in hit.text.lower()


def test_a_multi_page_tiff_is_one_document_of_pages() -> None:
    pages = [page_image(["Chapter one begins"]), page_image(["Chapter two follows"])]
    data = image_bytes(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    doc = parse_bytes(Path("book.tiff"), data)
    assert len(doc.page_starts) == 2
    assert "two" in doc.text[doc.page_starts[1] :].lower()


def test_an_image_without_text_is_skipped_with_its_reason() -> None:
    from PIL import Image

    blank = Image.new("RGB", (640, 480), (90, 140, 200))
    with pytest.raises(ParseError, match="no text found in the image"):
        parse_bytes(Path("sky.jpg"), image_bytes(blank, "JPEG"))


def test_a_decompression_bomb_is_refused_before_it_is_decoded() -> None:
    # A PNG header claiming 100,000 x 100,000 pixels: 40 GB once decoded.
    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")
    with pytest.raises(ParseError, match=r"megapixels|too large"):
        parse_bytes(Path("bomb.png"), bomb)


def test_a_corrupt_image_is_skipped_with_its_reason() -> None:
    with pytest.raises(ParseError, match="binary file"):
        parse_bytes(Path("broken.png"), b"\x89PNG\r\n\x1a\nthis is not a picture")
    truncated = image_bytes(page_image(["cut short"]), "PNG")[:2000]
    with pytest.raises(ParseError, match=r"not a readable image|no text found"):
        parse_bytes(Path("cut.png"), truncated)


def test_without_ocr_a_scan_says_what_is_missing(monkeypatch) -> None:
    monkeypatch.setattr(ocr, "available", lambda: False)
    scan = image_bytes(page_image(["Invisible without OCR"]), "PDF", resolution=100)
    with pytest.raises(ParseError, match="OCR is not installed"):
        parse_bytes(Path("scan.pdf"), scan)
    with pytest.raises(ParseError, match="OCR is not installed"):
        parse_bytes(Path("scan.png"), image_bytes(page_image(["x"]), "PNG"))


def test_ocr_of_one_file_stops_at_its_time_limit_and_says_so(monkeypatch) -> None:
    # One scan must not hold the only writer for minutes: past the limit the rest
    # of its pages wait, named in the note (at least one page is always read).
    monkeypatch.setattr(ocr, "OCR_SECONDS", 0.0)
    pages = [page_image(["First page words"]), page_image(["Second page words"])]
    scan = image_bytes(pages[0], "PDF", save_all=True, append_images=pages[1:], resolution=100)
    doc = parse_bytes(Path("long.pdf"), scan)
    assert "first" in doc.text.lower() and "second" not in doc.text.lower()
    assert doc.note is not None and "only the first 1 of 2 scanned pages" in doc.note


def _three_page_scan(folder: Path) -> Path:
    pages = [
        page_image(["Minutes of the garden committee", "Tomatoes were planted early."]),
        page_image(["The treasurer reported", "a surplus of forty crowns."]),
        page_image(["The beekeeper announced", "seven new hives by the orchard."]),
    ]
    scan = folder / "minutes.pdf"
    scan.write_bytes(
        image_bytes(pages[0], "PDF", save_all=True, append_images=pages[1:], resolution=100)
    )
    return scan


def test_a_long_scan_is_read_a_pass_at_a_time_and_resumes_after_a_restart(
    tmp_path: Path, embedder, monkeypatch
) -> None:
    """OCR of one file stops after its time in a pass (here one page); the pages read
    are kept, and later passes, in this run or the next, go on from there."""
    from engine import Engine
    from engine.library.library import Library

    monkeypatch.setattr(ocr, "OCR_SECONDS", 0.0)  # one page a pass
    folder = tmp_path / "notes"
    folder.mkdir()
    scan = _three_page_scan(folder)
    read: list[int] = []
    recognise = ocr.recognise
    monkeypatch.setattr(ocr, "recognise", lambda image: read.append(1) or recognise(image))

    # First run: the background passes are held back, so only the first page is read.
    with monkeypatch.context() as held:
        held.setattr(Library, "_continue_ocr_later", lambda self: None)
        with Engine(tmp_path / "data", embedder=embedder) as engine:
            engine.add_folder(folder)
            assert engine.wait_until_idle(timeout=300)
            assert len(read) == 1
            (hit,) = engine.search("tomatoes planted by the garden committee", limit=1)
            assert hit.path == scan and hit.page == 1
            assert not engine.search("beekeeper hives", limit=3, mode="bm25")
            (note,) = [e for e in engine.status().errors if e.path == scan]
            assert "OCR has read 1 of its 3 scanned pages so far" in note.reason
            assert [p.path for p in engine.library.ocr_pages.pending()] == [scan]

    # Next start: the passes go on with pages 2 and 3 only, and the note goes.
    with Engine(tmp_path / "data", embedder=embedder) as engine:
        assert engine.wait_until_idle(timeout=300)
        assert len(read) == 3  # page 1 was recalled, not read again
        (hit,) = engine.search("the beekeeper announced new hives", limit=1)
        assert hit.path == scan and hit.page == 3
        (hit,) = engine.search("surplus reported by the treasurer", limit=1)
        assert hit.page == 2
        assert [e for e in engine.status().errors if e.path == scan] == []
        assert engine.library.ocr_pages.pending() == []
        # Re-indexing the unchanged scan (a chunk-size change) reads no page again.
        engine.library._indexer().index_path(
            engine.store.get_folder(folder.resolve()).id, scan, IndexStats(), again=True
        )
        assert len(read) == 3


def test_the_page_cache_survives_damage_moves_and_forgets_what_is_gone(tmp_path: Path) -> None:
    from engine.library.ocr_pages import OcrPages

    path = tmp_path / "ocr-pages.sqlite3"
    pages = OcrPages(path)
    pages.remember("doc-a", 0, "first page", None)
    pages.remember("doc-a", 1, "", "RuntimeError: broken page")
    pages.remember("doc-b", 0, "other", None)
    pages.mark_pending(tmp_path / "old" / "a.pdf", 1, "doc-a", done=2, total=9)
    pages.move(tmp_path / "old", tmp_path / "new", 2)
    (pending,) = pages.pending()
    assert (pending.path, pending.folder_id, pending.done, pending.total) == (
        tmp_path / "new" / "a.pdf",
        2,
        2,
        9,
    )
    assert pages.recall("doc-a") == {0: ("first page", None), 1: ("", "RuntimeError: broken page")}
    assert pages.prune({"doc-a"}) == 1 and pages.recall("doc-b") == {}
    pages.close()
    assert OcrPages(path).recall("doc-a")[0] == ("first page", None)  # kept across opens
    path.write_bytes(b"this is not a database" * 100)
    fresh = OcrPages(path)  # a damaged cache is moved aside, never fatal
    assert fresh.recall("doc-a") == {} and fresh.pending() == []
    assert list(tmp_path.glob("ocr-pages.sqlite3.damaged-*"))
