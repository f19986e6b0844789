"""Fluorescence segmentation on the command line: `oncolens train|evaluate fluoro_seg` and `oncolens bench seg`."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.cli.common import (
    Context,
    add_models_dir,
    check_output_file,
    check_output_folder,
    models_root,
    optional_path,
)


def add_options(p: argparse.ArgumentParser, training: bool) -> None:
    g = p.add_argument_group("nets and protocol")
    g.add_argument("--nets", default="unetplusplus,unet" if training else "all",
                   help="unet, unetplusplus, deeplabv3plus, swin_unetr (comma-separated) or all"
                        + ("" if training else "; add drlse for the level-set baseline ('all' includes it)"))
    g.add_argument("--folds", type=int, default=0 if training else 5,
                   help="k-fold cross-validation of end-to-end vs transfer (0: skip; the paper used 5)")
    g.add_argument("--targets", default="A,B", help="datasets fine-tuned on in the protocol (default A,B)")
    g.add_argument("--imagenet-encoder", action="append", metavar="NET=FILE",
                   help="local ImageNet encoder weights for a net (else the encoder is pretrained on the other "
                        "phantom dataset)")
    g.add_argument("--preset", default="compact", choices=["compact", "paper"],
                   help="compact: 256 px work size (demo); paper: 1024 px")
    g.add_argument("--epochs", type=int, help="epochs (default 25 compact, 200 paper)")
    g.add_argument("--batch-size", type=int, default=4, help="batch size (default 4)")
    g.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    g.add_argument("--seed", type=int, default=0, help="training seed")
    g.add_argument("--encoder-bn", default="frozen", choices=["frozen", "adapt"],
                   help="a transfer encoder's BatchNorm statistics while the decoder trains: frozen (kept from "
                        "pretraining) or adapt (re-estimated on the fine-tuning data)")
    g.add_argument("--device", default="auto", help="where the nets train: auto (CUDA when present), cpu, cuda or "
                                                    "cuda:N")
    g.add_argument("--jobs", type=int, default=1, help="worker processes for the protocol's trainings")
    g.add_argument("--out", help="folder for the protocol tables (train default: in the models folder; evaluate "
                                 "default: ./evaluation)")
    if training:
        g.add_argument("--no-compare-end-to-end", dest="compare_end_to_end", action="store_false",
                       help="skip training each net end to end on B for the card's comparison on C")
    else:
        g.add_argument("--tables-from", nargs="+", metavar="CSV", type=Path,
                       help="no training: tabulate the per_image_metrics.csv of earlier runs")
    d = p.add_argument_group("data")
    d.add_argument("--data", default="phantom", help="'phantom' or a frame CSV manifest (see README)")
    d.add_argument("--phantom-frames", default="A=61,B=106,C=24", help="phantom frames per dataset")
    d.add_argument("--phantom-size", type=int, default=1024, help="phantom frame size in pixels (default 1024)")
    d.add_argument("--phantom-seed", type=int, default=2024, help="phantom seed (default 2024)")


def seg_run(args: argparse.Namespace, ctx: Context, training: bool):
    from engine.train.fluoro_seg import SegTrainSettings
    from engine.train.fluoro_seg_run import (
        COMPACT_EPOCHS,
        FrameData,
        SegRun,
        parse_counts,
        parse_imagenet,
        parse_nets,
        parse_protocol_nets,
    )

    epochs = args.epochs or (200 if args.preset == "paper" else COMPACT_EPOCHS)
    base = SegTrainSettings(preset=args.preset, epochs=epochs, batch_size=args.batch_size, lr=args.lr,
                            seed=args.seed, encoder_bn=args.encoder_bn)
    nets, drlse = (parse_nets(args.nets), True) if training else parse_protocol_nets(args.nets)
    data = FrameData(args.data, tuple(parse_counts(args.phantom_frames).items()), args.phantom_seed,
                     args.phantom_size)
    return SegRun(base=base, nets=nets, drlse=drlse, data=data, folds=args.folds,
                  targets=tuple(t for t in args.targets.split(",") if t),
                  imagenet=tuple(parse_imagenet(args.imagenet_encoder).items()), device=args.device, jobs=args.jobs,
                  compare_end_to_end=getattr(args, "compare_end_to_end", True),
                  tables_from=tuple(getattr(args, "tables_from", None) or ()), out=optional_path(args.out),
                  models_root=models_root(args), command=ctx.command_line)


def register_train(families: argparse._SubParsersAction) -> None:
    seg = families.add_parser("fluoro_seg", help="fluorescence segmentation nets (transfer-trained), optionally "
                                                 "with the paper's k-fold protocol tables")
    add_options(seg, training=True)
    add_models_dir(seg, writing=True)
    seg.set_defaults(run=run_train)


def register_evaluate(families: argparse._SubParsersAction) -> None:
    seg = families.add_parser("fluoro_seg", help="the segmentation paper's protocol (end-to-end vs transfer, "
                                                 "k-fold, held-out C, DRLSE)")
    add_options(seg, training=False)
    add_models_dir(seg)
    seg.set_defaults(run=run_evaluate)


def register_bench(benches: argparse._SubParsersAction) -> None:
    b = benches.add_parser("seg", help="segmentation nets at 256 and 512 px: eager vs ONNX Runtime, and the masks' "
                                       "Dice")
    b.add_argument("--repeats", type=int, default=50, help="timed calls per measurement (default 50)")
    b.add_argument("--nets", default="installed", help="which installed nets (comma-separated; default all)")
    b.add_argument("--out", type=Path, help="also write the table as CSV")
    add_models_dir(b)
    b.set_defaults(run=run_bench)


def run_train(args: argparse.Namespace, ctx: Context) -> int:
    from engine.train.fluoro_seg_run import train_fluoro_seg

    return train_fluoro_seg(seg_run(args, ctx, training=True), ctx.say)


def run_evaluate(args: argparse.Namespace, ctx: Context) -> int:
    from engine.train.fluoro_seg_run import evaluate_fluoro_seg

    check_output_folder(optional_path(args.out))
    return evaluate_fluoro_seg(seg_run(args, ctx, training=False), ctx.say)


def run_bench(args: argparse.Namespace, ctx: Context) -> int:
    from engine.train.fluoro_seg_run import bench_seg
    from engine.train.mfi_ffp_run import LatencyBench

    check_output_file(args.out, (".csv",))
    return bench_seg(LatencyBench(repeats=args.repeats, nets=args.nets, out=args.out, models_root=models_root(args)),
                     ctx.say)
