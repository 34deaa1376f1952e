"""Loading native libraries: torch's without holding the GIL, ONNX Runtime's first.

``import torch`` dlopens ``libtorch_cpu`` (hundreds of MB, thousands of operator
registrations run as static initialisers) from inside the import, with the GIL
held: 0.2-0.3 s on two cores during which no other Python thread runs. In the
desktop app that import happens on a worker thread, so the window froze for that
long. A foreign call through :mod:`ctypes` releases the GIL, so calling ``dlopen``
that way does the expensive part with the GIL free; torch's own load then finds
the library already mapped and only takes a reference.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import logging
import os
import sys
from pathlib import Path

log = logging.getLogger(__name__)

# The libraries whose load dominates ``import torch``, per platform.
_TORCH_LIBRARIES = {
    "linux": ("libc10.so", "libtorch_cpu.so"),
    "darwin": ("libc10.dylib", "libtorch_cpu.dylib"),
}


def preload_torch() -> int:
    """Map torch's core libraries with the GIL released; returns how many were loaded.

    Does nothing once torch is imported, on platforms without ``dlopen``
    (Windows), or where the libraries are not found; ``import torch`` then
    simply does the work itself.
    """
    names = _TORCH_LIBRARIES.get(sys.platform)
    if not names or "torch" in sys.modules:
        return 0
    spec = importlib.util.find_spec("torch")
    if spec is None or spec.origin is None:
        return 0
    lib_dir = Path(spec.origin).parent / "lib"
    try:
        libc = ctypes.CDLL(None)
        dlopen = libc.dlopen
    except (OSError, AttributeError):
        return 0
    dlopen.restype = ctypes.c_void_p
    dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
    loaded = 0
    for name in names:
        path = lib_dir / name
        if path.is_file() and dlopen(os.fsencode(path), os.RTLD_NOW | os.RTLD_LOCAL):
            loaded += 1
    log.debug("preloaded %d torch libraries from %s", loaded, lib_dir)
    return loaded


def preload_onnxruntime() -> None:
    """Import ONNX Runtime before USearch is loaded.

    With usearch 2.26 loaded first, importing onnxruntime 1.32 crashes the process
    (a segmentation fault in its native module's initialisation, on Linux; the
    other order works). The int8 encoder and OCR import it at any moment, so
    whatever loads USearch calls this first. Without ONNX Runtime it does nothing.
    """
    if "onnxruntime" in sys.modules:
        return
    with contextlib.suppress(ImportError):
        import onnxruntime  # noqa: F401
