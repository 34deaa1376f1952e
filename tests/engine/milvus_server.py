"""A real Milvus server for the tests: Milvus Lite's gRPC server, in its own process."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class MilvusServer:
    """``milvus-lite server`` on a free local port; stop and start it again at will."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> None:
        command = [
            sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(self.data_dir),
            "--host", "127.0.0.1", "--port", str(self.port),
        ]  # fmt: skip
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"milvus-lite server exited with {self._process.returncode}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError("milvus-lite server did not start")

    def stop(self) -> None:
        """Kill it, as a crash or a pulled network cable would."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None
