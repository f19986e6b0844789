"""The `oncolens` command: one module per command (gui, predict, models, make-demo-data, train, evaluate,
bench, study, dicom, store, export), each turning its arguments into the engine's typed settings; no argparse object goes further.

The GUI is not part of the engine: the `oncolens` entry point (app/launcher.py) passes a launcher in.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from collections.abc import Callable, Sequence

from engine.cli import bench, demo, dicom, evaluate, export, gui, models, predict, review, store, study, train
from engine.cli.common import Context, say

COMMANDS = (gui, predict, export, models, demo, train, evaluate, bench, study, dicom, store, review)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="oncolens",
                                     description="OncoLens (research use only, not for diagnostic use)")
    parser.add_argument("--self-test", action="store_true",
                        help="load every shipped model, predict on a demo case, exit 0 on success")
    parser.add_argument("--debug", action="store_true", help="on an error, also print the full traceback")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None, gui_launcher: Callable[..., int] | None = None,
         self_test: Callable[[], int] | None = None, live_view_runner: Callable[..., dict] | None = None,
         petct_view_runner: Callable[..., dict] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    ctx = Context(argv=argv, say=say, gui_launcher=gui_launcher, self_test=self_test,
                  live_view_runner=live_view_runner, petct_view_runner=petct_view_runner)
    try:
        if args.self_test:
            from engine.selftest import run_self_test

            return (self_test or run_self_test)()
        return getattr(args, "run", gui.run)(args, ctx)
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    except MemoryError:
        say("error: not enough memory for this input; close other programs, or crop or downscale the images.")
        return 2
    except Exception as exc:  # the one error boundary: every failure is one line, exit code 2
        say(f"error: {error_line(exc)}")
        if args.debug:
            traceback.print_exc()
        return 2


def error_line(exc: BaseException) -> str:
    """The user's one line for an exception: its own message (they name the input and the fix), with the
    failures that come without one (overflow, OpenCV, operating system) put in words."""
    text = str(exc).strip()
    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        text = exc.args[0]
    if isinstance(exc, OSError) and exc.filename:
        text = f"{exc.filename}: {exc.strerror or text}"
    elif isinstance(exc, OverflowError):
        text = f"a value is too large to compute with ({text}); check the input's values and sizes"
    elif not text:
        text = f"{type(exc).__name__} (no message); run with --debug and report it"
    elif type(exc).__module__.startswith(("cv2", "safetensors", "sqlalchemy")):
        text = f"{type(exc).__name__}: {text}"
    return " ".join(text.split())


__all__ = ["COMMANDS", "Context", "build_parser", "main"]
