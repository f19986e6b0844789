"""`python -m app [--no-demo] [PATH ...]`: start the OncoLens workstation, optionally opening files."""

from __future__ import annotations

import argparse
import sys

from app.main import run_gui


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    parser = argparse.ArgumentParser(prog="oncolens-gui", description="OncoLens workstation (research use only).")
    parser.add_argument("paths", nargs="*", help="image files or case bundle folders to open")
    parser.add_argument("--no-demo", action="store_true", help="do not add the demo cases on first start")
    args, qt_args = parser.parse_known_args(argv[1:])
    return run_gui([argv[0], *qt_args], demo=not args.no_demo, open_paths=args.paths)


if __name__ == "__main__":
    sys.exit(main())
