"""Slides, sheets, OpenDocument, notebooks and mail, on real files made by their libraries."""

from __future__ import annotations

import csv
import io
import json
import mailbox
from email.message import EmailMessage
from pathlib import Path

import pytest

from engine import Engine, EngineConfig
from engine.embedding import Embedder
from engine.errors import ParseError
from engine.library import formats
from engine.library.parsing import SUPPORTED_SUFFIXES, parse_bytes, parse_file


def make_pptx(path: Path) -> Path:
    from pptx import Presentation
    from pptx.util import Inches

    deck = Presentation()
    first = deck.slides.add_slide(deck.slide_layouts[1])  # title and content
    first.shapes.title.text = "Quarterly plan"
    first.placeholders[1].text_frame.text = "Hire two engineers in March."
    first.notes_slide.notes_text_frame.text = "Mention the budget freeze."
    second = deck.slides.add_slide(deck.slide_layouts[5])  # title only
    second.shapes.title.text = "Budget"
    table = second.shapes.add_table(2, 2, Inches(1), Inches(2), Inches(4), Inches(1)).table
    for (r, c), text in {(0, 0): "Item", (0, 1): "Cost", (1, 0): "Laptops", (1, 1): "9000"}.items():
        table.cell(r, c).text = text
    deck.save(str(path))
    return path


def make_xlsx(path: Path, rows: int = 3) -> Path:
    import openpyxl

    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "Mathematicians"
    sheet.append(["Name", "Year", "Known for"])
    people = [("Ada Lovelace", 1843, "the first program"), ("Emmy Noether", 1915, "symmetry")]
    for i in range(rows - 1):
        sheet.append(list(people[i % 2]))
    other = workbook.create_sheet("Notes")
    other.append(["The Analytical Engine was never built."])
    workbook.save(path)
    return path


def make_odt(path: Path) -> Path:
    from odf.opendocument import OpenDocumentText
    from odf.text import H, List, ListItem, P

    doc = OpenDocumentText()
    doc.text.addElement(H(outlinelevel=1, text="Greenhouse"))
    doc.text.addElement(P(text="The basil needs watering every second day."))
    items = List()
    item = ListItem()
    item.addElement(P(text="Repot the lemon tree in April."))
    items.addElement(item)
    doc.text.addElement(items)
    doc.save(str(path))
    return path


PNG = "iVBORw0KGgo" * 500  # an output's base64 image: not prose


def make_ipynb(path: Path) -> Path:
    notebook = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": {"language": "python", "name": "python3"}},
        "cells": [
            {
                "cell_type": "markdown",
                "metadata": {},
                "source": ["# Loading data\n", "We read a CSV."],
            },
            {
                "cell_type": "code",
                "metadata": {},
                "execution_count": 1,
                "source": "frame = read_csv('sales.csv')",
                "outputs": [
                    {"output_type": "display_data", "data": {"image/png": "iVBORw0KGgo" * 500}}
                ],
            },
        ],
    }
    path.write_text(json.dumps(notebook), encoding="utf-8")
    return path


def make_mail(subject: str, body: str, attachment: tuple[str, bytes] | None = None) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = "Ada <ada@example.org>"
    message["To"] = "Charles <charles@example.org>"
    message["Date"] = "Mon, 1 Dec 2025 10:00:00 +0000"
    message.set_content(body)
    if attachment is not None:
        name, data = attachment
        message.add_attachment(data, maintype="text", subtype="plain", filename=name)
    return message


def test_every_new_suffix_has_a_parser() -> None:
    for suffix in (".pptx", ".xlsx", ".csv", ".tsv", ".odt", ".ipynb", ".eml", ".mbox"):
        assert suffix in SUPPORTED_SUFFIXES


def test_pptx_slides_are_pages_with_titles_tables_and_notes(tmp_path: Path) -> None:
    doc = parse_file(make_pptx(tmp_path / "plan.pptx"), max_bytes=10**8)
    assert doc.kind == "pptx" and len(doc.page_starts) == 2
    hire = doc.text.index("Hire two engineers")
    laptops = doc.text.index("Laptops | 9000")
    assert doc.page_at(hire) == 1 and doc.page_at(laptops) == 2
    assert doc.heading_path_at(laptops) == ("Slide 2: Budget",)
    assert "Notes: Mention the budget freeze." in doc.text


def test_xlsx_rows_read_as_text_under_their_sheet(tmp_path: Path) -> None:
    doc = parse_file(make_xlsx(tmp_path / "people.xlsx"), max_bytes=10**8)
    line = "Row 2: Name: Ada Lovelace; Year: 1843; Known for: the first program"
    assert line in doc.text
    assert doc.heading_path_at(doc.text.index(line)) == ("Sheet: Mathematicians",)
    never = doc.text.index("never built")
    assert doc.heading_path_at(never) == ("Sheet: Notes",)
    assert doc.note is None


def test_a_huge_sheet_is_cut_with_a_note(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats, "MAX_ROWS", 10)
    doc = parse_file(make_xlsx(tmp_path / "big.xlsx", rows=40), max_bytes=10**8)
    assert doc.text.count("Row ") == 10
    assert doc.note is not None and "first 10 rows" in doc.note


def test_a_sheet_past_the_part_limit_is_streamed_up_to_the_row_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The million-row workbook case: the worksheet's XML passes the whole-part limit
    # that guards against inflation bombs, but worksheets are streamed, so the first
    # rows are read instead of the whole file being refused.
    from engine.library import parsing

    path = make_xlsx(tmp_path / "big.xlsx", rows=2000)
    monkeypatch.setattr(parsing, "MAX_PART_BYTES", 20_000)
    monkeypatch.setattr(formats, "MAX_ROWS", 100)
    doc = parse_file(path, max_bytes=10**8)
    assert doc.text.count("Row ") == 100 and "Ada Lovelace" in doc.text
    assert doc.note is not None and "first 100 rows" in doc.note
    monkeypatch.setattr(parsing, "MAX_STREAMED_BYTES", 20_000)  # streamed parts still have one
    with pytest.raises(ParseError, match="unpacks to"):
        parse_file(path, max_bytes=10**8)


def test_blank_rows_count_toward_the_rows_looked_at(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(formats, "MAX_SCANNED_ROWS", 5)
    path = tmp_path / "sparse.csv"
    path.write_text("name,year\n" + ",\n" * 20 + "Ada,1843\n", encoding="utf-8")
    doc = parse_file(path, max_bytes=10**8)
    assert "Ada" not in doc.text
    assert doc.note is not None and "rows are indexed" in doc.note


def test_csv_delimiter_is_sniffed_and_header_names_the_cells(tmp_path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";")
    writer.writerows([["city", "country"], ["Lyon", "France"], ["Porto", "Portugal"]])
    path = tmp_path / "cities.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8")
    doc = parse_file(path, max_bytes=10**8)
    assert "Row 3: city: Porto; country: Portugal" in doc.text


def test_odt_headings_paragraphs_and_lists(tmp_path: Path) -> None:
    doc = parse_file(make_odt(tmp_path / "garden.odt"), max_bytes=10**8)
    lemon = doc.text.index("Repot the lemon tree")
    assert doc.heading_path_at(lemon) == ("Greenhouse",)
    assert "basil needs watering" in doc.text


def test_ipynb_keeps_markdown_and_code_and_drops_outputs(tmp_path: Path) -> None:
    doc = parse_file(make_ipynb(tmp_path / "analysis.ipynb"), max_bytes=10**8)
    assert "read_csv('sales.csv')" in doc.text and "We read a CSV." in doc.text
    assert "iVBOR" not in doc.text
    assert doc.heading_path_at(doc.text.index("read_csv")) == ("Loading data",)


def test_eml_headers_body_and_attachment(tmp_path: Path) -> None:
    message = make_mail("Lab results", "The samples arrive on Friday.", ("notes.txt", b"pH 7.2"))
    path = tmp_path / "results.eml"
    path.write_bytes(message.as_bytes())
    doc = parse_file(path, max_bytes=10**8)
    assert doc.heading_path_at(doc.text.index("samples arrive")) == ("Lab results",)
    assert "From: Ada <ada@example.org>" in doc.text
    assert doc.heading_path_at(doc.text.index("pH 7.2")) == ("Lab results", "Attachment: notes.txt")


def test_an_oversized_attachment_is_listed_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(formats, "MAX_ATTACHMENT_BYTES", 100)
    message = make_mail("Scan", "See the attached log.", ("big.txt", b"x" * 1000))
    doc = parse_bytes(Path("scan.eml"), message.as_bytes())
    assert "xxxx" not in doc.text and doc.note is not None and "big.txt" in doc.note


def test_mbox_messages_are_pages(tmp_path: Path) -> None:
    path = tmp_path / "inbox.mbox"
    box = mailbox.mbox(str(path))
    box.add(make_mail("Tickets", "The train leaves at 9.\nFrom the platform 4."))
    box.add(make_mail("Dinner", "Table booked for eight."))
    box.flush()
    box.close()
    doc = parse_file(path, max_bytes=10**8)
    assert len(doc.page_starts) == 2
    assert doc.page_at(doc.text.index("Table booked")) == 2
    assert "From the platform 4." in doc.text  # mbox's ">From " quoting undone


@pytest.mark.parametrize("suffix", [".pptx", ".xlsx", ".odt"])
def test_password_protected_office_files_are_refused_with_the_reason(suffix: str) -> None:
    encrypted = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\0" * 600  # an OLE container
    with pytest.raises(ParseError, match="password-protected"):
        parse_bytes(Path(f"secret{suffix}"), encrypted)


@pytest.mark.parametrize("suffix", [".pptx", ".xlsx", ".odt", ".ipynb", ".mbox"])
def test_corrupt_files_are_a_parse_error(suffix: str) -> None:
    with pytest.raises(ParseError):
        parse_bytes(Path(f"broken{suffix}"), b"PK\x03\x04 not really an archive")


def test_the_engine_indexes_and_finds_them(tmp_path: Path, embedder: Embedder) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    make_pptx(notes / "plan.pptx")
    make_xlsx(notes / "people.xlsx")
    make_odt(notes / "garden.odt")
    with Engine(tmp_path / "data", EngineConfig(torch_threads=2), embedder=embedder) as eng:
        eng.add_folder(notes)
        assert eng.wait_until_idle(300)
        assert eng.status().files == 3 and not eng.status().errors
        laptops = eng.search("how much do the laptops cost", limit=1)[0]
        assert laptops.path.name == "plan.pptx" and laptops.page == 2
        ada = eng.search("when did Ada Lovelace write the first program", limit=1)[0]
        assert ada.path.name == "people.xlsx" and "1843" in ada.text
        lemon = eng.search("lemon tree repotting", limit=1)[0]
        assert lemon.path.name == "garden.odt"
