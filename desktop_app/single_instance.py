"""One window per library: a second ``kenning`` hands its request to the running one.

A library is written by one process at a time (the engine's data lock), so
starting ``kenning`` again used to open a second window that could only say the
library was busy. Now the first window listens on a local socket named for its
data dir (``QLocalServer``: a Unix domain socket or a Windows named pipe, only
the same user may connect; nothing reaches the network), and a later start
connects, says what it was asked for, and exits once the running window has
acknowledged it: ``kenning`` brings that window up, ``kenning --quick-ask`` opens
its small ask window.

That is what makes a quick-ask shortcut from anywhere possible without a global
keyboard hook: the desktop's own shortcut settings bind a key to
``kenning --quick-ask`` (README, "Quick ask"). The libraries that grab a key
globally (pynput, keyboard) read every keystroke of the session to find one
chord, need root or X11, and cannot work on Wayland, where binding keys is the
desktop's job by design.
"""

from __future__ import annotations

import getpass
import hashlib
import logging
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtNetwork import QLocalServer, QLocalSocket

log = logging.getLogger(__name__)

PROTOCOL = b"kenning/1"
REQUESTS = ("show", "quick-ask")
# A running window answers within a few event-loop turns; it may be busy drawing.
ACK_MS = 3000
MAX_LINE = 256


def server_name(data_dir: Path) -> str:
    """The socket's name for ``data_dir``: one per user and library, short enough for
    a Unix socket path."""
    key = f"{getpass.getuser()}\0{Path(data_dir).expanduser().resolve()}"
    return "kenning-" + hashlib.sha256(key.encode()).hexdigest()[:16]


def hand_over(data_dir: Path, request: str, timeout_ms: int = ACK_MS) -> bool | None:
    """Pass ``request`` to the window that has ``data_dir`` open.

    Returns:
        True when a running window acknowledged it; False when none is running
        (this process should open the window); None when one is listening but did
        not acknowledge in time (hung: the caller says so instead of opening a
        second window the data lock would refuse).
    """
    if request not in REQUESTS:
        raise ValueError(f"unknown request {request!r}")
    socket = QLocalSocket()
    socket.connectToServer(server_name(data_dir))
    if not socket.waitForConnected(500):
        return False  # nobody listening, or a stale socket left by a crash
    socket.write(PROTOCOL + b" " + request.encode() + b"\n")
    socket.flush()
    answered = b""
    while b"\n" not in answered and socket.waitForReadyRead(timeout_ms):
        answered += bytes(socket.readAll().data())
    socket.disconnectFromServer()
    return True if answered.startswith(b"ok") else None


class InstanceServer(QObject):
    """Listens for later starts of Kenning on the same library; emits what they ask.

    Signals:
        sig_request(str): "show" or "quick-ask", on the GUI thread.
    """

    sig_request = Signal(str)

    def __init__(self, data_dir: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = server_name(data_dir)
        self.server = QLocalServer(self)
        self.server.setSocketOptions(QLocalServer.SocketOption.UserAccessOption)
        self.server.newConnection.connect(self._accept)
        self._sockets: set[QLocalSocket] = set()  # connections still open

    def listen(self) -> bool:
        """Start listening; a socket a crashed Kenning left behind is removed first.

        Only called after :func:`hand_over` found nobody answering, so the name is
        stale if it exists. False (logged) when the system refuses: the window
        still works, a second start is then refused by the data lock as before.
        """
        if self.server.listen(self.name):
            return True
        QLocalServer.removeServer(self.name)
        if self.server.listen(self.name):
            return True
        log.warning("cannot listen for a second start (%s)", self.server.errorString())
        return False

    def close(self) -> None:
        """Stop listening and drop open connections (before this object goes)."""
        self.server.close()
        for socket in list(self._sockets):
            self._drop(socket)

    def _closed(self, socket: QLocalSocket) -> None:
        self._sockets.discard(socket)
        socket.deleteLater()

    def _drop(self, socket: QLocalSocket) -> None:
        # Unparented and kept in Python's hands until dropped: deleting a socket that
        # its QLocalServer still owned while a deleteLater was pending crashed PySide.
        self._sockets.discard(socket)
        socket.readyRead.disconnect()
        socket.abort()

    def _accept(self) -> None:
        while self.server.hasPendingConnections():
            socket = self.server.nextPendingConnection()
            socket.setParent(None)
            self._sockets.add(socket)
            buffer = bytearray()

            def read(socket: QLocalSocket = socket, buffer: bytearray = buffer) -> None:
                buffer += bytes(socket.readAll().data())
                if b"\n" not in buffer:
                    if len(buffer) > MAX_LINE:
                        self._drop(socket)  # not a Kenning
                    return
                line = bytes(buffer).split(b"\n", 1)[0]
                parts = line.split(b" ")
                request = parts[1].decode(errors="replace") if len(parts) == 2 else ""
                if parts[0] != PROTOCOL or request not in REQUESTS:
                    socket.write(b"unknown\n")
                    socket.flush()
                    socket.disconnectFromServer()
                    return
                socket.write(b"ok\n")
                socket.flush()
                socket.disconnectFromServer()
                log.info("a second start asked for %s", request)
                self.sig_request.emit(request)

            socket.readyRead.connect(read)
            socket.disconnected.connect(lambda socket=socket: self._closed(socket))
            if socket.bytesAvailable():
                read()
