"""The chunker: exact offsets, never over the model's limit, stable under edits."""

from __future__ import annotations

import itertools
import random

import pytest

from engine.library.chunking import split_document
from engine.library.parsing import Heading, ParsedDocument

WORDS = [
    "river",
    "mountain",
    "library",
    "quantum",
    "violet",
    "harbor",
    "engine",
    "meadow",
    "copper",
    "lantern",
]


def _paragraphs(n: int, seed: int = 0, lo: int = 40, hi: int = 160) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi))) + "." for _ in range(n)]


def _doc(paragraphs: list[str], title: str = "Doc") -> ParsedDocument:
    text = f"# {title}\n\n" + "\n\n".join(paragraphs) + "\n"
    return ParsedDocument(text=text, kind="markdown", headings=(Heading(0, 1, title),))


def test_offsets_slice_the_text_and_cover_every_word(embedder) -> None:
    doc = _doc(_paragraphs(30))
    chunks = split_document(doc, embedder.tokenizer)
    assert chunks
    covered = set()
    for c in chunks:
        assert doc.text[c.start : c.end] == c.text
        covered.update(range(c.start, c.end))
    assert all(i in covered or ch.isspace() for i, ch in enumerate(doc.text))


def test_no_chunk_exceeds_the_embedder_limit(embedder) -> None:
    # One giant paragraph without sentence ends, and one with very long sentences.
    doc = _doc([" ".join(["supercalifragilistic"] * 2000), "word " * 900 + "."])
    chunks = split_document(doc, embedder.tokenizer, token_limit=embedder.max_tokens)
    assert len(chunks) > 10
    for c in chunks:
        real = len(embedder.tokenizer(c.embed_text)["input_ids"])  # with [CLS]/[SEP]
        assert real <= embedder.max_tokens + 2, c.tokens


def test_paragraphs_are_not_split_when_they_fit(embedder) -> None:
    paragraphs = _paragraphs(12, lo=60, hi=120)
    doc = _doc(paragraphs)
    chunks = split_document(doc, embedder.tokenizer)
    texts = "\n".join(c.text for c in chunks)
    for p in paragraphs:
        assert p in texts  # each paragraph lies whole inside one chunk


def test_headings_give_each_chunk_its_path(embedder) -> None:
    text = "# Trees\n\nOaks grow slowly.\n\n## Pines\n\nPines keep their needles in winter.\n"
    doc = ParsedDocument(
        text=text,
        kind="markdown",
        headings=(Heading(0, 1, "Trees"), Heading(text.index("## Pines"), 2, "Pines")),
    )
    chunks = split_document(doc, embedder.tokenizer, min_tokens=4)
    assert [c.heading_path for c in chunks] == [("Trees",), ("Trees", "Pines")]
    # A heading always opens a new chunk, and its path is given to the embedder.
    assert chunks[1].text.startswith("## Pines")
    assert chunks[1].embed_text.startswith("Trees")


def test_long_paragraph_chunks_overlap_by_a_sentence(embedder) -> None:
    sentences = [f"Sentence number {i} talks about {WORDS[i % 10]} things." for i in range(120)]
    doc = _doc([" ".join(sentences)])
    chunks = split_document(doc, embedder.tokenizer, max_tokens=100, overlap_tokens=24)
    assert len(chunks) >= 3
    for a, b in itertools.pairwise(chunks):
        assert b.start < a.end  # the tail of a is repeated at the head of b
        assert doc.text[b.start : a.end].strip().endswith(".")


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_editing_one_paragraph_reembeds_at_most_three_chunks(embedder, seed: int) -> None:
    paragraphs = _paragraphs(110, seed=seed, lo=10, hi=150)
    before = split_document(_doc(paragraphs), embedder.tokenizer)
    rng = random.Random(seed)
    i = rng.randrange(len(paragraphs))
    edited = list(paragraphs)
    edited[i] = edited[i][:-1] + " with a few more words appended at the end."
    after = split_document(_doc(edited), embedder.tokenizer)
    old = {c.content_hash for c in before}
    assert len(before) >= 60
    assert sum(c.content_hash not in old for c in after) <= 3


def test_empty_and_whitespace_documents_have_no_chunks(embedder) -> None:
    assert split_document(ParsedDocument(text="", kind="text"), embedder.tokenizer) == []
    assert split_document(ParsedDocument(text=" \n\n\t", kind="text"), embedder.tokenizer) == []


def test_a_heading_followed_by_a_subheading_is_not_a_chunk_alone(embedder) -> None:
    text = "# Appointments\n\n## Dentist\n\nTuesday at 3pm with Dr. Molar, bring the forms.\n"
    doc = ParsedDocument(
        text=text,
        kind="markdown",
        headings=(Heading(0, 1, "Appointments"), Heading(text.index("## D"), 2, "Dentist")),
    )
    chunks = split_document(doc, embedder.tokenizer, min_tokens=4)
    assert [c.text for c in chunks] == [text.strip()]
