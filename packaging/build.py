"""Build the Linux artifact: PyInstaller one-folder build, then a tarball, then its test.

``make package`` runs this. Steps, each skipped with ``--skip-...`` when a
previous run already did it:

1. render the icons from ``resources/icons/kenning.svg`` if a PNG is missing;
2. ``pyinstaller packaging/kenning.spec`` -> ``dist/kenning/`` (the app folder);
3. ``dist/Kenning-<version>-linux-<arch>.tar.gz`` holding that folder, the
   ``.desktop`` entry, the icons and ``install.sh``;
4. ``pytest tests/packaging`` against the tarball (unpacked in a clean
   directory, empty home, no Python on the path).

Windows and macOS run step 2 only (``pyinstaller packaging/kenning.spec``); their
installers are made by the tools named in ``packaging/README.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
DIST = ROOT / "dist"
ICONS = ROOT / "resources" / "icons"


def project_version() -> str:
    """The version in ``pyproject.toml``, which names the tarball."""
    with (ROOT / "pyproject.toml").open("rb") as fh:
        return str(tomllib.load(fh)["project"]["version"])


def tarball_path(version: str | None = None) -> Path:
    """Where step 3 writes the tarball (the test and the bench look here)."""
    arch = platform.machine() or "x86_64"
    return DIST / f"Kenning-{version or project_version()}-linux-{arch}.tar.gz"


def ensure_icons() -> None:
    """Render the PNGs from the SVG when one is missing (they are committed)."""
    from make_icons import render_icons  # packaging/ is put on sys.path by main()

    if not all((ICONS / f"kenning-{n}.png").exists() for n in (16, 32, 48, 128, 256, 512)):
        render_icons()


def run_pyinstaller() -> float:
    """Build ``dist/kenning/``; returns the seconds it took."""
    start = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "PyInstaller",
            "--noconfirm",
            "--log-level=WARN",
            f"--distpath={DIST}",
            f"--workpath={ROOT / 'build' / 'pyinstaller'}",
            str(ROOT / "packaging" / "kenning.spec"),
        ],
        check=True,
        cwd=ROOT,
    )
    return time.perf_counter() - start


def make_tarball() -> Path:
    """Lay out the release folder beside the app folder and pack it with tar + gzip."""
    version = project_version()
    out = tarball_path(version)
    stage = DIST / out.name.removesuffix(".tar.gz")
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    # A hard-link copy: the 1 GB app folder is not duplicated on disk.
    shutil.copytree(DIST / "kenning", stage / "kenning", copy_function=os.link, symlinks=True)
    shutil.copy2(ROOT / "packaging" / "linux" / "kenning.desktop", stage / "kenning.desktop")
    shutil.copy2(ROOT / "packaging" / "linux" / "install.sh", stage / "install.sh")
    (stage / "icons").mkdir()
    for icon in sorted(ICONS.glob("kenning*")):
        shutil.copy2(icon, stage / "icons" / icon.name)
    (stage / "README.txt").write_text(
        f"Kenning {version} for Linux ({platform.machine()}), CPU build, models included.\n\n"
        "Run it in place:   ./kenning/kenning          (the window)\n"
        "                   ./kenning/kenning --help   (index, search, ask from a terminal)\n"
        "Install for you:   ./install.sh               (menu entry, icons, ~/.local/bin/kenning)\n"
        "Remove:            ./install.sh --uninstall   (your index and settings are kept)\n",
        encoding="utf-8",
    )
    tmp = out.with_suffix(".tmp")
    # System tar + gzip: several times faster than Python's tarfile on a 1 GB folder.
    subprocess.run(
        ["tar", "-C", str(DIST), "-czf", str(tmp), stage.name], check=True, env={**os.environ}
    )
    os.replace(tmp, out)
    shutil.rmtree(stage)
    return out


def run_artifact_test(tarball: Path) -> int:
    """Run ``tests/packaging`` against ``tarball``; returns pytest's exit code."""
    env = {**os.environ, "KENNING_ARTIFACT": str(tarball)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/packaging"],
        cwd=ROOT,
        env=env,
    ).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--skip-build", action="store_true", help="reuse dist/kenning/")
    parser.add_argument("--skip-tarball", action="store_true", help="reuse the tarball")
    parser.add_argument("--skip-test", action="store_true", help="do not run tests/packaging")
    args = parser.parse_args(argv)
    if sys.platform != "linux":
        print("build.py makes the Linux tarball; elsewhere run: pyinstaller packaging/kenning.spec")
        return 2
    sys.path.insert(0, str(ROOT / "packaging"))
    ensure_icons()
    if not args.skip_build:
        seconds = run_pyinstaller()
        print(f"pyinstaller: dist/kenning/ built in {seconds / 60:.1f} min")
    tarball = tarball_path()
    if not args.skip_tarball:
        start = time.perf_counter()
        tarball = make_tarball()
        size = tarball.stat().st_size / 2**20
        print(f"tarball: {tarball} ({size:.0f} MiB) in {time.perf_counter() - start:.0f} s")
    if args.skip_test:
        return 0
    return run_artifact_test(tarball)


if __name__ == "__main__":
    sys.exit(main())
