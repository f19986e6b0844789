"""`oncolens review history|identify|outlines`: offline review from the command line (the GUI's history, case
details and reader-outline views, on the same engine functions). Tables go to stdout, notes to stderr."""

from __future__ import annotations

import argparse
import getpass

from engine.cli.common import Context


def register(sub: argparse._SubParsersAction) -> None:
    review = sub.add_parser("review", help="stored runs of a case, case names and patient ids, readers' outlines")
    review.add_argument("--db", help="database URL (default: the db_url setting or the user's SQLite file)")
    cmds = review.add_subparsers(dest="review_command", required=True, metavar="COMMAND")

    history = cmds.add_parser("history", help="every stored run on a case: date, models, weights hashes, calls")
    history.add_argument("case", help="case id")
    history.set_defaults(run=run_history)

    identify = cmds.add_parser("identify", help="give a stored case a patient id and a name (audited)")
    identify.add_argument("case", help="case id")
    identify.add_argument("--patient-id", default=None, help="patient id ('' removes it; left out: unchanged)")
    identify.add_argument("--name", default=None, help="case name ('' removes it; left out: unchanged)")
    identify.set_defaults(run=run_identify)

    outlines = cmds.add_parser("outlines", help="every reader's outline of one study case: Dice against the truth")
    outlines.add_argument("study", help="study id")
    outlines.add_argument("case", help="case id")
    outlines.set_defaults(run=run_outlines)


def run_history(args: argparse.Namespace, ctx: Context) -> int:
    from engine.review import prediction_history
    from engine.store import Store

    with Store(args.db or None, read_only=True) as store:
        case = store.load_case(args.case)
        runs = prediction_history(case, [(s.id, s.summary) for s in store.predictions_for(args.case)])
    if not runs:
        ctx.say(f"{args.case}: no stored result (run `oncolens predict` or press F5 in the app)")
    for run in runs:
        calls = "; ".join(f"{p.model}: " + ", ".join(f"{t} {r.call}" + (f" ({r.probability:.3f})" if r.assessed
                                                                           else "") for t, r in p.tasks.items())
                          for p in run.predictions)
        print(f"{run.label(case.kind)}  [{'masks/heatmaps kept' if run.has_arrays else 'summary only'}]  {calls}")
    return 0


def run_identify(args: argparse.Namespace, ctx: Context) -> int:
    from engine.store import Store

    with Store(args.db or None) as store:
        record = store.get_case_record(args.case)
        patient_id = record.patient_id if args.patient_id is None else args.patient_id
        name = (record.name or "") if args.name is None else args.name
        changed = store.set_case_identity(args.case, patient_id=patient_id, name=name, actor=getpass.getuser())
    ctx.say(f"{args.case}: " + ("patient id and name saved (audited)" if changed else "nothing changed"))
    return 0


def run_outlines(args: argparse.Namespace, ctx: Context) -> int:
    from engine.store import Store
    from engine.studies.outlines import case_outlines, outline_dice_table

    with Store(args.db or None, read_only=True) as store:
        outlines = case_outlines(store, args.study, args.case)
    print(f"{'rater':<28} {'arm':<9} {'round':>5} {'drawn':>6}  dice")
    for row in outline_dice_table(outlines):
        dice = "—" if row["dice"] is None else f"{row['dice']:.3f}"
        print(f"{row['rater']:<28} {row['arm']:<9} {row['round']:>5} {'yes' if row['drawn'] else 'no':>6}  {dice}")
    for note in outlines.notes:
        ctx.say(f"note: {note}")
    return 0
