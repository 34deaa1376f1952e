"""``kenning ask "question" [--json]``: the answer as it streams, then its sources.

Wire it in ``engine/cli.py``::

    p_ask = sub.add_parser("ask", parents=[common], help="answer from the indexed documents")
    p_ask.add_argument("question")
    p_ask.add_argument("--json", action="store_true", help="print JSON instead of text")
    p_ask.add_argument("--conversation", default=None, help="id that links follow-ups")
    # and dispatch "ask" to engine.cli_ask.ask_command(engine, args)
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from engine.engine import Engine
from engine.reader.answer import Answer


def ask_command(engine: Engine, args: argparse.Namespace) -> int:
    """Answer ``args.question``; stream text, or print one JSON object with ``--json``.

    Returns:
        0 when answered, 1 when the documents do not say.
    """
    as_json = bool(getattr(args, "json", False))
    conversation = getattr(args, "conversation", None)

    def stream(piece: str) -> None:
        sys.stdout.write(piece)
        sys.stdout.flush()

    answer = engine.ask(
        args.question,
        on_token=None if as_json else stream,
        conversation_id=conversation,
        within=getattr(args, "within", None),
    )
    if as_json:
        print(json.dumps(answer_json(answer), ensure_ascii=False, indent=2))
    else:
        print()
        print_evidence(answer)
        print_sources(answer)
    return 1 if answer.abstained else 0


def print_evidence(answer: Answer) -> None:
    """The quoted sentence, the answer in it marked with » «, and how sure the reader is."""
    ev = answer.evidence
    if ev is None:
        return
    if answer.abstained:
        print(f"The closest passage says: “{ev.text}”")
        return
    quoted = (
        ev.text[: ev.answer_start]
        + "»"
        + ev.text[ev.answer_start : ev.answer_end]
        + "«"
        + ev.text[ev.answer_end :]
        if ev.answer_start < ev.answer_end
        else ev.text
    )
    sure = f" ({answer.certainty_label}, {answer.certainty:.0%})" if answer.certainty else ""
    print(f"From [{ev.source + 1}]{sure}: “{quoted}”")


def print_sources(answer: Answer) -> None:
    """Numbered sources with path and character span; cited ones marked with '*'."""
    title = "Nearest passages:" if answer.abstained else "Sources:"
    print(f"\n{title}")
    for n, hit in enumerate(answer.sources):
        mark = "*" if n in answer.cited else " "
        print(f"{mark}[{n + 1}] {hit.path}  chars {hit.start}-{hit.end}")
        for c in answer.citations:
            if c.source == n:
                print(f"      cited chars {c.start}-{c.end}: {c.text!r}")
    print(f"\n(answer id {answer.answer_id})")


def answer_json(answer: Answer) -> dict[str, Any]:
    """Everything a script needs: text, abstention, citations, sources, timings."""
    return {
        "answer_id": answer.answer_id,
        "question": answer.question,
        "answer": answer.text,
        "abstained": answer.abstained,
        "citations": [
            {
                "source": c.source + 1,
                "path": str(answer.sources[c.source].path),
                "start": c.start,
                "end": c.end,
                "text": c.text,
            }
            for c in answer.citations
        ],
        "sources": [
            {
                "n": n + 1,
                "path": str(h.path),
                "start": h.start,
                "end": h.end,
                "cited": n in answer.cited,
                "similarity": h.similarity,
                "text": h.text,
            }
            for n, h in enumerate(answer.sources)
        ],
        "evidence": None
        if answer.evidence is None
        else {
            "source": answer.evidence.source + 1,
            "start": answer.evidence.start,
            "end": answer.evidence.end,
            "text": answer.evidence.text,
            "answer_start": answer.evidence.answer_start,
            "answer_end": answer.evidence.answer_end,
        },
        "certainty": answer.certainty,
        "certainty_label": answer.certainty_label,
        "timings": answer.timings,
    }
