"""CHMFL on the command line: `oncolens train|evaluate|bench chmfl`."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.cli.common import (
    Context,
    add_evaluation_options,
    add_models_dir,
    add_phantom_data,
    check_output_file,
    models_root,
)


def add_data(p: argparse.ArgumentParser) -> None:
    add_phantom_data(p, "PET-CT patient", 96, "--volumes-per-patient", 1, 7)


def data(args: argparse.Namespace):
    from engine.cli.common import phantom_data
    from engine.train.chmfl_run import PetCtData

    return phantom_data(args, PetCtData)


def settings(args: argparse.Namespace):
    from engine.train.chmfl import CHMFLTrainSettings

    if args.preset == "paper":
        return CHMFLTrainSettings.paper(epochs=args.epochs or 200, folds=args.folds)
    return CHMFLTrainSettings(epochs=args.epochs or 20, folds=args.folds, n_bootstrap=getattr(args, "bootstrap", 1000))


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="compact", choices=["compact", "paper"],
                   help="compact: 3.5 mm box of 32^3, narrow channels (CPU); paper: 1 mm, 144 x 112 x 112, Table SI")
    p.add_argument("--epochs", type=int, help="epochs per fold (default 20 compact, 200 paper)")
    p.add_argument("--folds", type=int, default=6, help="cross-validation folds (default 6, as the paper)")


def register_train(families: argparse._SubParsersAction) -> None:
    p = families.add_parser("chmfl", help="CHMFL PET-CT distant metastasis: the 6-fold protocol, ablations, the card")
    _options(p)
    p.add_argument("--ablation", default="all", help="rows to cross-validate for the card's table: all, modalities, "
                                                     "dims, decoder, w, or comma-separated row names")
    p.add_argument("--out", type=Path, help="folder for the ablation tables (default: the card's folder)")
    add_data(p)
    add_models_dir(p, writing=True)
    p.set_defaults(run=run_train)


def register_evaluate(families: argparse._SubParsersAction) -> None:
    p = families.add_parser("chmfl", help="the installed CHMFL card on new patients, or (--ablation) ablation rows")
    _options(p)
    p.add_argument("--ablation", help="train and tabulate these rows instead (all, modalities, dims, decoder, w, or "
                                      "names)")
    add_data(p)
    add_evaluation_options(p)
    p.set_defaults(run=run_evaluate)


def register_bench(benches: argparse._SubParsersAction) -> None:
    p = benches.add_parser("chmfl", help="per-case CPU time: DICOM load + SUV + resample + predict, eager vs ONNX")
    p.add_argument("--repeats", type=int, default=5, help="timed cases per path (default 5)")
    p.add_argument("--out", type=Path, help="also write the table as CSV")
    add_models_dir(p)
    p.set_defaults(run=run_bench)


def run_train(args: argparse.Namespace, ctx: Context) -> int:
    from engine.train.chmfl_run import CHMFLTrainRun, resolve_rows

    run = CHMFLTrainRun(base=settings(args), data=data(args), rows=tuple(resolve_rows(args.ablation)),
                        out=Path(args.out) if args.out else None, models_root=models_root(args),
                        command=ctx.command_line)
    from engine.train.chmfl_run import train_chmfl

    return train_chmfl(run, ctx.say)


def run_evaluate(args: argparse.Namespace, ctx: Context) -> int:
    from engine.train.chmfl_run import CHMFLEvaluation, evaluate_chmfl, resolve_rows

    explicit = args.data != "phantom" or args.ablation
    ev = CHMFLEvaluation(out=args.out, data=data(args) if explicit else None,
                         rows=tuple(resolve_rows(args.ablation)) if args.ablation else (), base=settings(args),
                         n_bootstrap=args.bootstrap, models_root=models_root(args))
    return evaluate_chmfl(ev, ctx.say)


def run_bench(args: argparse.Namespace, ctx: Context) -> int:
    from engine.train.chmfl_bench import CHMFLBench, bench_chmfl

    check_output_file(args.out, (".csv",))
    return bench_chmfl(CHMFLBench(repeats=args.repeats, out=args.out, models_root=models_root(args)), ctx.say)
