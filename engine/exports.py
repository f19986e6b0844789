"""CSV files other programs will open: every text cell neutralised against formula injection, the file 0600.

A spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` as a formula (and some take a leading tab or
carriage return the same way), so a case id, comment or file name such as `=HYPERLINK(...)` in an export
would become a live formula on the administrator's machine. Such cells get a leading apostrophe, which
spreadsheets show as text and which stays visible, so the value is not silently changed into another one.
Numbers, and text that is a plain number (`-0.25`, `1e-3`: the MRMC tools' score columns), are left as they
are, so every tool still reads them as numbers. Every CSV writer of the engine goes through this module.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from engine.paths import open_private

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def _escaped(text: str) -> bool:
    # Text after any leading apostrophes starts like a formula. Text that already starts with apostrophes
    # gets one more too, so that `restore_cell` can undo exactly what `safe_cell` did.
    return text.lstrip("'").startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(text)


def safe_cell(value: Any) -> Any:
    """`value` unchanged unless it is text a spreadsheet would run as a formula; then `'` + the text."""
    if isinstance(value, str) and _escaped(value):
        return "'" + value
    return value


def restore_cell(text: str) -> str:
    """The text `safe_cell` was given, from what it wrote (for reading back CSV files OncoLens wrote itself)."""
    if text.startswith("'") and _escaped(text[1:]):
        return text[1:]
    return text


def safe_row(values: Iterable[Any]) -> list[Any]:
    return [safe_cell(v) for v in values]


class SafeWriter:
    """`csv.writer` whose rows are neutralised cell by cell."""

    def __init__(self, handle: IO[str], **kwargs: Any) -> None:
        self._writer = csv.writer(handle, **kwargs)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow(safe_row(row))

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


class SafeDictWriter(csv.DictWriter):
    """`csv.DictWriter` whose values (and header) are neutralised cell by cell."""

    def writeheader(self) -> Any:
        return self.writer.writerow(safe_row(self.fieldnames))

    def writerow(self, rowdict: Mapping[str, Any]) -> Any:
        return super().writerow({k: safe_cell(v) for k, v in rowdict.items()})

    def writerows(self, rowdicts: Iterable[Mapping[str, Any]]) -> None:
        for row in rowdicts:
            self.writerow(row)


def csv_writer(handle: IO[str], **kwargs: Any) -> SafeWriter:
    return SafeWriter(handle, **kwargs)


def csv_dict_writer(handle: IO[str], fieldnames: Sequence[str], **kwargs: Any) -> SafeDictWriter:
    return SafeDictWriter(handle, fieldnames=fieldnames, **kwargs)


def open_csv(path: str | Path, mode: str = "w") -> IO[str]:
    """A CSV file opened for writing as the csv module wants it (UTF-8, newline=""), created readable by its
    owner only."""
    return open_private(path, mode, newline="", encoding="utf-8")


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> Path:
    """Rows of dicts as a CSV with a header (`columns`, else the first row's keys)."""
    path = Path(path)
    with open_csv(path) as handle:
        writer = csv_dict_writer(handle, list(columns or rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path
