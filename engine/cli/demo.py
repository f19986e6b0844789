"""`oncolens make-demo-data`: the bundled demo cases, one set per case kind."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.cli.common import Context


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("make-demo-data", help="write the demo case bundles (every case kind's own set)")
    p.add_argument("--out", type=Path, help="folder (default: resources/demo_cases)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from engine.kinds import case_kinds
    from engine.paths import demo_cases_dir

    out = args.out or demo_cases_dir()
    paths = [p for kind in case_kinds() for p in kind.write_demo_cases(out)]
    ctx.say(f"wrote {len(paths)} demo cases to {out}")
    return 0
