"""What the command modules share: how they talk, the command line recorded in cards, the models folder."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

Say = Callable[[str], None]


def say(message: str) -> None:
    """Progress and notes go to stderr, so that stdout carries only results (JSON, tables)."""
    print(message, file=sys.stderr, flush=True)


@dataclass
class Context:
    """What every command gets besides its arguments."""

    argv: Sequence[str] = ()
    say: Say = say
    gui_launcher: Callable[..., int] | None = None
    self_test: Callable[[], int] | None = None
    live_view_runner: Callable[..., dict] | None = None  # the app's live view for `bench live` (app.launcher)
    extras: dict = field(default_factory=dict)

    @property
    def command_line(self) -> str:
        """`oncolens ...` as typed, recorded in model cards so that they can be regenerated."""
        return "oncolens " + " ".join(shlex.quote(a) for a in self.argv)


def add_models_dir(parser: argparse.ArgumentParser, writing: bool = False) -> None:
    parser.add_argument("--models-dir", type=Path,
                        help=("write cards and weights into this folder instead of the shipped models folder"
                              if writing else "read cards and weights from this folder instead of the shipped one"))


def add_evaluation_options(p: argparse.ArgumentParser) -> None:
    """--split, --out, --bootstrap and --models-dir, as every `evaluate FAMILY` takes them."""
    p.add_argument("--split", default="test", choices=["test", "all"],
                   help="test: only the cards' held-out patients; all: every record (an external test set)")
    p.add_argument("--out", type=Path, default=Path("evaluation"), help="output folder (default ./evaluation)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the AUC/F1 intervals")
    add_models_dir(p)


def add_phantom_data(p: argparse.ArgumentParser, what: str, patients: int, per_patient_flag: str, per_patient: int,
                     seed: int, with_phantom: bool = True) -> None:
    """--data phantom|MANIFEST and the phantom's size and seed (`with_phantom` False: the cards' own phantom)."""
    g = p.add_argument_group("data")
    g.add_argument("--data", default="phantom", help=f"'phantom' (the synthetic generator) or a {what} CSV manifest "
                                                     "(see README)")
    if with_phantom:
        g.add_argument("--phantom-patients", type=int, default=patients, help=f"phantom patients (default {patients})")
        g.add_argument(per_patient_flag, dest="phantom_per_patient", type=int, default=per_patient,
                       help=f"{what}s per phantom patient (default {per_patient})")
        g.add_argument("--phantom-seed", type=int, default=seed, help=f"phantom seed (default {seed})")


def phantom_data(args: argparse.Namespace, data_class):
    """The family's data source from --data and the phantom options; None when evaluation should regenerate the
    phantom recorded in the cards."""
    if args.data != "phantom":
        return data_class(source=args.data)
    if not hasattr(args, "phantom_patients"):
        return None
    return data_class("phantom", args.phantom_patients, args.phantom_per_patient, args.phantom_seed)


def check_output_file(path: Path | None, suffixes: tuple[str, ...], what: str = "--out") -> None:
    """Before any work: `path` has a known suffix and can be written (its folder exists and is writable)."""
    if path is None:
        return
    if path.exists() and not path.is_file():
        raise ValueError(f"{what} {path}: is a folder; name a file.")
    if path.suffix.lower() not in suffixes:
        raise ValueError(f"{what} {path}: use a {' or '.join(suffixes)} file name; OncoLens writes nothing else there.")
    _check_writable_folder(path.parent if str(path.parent) else Path("."), what, path)


def check_output_folder(path: Path | None, what: str = "--out") -> None:
    """Before any work: `path` is a folder, or can be created as one, where we may write."""
    if path is None:
        return
    if path.exists() and not path.is_dir():
        raise ValueError(f"{what} {path}: is a file; name a folder.")
    existing = path
    while not existing.exists():
        existing = existing.parent
    _check_writable_folder(existing, what, path)


def _check_writable_folder(folder: Path, what: str, target: Path) -> None:
    import os

    if not folder.is_dir():
        raise ValueError(f"{what} {target}: the folder {folder} does not exist; create it first.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {target}: the folder {folder} is not writable; choose another place.")


def models_root(args: argparse.Namespace) -> Path | None:
    folder = getattr(args, "models_dir", None)
    return Path(folder).resolve() if folder else None


def optional_path(value: str | None) -> Path | None:
    return Path(value) if value else None
