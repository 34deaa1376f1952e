"""Can Qt open a window here? Asked before any Qt object exists.

Qt's xcb platform plugin aborts the whole process (SIGABRT, exit 134) with a
message about "xcb-cursor" when a system library it needs is missing, and the
same happens when there is no display at all. A person who ran ``make run`` on
a fresh desktop deserves one sentence instead: what is missing, the command that
installs it on their distribution, and what still works without a window.

The check is in two steps. A quick one (no Qt): is there a display, and do the
X11 libraries the xcb plugin loads open with ``ctypes``. Then a probe: a child
process creates a ``QGuiApplication`` on the same platform, so whatever else
would abort (a broken GL driver, an unreachable display) aborts there, not here.
This module must not import Qt: importing it is what it guards.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

Environ = Mapping[str, str]

# The exit code of ``kenning`` when no window can be opened (see engine/cli.py).
EXIT_NO_DISPLAY = 5

# Libraries Qt's xcb plugin needs beyond libxcb itself (Qt 6.5+ dlopens
# xcb-cursor, so ``ldd`` on the plugin does not list it), with the package that
# holds each on the families of distributions people run.
_MANAGERS = ("apt", "dnf", "pacman", "zypper")
_XCB_ROWS = [  # soname, then its package for each of _MANAGERS
    ("libxcb-cursor.so.0", "libxcb-cursor0", "xcb-util-cursor", "xcb-util-cursor",
     "libxcb-cursor0"),
    ("libxcb-icccm.so.4", "libxcb-icccm4", "xcb-util-wm", "xcb-util-wm", "libxcb-icccm4"),
    ("libxcb-image.so.0", "libxcb-image0", "xcb-util-image", "xcb-util-image", "libxcb-image0"),
    ("libxcb-keysyms.so.1", "libxcb-keysyms1", "xcb-util-keysyms", "xcb-util-keysyms",
     "libxcb-keysyms1"),
    ("libxcb-render-util.so.0", "libxcb-render-util0", "xcb-util-renderutil",
     "xcb-util-renderutil", "libxcb-render-util0"),
    ("libxcb-shape.so.0", "libxcb-shape0", "libxcb", "libxcb", "libxcb-shape0"),
    ("libxkbcommon-x11.so.0", "libxkbcommon-x11-0", "libxkbcommon-x11", "libxkbcommon-x11",
     "libxkbcommon-x11-0"),
]  # fmt: skip
XCB_LIBRARIES: dict[str, dict[str, str]] = {
    row[0]: dict(zip(_MANAGERS, row[1:], strict=True)) for row in _XCB_ROWS
}
# What the Linux build bundles (packaging/kenning.spec): the libraries above, and
# xcb-util, which two of them need. libxcb itself is the system's.
BUNDLEABLE_LIBRARIES = (*XCB_LIBRARIES, "libxcb-util.so.1")
# Where inside the frozen build they go: beside libQt6XcbQpa, whose RUNPATH is $ORIGIN.
BUNDLED_QT_LIB = "PySide6/Qt/lib"
INSTALL = {
    "apt": "sudo apt-get install -y",
    "dnf": "sudo dnf install -y",
    "pacman": "sudo pacman -S --needed",
    "zypper": "sudo zypper install -y",
}
# Platforms that draw nowhere a person sees and need nothing from the system.
HEADLESS = {"offscreen", "minimal", "vnc"}
PROBE_TIMEOUT = 20.0
# The frozen build runs the probe as ``kenning PROBE_FLAG`` (packaging/entry.py).
PROBE_FLAG = "--kenning-probe-platform"
WITHOUT_WINDOW = (
    "Without a window, the terminal still works: `kenning index FOLDER`, "
    '`kenning search "words"`, `kenning ask "question"`.'
)


@dataclass(frozen=True)
class PlatformProblem:
    """Why no window can open, as the person should read it."""

    message: str
    missing: tuple[str, ...] = ()  # library sonames, when that is the cause
    install: str | None = None  # the command that installs them here

    def report(self) -> str:
        lines = [f"kenning: {self.message}"]
        if self.install:
            lines.append(f"Install them with:\n    {self.install}")
        lines.append(WITHOUT_WINDOW)
        return "\n".join(lines)


def platform_name(argv: list[str], environ: Environ) -> str:
    """The platform plugin Qt will try first: ``-platform`` wins over ``QT_QPA_PLATFORM``."""
    for n, arg in enumerate(argv):
        if arg in ("-platform", "--platform") and n + 1 < len(argv):
            return argv[n + 1].split(":")[0].split(";")[0]
        if arg.startswith("-platform="):
            return arg.split("=", 1)[1].split(":")[0]
    chosen = environ.get("QT_QPA_PLATFORM", "")
    if chosen:
        return chosen.split(";")[0].split(":")[0]
    if sys.platform.startswith("linux"):
        if environ.get("XDG_SESSION_TYPE") == "wayland" and environ.get("WAYLAND_DISPLAY"):
            return "wayland"
        return "xcb"
    return "native"


def package_manager(os_release: Path = Path("/etc/os-release")) -> str:
    """``apt``, ``dnf``, ``pacman`` or ``zypper``, from the distribution's ID (apt if unknown)."""
    try:
        text = os_release.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    ids: list[str] = []
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if key in ("ID", "ID_LIKE"):
            ids += value.strip().strip('"').lower().split()
    for family, names in {
        "dnf": ("fedora", "rhel", "centos", "rocky", "almalinux"),
        "pacman": ("arch", "manjaro", "endeavouros"),
        "zypper": ("suse", "opensuse", "opensuse-leap", "opensuse-tumbleweed", "sles"),
        "apt": ("debian", "ubuntu", "linuxmint", "pop"),
    }.items():
        if any(i in names for i in ids):
            return family
    return "apt"


def system_library(soname: str) -> Path | None:
    """The file the system's loader would open for ``soname`` (``ldconfig -p``), or None."""
    try:
        listed = subprocess.run(
            ["ldconfig", "-p"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        listed = ""
    machine = "x86-64" if sys.maxsize > 2**32 else ""
    for line in listed.splitlines():
        name, _, path = line.strip().partition(" => ")
        if name.split(" ", 1)[0] == soname and (machine in name or not machine):
            return Path(path)
    return None


def bundled_library_dir() -> Path | None:
    """The frozen build's folder of bundled X11 libraries, if this is one."""
    base = getattr(sys, "_MEIPASS", None)
    return Path(base) / BUNDLED_QT_LIB if base and getattr(sys, "frozen", False) else None


def missing_libraries(names: list[str] | None = None, bundled: Path | None = None) -> list[str]:
    """The sonames among ``names`` (default: the xcb plugin's) that the loader cannot open.

    A copy in ``bundled`` (default: the frozen build's own, see
    :func:`bundled_library_dir`) counts when it loads: that is where Qt's plugin
    finds it, not on the loader's path.
    """
    folder = bundled if bundled is not None else bundled_library_dir()
    if folder and (folder / "libxcb-util.so.1").is_file():
        # Loaded first, so the bundled libraries that need it resolve it by soname.
        with contextlib.suppress(OSError):
            ctypes.CDLL(str(folder / "libxcb-util.so.1"))
    missing = []
    for soname in names if names is not None else list(XCB_LIBRARIES):
        candidates = [str(folder / soname)] if folder and (folder / soname).is_file() else []
        for candidate in [*candidates, soname]:
            try:
                ctypes.CDLL(candidate)
                break
            except OSError:
                continue
        else:
            missing.append(soname)
    return missing


def quick_check(platform: str, environ: Environ) -> PlatformProblem | None:
    """What is known to be missing without starting Qt, or None."""
    if platform != "xcb":
        return None
    if not environ.get("DISPLAY"):
        return PlatformProblem(
            "there is no display to open the window on (DISPLAY is not set): "
            "start Kenning from a desktop session, or over ssh with -X."
        )
    missing = missing_libraries()
    if not missing:
        return None
    manager = package_manager()
    packages = sorted({XCB_LIBRARIES[s][manager] for s in missing})
    return PlatformProblem(
        f"the window cannot open because Qt's X11 plugin needs system libraries "
        f"that are not installed ({', '.join(missing)}).",
        missing=tuple(missing),
        install=f"{INSTALL[manager]} {' '.join(packages)}",
    )


def probe(argv: list[str], timeout: float = PROBE_TIMEOUT) -> PlatformProblem | None:
    """Create a QGuiApplication in a child process with the same platform arguments."""
    platform_args = []
    for n, arg in enumerate(argv):
        if arg in ("-platform", "--platform") and n + 1 < len(argv):
            platform_args = [arg, argv[n + 1]]
    if getattr(sys, "frozen", False):
        command = [sys.executable, PROBE_FLAG]
    else:
        command = [sys.executable, "-c", "import desktop_app.platform_check as p; p.probe_main()"]
    try:
        done = subprocess.run(
            [*command, *platform_args],
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return PlatformProblem(
            f"the window system did not answer within {timeout:.0f} s (is the display reachable?)."
        )
    except OSError:
        return None  # cannot start a child (frozen oddities): let Qt itself decide
    if done.returncode == 0:
        return None
    said = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    # Qt's first complaint names the cause; its last line lists the plugins it has.
    causes = [line for line in said if "could not" in line.lower() or "cannot" in line.lower()]
    detail = (causes or said or [f"exit code {done.returncode}"])[0]
    return PlatformProblem(f"Qt cannot open a window here: {detail}")


def probe_main() -> None:
    """The child's side of :func:`probe`: Qt aborts here if it cannot start."""
    from PySide6.QtGui import QGuiApplication

    QGuiApplication([sys.argv[0], *[a for a in sys.argv[1:] if a != PROBE_FLAG]])


def check(argv: list[str], environ: Environ = os.environ) -> PlatformProblem | None:
    """None when a window can open; otherwise why not.

    ``KENNING_SKIP_PLATFORM_CHECK=1`` skips it (for a platform the check misjudges).
    """
    if environ.get("KENNING_SKIP_PLATFORM_CHECK") == "1":
        return None
    platform = platform_name(argv, environ)
    if platform in HEADLESS or platform == "native":
        return None
    problem = quick_check(platform, environ)
    if problem is not None:
        return problem
    return probe(argv)
