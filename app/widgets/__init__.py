"""Dock and dialog widgets of the main window (display only; the work is done by engine functions)."""
