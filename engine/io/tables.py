"""CSV tables that users hand in (manifests) or that earlier runs wrote: read with the checks every reader
needs, and errors that name the file and the missing columns."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path


def read_csv_table(path: str | Path, required: Sequence[str], what: str = "Manifest",
                   expected: str | None = None) -> list[dict[str, str]]:
    """The rows of a CSV with a header (row i of the list is line i + 2 of the file). `what` names the file in
    the not-found error; `expected` (default: the required columns) is what the column error asks for."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} not found.")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing columns {missing}; expected {expected or ', '.join(required)}.")
        return list(reader)
