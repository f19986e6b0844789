"""`oncolens gui [PATHS...]`: the desktop application (the default command)."""

from __future__ import annotations

import argparse

from engine.cli.common import Context


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gui", help="start the desktop application (default)")
    p.add_argument("paths", nargs="*", help="image files or case bundles to open")
    p.add_argument("--no-demo", action="store_true", help="do not import the bundled demo cases")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    if ctx.gui_launcher is None:
        ctx.say("The GUI is started by the `oncolens` entry point (app.launcher); this entry has none.")
        return 2
    return ctx.gui_launcher(paths=list(getattr(args, "paths", []) or []), demo=not getattr(args, "no_demo", False))
