"""Linux artifact: size, and cold-start time of the frozen build with no Python around.

Reads a tarball already built by ``make package`` (it never builds one: that
takes 10-20 minutes); without one it prints a line saying so and exits 0.
Sizes: the tarball, the unpacked app folder, and its largest parts. Cold start:
the tarball is unpacked into a fresh directory and run with an empty home
(XDG dirs under it), Qt offscreen, and nothing of the build machine's Python on
the environment, as a person's first launch would be:

- ``kenning --help`` (the frozen interpreter and the CLI, no models);
- ``kenning index`` on ``resources/sample_notes`` (first run: loads torch and
  the embedding model, creates the store);
- ``kenning ask`` on those notes, first run (dequantizes the answer model into
  the data dir once) and second run (loads that cache);
- ``kenning gui --quit-after 0``: launch to "engine ready" in the window, then a
  clean shutdown; first and second launch.

The page cache is warm after the unpack, so "cold" means a cold process, not a
cold disk.

    python -m bench.bench_package [--artifact dist/Kenning-0.1.0-linux-x86_64.tar.gz]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
QUESTION = "How long should the loaf bake with steam?"
# A step that has not exited by then is reported as a timeout, not waited for.
TIMEOUT_S = 300


def newest_artifact() -> Path | None:
    """The newest ``dist/Kenning-*-linux-*.tar.gz``, or None."""
    built = sorted(
        (ROOT / "dist").glob("Kenning-*-linux-*.tar.gz"), key=lambda p: p.stat().st_mtime
    )
    return built[-1] if built else None


def folder_size(path: Path) -> int:
    """Bytes of the regular files under ``path`` (links not followed)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def bare_env(home: Path) -> dict[str, str]:
    """An empty home and no Python: what a person's first launch sees."""
    for sub in ("tmp", ".runtime"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    (home / ".runtime").chmod(0o700)
    return {
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_RUNTIME_DIR": str(home / ".runtime"),
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "QT_QPA_PLATFORM": "offscreen",
        "TMPDIR": str(home / "tmp"),
    }


def timed(binary: Path, args: list[str], env: dict[str, str]) -> tuple[float, int | str]:
    """Seconds from launch to exit, and the exit code ("timeout" past TIMEOUT_S)."""
    start = time.perf_counter()
    try:
        done = subprocess.run(
            [str(binary), *args],
            env=env,
            cwd=env["HOME"],
            capture_output=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return time.perf_counter() - start, "timeout"
    return time.perf_counter() - start, done.returncode


def time_to_ready(binary: Path, env: dict[str, str]) -> tuple[float, float, int]:
    """GUI: seconds to "kenning: ready" on stdout, seconds to exit, exit code."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [str(binary), "gui", "--quit-after", "0"],
        env=env,
        cwd=env["HOME"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    ready = float("nan")
    assert proc.stdout is not None
    for line in proc.stdout:
        if "kenning: ready" in line and ready != ready:
            ready = time.perf_counter() - start
    code = proc.wait(timeout=TIMEOUT_S)
    return ready, time.perf_counter() - start, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--artifact", type=Path, default=None)
    args = parser.parse_args()
    artifact = args.artifact or newest_artifact()
    if artifact is None or not artifact.is_file():
        print("No packaged build in dist/: run `make package` first (skipped).")
        return
    work = Path(tempfile.mkdtemp(prefix="kenning-bench-package-"))
    try:
        start = time.perf_counter()
        subprocess.run(["tar", "-xzf", str(artifact), "-C", str(work)], check=True)
        unpack = time.perf_counter() - start
        (release,) = [p for p in work.iterdir() if p.is_dir()]
        app = release / "kenning"
        internal = app / "_internal"
        parts = sorted(
            (
                (folder_size(p) if p.is_dir() else p.stat().st_size, p.name)
                for p in internal.iterdir()
            ),
            reverse=True,
        )[:8]
        home = work / "home"
        shutil.copytree(ROOT / "resources" / "sample_notes", home / "Notes")
        env = bare_env(home)
        binary = app / "kenning"
        rows = [("`kenning --help`", *timed(binary, ["--help"], env))]
        rows.append(
            (
                "`kenning index` sample notes (first run)",
                *timed(binary, ["index", str(home / "Notes")], env),
            )
        )
        rows.append(
            (
                "`kenning ask` (first: dequantizes the model)",
                *timed(binary, ["ask", "--json", QUESTION], env),
            )
        )
        rows.append(
            (
                "`kenning ask` (second: cached model)",
                *timed(binary, ["ask", "--json", QUESTION], env),
            )
        )
        gui = [time_to_ready(binary, env) for _ in range(2)]

        mib = 2**20
        print(f"Artifact: `{artifact.name}`\n")
        print("| What | Size |\n|---|---:|")
        print(f"| tarball (gzip) | {artifact.stat().st_size / mib:.0f} MiB |")
        print(f"| unpacked app folder | {folder_size(app) / mib:.0f} MiB |")
        for size, name in parts:
            print(f"| of which `_internal/{name}` | {size / mib:.0f} MiB |")
        print(f"\nUnpacking took {unpack:.0f} s.\n")
        print("| Cold start (fresh process, empty home) | Seconds | Exit |\n|---|---:|---:|")
        for what, seconds, code in rows:
            print(f"| {what} | {seconds:.1f} | {code} |")
        for n, (ready, total, code) in enumerate(gui, 1):
            label = "first" if n == 1 else "second"
            print(f"| window: launch to engine ready ({label} launch) | {ready:.1f} | {code} |")
            print(f"| window: launch to clean exit ({label} launch) | {total:.1f} | {code} |")
        print(f"\nCPU cores: {os.cpu_count()}; figures include other load on the machine.")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
