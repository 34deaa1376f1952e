"""The ``kenning`` command: index, search, status and watch from a terminal.

With no arguments it opens the desktop window. Exit codes: 0 success, 1 an
engine error (message on stderr) or an answer that abstained, 2 bad usage, 3 a
path that is not a folder, 4 a model that cannot be loaded, 5 no window can open
(``desktop_app/platform_check.py`` says why), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from engine.config import default_data_dir, load_config
from engine.engine import Engine
from engine.errors import (
    DataDirInUseError,
    EngineError,
    FolderNotFoundError,
    ModelNotAvailableError,
)
from engine.library.read_only import LibraryReader
from engine.library.retrieval import Hit
from engine.status import Status

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_A_FOLDER, EXIT_NO_MODEL, EXIT_INTERRUPTED = (
    0,
    1,
    2,
    3,
    4,
    130,
)


def _folder_arg(text: str) -> Path:
    """A PATH argument; an empty one is a usage error (``Path('')`` is the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path is not a folder")
    return Path(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kenning",
        description="Search and ask your own documents, locally."
        " Without a command, opens the window.",
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"where the index lives (default: {default_data_dir()})",
    )
    sub = parser.add_subparsers(dest="command")
    p_index = sub.add_parser("index", parents=[common], help="index folders and wait until done")
    p_index.add_argument("paths", nargs="+", type=_folder_arg, metavar="PATH")
    p_search = sub.add_parser("search", parents=[common], help="search the indexed passages")
    p_search.add_argument("query")
    p_search.add_argument("--limit", type=int, default=10, help="most results (default 10)")
    p_search.add_argument("--mode", choices=["hybrid", "dense", "bm25"], default="hybrid")
    p_search.add_argument("--json", action="store_true", help="print JSON instead of text")
    p_search.add_argument(
        "--in",
        dest="within",
        type=_folder_arg,
        default=None,
        metavar="PATH",
        help="search only this file, or the files under this folder",
    )
    p_status = sub.add_parser("status", parents=[common], help="folders, counts, skipped files")
    p_status.add_argument("--json", action="store_true", help="print JSON instead of text")
    p_watch = sub.add_parser("watch", parents=[common], help="index folders and keep them in sync")
    p_watch.add_argument("paths", nargs="+", type=_folder_arg, metavar="PATH")
    p_ask = sub.add_parser("ask", parents=[common], help="answer from the indexed documents")
    p_ask.add_argument("question")
    p_ask.add_argument("--json", action="store_true", help="print JSON instead of text")
    p_ask.add_argument("--conversation", default=None, help="id that links follow-ups")
    p_ask.add_argument(
        "--in",
        dest="within",
        type=_folder_arg,
        default=None,
        metavar="PATH",
        help="answer from this file only, or from the files under this folder",
    )
    p_sum = sub.add_parser(
        "summarize",
        parents=[common],
        help="the main points of a file, or what a folder's files say about something",
    )
    p_sum.add_argument("path", type=_folder_arg, metavar="PATH", help="an indexed file or folder")
    p_sum.add_argument("--sentences", type=int, default=5, help="how many (default 5)")
    p_sum.add_argument("--about", default=None, help="only what it says about this")
    p_sum.add_argument("--json", action="store_true", help="print JSON instead of text")
    sub.add_parser(
        "prepare",
        help="check the bundled models load and build the per-user model cache (run by make)",
    )
    p_mcp = sub.add_parser(
        "mcp",
        parents=[common],
        help="serve search and answers to other tools (Model Context Protocol over stdio)",
    )
    p_mcp.add_argument(
        "--allow-corrections",
        action="store_true",
        help="also offer record_correction (by default clients can only read)",
    )
    p_gui = sub.add_parser("gui", parents=[common], help="open the desktop window")
    del p_gui
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``kenning`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    for stream in (sys.stdout, sys.stderr):
        # A file name that is not valid UTF-8 prints as its own bytes, not a traceback.
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="surrogateescape")
    window_flags = ("--data-dir", "--quick-ask", "--quit-after")
    if not argv or argv[0] == "gui" or argv[0].startswith(window_flags):
        from desktop_app.app import main as gui_main  # only the GUI pulls in Qt

        return int(gui_main(argv[1:] if argv and argv[0] == "gui" else argv))
    args = build_parser().parse_args(argv)
    if args.command is None:
        build_parser().print_help()
        return EXIT_USAGE
    if args.command == "prepare":
        return _prepare()
    for count in ("limit", "sentences"):
        if getattr(args, count, 1) < 1:
            print(f"kenning: --{count} must be at least 1", file=sys.stderr)
            return EXIT_USAGE
    for text in [getattr(args, "query", None), getattr(args, "question", None)]:
        if text is not None and not text.strip():
            print(f"kenning {args.command}: give some words to look for", file=sys.stderr)
            return EXIT_USAGE
    data_dir = args.data_dir or default_data_dir()
    problem = _data_dir_problem(data_dir)
    if problem:
        print(f"kenning: {problem}", file=sys.stderr)
        return EXIT_USAGE
    if args.command == "mcp":
        from engine.mcp_server import serve

        try:
            return serve(data_dir, load_config(), allow_corrections=args.allow_corrections)
        except EngineError as exc:
            print(f"kenning: {exc}", file=sys.stderr)
            return EXIT_ERROR
    try:
        with Engine(data_dir, load_config()) as engine:
            return _COMMANDS[args.command](engine, args)
    except DataDirInUseError as exc:
        if args.command not in ("search", "status"):
            print(f"kenning: {exc}", file=sys.stderr)
            return EXIT_ERROR
        # Looking is allowed beside the writer: read its saved index, change nothing.
        print(
            f"kenning: the library is open in {exc.holder}; reading it without changes.",
            file=sys.stderr,
        )
        with LibraryReader(data_dir, load_config()) as library:
            return (_search if args.command == "search" else _status)(library, args)
    except FolderNotFoundError as exc:
        print(f"kenning: {exc}", file=sys.stderr)
        return EXIT_NOT_A_FOLDER
    except ModelNotAvailableError as exc:
        print(f"kenning: {exc}", file=sys.stderr)
        return EXIT_NO_MODEL
    except EngineError as exc:
        print(f"kenning: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("kenning: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _prepare() -> int:
    """Load each bundled model once, so the first start and first answer do not.

    The generator's GGUF is dequantized into the per-user cache (the slow part,
    tens of seconds, only once per model file), the int8 encoder made there (about
    15 s); the others only prove they load.
    """
    from engine.config import default_cache_dir
    from engine.embedding import Embedder
    from engine.generation import Generator
    from engine.models import embedding_model_path
    from engine.reader import SpanReader, bundled_reader_path

    config = load_config()
    steps: list[tuple[str, Callable[[], object]]] = [
        (
            f"the embedding model ({config.encoder_precision}; int8 is made once into the cache)",
            lambda: Embedder(
                embedding_model_path(config.embedding_model),
                device="cpu",
                precision=config.encoder_precision,
            ),
        ),
        ("the reader", lambda: SpanReader.load(bundled_reader_path(), device="cpu")),
        (
            "the answer model (dequantized once into the per-user cache)",
            lambda: Generator(config.generator_model, cache_root=default_cache_dir(), device="cpu"),
        ),
    ]
    for what, load in steps:
        print(f"Preparing {what}…", flush=True)
        started = time.perf_counter()
        try:
            model = load()
        except ModelNotAvailableError as exc:
            print(f"kenning: {exc}", file=sys.stderr)
            return EXIT_NO_MODEL
        cached = " (from the cache)" if getattr(model, "from_cache", False) else ""
        print(f"  ready in {time.perf_counter() - started:.1f} s{cached}", flush=True)
    return EXIT_OK


def _data_dir_problem(data_dir: Path) -> str | None:
    """Why the data dir cannot hold an index, in words; None when it can."""
    data_dir = data_dir.expanduser()
    if data_dir.exists() and not data_dir.is_dir():
        return f"--data-dir {data_dir} is a file, not a folder: choose a folder for the index"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create the data folder {data_dir}: {exc.strerror or exc}"
    if not os.access(data_dir, os.W_OK | os.X_OK):
        return f"cannot write to the data folder {data_dir}: permission denied"
    return None


def _index(engine: Engine, args: argparse.Namespace) -> int:
    for path in args.paths:
        engine.add_folder(path)
    _wait_with_progress(engine)
    status = engine.status()
    print(f"Indexed {status.files} files, {status.chunks} passages.")
    _print_errors(status)
    return EXIT_OK


def _search(engine: Engine | LibraryReader, args: argparse.Namespace) -> int:
    if isinstance(engine, Engine):
        engine.wait_until_idle(timeout=3600)
    hits = engine.search(args.query, limit=args.limit, mode=args.mode, within=args.within)
    if args.json:
        print(json.dumps([_hit_json(h) for h in hits], ensure_ascii=False, indent=2))
        return EXIT_OK
    if not hits:
        print("No matching passages.")
    for rank, hit in enumerate(hits, start=1):
        where = f"{hit.path}:{hit.start}-{hit.end}"
        if hit.page is not None:
            where += f" (page {hit.page})"
        heading = " > ".join(hit.heading_path)
        print(f"{rank}. {where}  score {hit.score:.4f}" + (f"  [{heading}]" if heading else ""))
        print("   " + " ".join(hit.text.split())[:300])
    return EXIT_OK


def _status(engine: Engine | LibraryReader, args: argparse.Namespace) -> int:
    if isinstance(engine, Engine):
        engine.wait_until_idle(timeout=3600)
    status = engine.status()
    if args.json:
        print(json.dumps(_jsonable(asdict(status)), ensure_ascii=False, indent=2))
        return EXIT_OK
    print(f"{len(status.folders)} folders, {status.files} files, {status.chunks} passages")
    if status.backend != "local":
        print(f"Library: {status.backend}, shared")
    if status.backend_problem:
        print(f"  Not reachable now: {status.backend_problem}; changes are kept and sent later")
    for folder in status.folders:
        synced = time.strftime("%Y-%m-%d %H:%M", time.localtime(folder.synced_at or 0))
        print(
            f"  {folder.path}: {folder.files} files, {folder.chunks} passages, {folder.state}"
            + (f", synced {synced}" if folder.synced_at else "")
        )
    _print_errors(status)
    return EXIT_OK


def _watch(engine: Engine, args: argparse.Namespace) -> int:
    for path in args.paths:
        engine.add_folder(path)
    _wait_with_progress(engine)
    print("Watching for changes; press Ctrl+C to stop.", flush=True)
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        print("Stopped.")
    return EXIT_OK


def _wait_with_progress(engine: Engine) -> None:
    """Wait for indexing, printing progress to stderr when it is a terminal."""
    tty = sys.stderr.isatty()
    while not engine.wait_until_idle(timeout=0.5):
        snap = engine.status().progress
        if tty and snap is not None:
            eta = f", ETA {snap.eta_seconds:.0f}s" if snap.eta_seconds is not None else ""
            total = f"/{snap.total}" if snap.total else ""
            print(f"\r{snap.task}: {snap.done}{total}{eta}\x1b[K", end="", file=sys.stderr)
    if tty:
        print("\r\x1b[K", end="", file=sys.stderr)


def _print_errors(status: Status) -> None:
    if status.errors:
        print(f"Skipped {len(status.errors)} files:")
        for err in status.errors:
            print(f"  {err.path}: {err.reason}")


def _hit_json(hit: Hit) -> dict[str, Any]:
    return {
        "path": str(hit.path),
        "start": hit.start,
        "end": hit.end,
        "page": hit.page,
        "heading_path": list(hit.heading_path),
        "score": hit.score,
        "similarity": hit.similarity,
        "chunk_id": hit.chunk_id,
        "text": hit.text,
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _ask(engine: Engine, args: argparse.Namespace) -> int:
    from engine.cli_ask import ask_command

    engine.wait_until_idle(timeout=3600)
    return ask_command(engine, args)


def _summarize(engine: Engine, args: argparse.Namespace) -> int:
    engine.wait_until_idle(timeout=3600)
    summary = engine.summarize(args.path, sentences=args.sentences, about=args.about)
    if args.json:
        print(json.dumps(_jsonable(asdict(summary)), ensure_ascii=False, indent=2))
        return EXIT_OK
    if not summary.sentences:
        print("Nothing to summarise: no full sentences are indexed there.")
        return EXIT_ERROR
    for sentence in summary.sentences:
        where = f"{sentence.path}:{sentence.start}-{sentence.end}"
        if sentence.page is not None:
            where += f" (page {sentence.page})"
        print(f"- {sentence.text}\n    {where}")
    if summary.considered < summary.total:
        print(f"(from the first {summary.considered} of {summary.total} sentences)")
    return EXIT_OK


_COMMANDS = {
    "index": _index,
    "search": _search,
    "status": _status,
    "watch": _watch,
    "ask": _ask,
    "summarize": _summarize,
}

if __name__ == "__main__":
    sys.exit(main())
