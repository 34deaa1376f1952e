"""Widgets of the main window: they render results and emit requests, nothing more."""
