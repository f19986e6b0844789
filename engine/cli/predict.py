"""`oncolens predict PATHS...`: run the models on image files or case bundles; JSON or CSV out."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from engine.cli.common import Context, check_output_file, check_output_folder
from engine.exports import csv_writer, open_csv
from engine.settings import BACKENDS

CSV_COLUMNS = ("source", "case_id", "model", "task", "probability", "threshold", "call", "ms_total", "warnings")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="run the models on image files or case bundles")
    p.add_argument("paths", nargs="*", help="image files (the case kind is recognised from their number and names: "
                                            "e.g. one FL/WL specimen image, the WLI/FI/PCI files of one node), a "
                                            "DICOM folder/DICOMDIR/zip or a PET + CT NIfTI pair, or bundle folders")
    p.add_argument("--out", type=Path, help="write results to this .json or .csv file (default: JSON to stdout)")
    p.add_argument("--modality", help="treat every loose image file as this modality (e.g. FL, WL, NIR, FI)")
    p.add_argument("--explain", action="store_true", help="also compute heatmaps (slower; saved with --save-bundles)")
    p.add_argument("--save-bundles", type=Path, help="write each case with its prediction as a bundle into this folder")
    p.add_argument("--backend", choices=BACKENDS,
                   help="inference path (default: the 'backend' setting, normally auto = ONNX Runtime on the CPU, "
                        "fp16 CUDA graphs on CUDA, each checked against eager); eager forces plain PyTorch fp32")
    p.add_argument("--export-seg", type=Path, metavar="DIR",
                   help="write each case's segmentation exports into DIR (PET-CT: DICOM SEG referencing the PET "
                        "series, NIfTI, measures CSV)")
    p.add_argument("--roi", action="append", default=[], metavar="MOD=x0,y0,x1,y1",
                   help="a box around the lesion on the image of modality MOD, in pixels (e.g. US=120,80,210,170 and "
                        "CT=60,52,88,80 for a thyroid US + CT pair); repeat per modality")
    p.add_argument("--rois", type=Path, help="a CSV of cases with boxes (thyroid: nodule_id,us_path,ct_path,us_box,"
                                             "ct_box[,us_frame,ct_slice]); PATHS may then be left out")
    p.set_defaults(run=run)


def cases_from_paths(paths: Sequence[str], modality: str | None) -> Iterator[tuple[str, object]]:
    """(source text, Case) for what the user named: several loose files that one kind takes as one case
    (the WLI/FI/PCI images of a node) become one case; otherwise one case per path."""
    from engine.kinds.opening import case_from_loose_images, kind_for_files, load_case_source

    files = [Path(p) for p in paths]
    if not modality and len(files) > 1 and all(f.is_file() for f in files) and kind_for_files(files).claims_files(
            files) > 1:
        yield " ".join(paths), case_from_loose_images(files)
        return
    for raw in paths:
        yield raw, load_case_source(Path(raw), modality)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from tqdm import tqdm

    from engine.cases.bundle import bundle_folder, write_bundle
    from engine.cases.kinds import get_kind
    from engine.service import PredictionService

    check_output_file(args.out, (".json", ".csv"))  # before any work, so that nothing is lost to a bad --out
    check_output_folder(args.save_bundles, "--save-bundles")
    if args.backend:
        os.environ["ONCOLENS_BACKEND"] = args.backend  # every predictor the service builds follows it
    check_output_folder(args.export_seg, "--export-seg")
    service = PredictionService(store=None, actor="oncolens-cli")
    results = []
    if not args.paths and not args.rois:
        raise ValueError("Name image files or bundles to predict, or a CSV of cases with --rois.")
    cases = list(cases_from_paths(args.paths, args.modality)) if args.paths else []  # bad input fails early
    if args.rois:
        from engine.kinds.thyroid_usct import cases_from_roi_csv

        cases += [(str(args.rois), case) for case in cases_from_roi_csv(args.rois)]
    for _source, case in cases:
        apply_rois(case, args.roi)
    for source, case in tqdm(cases, desc="predict", unit="case", file=sys.stderr):
        predictions = service.predict_case(case, explain=args.explain)
        for pred in predictions:
            case.predictions.append(pred)
            results.append({"source": source, "case_id": case.id, **pred.summary().to_dict()})
        if args.export_seg:
            for path in get_kind(case.kind).export_results(case, predictions, args.export_seg):
                ctx.say(f"wrote {path}")
        if args.save_bundles:
            write_bundle(case, bundle_folder(args.save_bundles, case.id))
    if not args.out:
        print(json.dumps(results, indent=2))
        return 0
    if args.out.suffix.lower() == ".csv":
        with open_csv(args.out) as fh:
            writer = csv_writer(fh)
            writer.writerow(CSV_COLUMNS)
            for r in results:
                for task, result in r["tasks"].items():
                    writer.writerow([r["source"], r["case_id"], r["model"], task, _blank(result["probability"]),
                                     _blank(result["threshold"]), result["call"], r["timings_ms"].get("total", ""),
                                     " | ".join(r["warnings"])])
    else:
        args.out.write_text(json.dumps(results, indent=2), encoding="utf-8")
    ctx.say(f"wrote {len(results)} predictions to {args.out}")
    return 0


def apply_rois(case, specs: Sequence[str]) -> None:
    """Store `MOD=x0,y0,x1,y1` boxes with the case's images (checked against each image's size)."""
    from engine.preprocess.us_ct import store_roi

    for spec in specs:
        modality, sep, box = spec.partition("=")
        if not sep or modality not in case.images:
            raise ValueError(f"--roi {spec!r}: write MOD=x0,y0,x1,y1 with MOD one of the case's images "
                             f"({', '.join(case.images)}).")
        store_roi(case.images[modality], box)


def _blank(value: object) -> object:
    return "" if value is None else value
