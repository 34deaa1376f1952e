"""Render ``resources/icons/kenning.svg`` into the PNG sizes desktops ask for, plus an .ico.

Run by ``packaging/build.py`` when an icon is missing; the outputs are committed
so a build needs no renderer. Qt's own SVG renderer is used (PySide6 is already a
dependency), so no extra image tool is needed.
"""

from __future__ import annotations

import sys
from pathlib import Path

ICONS = Path(__file__).resolve().parent.parent / "resources" / "icons"
# The freedesktop hicolor sizes; 256 doubles as the Windows .ico and macOS base.
SIZES = (16, 24, 32, 48, 64, 128, 256, 512)


def render_icons(svg: Path = ICONS / "kenning.svg", out: Path = ICONS) -> list[Path]:
    """Write ``kenning-<n>.png`` for each size in :data:`SIZES` and ``kenning.ico``.

    Returns:
        The files written.
    """
    from PySide6.QtCore import QRectF, Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication(["make_icons", "-platform", "offscreen"])
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise ValueError(f"cannot read {svg}")
    written: list[Path] = []
    for size in SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter, QRectF(0, 0, size, size))
        painter.end()
        path = out / f"kenning-{size}.png"
        if not image.save(str(path)):
            raise OSError(f"cannot write {path}")
        written.append(path)
        if size == 256:
            ico = out / "kenning.ico"
            if image.save(str(ico), "ICO"):  # needs Qt's ico image plugin
                written.append(ico)
    return written


if __name__ == "__main__":
    for path in render_icons():
        print(path)
    sys.exit(0)
