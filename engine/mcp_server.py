"""``kenning mcp``: the library as a Model Context Protocol server over stdio.

Other tools (a desktop MCP client, an editor's assistant) call Kenning's search
and answers through the official ``mcp`` SDK. Tools: ``search``, ``ask``,
``list_folders``, and ``record_correction`` only when the server was started
with ``--allow-corrections``: by default a client can read the library but not
change what Kenning has learned.

The server shares the data dir safely with a running window: when the window
holds it (:class:`~engine.errors.DataDirInUseError`), the server reads the
window's saved index beside it (:class:`~engine.library.read_only.LibraryReader`)
and answers with the reader alone (no correction memory, nothing written), and
it says so in every answer; ``record_correction`` is then refused with the reason.

Nothing but MCP messages may reach stdout: logging goes to stderr.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.config import EngineConfig
from engine.engine import Engine
from engine.errors import DataDirInUseError, EngineError
from engine.library.read_only import LibraryReader
from engine.library.retrieval import Hit
from engine.reader import SpanReader, bundled_reader_path
from engine.reader.answer import Answer
from engine.reader.span_answers import read_answer

log = logging.getLogger(__name__)

MAX_LIMIT = 50  # passages a client may ask for at once: more is a dump, not a search
READ_ONLY_NOTE = (
    "The Kenning window has this library open, so this server reads it without changes: "
    "answers use the reader alone (not your corrections), and corrections are refused."
)


class Backend:
    """What the tools call: the engine when the data dir is free, a reader beside it if not.

    Opened on the first tool call (loading the models takes seconds), once.
    """

    def __init__(self, data_dir: Path, config: EngineConfig) -> None:
        self.data_dir = data_dir
        self.config = config
        self._lock = threading.Lock()
        self._engine: Engine | None = None
        self._reader: LibraryReader | None = None
        self._span_reader: SpanReader | None = None
        self.holder: str | None = None  # who holds the data dir, when read-only

    def open(self) -> None:
        with self._lock:
            if self._engine is not None or self._reader is not None:
                return
            try:
                self._engine = Engine(self.data_dir, self.config)
            except DataDirInUseError as exc:
                self.holder = exc.holder
                log.warning("%s; reading the library without changes", exc)
                self._reader = LibraryReader(self.data_dir, self.config)

    @property
    def read_only(self) -> bool:
        self.open()
        return self._engine is None

    def search(self, query: str, limit: int, within: str | None = None) -> list[Hit]:
        self.open()
        if self._engine is not None:
            return self._engine.search(query, limit, within=within)
        assert self._reader is not None
        return self._reader.search(query, limit, within=within)

    def ask(self, question: str, within: str | None = None) -> Answer:
        self.open()
        if self._engine is not None:
            return self._engine.ask(question, within=within)
        assert self._reader is not None
        if self._span_reader is None:
            path = self.config.reader_model or bundled_reader_path()
            self._span_reader = SpanReader.load(Path(path).expanduser())
        hits = self._reader.search(question, self.config.answer_passages, within=within)
        return read_answer(
            self._span_reader, question, hits, threshold=self.config.reader_threshold
        )

    def folders(self) -> list[dict[str, Any]]:
        self.open()
        status = self._engine.status() if self._engine is not None else None
        if status is None:
            assert self._reader is not None
            status = self._reader.status()
        return [
            {
                "path": str(f.path),
                "files": f.files,
                "passages": f.chunks,
                "state": f.state,
                "skipped_files": len(f.errors),
            }
            for f in status.folders
        ]

    def record_correction(self, question: str, answer: str, answer_id: str | None) -> int:
        self.open()
        if self._engine is None:
            raise EngineError(
                f"The library is open in {self.holder}: record the correction there, "
                "or close it and call this again."
            )
        return self._engine.record_correction(question, answer, answer_id=answer_id).id

    def close(self) -> None:
        with self._lock:
            if self._engine is not None:
                self._engine.close()
            if self._reader is not None:
                self._reader.close()


def hit_record(hit: Hit) -> dict[str, Any]:
    """A passage as a client sees it: where it is, how it scored, its text."""
    return {
        "path": str(hit.path),
        "page": hit.page,
        "heading": " > ".join(hit.heading_path) if hit.heading_path else None,
        "start": hit.start,
        "end": hit.end,
        "score": round(float(hit.score), 4),
        "text": hit.text,
    }


def answer_record(answer: Answer, note: str | None) -> dict[str, Any]:
    """An answer as a client sees it: the text, whether it abstained, the quoted evidence."""
    evidence = answer.evidence
    quoted = None
    if evidence is not None:
        source = answer.sources[evidence.source]
        quoted = {
            "path": str(source.path),
            "page": source.page,
            "start": evidence.start,
            "end": evidence.end,
            "sentence": evidence.text,
            "answer_in_sentence": [evidence.answer_start, evidence.answer_end],
        }
    record: dict[str, Any] = {
        "answer": answer.text,
        "abstained": answer.abstained,
        "certainty": answer.certainty_label or None,
        "from_your_correction": answer.correction is not None,
        "evidence": quoted,
        "citations": [
            {
                "path": str(answer.sources[c.source].path),
                "start": c.start,
                "end": c.end,
                "text": c.text,
            }
            for c in answer.citations
        ],
        "answer_id": answer.answer_id,
    }
    if note:
        record["note"] = note
    return record


def build_server(library: Backend, *, allow_corrections: bool = False) -> Any:
    """The MCP server with Kenning's tools registered on ``library``.

    Raises:
        EngineError: the ``mcp`` package is not installed (with the command that installs it).
    """
    try:
        from mcp.server.mcpserver import MCPServer
        from mcp.server.mcpserver.exceptions import ToolError
    except ImportError as exc:
        raise EngineError(
            "kenning mcp needs the MCP SDK: pip install 'mcp>=2.3' (it is a dependency of "
            "Kenning; this install lacks it)"
        ) from exc

    server = MCPServer(
        "kenning",
        instructions=(
            "Search and ask the person's own documents, indexed locally by Kenning. "
            "Answers quote the sentence they came from; cite its path."
        ),
    )

    def clearly(call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Kenning's own errors reach the client as their message (an anticipated
        ToolError), not as the SDK's bare "Error executing tool"."""
        try:
            return call()
        except (EngineError, ValueError, KeyError) as exc:
            raise ToolError(str(exc).strip("'\"")) from exc

    @server.tool()
    def search(query: str, limit: int = 10, within: str | None = None) -> dict[str, Any]:
        """The passages of the person's documents that best match ``query``, best first;
        ``within`` (a file or folder path) searches only there."""
        if not query.strip():
            raise ToolError("give some words to look for")
        limit = max(1, min(limit, MAX_LIMIT))
        return clearly(lambda: {"passages": [hit_record(h) for h in library.search(query, limit)]})

    @server.tool()
    def ask(question: str, within: str | None = None) -> dict[str, Any]:
        """Answer from the person's documents, quoting the sentence the answer came from,
        or say the documents do not say (``abstained``); ``within`` (a file or folder
        path) answers from there only."""
        if not question.strip():
            raise ToolError("ask a question")
        return clearly(
            lambda: answer_record(
                library.ask(question, within), READ_ONLY_NOTE if library.read_only else None
            )
        )

    @server.tool()
    def list_folders() -> dict[str, Any]:
        """The folders Kenning indexes, with their files, passages and state."""
        return clearly(lambda: {"folders": library.folders(), "read_only": library.read_only})

    if allow_corrections:

        @server.tool()
        def record_correction(
            question: str, answer: str, answer_id: str | None = None
        ) -> dict[str, Any]:
            """Teach Kenning the right answer to ``question``; later answers use it at once.
            ``answer_id`` is the id of the answer being corrected, if any."""
            if not question.strip() or not answer.strip():
                raise ToolError("give the question and the right answer")
            return clearly(
                lambda: {"correction_id": library.record_correction(question, answer, answer_id)}
            )

    return server


def serve(
    data_dir: Path,
    config: EngineConfig,
    *,
    allow_corrections: bool = False,
    run: Callable[[Any], None] | None = None,
) -> int:
    """Run the stdio server until the client closes it; 0 on a clean end."""
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    library = Backend(data_dir, config)
    server = build_server(library, allow_corrections=allow_corrections)
    try:
        (run or (lambda s: s.run("stdio")))(server)
    finally:
        library.close()
    return 0
