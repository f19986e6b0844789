"""`oncolens export PATH... --out DIR`: a case's overlays, masks, contours, probabilities, report and segmentation
files, for bundles or for cases in the store (by id)."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.cli.common import Context, check_output_folder


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a case's overlays, masks, contours, probabilities and report")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="case bundle folders, or case ids of cases in the store")
    p.add_argument("--out", type=Path, required=True,
                   help="folder to write into (each case gets its own subfolder, named by its id)")
    p.add_argument("--what", default="all",
                   help="comma-separated: overlay,masks,contours,probabilities,report,seg (default: all). overlay: "
                        "PNG at full resolution as the view shows it; masks: PNG and NIfTI; contours: JSON and CSV "
                        "(px and mm); probabilities: CSV and JSON; report: one-page PDF, PNG and HTML; seg: DICOM SEG "
                        "where the images came from DICOM, else NIfTI")
    p.add_argument("--frame", type=int, help="frame of a video (or PET slice) to draw (default: the kind's choice: "
                                             "the frame with the largest tumor, the slice through the tumour centre)")
    p.add_argument("--force", action="store_true", help="replace files an earlier export wrote into --out")
    p.add_argument("--db", "--store", dest="db",
                   help="database URL to look case ids up in (default: the db_url setting or the user's SQLite file)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from engine.export import ExportOptions, export_case, load_export_case, parse_what

    what = parse_what(args.what)
    check_output_folder(args.out)  # before any work
    store = None
    if any(not Path(p).exists() for p in args.paths):
        from engine.store import Store

        store = Store(args.db or None, read_only=True)
    try:
        cases = [load_export_case(p, store) for p in args.paths]  # every source read before anything is written
        total = 0
        for case in cases:
            options = ExportOptions(what=what, force=args.force, frame=args.frame)
            files = export_case(case, args.out, options, progress=ctx.say)
            for path in files:
                ctx.say(f"wrote {path}")
            for note in options.notes:
                ctx.say(f"note: {case.id}: {note}")
            total += len(files)
    finally:
        if store is not None:
            store.close()
    ctx.say(f"exported {len(cases)} case(s), {total} files, into {Path(args.out).resolve()}")
    return 0
