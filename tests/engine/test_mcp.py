"""``kenning mcp``: a real stdio session with the MCP SDK's own client.

The server is the real ``kenning`` CLI in a child process, on a library indexed
by a real engine with the bundled models; the client is ``mcp.Client``.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from engine import Engine, EngineConfig
from engine.embedding import Embedder

pytest.importorskip("mcp")

from mcp import Client, StdioServerParameters

ROOT = Path(__file__).resolve().parents[2]
NOTES = {
    "dentist.md": "# Appointments\n\nThe dentist appointment is on Tuesday at 3pm, Dr. Molar.\n",
    "garden.md": "# Garden\n\nThe tomatoes are planted along the south fence.\n",
}


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Path:
    root = tmp_path_factory.mktemp("mcp")
    notes = root / "notes"
    notes.mkdir()
    for name, text in NOTES.items():
        (notes / name).write_text(text, encoding="utf-8")
    with Engine(root / "data", EngineConfig(torch_threads=2), embedder=embedder) as eng:
        eng.add_folder(notes)
        assert eng.wait_until_idle(300)
    return root


def server(data_dir: Path, *flags: str) -> StdioServerParameters:
    # Default settings: a settings file of the person running the tests is not read.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XDG_CONFIG_HOME": str(data_dir / "config")}
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "engine.cli", "mcp", "--data-dir", str(data_dir), *flags],
        env=env,
        cwd=str(ROOT),
    )


def structured(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    if result.structured_content is not None:
        return dict(result.structured_content)
    return dict(json.loads(result.content[0].text))


def session(params: StdioServerParameters, calls: Any) -> Any:
    async def main() -> Any:
        async with Client(params, read_timeout_seconds=300) as client:
            return await calls(client)

    return asyncio.run(main())


def test_search_ask_and_folders_over_stdio_read_only_by_default(library: Path) -> None:
    async def calls(client: Any) -> Any:
        tools = {t.name for t in (await client.list_tools()).tools}
        searched = structured(await client.call_tool("search", {"query": "dentist", "limit": 3}))
        question = {"question": "What time is the dentist appointment?"}
        asked = structured(await client.call_tool("ask", question))
        folders = structured(await client.call_tool("list_folders", {}))
        refused = await client.call_tool("search", {"query": "   "})
        return tools, searched, asked, folders, refused

    tools, searched, asked, folders, refused = session(server(library / "data"), calls)
    assert tools == {"search", "ask", "list_folders"}  # no record_correction by default
    assert Path(searched["passages"][0]["path"]).name == "dentist.md"
    assert "Tuesday" in searched["passages"][0]["text"]
    assert not asked["abstained"] and "3pm" in asked["answer"]
    assert asked["evidence"]["path"].endswith("dentist.md")
    assert "Tuesday" in asked["evidence"]["sentence"]
    assert folders["read_only"] is False
    assert [f["files"] for f in folders["folders"]] == [2]
    assert refused.is_error  # a blank query is a clear error, not an empty result


def test_corrections_only_with_the_flag_and_they_take_effect(library: Path) -> None:
    question = "Which doctor does the dentist appointment see?"

    async def calls(client: Any) -> Any:
        tools = {t.name for t in (await client.list_tools()).tools}
        saved = structured(
            await client.call_tool(
                "record_correction", {"question": question, "answer": "Dr. Plaque"}
            )
        )
        asked = structured(await client.call_tool("ask", {"question": question}))
        return tools, saved, asked

    tools, saved, asked = session(server(library / "data", "--allow-corrections"), calls)
    assert "record_correction" in tools
    assert saved["correction_id"] >= 1
    assert asked["answer"] == "Dr. Plaque" and asked["from_your_correction"]
    with Engine(library / "data", EngineConfig(torch_threads=2)) as eng:  # it was saved
        assert [c.answer for c in eng.corrections()][-1] == "Dr. Plaque"
        eng.forget_correction(saved["correction_id"])


def test_beside_a_running_window_it_reads_without_changes(
    library: Path, embedder: Embedder
) -> None:
    async def calls(client: Any) -> Any:
        searched = structured(await client.call_tool("search", {"query": "tomatoes"}))
        asked = structured(await client.call_tool("ask", {"question": "Where are the tomatoes?"}))
        refused = await client.call_tool(
            "record_correction", {"question": "Where are the tomatoes?", "answer": "the porch"}
        )
        folders = structured(await client.call_tool("list_folders", {}))
        return searched, asked, refused, folders

    # The engine held here stands for the window: it holds the data dir's lock.
    with Engine(library / "data", EngineConfig(torch_threads=2), embedder=embedder) as eng:
        assert eng.wait_until_idle(60)
        searched, asked, refused, folders = session(
            server(library / "data", "--allow-corrections"), calls
        )
        assert not eng.corrections() or all(c.answer != "the porch" for c in eng.corrections())
    assert Path(searched["passages"][0]["path"]).name == "garden.md"
    assert "south fence" in asked["answer"] and "reader alone" in asked["note"]
    assert refused.is_error and "open in" in refused.content[0].text
    assert folders["read_only"] is True
