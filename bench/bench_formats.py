"""Indexing throughput per file format: ``python -m bench.bench_formats``.

The same text, 120 paragraphs of the SQuAD v1.1 train subset (Wikipedia), is
written as files of each format by that format's own library (python-docx,
python-pptx, openpyxl, odfpy, EbookLib; notebooks, mail, CSV and HTML by the
standard library), 4 paragraphs a file. Each folder is indexed by the real
engine in this process, with the same loaded embedder; reported: files and
passages a second, and the time against Markdown's (the baseline: plain text,
no parser), so what each parser costs shows as a ratio. A scanned PDF's OCR is
measured in ``bench_ocr``.
"""

from __future__ import annotations

import argparse
import csv
import json
import mailbox
import tempfile
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

from bench.common import machine
from bench.squad import load_paragraphs
from engine import Engine, EngineConfig
from engine.embedding import Embedder

PER_FILE = 4


def write_md(path: Path, title: str, paras: list[str]) -> Path:
    path = path.with_suffix(".md")
    path.write_text(f"# {title}\n\n" + "\n\n".join(paras) + "\n", encoding="utf-8")
    return path


def write_html(path: Path, title: str, paras: list[str]) -> Path:
    import html

    body = "".join(f"<p>{html.escape(p)}</p>" for p in paras)
    path = path.with_suffix(".html")
    path.write_text(f"<html><body><h1>{html.escape(title)}</h1>{body}</body></html>", "utf-8")
    return path


def write_docx(path: Path, title: str, paras: list[str]) -> Path:
    import docx

    doc = docx.Document()
    doc.add_heading(title, level=1)
    for p in paras:
        doc.add_paragraph(p)
    path = path.with_suffix(".docx")
    doc.save(str(path))
    return path


def write_pptx(path: Path, title: str, paras: list[str]) -> Path:
    from pptx import Presentation

    deck = Presentation()
    for p in paras:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text_frame.text = p
    path = path.with_suffix(".pptx")
    deck.save(str(path))
    return path


def write_xlsx(path: Path, title: str, paras: list[str]) -> Path:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Notes"
    sheet.append(["Title", "Text"])
    for p in paras:
        sheet.append([title, p])
    path = path.with_suffix(".xlsx")
    book.save(path)
    return path


def write_csv(path: Path, title: str, paras: list[str]) -> Path:
    path = path.with_suffix(".csv")
    with path.open("w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["title", "text"])
        for p in paras:
            out.writerow([title, p])
    return path


def write_odt(path: Path, title: str, paras: list[str]) -> Path:
    from odf.opendocument import OpenDocumentText
    from odf.text import H, P

    doc = OpenDocumentText()
    doc.text.addElement(H(outlinelevel=1, text=title))
    for p in paras:
        doc.text.addElement(P(text=p))
    path = path.with_suffix(".odt")
    doc.save(str(path))
    return path


def write_ipynb(path: Path, title: str, paras: list[str]) -> Path:
    cells = [{"cell_type": "markdown", "metadata": {}, "source": [f"# {title}"]}]
    cells += [{"cell_type": "markdown", "metadata": {}, "source": [p]} for p in paras]
    notebook = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = path.with_suffix(".ipynb")
    path.write_text(json.dumps(notebook), encoding="utf-8")
    return path


def write_eml(path: Path, title: str, paras: list[str]) -> Path:
    msg = EmailMessage()
    msg["Subject"], msg["From"], msg["To"] = title, "a@example.org", "b@example.org"
    msg.set_content("\n\n".join(paras))
    path = path.with_suffix(".eml")
    path.write_bytes(bytes(msg))
    return path


def write_mbox(path: Path, title: str, paras: list[str]) -> Path:
    path = path.with_suffix(".mbox")
    box = mailbox.mbox(str(path))
    for p in paras:
        msg = EmailMessage()
        msg["Subject"], msg["From"] = title, "a@example.org"
        msg.set_content(p)
        box.add(msg)
    box.flush()
    box.close()
    return path


def write_epub(path: Path, title: str, paras: list[str]) -> Path:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier(path.stem)
    book.set_title(title)
    chapter = epub.EpubHtml(title=title, file_name="c1.xhtml")
    chapter.content = f"<h1>{title}</h1>" + "".join(f"<p>{p}</p>" for p in paras)
    book.add_item(chapter)
    book.spine = [chapter]
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    path = path.with_suffix(".epub")
    epub.write_epub(str(path), book)
    return path


WRITERS: dict[str, Callable[[Path, str, list[str]], Path]] = {
    "Markdown (baseline)": write_md,
    "HTML": write_html,
    "DOCX": write_docx,
    "EPUB": write_epub,
    "PPTX": write_pptx,
    "XLSX": write_xlsx,
    "CSV": write_csv,
    "ODT": write_odt,
    "Jupyter notebook": write_ipynb,
    "e-mail (.eml)": write_eml,
    "mailbox (.mbox)": write_mbox,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paragraphs", type=int, default=120)
    args = parser.parse_args(argv)
    paragraphs = load_paragraphs()[: args.paragraphs]
    root = Path(tempfile.mkdtemp(prefix="kenning-bench-formats-"))
    embedder = Embedder(None, threads=2)
    embedder.embed(["warm-up"])
    print(f"Machine: {machine()}; {len(paragraphs)} paragraphs, {PER_FILE} a file\n")
    print("| format | files | passages | seconds | files/s | passages/s | time vs Markdown |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    baseline = None
    for name, write in WRITERS.items():
        folder = root / name.split()[0].strip("(").lower()
        folder.mkdir()
        for n in range(0, len(paragraphs), PER_FILE):
            group = paragraphs[n : n + PER_FILE]
            write(
                folder / f"doc{n:04d}", f"Article {n // PER_FILE + 1}", [p.context for p in group]
            )
        with Engine(
            root / f"data-{folder.name}", EngineConfig(torch_threads=2), embedder=embedder
        ) as eng:
            started = time.perf_counter()
            eng.add_folder(folder)
            if not eng.wait_until_idle(timeout=3600):
                raise SystemExit("indexing did not finish")
            seconds = time.perf_counter() - started
            status = eng.status()
            if status.errors:
                print(f"  ({name}: {len(status.errors)} skipped: {status.errors[0].reason})")
        baseline = baseline or seconds
        print(
            f"| {name} | {status.files} | {status.chunks} | {seconds:.1f} | "
            f"{status.files / seconds:.1f} | {status.chunks / seconds:.1f} | "
            f"{seconds / baseline:.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
