"""Kenning's desktop window (PySide6) on top of the engine facade.

Only :mod:`desktop_app.bridge` imports ``engine``; everything else renders what
the bridge's signals deliver. Start it with ``kenning`` or ``python -m desktop_app``.
"""
