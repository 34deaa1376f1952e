"""The architecture as a test: which room of the engine may import which.

The rules (CONTRIBUTING.md, each package's docstring): the library never imports
the reader room or learning; the reader room never imports learning (learning
uses the reader, not the other way round); the shared modules at the top of
``engine/`` import no room; only the facade (``engine.engine``, the CLI and the
package's ``__init__``) composes them all; nothing in ``engine/`` imports Qt, and
in ``desktop_app/`` only the bridge imports the engine.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FACADE = {"engine", "engine.engine", "engine.cli", "engine.cli_ask", "engine.mcp_server"}
ROOMS = ("library", "reader", "learning")
# What each room may import, besides itself.
ALLOWED = {
    "shared": {"shared"},
    "library": {"shared"},
    "reader": {"shared", "library"},
    "learning": {"shared", "library", "reader"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def room(module: str) -> str:
    if module in FACADE:
        return "facade"
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in ROOMS:
        return parts[1]
    return "shared"


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (lazy imports in functions too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def engine_modules() -> list[Path]:
    return sorted((ROOT / "engine").rglob("*.py"))


def violations(modules: dict[str, Path]) -> list[str]:
    """Each import in ``modules`` (name -> file) that crosses a rule."""
    broken = []
    for name, path in modules.items():
        mine = room(name)
        if mine == "facade":
            continue
        for target in imports(path):
            if not target.startswith("engine.") or module_is_package_member(target):
                continue
            theirs = room(target)
            if theirs != mine and theirs not in ALLOWED[mine]:
                broken.append(f"{name} ({mine}) imports {target} ({theirs})")
    return broken


def test_every_room_imports_only_what_it_may() -> None:
    broken = violations({module_name(path): path for path in engine_modules()})
    assert not broken, "\n".join(broken)


def module_is_package_member(target: str) -> bool:
    """``from engine.reader import SpanReader`` names a member, not a module: the
    module part (engine.reader) is checked on its own entry."""
    return (
        not (ROOT / Path(*target.split("."))).with_suffix(".py").exists()
        and not (ROOT / Path(*target.split("."))).is_dir()
    )


def test_the_rules_catch_a_violation(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from engine.library.retrieval import Hit\n"
        "def f():\n"
        "    from engine.learning.memory import CorrectionMemory\n"
    )
    assert violations({"engine.library.sample": sample}) == [
        "engine.library.sample (library) imports engine.learning.memory (learning)"
    ]
    assert violations({"engine.learning.sample": sample}) == []  # learning may use both
    assert len(violations({"engine.reader.sample": sample})) == 1
    assert violations({"engine.engine": sample}) == []  # the facade composes everything


def test_nothing_in_engine_imports_qt() -> None:
    for path in engine_modules():
        qt = {m for m in imports(path) if m.split(".")[0] in {"PySide6", "PyQt5", "PyQt6"}}
        assert not qt, f"{module_name(path)} imports {qt}"


def test_only_the_bridge_imports_the_engine_in_the_app() -> None:
    for path in sorted((ROOT / "desktop_app").rglob("*.py")):
        if path.name == "bridge.py":
            continue
        engine = {m for m in imports(path) if m == "engine" or m.startswith("engine.")}
        assert not engine, f"{module_name(path)} imports {engine}"


def code_lines(path: Path) -> int:
    """Lines of code: docstrings, comments and blank lines not counted."""
    source = path.read_text(encoding="utf-8")
    docs: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docs.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    return sum(
        1
        for number, line in enumerate(source.splitlines(), 1)
        if line.strip() and not line.strip().startswith("#") and number not in docs
    )


def test_the_facade_stays_thin() -> None:
    # "A few hundred lines at most" (issue 14): it composes and delegates, the rooms
    # hold the work. Its public methods keep their full docstrings, so code is counted.
    lines = code_lines(ROOT / "engine" / "engine.py")
    assert lines <= 320, f"engine/engine.py has {lines} lines of code"
