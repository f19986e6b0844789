"""Naming the rows of an ablation table on the command line: a group name, or comma-separated row names."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def resolve_rows(spec: str, groups: Mapping[str, list[str]], rows: Iterable[str], what: str = "ablation") -> list[str]:
    """The rows `spec` names: a group of `groups`, or comma-separated names from `rows`; a clear error otherwise."""
    if spec in groups:
        return list(groups[spec])
    known = list(rows)
    names = [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError(f"Unknown {what} rows {unknown or spec!r}; use one of {sorted(groups)} or rows from: "
                         f"{', '.join(known)}.")
    return names
