"""Which files of a folder Kenning reads: a recursive walk with ignore rules.

Defaults skip what no one wants cited (VCS folders, dependency trees, caches,
hidden and editor temp files); a ``.kenningignore`` file in a folder adds
gitignore-style patterns, matched by ``pathspec`` exactly as git would.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pathspec

from engine.library.parsing import file_type

IGNORE_FILE = ".kenningignore"

DEFAULT_IGNORED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        "__pycache__",
        ".venv",
        "venv",
        ".tox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".idea",
        ".vscode",
        "site-packages",
        ".cache",
        ".Trash",
    }
)
# Editors' save droppings: written and renamed away within a second.
_TEMP_SUFFIXES = (
    ".swp",
    ".swo",
    ".swx",
    ".tmp",
    ".temp",
    ".bak",
    ".part",
    ".crdownload",
    "~",
    ".kate-swp",
    "___jb_tmp___",  # JetBrains safe write: new content, then renamed over the file
    "___jb_old___",  # ... and the old file, moved aside and deleted
)
_TEMP_PREFIXES = ("~$", ".~lock", ".#", "#")
_TEMP_NAMES = frozenset({"4913", ".DS_Store", "Thumbs.db", "desktop.ini", IGNORE_FILE})


# Folders that hold the system, not a person's documents: indexing one walks hundreds of
# thousands of binaries (``add_folder('/')`` began on 246,000 files, /proc included).
_SYSTEM_DIRS = frozenset(
    Path(p)
    for p in [
        *"/bin /boot /dev /etc /lib /lib32 /lib64 /libx32 /proc /sbin /snap /sys /usr".split(),
        *"/System /Library /Applications /cores".split(),  # macOS
        *("C:/Windows", "C:/Program Files", "C:/Program Files (x86)", "C:/ProgramData"),
    ]
)


def refused_folder(folder: Path) -> str | None:
    """Why ``folder`` (resolved) must not be indexed whole, or None when it may.

    The file system's root and the system's own directories are refused; a home
    folder is allowed, since hidden folders (``.cache``, ``.local``) and dependency
    trees are skipped anyway (see :data:`DEFAULT_IGNORED_DIRS`).
    """
    if folder == Path(folder.anchor):
        return (
            f"{folder} is the whole disk: choose the folders that hold your documents "
            "(for example ~/Documents)"
        )
    if folder in _SYSTEM_DIRS or any(parent in _SYSTEM_DIRS for parent in folder.parents):
        return f"{folder} holds system files, not documents: choose a folder of your own"
    return None


def is_temp_name(name: str) -> bool:
    """True for names that editors and office suites use for transient files."""
    return (
        name in _TEMP_NAMES
        or name.startswith(_TEMP_PREFIXES)
        or name.endswith(_TEMP_SUFFIXES)
        or name.startswith(".")
    )


@dataclass
class IgnoreRules:
    """Decides whether a path under ``root`` is skipped."""

    root: Path
    extra_patterns: Sequence[str] = ()
    _spec: pathspec.PathSpec[Any] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.reload()

    def reload(self) -> None:
        """Re-read ``.kenningignore`` (after it changed on disk)."""
        lines = list(self.extra_patterns)
        with contextlib.suppress(OSError, UnicodeDecodeError):
            lines += (self.root / IGNORE_FILE).read_text(encoding="utf-8").splitlines()
        self._spec = pathspec.PathSpec.from_lines("gitwildmatch", lines)

    def ignores(self, path: Path, *, is_dir: bool = False) -> bool:
        """True if ``path`` (inside root) or any of its parents is ignored."""
        try:
            rel = path.relative_to(self.root)
        except ValueError:
            return True
        parts = rel.parts
        if not parts:  # the root itself
            return bool(self._spec.match_file(rel.as_posix() + ("/" if is_dir else "")))
        *parents, name = parts
        if any(part in DEFAULT_IGNORED_DIRS or part.startswith(".") for part in parents):
            return True
        return self.ignores_entry("".join(f"{part}/" for part in parents), name, is_dir=is_dir)

    def ignores_entry(self, rel_dir: str, name: str, *, is_dir: bool = False) -> bool:
        """:meth:`ignores` for ``name`` in a directory the walk already kept.

        Its parents passed when the walk entered them, so only the name and the
        patterns are left to check, on strings: a scan of 20k files spent most of
        its time building relative ``Path`` objects.

        Args:
            rel_dir: The directory relative to root, "" or ending in "/".
        """
        if is_dir:
            if name in DEFAULT_IGNORED_DIRS or name.startswith("."):
                return True
        elif is_temp_name(name):
            return True
        if not self._spec.patterns:
            return False
        return bool(self._spec.match_file(rel_dir + name + ("/" if is_dir else "")))


@dataclass(frozen=True)
class ScannedFile:
    path: Path
    size: int
    mtime_ns: int


@dataclass
class ScanReport:
    """Files found, plus the directories that could not be read and why."""

    files: list[ScannedFile] = field(default_factory=list)
    problems: list[tuple[Path, str]] = field(default_factory=list)


def scan_folder(root: Path, rules: IgnoreRules) -> ScanReport:
    """List the indexable files under ``root``: stat only, no content is read.

    Symlinked directories are not followed (no loops); symlinked files are read
    through their link. Unreadable directories are reported, not fatal.
    """
    report = ScanReport()
    for path, st in _walk(root, rules, report):
        report.files.append(ScannedFile(path, st.st_size, st.st_mtime_ns))
    return report


def _walk(
    root: Path, rules: IgnoreRules, report: ScanReport
) -> Iterator[tuple[Path, os.stat_result]]:
    if rules.ignores(root, is_dir=True) and root != rules.root:
        return
    stack = [(root, "" if root == rules.root else root.relative_to(rules.root).as_posix() + "/")]
    while stack:
        directory, rel = stack.pop()
        try:
            entries = list(os.scandir(directory))
        except PermissionError:
            report.problems.append((directory, "permission denied"))
            continue
        except OSError as exc:
            report.problems.append((directory, exc.strerror or str(exc)))
            continue
        for entry in entries:
            name = entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if not rules.ignores_entry(rel, name, is_dir=True):
                        stack.append((Path(entry.path), rel + name + "/"))
                    continue
                if rules.ignores_entry(rel, name):
                    continue
                path = Path(entry.path)
                st = entry.stat(follow_symlinks=True)
            except OSError as exc:
                report.problems.append((Path(entry.path), exc.strerror or str(exc)))
                continue
            if stat.S_ISREG(st.st_mode):
                yield path, st
            else:  # a pipe, socket or device: never opened, but the person sees why
                report.problems.append((path, f"not a regular file ({file_type(st.st_mode)})"))
