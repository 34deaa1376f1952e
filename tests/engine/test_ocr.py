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
