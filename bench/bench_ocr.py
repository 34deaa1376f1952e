"""Scanned pages read by OCR: character error rate, retrieval, seconds per page.

``python -m bench.bench_ocr``. Known text (paragraphs of the SQuAD v1.1 train
subset in ``../shared/data``: Wikipedia text nobody here wrote) is rendered to
image-only pages, one style per document: several fonts and sizes, a skewed and
noisy scan, a two-column page, a PNG screenshot and a multi-page TIFF. Each
document is parsed as Kenning parses it (``parse_bytes``: PDFium renders, RapidOCR
reads) and the recognised page text is compared with the rendered text:
character error rate (Levenshtein distance over the text's length, whitespace
collapsed, by ``rapidfuzz``). Then the real engine indexes the scans, and the
SQuAD questions of their paragraphs are asked: hit@1 (the top passage is on the
right page of the right file) against the same paragraphs indexed as text files,
the ceiling OCR can reach.
"""

from __future__ import annotations

import argparse
import itertools
import random
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import machine
from bench.squad import Paragraph, load_paragraphs, split
from engine import Engine, EngineConfig
from engine.embedding import Embedder
from engine.library.parsing import parse_bytes

DPI = 200
PAGE = (int(8.5 * DPI), 11 * DPI)
MARGIN = 150
FONTS = Path("/usr/share/fonts/truetype/dejavu")


@dataclass(frozen=True)
class Style:
    name: str
    font: str
    points: float
    columns: int = 1
    skew_degrees: float = 0.0
    noise: bool = False
    suffix: str = ".pdf"


STYLES = [
    Style("sans 11 pt", "DejaVuSans.ttf", 11),
    Style("serif 12 pt", "DejaVuSerif.ttf", 12),
    Style("mono 10 pt", "DejaVuSansMono.ttf", 10),
    Style("condensed 9 pt", "DejaVuSansCondensed.ttf", 9),
    Style("serif 11 pt, skewed 2 degrees, noisy scan", "DejaVuSerif.ttf", 11,
          skew_degrees=2.0, noise=True),
    Style("sans 10 pt, two columns", "DejaVuSans.ttf", 10, columns=2),
    Style("sans 12 pt, PNG screenshot", "DejaVuSans.ttf", 12, suffix=".png"),
    Style("serif 11 pt, multi-page TIFF", "DejaVuSerif.ttf", 11, suffix=".tiff"),
]  # fmt: skip


def font(style: Style, size_px: int):
    from PIL import ImageFont

    path = FONTS / style.font
    if path.exists():
        return ImageFont.truetype(str(path), size_px)
    return ImageFont.load_default(size=size_px)


def wrap(text: str, fnt, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if fnt.getlength(trial) <= width or not line:
            line = trial
        else:
            lines.append(line)
            line = word
    return [*lines, line] if line else lines


def render_page(paragraphs: list[str], style: Style):
    """One page image holding ``paragraphs``; returns it and the text as laid out."""
    from PIL import Image, ImageDraw, ImageFilter

    image = Image.new("L", PAGE, 255)
    draw = ImageDraw.Draw(image)
    size = round(style.points * DPI / 72)
    fnt = font(style, size)
    gap = 40
    width = (PAGE[0] - 2 * MARGIN - gap * (style.columns - 1)) // style.columns
    per_column = [paragraphs[i :: style.columns] for i in range(style.columns)]
    if style.columns > 1:  # reading order: the whole left column first
        half = (len(paragraphs) + 1) // 2
        per_column = [paragraphs[:half], paragraphs[half:]]
    laid_out = []
    for c, column in enumerate(per_column):
        x, y = MARGIN + c * (width + gap), MARGIN
        for paragraph in column:
            for line in wrap(paragraph, fnt, width):
                draw.text((x, y), line, font=fnt, fill=0)
                y += int(size * 1.35)
            y += size
            laid_out.append(paragraph)
    if style.skew_degrees:
        image = image.rotate(
            style.skew_degrees, expand=False, fillcolor=255, resample=Image.BICUBIC
        )
    if style.noise:
        rng = random.Random(0)
        pixels = image.load()
        for _ in range(PAGE[0] * PAGE[1] // 200):
            pixels[rng.randrange(PAGE[0]), rng.randrange(PAGE[1])] = rng.choice((0, 120, 200))
        image = image.filter(ImageFilter.GaussianBlur(0.6))
    return image, laid_out


def normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paragraphs-per-page", type=int, default=2)
    parser.add_argument("--pages", type=int, default=2, help="pages per document")
    args = parser.parse_args(argv)
    from rapidfuzz.distance import Levenshtein

    paragraphs = [p for p in split(load_paragraphs())["test"] if len(p.context) < 900]
    need = len(STYLES) * args.pages * args.paragraphs_per_page
    chosen = paragraphs[:need]
    root = Path(tempfile.mkdtemp(prefix="kenning-bench-ocr-"))
    scans, texts = root / "scans", root / "texts"
    scans.mkdir()
    texts.mkdir()
    # paragraph id -> (scan, its page, the same page as a text file, the paragraph)
    pages_of: dict[str, tuple[Path, int, Path, Paragraph]] = {}
    documents = []
    k = 0
    for d, style in enumerate(STYLES):
        images, truth = [], []
        path = scans / f"scan_{d}{style.suffix}"
        for page in range(1 if style.suffix == ".png" else args.pages):  # a screenshot: 1 page
            group = chosen[k : k + args.paragraphs_per_page]
            k += args.paragraphs_per_page
            image, laid_out = render_page([p.context for p in group], style)
            images.append(image)
            truth.append(" ".join(laid_out))
            text_file = texts / f"text_{d}_{page + 1}.md"
            text_file.write_text("\n\n".join(p.context for p in group), encoding="utf-8")
            for p in group:
                pages_of[p.id] = (path, page + 1, text_file, p)
        images[0].save(path, save_all=len(images) > 1, append_images=images[1:], resolution=DPI)
        documents.append((style, path, truth))

    print(f"Machine: {machine()}\n")
    print("| document | pages | CER | seconds per page |")
    print("| --- | --- | --- | --- |")
    all_pages, all_errors, all_chars, all_seconds = 0, 0, 0, 0.0
    for style, path, truth in documents:
        started = time.perf_counter()
        doc = parse_bytes(path, path.read_bytes())
        seconds = time.perf_counter() - started
        starts = [*doc.page_starts, len(doc.text)] if doc.page_starts else [0, len(doc.text)]
        recognised = [doc.text[a:b] for a, b in itertools.pairwise(starts)]
        errors = sum(
            Levenshtein.distance(normalise(r), normalise(t))
            for r, t in zip(recognised, truth, strict=False)
        )
        chars = sum(len(normalise(t)) for t in truth)
        all_pages += len(truth)
        all_errors += errors
        all_chars += chars
        all_seconds += seconds
        print(
            f"| {style.name} | {len(truth)} | {errors / chars:.3f} | {seconds / len(truth):.2f} |"
        )
    print(
        f"| **all** | {all_pages} | **{all_errors / all_chars:.3f}** | "
        f"**{all_seconds / all_pages:.2f}** |\n"
    )
    embedder = Embedder(None, threads=2)
    for label, folder in (("scans (OCR)", scans), ("the same text as text files", texts)):
        with Engine(
            root / f"data-{folder.name}", EngineConfig(torch_threads=2), embedder=embedder
        ) as eng:
            eng.add_folder(folder)
            if not eng.wait_until_idle(timeout=3600):
                raise SystemExit("indexing did not finish")
            hits = asked = 0
            for path, page, text_file, paragraph in pages_of.values():
                for _, question, _, _ in paragraph.qas:
                    top = eng.search(question, limit=1)
                    asked += 1
                    if not top:
                        continue
                    if folder is scans:
                        hits += top[0].path.name == path.name and top[0].page == page
                    else:
                        hits += top[0].path.name == text_file.name
            print(f"hit@1, {label}: {hits / asked:.3f} ({asked} questions)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
