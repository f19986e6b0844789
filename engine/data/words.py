"""Counts in words, so that no message says "(1 cases)"."""

from __future__ import annotations


def count_of(n: int, noun: str, plural: str | None = None) -> str:
    """'1 case', '0 cases', '3 cases' (`plural` for nouns that do not take an s)."""
    return f"{n} {noun if n == 1 else plural or noun + 's'}"
