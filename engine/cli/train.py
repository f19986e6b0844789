"""`oncolens train FAMILY`: train a model family and install its cards and weights (each family's options live
in its own module of this package)."""

from __future__ import annotations

import argparse

from engine.cli.families import FAMILIES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model family and write its cards and weights")
    families = p.add_subparsers(dest="family", required=True, metavar="FAMILY")
    for family in FAMILIES:
        family.register_train(families)
