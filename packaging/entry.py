"""Entry point of the frozen build: the same ``kenning`` command as the console script.

With no arguments it opens the window; ``kenning index|search|ask|status|watch``
work as in a Python install (see ``engine/cli.py``).
"""

from __future__ import annotations

import multiprocessing
import sys

if __name__ == "__main__":
    from desktop_app.platform_check import PROBE_FLAG, probe_main
    from engine.generation import DEQUANTIZE_FLAG, dequantize_main

    if sys.argv[1:2] == [PROBE_FLAG]:
        # The window's child process that checks Qt can start (desktop_app/platform_check.py).
        probe_main()
        sys.exit(0)

    if sys.argv[1:2] == [DEQUANTIZE_FLAG]:
        # The engine's child process that dequantizes a GGUF model (engine/generation.py).
        sys.exit(dequantize_main(sys.argv[2:]))
    # torch and joblib may start helper processes; a frozen program must not rerun
    # main() in them.
    multiprocessing.freeze_support()
    from engine.cli import main

    sys.exit(main())
