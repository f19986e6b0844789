"""`oncolens study create|add-reader|reset-pin|unlock-reader|progress|export-reads|report`: reader studies from the
command line.

Each subcommand opens the store, calls the engine's study functions with typed values and prints a line.
Commands that only read (progress, export-reads, report) open the store read-only: no write lock, no
migration. A PIN is never a command-line argument (it would stay in the shell history and show in the
process list): it is typed at a prompt, or read from --pin-file or the ONCOLENS_READER_PIN variable."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from getpass import getpass
from pathlib import Path

from engine.cli.common import Context, check_output_file, check_output_folder
from engine.data.words import count_of

PROMPT: Callable[[str], str] = getpass  # tests answer the PIN prompt by replacing this
PIN_VARIABLE = "ONCOLENS_READER_PIN"


def register(sub: argparse._SubParsersAction) -> None:
    from engine.studies import ARMS, SCALES, UNAIDED

    study = sub.add_parser("study", help="reader studies: create, enrol readers, progress, export, report")
    study.add_argument("--db", help="database URL (default: the db_url setting or the user's SQLite file)")
    study.add_argument("--actor", default="admin", help="who is doing this, for the audit log")
    cmds = study.add_subparsers(dest="study_command", required=True, metavar="COMMAND")

    create = cmds.add_parser("create", help="create a study from cases already in the store")
    create.add_argument("study", help="study id")
    create.add_argument("--name", help="display name (default: the id)")
    create.add_argument("--label", required=True, help="truth label readers call, e.g. metastatic or tumor")
    create.add_argument("--cases", nargs="*", default=[], help="case ids")
    create.add_argument("--kind", help="add every stored case of this kind")
    create.add_argument("--modalities", nargs="+", required=True, help="modalities readers see")
    create.add_argument("--arms", nargs="+", choices=ARMS, default=[UNAIDED], help="arms in reading order")
    create.add_argument("--scale", choices=sorted(SCALES), default="5-point", help="confidence scale")
    create.add_argument("--contours", action="store_true", help="readers also draw a contour")
    create.add_argument("--seed", type=int, default=0, help="seed of the per-reader reading order")
    create.add_argument("--repeat-reads", type=int, default=0, help="extra rounds after the washout")
    create.add_argument("--washout-days", type=float, default=0.0, help="least days between a reader's sessions")
    create.add_argument("--model", help="model whose stored predictions aided readers see and readers are compared "
                                        "with, e.g. fl_cnn[WL] (default: the case kind's primary model)")
    create.add_argument("--question", help="the question readers see (default: Is this case <label>?)")
    create.add_argument("--description", help="free text kept with the study")
    create.set_defaults(run=run_create)

    reader = cmds.add_parser("add-reader", help="enrol a reader (the PIN is asked for, not echoed)")
    reader.add_argument("study", help="study id")
    reader.add_argument("reader", help="reader id")
    reader.add_argument("--name", help="display name")
    _add_pin_options(reader)
    reader.set_defaults(run=run_add_reader)

    reset = cmds.add_parser("reset-pin", help="give a reader a new PIN (also lifts a lockout)")
    reset.add_argument("study", help="study id")
    reset.add_argument("reader", help="reader id")
    _add_pin_options(reset)
    reset.set_defaults(run=run_reset_pin)

    unlock = cmds.add_parser("unlock-reader", help="lift a reader's lockout after repeated wrong PINs")
    unlock.add_argument("study", help="study id")
    unlock.add_argument("reader", help="reader id")
    unlock.set_defaults(run=run_unlock_reader)

    progress = cmds.add_parser("progress", help="how far every reader is")
    progress.add_argument("study", help="study id")
    progress.set_defaults(run=run_progress)

    export = cmds.add_parser("export-reads", help="reads as CSV (and the MRMC long format)")
    export.add_argument("study", help="study id")
    export.add_argument("--out", required=True, type=Path, help="CSV file")
    export.add_argument("--history", action="store_true", help="also superseded answers")
    export.add_argument("--long-format", type=Path, help="folder for the long-format CSVs and the MRMC tools' input "
                                                         "files (iMRMC app, iMRMC R package, RJafroc)")
    export.set_defaults(run=run_export)

    report = cmds.add_parser("report", help="analyse and write the tables and the HTML report")
    report.add_argument("study", help="study id")
    report.add_argument("--out", type=Path, help="folder (default: study_<id>)")
    report.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples")
    report.add_argument("--n-perm", type=int, default=10000, help="permutation resamples")
    report.add_argument("--seed", type=int, help="statistics seed (default: the study seed)")
    report.add_argument("--covariance", choices=("jackknife", "delong"), default="jackknife",
                        help="covariance of the AUC estimates in the MRMC analyses (delong: MRMCaov's default)")
    report.set_defaults(run=run_report)


def _add_pin_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pin-file", type=Path, help=f"read the PIN from the first line of this file (else "
                                                      f"${PIN_VARIABLE}, else a prompt)")
    parser.add_argument("--pin", help=argparse.SUPPRESS)  # refused with a message saying what to use instead


def _store(args: argparse.Namespace, *, read_only: bool = False):
    from engine.store import Store

    return Store(args.db or None, read_only=read_only)


def read_pin(args: argparse.Namespace) -> str:
    """The new PIN from --pin-file, $ONCOLENS_READER_PIN or the prompt (typed twice); never from the command line."""
    from engine.studies import StudyError

    if args.pin is not None:
        raise StudyError(f"--pin is not accepted: a PIN on the command line stays in the shell history and shows in "
                         f"the process list. Type it at the prompt, or use --pin-file FILE or ${PIN_VARIABLE}.")
    if args.pin_file is not None:
        try:
            lines = args.pin_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise StudyError(f"Cannot read the PIN file {args.pin_file}: {exc}. Give a readable UTF-8 text file "
                             "whose first line is the PIN.") from exc
        if not lines or not lines[0]:
            raise StudyError(f"The PIN file {args.pin_file} is empty; its first line must be the PIN.")
        return lines[0]
    if os.environ.get(PIN_VARIABLE):
        return os.environ[PIN_VARIABLE]
    no_terminal = StudyError(f"No PIN was typed: standard input is closed or empty. Run the command in a terminal, "
                             f"or give the PIN with --pin-file FILE or the {PIN_VARIABLE} environment variable.")
    if PROMPT is getpass and not _has_terminal():
        raise no_terminal  # getpass would warn that the PIN may be echoed, then fail on the empty input
    try:
        pin = PROMPT(f"PIN for reader {args.reader}: ")
        if PROMPT("Repeat the PIN: ") != pin:
            raise StudyError("The two PINs differ; nothing was saved. Try again.")
    except EOFError:
        raise no_terminal from None
    return pin


def _has_terminal() -> bool:
    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (AttributeError, ValueError):  # replaced or closed stdin
        return False


def run_create(args: argparse.Namespace, ctx: Context) -> int:
    from engine.cases.kinds import case_kinds, get_kind
    from engine.studies import Study, create_study

    if args.kind:
        get_kind(args.kind)  # an unknown kind is named with the known ones, before the store is touched
    with _store(args) as store:
        case_ids = list(args.cases or [])
        if args.kind:
            of_kind = [c.id for c in sorted(store.list_cases(kind=args.kind), key=lambda c: c.id)]
            if not of_kind and not case_ids:
                raise ValueError(f"The store holds no {args.kind} cases, so --kind {args.kind} adds none. Open "
                                 "their bundles in OncoLens first (File ▸ Open case bundle…), or name another "
                                 f"kind: {', '.join(k.name for k in case_kinds())}.")
            case_ids += [c for c in of_kind if c not in case_ids]
        study = create_study(store, Study(
            id=args.study, name=args.name or args.study, task_label=args.label, case_ids=tuple(case_ids),
            modalities=tuple(args.modalities), arms=tuple(args.arms), confidence_scale=args.scale,
            contours=bool(args.contours), seed=int(args.seed), repeat_reads=int(args.repeat_reads),
            washout_days=float(args.washout_days), model=args.model, question=args.question or "",
            description=args.description or ""), actor=args.actor)
    ctx.say(f"created study {study.id}: {count_of(len(study.case_ids), study.case_kind + ' case')}, arms "
            f"{', '.join(study.arms)}, model {study.model} at {study.model_threshold:g}")
    return 0


def run_add_reader(args: argparse.Namespace, ctx: Context) -> int:
    from engine.studies import add_reader

    pin = read_pin(args)
    with _store(args) as store:
        reader = add_reader(store, args.study, args.reader, args.name or args.reader, pin, actor=args.actor)
    ctx.say(f"enrolled reader {reader.reader_id} ({reader.display_name}) in study {reader.study_id}")
    return 0


def run_reset_pin(args: argparse.Namespace, ctx: Context) -> int:
    from engine.studies import reset_pin

    pin = read_pin(args)
    with _store(args) as store:
        reset_pin(store, args.study, args.reader, pin, actor=args.actor)
    ctx.say(f"reader {args.reader} of study {args.study} has a new PIN")
    return 0


def run_unlock_reader(args: argparse.Namespace, ctx: Context) -> int:
    from engine.studies import unlock_reader

    with _store(args) as store:
        failures = unlock_reader(store, args.study, args.reader, actor=args.actor)
    ctx.say(f"unlocked reader {args.reader} of study {args.study} ({failures} wrong PINs in a row before)")
    return 0


def run_progress(args: argparse.Namespace, ctx: Context) -> int:
    from engine.studies import study_progress

    with _store(args, read_only=True) as store:
        rows = study_progress(store, args.study)
    ctx.say(f"{'reader':<16} {'arm':<8} {'round':>5} {'answered':>9}  completed")
    for r in rows:
        ctx.say(f"{r.reader_id:<16} {r.arm:<8} {r.round:>5} {r.answered:>4}/{r.total:<4}  "
                f"{r.completed or ('in progress' if r.started else 'not started')}")
    return 0


def run_export(args: argparse.Namespace, ctx: Context) -> int:
    from engine.studies import export_long_format, export_reads_csv

    check_output_file(args.out, (".csv",))
    check_output_folder(args.long_format, "--long-format")
    with _store(args, read_only=True) as store:
        ctx.say(f"wrote {export_reads_csv(store, args.study, args.out, history=bool(args.history))}")
        if args.long_format:
            for written in export_long_format(store, args.study, args.long_format):
                ctx.say(f"wrote {written}")
    return 0


def run_report(args: argparse.Namespace, ctx: Context) -> int:
    from engine.studies import analyze_study
    from engine.studies.report import write_report

    check_output_folder(args.out)
    with _store(args, read_only=True) as store:
        analysis = analyze_study(store, args.study, n_boot=args.n_boot, n_perm=args.n_perm, seed=args.seed,
                                 covariance=args.covariance)
    out = args.out or Path(f"study_{args.study}")
    paths = analysis.write(out)
    report = write_report(analysis, out / f"study_{args.study}_report.html")
    for note in analysis.notes:
        ctx.say(f"note: {note}")
    ctx.say(f"analysed {len(analysis.data.case_ids)} cases in {analysis.seconds:.1f} s; wrote {len(paths)} tables "
            f"and the report {report}")
    return 0
