"""Reader studies: set-up, blinded reading sessions with durable answers, analysis and the HTML report.

`add_study_parsers` adds `oncolens study {create,add-reader,progress,export-reads,report}`;
`run_study_command` runs the one parsed (engine.cli calls both). The analysis names are imported on
first use, so a reading session does not pay for loading scipy.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from engine.studies.model import (
    AIDED,
    ARMS,
    SCALES,
    UNAIDED,
    AuthError,
    ConfidenceScale,
    ReaderInfo,
    Study,
    StudyError,
    WashoutError,
    add_reader,
    create_study,
    list_readers,
    list_studies,
    load_study,
    reading_order,
    reset_pin,
)
from engine.studies.session import (
    BlindedCase,
    ModelAid,
    Progress,
    ReaderAnswer,
    ReadingSession,
    study_progress,
)

__all__ = [
    "AIDED", "ARMS", "SCALES", "UNAIDED", "AuthError", "BlindedCase", "ConfidenceScale", "ModelAid", "Progress",
    "ReaderAnswer", "ReaderInfo", "ReadingSession", "Study", "StudyAnalysis", "StudyData", "StudyError",
    "WashoutError", "add_reader", "add_study_parsers", "analyze_study", "collect_study_data", "create_study",
    "export_long_format", "export_reads_csv", "list_readers", "list_studies", "load_study", "read_rows",
    "reading_order", "reset_pin", "run_study_command", "study_progress",
]


_ANALYSIS_NAMES = ("StudyAnalysis", "StudyData", "analyze_study", "collect_study_data", "export_long_format",
                   "export_reads_csv", "read_rows")


def __getattr__(name: str) -> Any:
    if name in _ANALYSIS_NAMES:
        from engine.studies import analysis

        return getattr(analysis, name)
    raise AttributeError(f"module 'engine.studies' has no attribute {name!r}")


def add_study_parsers(sub: Any) -> argparse.ArgumentParser:
    """Add the `study` command and its subcommands to an argparse subparsers object."""
    study = sub.add_parser("study", help="reader studies: create, enrol readers, progress, export, report")
    study.add_argument("--db", help="database URL (default: the db_url setting or the user's SQLite file)")
    study.add_argument("--actor", default="admin", help="who is doing this, for the audit log")
    cmds = study.add_subparsers(dest="study_command", required=True)

    create = cmds.add_parser("create", help="create a study from cases already in the store")
    create.add_argument("study", help="study id")
    create.add_argument("--name")
    create.add_argument("--label", required=True, help="truth label readers call, e.g. metastatic or tumor")
    create.add_argument("--cases", nargs="*", default=[], help="case ids")
    create.add_argument("--kind", help="add every stored case of this kind")
    create.add_argument("--modalities", nargs="+", required=True, help="modalities readers see")
    create.add_argument("--arms", nargs="+", choices=ARMS, default=[UNAIDED], help="arms in reading order")
    create.add_argument("--scale", choices=sorted(SCALES), default="5-point")
    create.add_argument("--contours", action="store_true", help="readers also draw a contour")
    create.add_argument("--seed", type=int, default=0)
    create.add_argument("--repeat-reads", type=int, default=0)
    create.add_argument("--washout-days", type=float, default=0.0)
    create.add_argument("--model", help="model whose stored predictions are used (default: newest per case)")
    create.add_argument("--question")
    create.add_argument("--description")

    reader = cmds.add_parser("add-reader", help="enrol a reader (the PIN is asked for, not echoed)")
    reader.add_argument("study")
    reader.add_argument("reader")
    reader.add_argument("--name", help="display name")
    reader.add_argument("--pin", help=argparse.SUPPRESS)  # for scripts; a prompt keeps it out of shell history

    progress = cmds.add_parser("progress", help="how far every reader is")
    progress.add_argument("study")

    export = cmds.add_parser("export-reads", help="reads as CSV (and the MRMC long format)")
    export.add_argument("study")
    export.add_argument("--out", required=True, help="CSV file")
    export.add_argument("--history", action="store_true", help="also superseded answers")
    export.add_argument("--long-format", help="folder for the long-format CSVs and the MRMC tools' input files "
                                              "(iMRMC app, iMRMC R package, RJafroc)")

    report = cmds.add_parser("report", help="analyse and write the tables and the HTML report")
    report.add_argument("study")
    report.add_argument("--out", help="folder (default: study_<id>)")
    report.add_argument("--n-boot", type=int, default=1000)
    report.add_argument("--n-perm", type=int, default=10000)
    report.add_argument("--seed", type=int, help="statistics seed (default: the study seed)")
    report.add_argument("--covariance", choices=("jackknife", "delong"), default="jackknife",
                        help="covariance of the AUC estimates in the MRMC analyses (delong: MRMCaov's default)")
    return study


def run_study_command(args: Any, say: Callable[[str], None] = print) -> int:
    """Run the `study` subcommand parsed by `add_study_parsers`."""
    from engine.studies.analysis import cmd_study_export_reads
    from engine.studies.model import cmd_study_add_reader, cmd_study_create
    from engine.studies.report import cmd_study_report
    from engine.studies.session import cmd_study_progress

    commands = {"create": cmd_study_create, "add-reader": cmd_study_add_reader, "progress": cmd_study_progress,
                "export-reads": cmd_study_export_reads, "report": cmd_study_report}
    return commands[args.study_command](args, say=say)
