"""OncoLens desktop application (PySide6 + pyqtgraph). Nothing outside `app` imports it."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("oncolens")
except PackageNotFoundError:  # frozen builds may carry no package metadata
    __version__ = "0.1.0"
