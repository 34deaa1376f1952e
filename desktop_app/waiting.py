"""Let the event loop run for a while from plain Python (scripts, benches).

``QTest.qWait`` in PySide6 6.12 keeps the GIL while it waits: measured, a worker
thread loading the embedding model took 209 s beside a ``qWait(20)`` loop and
16 s beside ``app.exec()``. A nested ``QEventLoop`` waits in C++ without the GIL,
so the engine's threads run at full speed meanwhile. (pytest-qt's ``qtbot``
waits already wait this way.)
"""

from __future__ import annotations

from PySide6.QtCore import QEventLoop, QTimer


def pump(ms: int) -> None:
    """Process events for ``ms`` milliseconds, releasing the GIL while idle."""
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()
