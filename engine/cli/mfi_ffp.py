"""MFI-FFP on the command line: `oncolens train|evaluate|bench mfi_ffp`."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.cli.common import (
    Context,
    add_evaluation_options,
    add_models_dir,
    add_phantom_data,
    check_output_file,
    check_output_folder,
    models_root,
    optional_path,
    phantom_data,
)


def add_data(p: argparse.ArgumentParser) -> None:
    add_phantom_data(p, "node", 60, "--phantom-nodes", 30, 2024)


def node_data(args: argparse.Namespace):
    from engine.train.mfi_ffp_run import NodeData

    return phantom_data(args, NodeData)


def settings(args: argparse.Namespace, pretrained: dict | None = None, n_bootstrap: int = 1000):
    from engine.train.mfi_ffp import MFIFFPTrainSettings

    epochs = args.epochs or (100 if args.preset == "paper" else 12)
    return MFIFFPTrainSettings(preset=args.preset, epochs=epochs, batch_size=getattr(args, "batch_size", 32),
                               pretrained=pretrained or {}, n_bootstrap=n_bootstrap)


def variants(spec: str) -> tuple[tuple[str, ...], ...]:
    from engine.train.mfi_ffp_run import parse_variants

    return tuple(parse_variants(spec))


def ablation_rows(spec: str | None) -> tuple[str, ...]:
    from engine.train.mfi_ffp_ablation import resolve_names

    return tuple(resolve_names(spec)) if spec else ()


def _variant_options(p: argparse.ArgumentParser, training: bool) -> None:
    p.add_argument("--variants", default="all" if training else "installed",
                   help="modality sets, e.g. 'WLI+FI+PCI,WLI+FI', or " + ("'all' (7 sets)" if training else "'installed'"))
    p.add_argument("--ablation", help=("also train these ablation rows for the tri-modal card's table" if training
                                       else "train and tabulate these ablation rows instead")
                   + ": all, modalities, branches, losses, loss-weights, input, ldam, or comma-separated row names")
    p.add_argument("--runs", type=int, default=1, help="runs per configuration; the median-AUC run is kept")
    p.add_argument("--preset", default="compact", choices=["compact", "paper"], help="net size (default compact)")
    p.add_argument("--epochs", type=int, help="epochs per configuration (default 12 compact, 100 paper)")


def register_train(families: argparse._SubParsersAction) -> None:
    mfi = families.add_parser("mfi_ffp", help="MFI-FFP lymph-node nets: the 7 modality variants and ablations")
    _variant_options(mfi, training=True)
    mfi.add_argument("--batch-size", type=int, default=32, help="batch size (default 32)")
    mfi.add_argument("--pretrained-irb", help="local torchvision MobileNetV2 ImageNet weights for the WLI branch")
    mfi.add_argument("--pretrained-rb", help="local torchvision ResNet18 ImageNet weights for the FI branch")
    mfi.add_argument("--out", help="folder for the ablation tables (default: in the tri-modal card's folder)")
    add_data(mfi)
    add_models_dir(mfi, writing=True)
    mfi.set_defaults(run=run_train)


def register_evaluate(families: argparse._SubParsersAction) -> None:
    mfi = families.add_parser("mfi_ffp", help="the installed MFI-FFP variants, or (--ablation) ablation rows")
    _variant_options(mfi, training=False)
    add_data(mfi)
    add_evaluation_options(mfi)
    mfi.set_defaults(run=run_evaluate)


def register_bench(benches: argparse._SubParsersAction) -> None:
    b = benches.add_parser("mfi_ffp", help="per-case latency of the tri-modal MFI-FFP net: eager PyTorch vs ONNX "
                                           "Runtime")
    b.add_argument("--repeats", type=int, default=50, help="timed calls per measurement (default 50)")
    b.add_argument("--out", type=Path, help="also write the table as CSV")
    add_models_dir(b)
    b.set_defaults(run=run_bench)


def run_train(args: argparse.Namespace, ctx: Context) -> int:
    from engine.train.mfi_ffp_run import MFIFFPTrainRun, train_mfi_ffp_variants

    pretrained = {k: v for k, v in (("irb", args.pretrained_irb), ("rb", args.pretrained_rb)) if v}
    run = MFIFFPTrainRun(base=settings(args, pretrained=pretrained), data=node_data(args),
                         variants=variants(args.variants), ablation=ablation_rows(args.ablation), runs=args.runs,
                         out=optional_path(args.out), models_root=models_root(args), command=ctx.command_line)
    return train_mfi_ffp_variants(run, ctx.say)


def run_evaluate(args: argparse.Namespace, ctx: Context) -> int:
    from engine.train.mfi_ffp_run import MFIFFPEvaluation, evaluate_mfi_ffp

    check_output_folder(args.out)
    explicit = args.data != "phantom" or args.ablation
    ev = MFIFFPEvaluation(out=args.out, variants=None if args.variants == "installed" else variants(args.variants),
                          data=node_data(args) if explicit else None, split=args.split, n_bootstrap=args.bootstrap,
                          ablation=ablation_rows(args.ablation), base=settings(args, n_bootstrap=args.bootstrap),
                          runs=args.runs, models_root=models_root(args))
    return evaluate_mfi_ffp(ev, ctx.say)


def run_bench(args: argparse.Namespace, ctx: Context) -> int:
    from engine.train.mfi_ffp_run import LatencyBench, bench_mfi_ffp

    check_output_file(args.out, (".csv",))
    return bench_mfi_ffp(LatencyBench(repeats=args.repeats, out=args.out, models_root=models_root(args)), ctx.say)
