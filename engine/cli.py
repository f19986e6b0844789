"""The `oncolens` command: gui (default), predict, train, evaluate, make-demo-data, models.

The GUI is not part of the engine: the `oncolens` entry point (app/launcher.py) passes a launcher in.
"""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from engine.cases.model import FL, WL


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="oncolens", description="OncoLens (research use only, not for diagnostic use)")
    p.add_argument("--self-test", action="store_true",
                   help="load every shipped model, predict on a demo case, exit 0 on success")
    sub = p.add_subparsers(dest="command")

    g = sub.add_parser("gui", help="start the desktop application (default)")
    g.add_argument("paths", nargs="*", help="image files or case bundles to open")
    g.add_argument("--no-demo", action="store_true", help="do not import the bundled demo cases")

    pr = sub.add_parser("predict", help="run the models on image files or case bundles")
    pr.add_argument("paths", nargs="+", help="image files (FL/WL guessed from name or content), the WLI/FI/PCI "
                                             "files of one lymph node (named *wli*, *fi*, *pci*), or bundle folders")
    pr.add_argument("--out", help="write results to this .json or .csv file (default: JSON to stdout)")
    pr.add_argument("--modality", help="treat every loose image file as this modality (e.g. FL, WL, NIR, FI)")
    pr.add_argument("--explain", action="store_true", help="also compute Grad-CAM (slower; saved with --save-bundles)")
    pr.add_argument("--save-bundles", help="write each case with its prediction as a bundle into this folder")

    tr = sub.add_parser("train", help="train a model family and write its card + weights")
    tr.add_argument("family", choices=["fl_cnn", "mfi_ffp", "fluoro_seg"])
    tr.add_argument("--modality", default="all", choices=[FL, WL, "all"])
    tr.add_argument("--task", default="all", choices=["tumor", "grade", "ki67", "all"])
    tr.add_argument("--data", default="phantom", help="'phantom' or a CSV manifest (see README)")
    tr.add_argument("--preset", default="compact", choices=["compact", "paper"])
    tr.add_argument("--epochs", type=int, help="default: fl_cnn 10; mfi_ffp 100 (paper) or 12 (compact); "
                                               "fluoro_seg 200 (paper) or 25 (compact)")
    tr.add_argument("--batch-size", type=int, help="default: 32 (fl_cnn, mfi_ffp), 4 (fluoro_seg)")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--pretrained", help="local ImageNet EfficientNet-B0 weights (.pth/.safetensors)")
    tr.add_argument("--phantom-patients", type=int, help="default: fl_cnn 30, mfi_ffp 60")
    tr.add_argument("--phantom-per-patient", type=int, default=30)
    tr.add_argument("--phantom-seed", type=int, help="default: fl_cnn 2021, mfi_ffp 2024")
    tr.add_argument("--models-dir", help="write cards here instead of the shipped models folder")
    _mfi_options(tr, training=True)
    _seg_options(tr, training=True)

    ev = sub.add_parser("evaluate", help="evaluate shipped models: tables with bootstrap CIs, CSV/JSON, ROC PNG")
    ev.add_argument("family", choices=["fl_cnn", "mfi_ffp", "fluoro_seg"])
    ev.add_argument("--modality", default="all", choices=[FL, WL, "all"])
    ev.add_argument("--data", default="phantom", help="'phantom' (regenerated from the card) or a CSV manifest")
    ev.add_argument("--split", default="test", choices=["test", "all"],
                    help="test: only the card's held-out patients; all: every record (external test set)")
    ev.add_argument("--out", default="evaluation", help="output folder")
    ev.add_argument("--bootstrap", type=int, default=1000)
    _mfi_options(ev, training=False)
    _seg_options(ev, training=False)

    be = sub.add_parser("bench", help="CPU/GPU latency: eager PyTorch vs the fast path, in one run")
    be.add_argument("family", choices=["mfi_ffp", "seg", "study", "ci-coverage"],
                    help="study: time the analysis of a simulated reader study (no GPU involved); ci-coverage: "
                         "coverage of the interval methods for sensitivity and specificity in simulated studies")
    be.add_argument("--repeats", type=int, default=50)
    be.add_argument("--readers", type=int, default=10, help="study: simulated readers")
    be.add_argument("--cases", type=int, default=300, help="study: simulated cases")
    be.add_argument("--n-boot", type=int, default=1000, help="study, ci-coverage: bootstrap resamples")
    be.add_argument("--studies", type=int, default=2000, help="ci-coverage: simulated studies")
    be.add_argument("--n-pos", type=int, default=195, help="ci-coverage: positive cases per study")
    be.add_argument("--n-neg", type=int, default=75, help="ci-coverage: negative cases per study")
    be.add_argument("--sensitivity", type=float, default=0.145, help="ci-coverage: true sensitivity")
    be.add_argument("--specificity", type=float, default=0.938, help="ci-coverage: true specificity")
    be.add_argument("--n-perm", type=int, default=10000, help="study: permutation resamples")
    be.add_argument("--seed", type=int, default=0, help="study, ci-coverage: simulation seed")
    be.add_argument("--nets", default="installed", help="seg: which installed nets (default all installed)")
    be.add_argument("--out", help="also write the table as CSV (study: the tables and the HTML report)")

    md = sub.add_parser("make-demo-data", help="write the demo case bundles")
    md.add_argument("--out", help="folder (default: resources/demo_cases)")

    sub.add_parser("models", help="list the installed model cards")

    from engine.studies import add_study_parsers

    add_study_parsers(sub)
    return p


def _mfi_options(p: argparse.ArgumentParser, training: bool) -> None:
    g = p.add_argument_group("mfi_ffp")
    g.add_argument("--variants", default="all" if training else "installed",
                   help="mfi_ffp: modality sets to train/evaluate, e.g. 'WLI+FI+PCI,WLI+FI' or 'all' (7 sets)")
    g.add_argument("--ablation", help="mfi_ffp: also train these ablation rows: all, modalities, branches, losses, "
                                      "or comma-separated row names")
    g.add_argument("--runs", type=int, default=1, help="mfi_ffp: runs per configuration; the median-AUC run is kept")
    g.add_argument("--phantom-nodes", type=int, default=30, help="mfi_ffp: mean nodes per phantom patient")
    if not training:
        g.add_argument("--epochs", type=int, help="epochs per configuration (mfi_ffp --ablation: 12; "
                                                  "fluoro_seg: 25 compact, 200 paper)")
        g.add_argument("--preset", default="compact", choices=["compact", "paper"])
        g.add_argument("--phantom-patients", type=int, default=60)
        g.add_argument("--phantom-seed", type=int, default=2024)
    else:
        g.add_argument("--pretrained-irb", help="mfi_ffp: local torchvision MobileNetV2 ImageNet weights")
        g.add_argument("--pretrained-rb", help="mfi_ffp: local torchvision ResNet18 ImageNet weights")
        g.add_argument("--out", help="mfi_ffp / fluoro_seg: folder for the ablation / protocol tables "
                                         "(default: in the models folder)")


def _seg_options(p: argparse.ArgumentParser, training: bool) -> None:
    g = p.add_argument_group("fluoro_seg")
    g.add_argument("--nets", default="unetplusplus,unet" if training else "all",
                   help="fluoro_seg: unet, unetplusplus, deeplabv3plus, swin_unetr (comma-separated) or all"
                        + ("" if training else "; add drlse for the level-set baseline ('all' includes it)"))
    g.add_argument("--folds", type=int, default=0 if training else 5,
                   help="fluoro_seg: k-fold cross-validation of end-to-end vs transfer (0: skip; the paper used 5)")
    g.add_argument("--targets", default="A,B", help="fluoro_seg: datasets fine-tuned on in the protocol")
    g.add_argument("--imagenet-encoder", action="append", metavar="NET=FILE",
                   help="fluoro_seg: local ImageNet encoder weights for a net (else pretraining on the other dataset)")
    g.add_argument("--phantom-frames", default="A=61,B=106,C=24", help="fluoro_seg: phantom frames per dataset")
    g.add_argument("--phantom-size", type=int, default=1024, help="fluoro_seg: phantom frame size in pixels")
    g.add_argument("--lr", type=float, default=1e-3, help="fluoro_seg: Adam learning rate")
    g.add_argument("--encoder-bn", default="frozen", choices=["frozen", "adapt"],
                   help="fluoro_seg: a transfer encoder's BatchNorm statistics while the decoder trains: frozen (kept "
                        "from pretraining) or adapt (re-estimated on the fine-tuning data)")
    g.add_argument("--device", default="auto", help="fluoro_seg: where the nets train: auto (CUDA when present), "
                                                    "cpu, cuda or cuda:N")
    g.add_argument("--jobs", type=int, default=1,
                   help="fluoro_seg: worker processes for the protocol's trainings (they share the device)")
    if training:
        g.add_argument("--no-compare-end-to-end", dest="compare_end_to_end", action="store_false",
                       help="fluoro_seg: skip training each net end to end on B for the card's comparison on C")
    else:
        g.add_argument("--batch-size", type=int, default=4)
        g.add_argument("--seed", type=int, default=0)
        g.add_argument("--tables-from", nargs="+", metavar="CSV",
                       help="fluoro_seg: no training; tabulate the per_image_metrics.csv of earlier runs")


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cmd_models() -> int:
    from engine.registry import list_models

    cards = list_models()
    if not cards:
        _say("No model cards installed.")
        return 1
    print(f"{'name':<26} {'family':<10} {'input':<10} {'threshold':>9}  {'weights':>9}  sha256        task")
    for c in cards:
        threshold = next(iter(c.thresholds.values())).value
        modality = "+".join(c.input.modalities)
        print(f"{c.name:<26} {c.family:<10} {modality:<10} {threshold:>9.3f}"
              f"  {c.weights.get('bytes', 0) / 1e6:>7.2f}MB  {c.weights['sha256'][:12]}  {c.task}")
    print(f"\n{cards[0].intended_use}")
    return 0


def _cases_from_paths(paths: Sequence[str], modality: str | None):
    from engine.kinds.opening import case_from_loose_images, kind_for_files, load_case_source

    files = [Path(p) for p in paths]
    if not modality and len(files) > 1 and all(f.is_file() for f in files) and kind_for_files(files).claims_files(
            files) > 1:  # a kind that takes several files as one case (the WLI/FI/PCI images of one lymph node)
        yield " ".join(paths), case_from_loose_images(files)
        return
    for raw in paths:
        yield raw, load_case_source(Path(raw), modality)


def cmd_predict(args) -> int:
    from tqdm import tqdm

    from engine.cases.bundle import write_bundle
    from engine.service import PredictionService

    service = PredictionService(store=None, actor="oncolens-cli")
    results = []
    cases = list(_cases_from_paths(args.paths, args.modality))  # read everything first: bad input fails early
    for source, case in tqdm(cases, desc="predict", unit="case", file=sys.stderr):
        for pred in service.predict_case(case, explain=args.explain):
            case.predictions.append(pred)
            results.append({"source": source, "case_id": case.id, **pred.summary().to_dict()})
        if args.save_bundles:
            write_bundle(case, Path(args.save_bundles) / case.id)
    if not args.out:
        print(json.dumps(results, indent=2))
    elif args.out.endswith(".csv"):
        with open(args.out, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["source", "case_id", "model", "task", "probability", "threshold", "call", "ms_total"])
            for r in results:
                for task, result in r["tasks"].items():
                    writer.writerow([r["source"], r["case_id"], r["model"], task, _blank(result["probability"]),
                                     _blank(result["threshold"]), result["call"], r["timings_ms"].get("total", "")])
    else:
        Path(args.out).write_text(json.dumps(results, indent=2), encoding="utf-8")
    if args.out:
        _say(f"wrote {len(results)} predictions to {args.out}")
    return 0


def _blank(value) -> object:
    return "" if value is None else value


def _records(data: str, n_patients: int, per_patient: int, seed: int):
    from engine.train.specimen_data import load_manifest, phantom_records

    if data == "phantom":
        return phantom_records(n_patients, per_patient, seed), {
            "kind": "phantom", "generator": "engine.phantoms.glioma.make_glioma_dataset",
            "n_patients": n_patients, "specimens_per_patient": per_patient, "seed": seed,
            "note": "synthetic phantom specimens, not patient data; demo weights only"}
    return load_manifest(data), {"kind": "manifest", "path": str(data)}


def cmd_train(args, argv: Sequence[str]) -> int:
    import os

    import torch

    from engine.train.fl_cnn import FLCNNTrainSettings, save_trained, train_fl_cnn

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    records, data_desc = _records(args.data, args.phantom_patients or 30, args.phantom_per_patient,
                                  args.phantom_seed or 2021)
    command = "oncolens " + " ".join(shlex.quote(a) for a in argv)
    modalities = [FL, WL] if args.modality == "all" else [args.modality]
    tasks = ["tumor", "grade", "ki67"] if args.task == "all" else [args.task]
    root = Path(args.models_dir).resolve() if args.models_dir else None
    for modality in modalities:
        for task in tasks:
            settings = FLCNNTrainSettings(modality=modality, task=task, preset=args.preset,
                                          epochs=args.epochs or 10, batch_size=args.batch_size, seed=args.seed,
                                          pretrained_path=args.pretrained)
            outcome = train_fl_cnn(records, settings, progress=_say)
            card = save_trained(settings, outcome, data_desc, command, root)
            auc = outcome.evaluation.to_dict()["metrics"]["auc"]
            _say(f"{card.name}: test AUC {auc['value']:.3f} [{auc['ci_low']:.3f}, {auc['ci_high']:.3f}], "
                 f"threshold {outcome.threshold:.3f}, {outcome.seconds:.0f} s -> {card.folder}")
    return 0


def cmd_evaluate(args) -> int:
    from engine.registry import load_card
    from engine.train.evaluate_fl_cnn import evaluate_fl_cnn

    modalities = [FL, WL] if args.modality == "all" else [args.modality]
    for modality in modalities:
        if args.data == "phantom":
            data = load_card(f"fl_cnn_{modality.lower()}_tumor").training["data"]
            if data.get("kind") != "phantom":
                raise SystemExit("The installed cards were trained on a manifest; pass --data <manifest.csv>.")
            records, _ = _records("phantom", data["n_patients"], data["specimens_per_patient"], data["seed"])
        else:
            records, _ = _records(args.data, 0, 0, 0)
        evaluations = evaluate_fl_cnn(records, modality, args.out, split=args.split, n_bootstrap=args.bootstrap)
        print(format_table(evaluations))
    _say(f"wrote CSV, JSON and ROC PNG to {args.out}/")
    return 0


def format_table(evaluations: dict) -> str:
    metrics = ["auc", "accuracy", "sensitivity", "specificity", "ppv", "npv", "f1"]
    lines = [f"{'model':<18} {'n':>4} " + " ".join(f"{m:>21}" for m in metrics)]
    for name, ev in evaluations.items():
        d = ev.to_dict()
        cells = []
        for m in metrics:
            e = d["metrics"][m]
            cells.append(f"{e['value']:.3f} [{e['ci_low']:.3f},{e['ci_high']:.3f}]".rjust(21))
        lines.append(f"{name:<18} {d['n']:>4} " + " ".join(cells))
    if evaluations:
        lines.append(next(iter(evaluations.values())).ci_description())
    return "\n".join(lines)


def cmd_make_demo(args) -> int:
    from engine.kinds import case_kinds
    from engine.paths import demo_cases_dir

    out = Path(args.out) if args.out else demo_cases_dir()
    paths = [p for kind in case_kinds() for p in kind.write_demo_cases(out)]
    _say(f"wrote {len(paths)} demo cases to {out}")
    return 0


def main(argv: Sequence[str] | None = None, gui_launcher: Callable[..., int] | None = None,
         self_test: Callable[[], int] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    try:
        if args.self_test:
            from engine.selftest import run_self_test

            return (self_test or run_self_test)()
        command = args.command or "gui"
        if command == "gui":
            if gui_launcher is None:
                _say("The GUI is started by the `oncolens` entry point (app.launcher); this entry has none.")
                return 2
            return gui_launcher(paths=getattr(args, "paths", []), demo=not getattr(args, "no_demo", False))
        if command == "models":
            return cmd_models()
        if command == "predict":
            return cmd_predict(args)
        if command == "train":
            if args.family == "mfi_ffp":
                from engine.train.mfi_ffp_run import cmd_train_mfi_ffp

                return cmd_train_mfi_ffp(args, argv, _say)
            if args.family == "fluoro_seg":
                from engine.train.fluoro_seg_run import cmd_train_fluoro_seg

                args.batch_size = args.batch_size or 4
                return cmd_train_fluoro_seg(args, argv, _say)
            args.batch_size = args.batch_size or 32
            return cmd_train(args, argv)
        if command == "evaluate":
            if args.family == "mfi_ffp":
                from engine.train.mfi_ffp_run import cmd_evaluate_mfi_ffp

                return cmd_evaluate_mfi_ffp(args, _say)
            if args.family == "fluoro_seg":
                from engine.train.fluoro_seg_run import cmd_evaluate_fluoro_seg

                return cmd_evaluate_fluoro_seg(args, _say)
            return cmd_evaluate(args)
        if command == "study":
            from engine.studies import run_study_command

            return run_study_command(args, _say)
        if command == "bench" and args.family == "ci-coverage":
            from engine.metrics.ci_coverage import cmd_bench_ci_coverage

            return cmd_bench_ci_coverage(args, _say)
        if command == "bench" and args.family == "study":
            from engine.studies.simulate import cmd_bench_study

            return cmd_bench_study(args, _say)
        if command == "bench" and args.family == "seg":
            from engine.train.fluoro_seg_run import cmd_bench_seg

            return cmd_bench_seg(args, _say)
        if command == "bench":
            from engine.train.mfi_ffp_run import cmd_bench_mfi_ffp

            return cmd_bench_mfi_ffp(args, _say)
        if command == "make-demo-data":
            return cmd_make_demo(args)
    except (ValueError, KeyError, FileNotFoundError, RuntimeError) as exc:
        _say(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
