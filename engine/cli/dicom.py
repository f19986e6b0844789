"""`oncolens dicom info PATH [--json]`: the series of a DICOM folder, DICOMDIR or zip, and for PET the SUV factor
of each series with every input it came from (or the tag that is missing)."""

from __future__ import annotations

import argparse
import json

from engine.cli.common import Context


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dicom", help="DICOM tools: list the series of a folder, DICOMDIR or zip")
    which = p.add_subparsers(dest="dicom_command", required=True, metavar="COMMAND")
    info = which.add_parser("info", help="list series (modality, description, slices, spacing) and PET SUV factors")
    info.add_argument("path", help="a folder (searched recursively), a DICOMDIR, a zip or a .dcm file")
    info.add_argument("--json", action="store_true", help="print JSON instead of a table")
    info.add_argument("--sul", action="store_true", help="lean-body-mass SUL factors instead of SUVbw")
    info.set_defaults(run=run_info)


def _spacing(entry: dict) -> str:
    ps = entry["pixel_spacing_mm"]
    z = entry["slice_spacing_mm"]
    if not ps:
        return "-"
    return f"{ps[0]:.2f} x {ps[1]:.2f}" + (f" x {z:.2f}" if z else "")


def run_info(args: argparse.Namespace, ctx: Context) -> int:
    from engine.io.dicom import describe_series
    from engine.io.suv import SUL, SUVBW

    entries = describe_series(args.path, SUL if args.sul else SUVBW)
    if args.json:
        print(json.dumps(entries, indent=2))
        return 0
    print(f"{'modality':<8} {'slices':>6}  {'size':<9} {'spacing mm':<20} {'description':<28} series UID")
    for e in entries:
        size = f"{e['rows']}x{e['columns']}" if e["rows"] else "-"
        print(f"{e['modality']:<8} {e['slices']:>6}  {size:<9} {_spacing(e):<20} {e['description'][:28]:<28} "
              f"{e['series_uid']}")
        if "suv" in e:
            s = e["suv"]
            inputs = ", ".join(f"{k}={v}" for k, v in s["inputs"].items())
            spread = "" if s["factor_min"] == s["factor_max"] else f" (per slice {s['factor_min']:.6g}-{s['factor_max']:.6g})"
            print(f"  {s['kind']} factor {s['factor']:.6g}{spread} [{s['method']}]")
            print(f"  inputs: {inputs}")
            for w in s["warnings"]:
                print(f"  warning: {w}")
        elif "suv_error" in e:
            print(f"  SUV: {e['suv_error']}")
    return 0
