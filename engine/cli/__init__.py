"""The `oncolens` command: one module per command (gui, predict, models, make-demo-data, train, evaluate,
bench, study, store), each turning its arguments into the engine's typed settings; no argparse object goes further.

The GUI is not part of the engine: the `oncolens` entry point (app/launcher.py) passes a launcher in.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from engine.cli import bench, demo, evaluate, gui, models, predict, store, study, train
from engine.cli.common import Context, say

COMMANDS = (gui, predict, models, demo, train, evaluate, bench, study, store)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="oncolens",
                                     description="OncoLens (research use only, not for diagnostic use)")
    parser.add_argument("--self-test", action="store_true",
                        help="load every shipped model, predict on a demo case, exit 0 on success")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None, gui_launcher: Callable[..., int] | None = None,
         self_test: Callable[[], int] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    ctx = Context(argv=argv, say=say, gui_launcher=gui_launcher, self_test=self_test)
    try:
        if args.self_test:
            from engine.selftest import run_self_test

            return (self_test or run_self_test)()
        return getattr(args, "run", gui.run)(args, ctx)
    except (ValueError, KeyError, FileNotFoundError, RuntimeError) as exc:
        say(f"error: {exc}")
        return 1


__all__ = ["COMMANDS", "Context", "build_parser", "main"]
