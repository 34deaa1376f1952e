"""``python -m desktop_app [--data-dir DIR]`` opens the window."""

from __future__ import annotations

import sys

from desktop_app.app import main

sys.exit(main())
