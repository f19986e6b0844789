"""OncoLens engine: everything that is not GUI. Never imports Qt (a test enforces it)."""

__version__ = "0.1.0"
