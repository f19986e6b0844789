"""`oncolens evaluate FAMILY`: the installed models on held-out or external data; tables with confidence
intervals, CSV/JSON and ROC figures (each family's options live in its own module of this package)."""

from __future__ import annotations

import argparse

from engine.cli.families import FAMILIES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="evaluate installed models: tables with CIs, CSV/JSON, ROC PNG")
    families = p.add_subparsers(dest="family", required=True, metavar="FAMILY")
    for family in FAMILIES:
        family.register_evaluate(families)
