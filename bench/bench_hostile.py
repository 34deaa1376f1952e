"""Hostile and huge files: each one indexed or refused within bounds, with peak memory.

Every case is a folder holding the hostile file and one ordinary note, indexed by
a fresh ``kenning index`` process (real engine, bundled embedder); reported: the
wall time, the child's peak RSS (``wait4``), whether the ordinary note was
indexed, and what ``status`` says about the hostile file.

Goals (issue 13): any single file at most 1 GB RSS and 60 s, or skipped with its
reason; one slow file never stops the rest of the folder.

    python -m bench.bench_hostile [--only NAME]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_W = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def one_line_json(folder: Path) -> Path:
    """50 MB of minified JSON on one line."""
    path = folder / "export.json"
    with open(path, "w", encoding="utf-8") as f:
        f.write('{"items":[')
        f.write(
            ",".join(f'{{"id":{i},"name":"item{i}","tags":["a","b"]}}' for i in range(1_200_000))
        )
        f.write("]}")
    return path


def _docx(path: Path, write_body: Callable[[io.RawIOBase], None]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w", force_zip64=True) as xml:
            xml.write(f'<?xml version="1.0"?><w:document xmlns:w="{_W}"><w:body>'.encode())
            write_body(xml)
            xml.write(b"</w:body></w:document>")
    return path


def docx_xml_bomb(folder: Path) -> Path:
    """A DOCX whose document.xml inflates to 1 GB (one paragraph of spaces)."""

    def body(xml: io.RawIOBase) -> None:
        xml.write(b"<w:p><w:r><w:t>")
        block = b" " * (1 << 20)
        for _ in range(1024):
            xml.write(block)
        xml.write(b"</w:t></w:r></w:p>")

    return _docx(folder / "bomb.docx", body)


def docx_300mb_paragraphs(folder: Path) -> Path:
    """300 MB of ordinary paragraphs compressed into a small DOCX."""

    def body(xml: io.RawIOBase) -> None:
        para = b"<w:p><w:r><w:t>An ordinary paragraph of a very long report.</w:t></w:r></w:p>"
        chunk = para * 10_000
        for _ in range(300 * (1 << 20) // len(chunk)):
            xml.write(chunk)

    return _docx(folder / "long.docx", body)


def fifo(folder: Path) -> Path:
    path = folder / "pipe.md"
    os.mkfifo(path)
    return path


def bad_name(folder: Path) -> Path:
    path = Path(os.fsdecode(os.fsencode(folder) + b"/bad\xff.md"))
    path.write_text("The zanzibar shipment arrives on Monday.\n")
    return path


def utf16_no_bom(folder: Path) -> Path:
    path = folder / "windows.txt"
    path.write_bytes("Quarterly hedgehog census results.\r\n".encode("utf-16-le") * 50)
    return path


def deck_10000_slides(folder: Path) -> Path:
    """A PPTX of 10,000 slides, each a title and a line of text (python-pptx)."""
    from pptx import Presentation

    deck = Presentation()
    layout = deck.slide_layouts[1]
    for i in range(10_000):
        slide = deck.slides.add_slide(layout)
        slide.shapes.title.text = f"Slide title {i}"
        slide.placeholders[1].text_frame.text = f"Point number {i} of the long deck."
    path = folder / "deck.pptx"
    deck.save(str(path))
    return path


def sheet_million_rows(folder: Path) -> Path:
    """An XLSX of 1,000,000 rows of three columns (openpyxl, write-only)."""
    import openpyxl

    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet("Data")
    sheet.append(["id", "name", "amount"])
    for i in range(1_000_000):
        sheet.append([i, f"customer {i}", i * 0.5])
    path = folder / "ledger.xlsx"
    workbook.save(path)
    return path


def csv_million_rows(folder: Path) -> Path:
    """A CSV of 1,000,000 rows."""
    path = folder / "ledger.csv"
    with open(path, "w", encoding="utf-8") as f:
        f.write("id,name,amount\n")
        f.writelines(f"{i},customer {i},{i * 0.5}\n" for i in range(1_000_000))
    return path


def mbox_5gb(folder: Path) -> Path:
    """A 5 GB mbox (sparse: a first message, then holes)."""
    path = folder / "archive.mbox"
    with open(path, "wb") as f:
        f.write(b"From ada@example.org Mon Dec  1 10:00:00 2025\nSubject: hi\n\nhello\n")
        f.truncate(5 * 1024**3)
    return path


def password_xlsx(folder: Path) -> Path:
    """A password-protected XLSX: Office encrypts it into an OLE container."""
    path = folder / "salaries.xlsx"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + os.urandom(64 * 1024))
    return path


CASES: dict[str, Callable[[Path], Path]] = {
    "50 MB JSON on one line": one_line_json,
    "DOCX: XML inflating to 1 GB": docx_xml_bomb,
    "DOCX: 300 MB of paragraphs": docx_300mb_paragraphs,
    "named pipe": fifo,
    "file name not UTF-8": bad_name,
    "UTF-16 without BOM": utf16_no_bom,
    "PPTX: 10,000 slides": deck_10000_slides,
    "XLSX: 1,000,000 rows": sheet_million_rows,
    "CSV: 1,000,000 rows": csv_million_rows,
    "mbox: 5 GB": mbox_5gb,
    "XLSX: password-protected": password_xlsx,
}


def run_case(name: str, make: Callable[[Path], Path]) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="kenning-hostile-") as tmp:
        folder = Path(tmp) / "notes"
        folder.mkdir()
        (folder / "ordinary.md").write_text("The dentist appointment is on Tuesday.\n")
        hostile = make(folder)
        size = hostile.stat().st_size if hostile.is_file() else 0
        data = Path(tmp) / "data"
        env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "index", str(folder), "--data-dir", str(data)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _, code, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        status = subprocess.run(
            [sys.executable, "-m", "engine.cli", "status", "--json", "--data-dir", str(data)],
            env=env, capture_output=True, text=True, check=False, timeout=300,
        )  # fmt: skip
        info = json.loads(status.stdout) if status.returncode == 0 else {}
        reasons = [e["reason"] for e in info.get("errors", []) if Path(e["path"]).name != "x"]
        return {
            "case": name,
            "file_MB": round(size / 2**20, 1),
            "exit": os.waitstatus_to_exitcode(code),
            "seconds": round(seconds, 1),
            "peak_rss_MB": round(usage.ru_maxrss / 1024),
            "files_indexed": info.get("files"),
            "said": reasons[0] if reasons else "",
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=None, help="run the cases whose name contains this")
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} CPUs, load {load:.2f}; {time.strftime('%Y-%m-%d')}")
    print("| case | file MB | seconds | peak RSS MB | files indexed | said |")
    print("|---|---|---|---|---|---|")
    for name, make in CASES.items():
        if args.only and args.only not in name:
            continue
        r = run_case(name, make)
        print(
            f"| {r['case']} | {r['file_MB']} | {r['seconds']} | {r['peak_rss_MB']} | "
            f"{r['files_indexed']} | {r['said']} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
