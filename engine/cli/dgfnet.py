"""DGFNet on the command line: `oncolens train|evaluate|bench dgfnet`."""

from __future__ import annotations

import argparse

from engine.cli.common import (
    Context,
    add_evaluation_options,
    add_models_dir,
    add_phantom_data,
    models_root,
    phantom_data,
)

PHANTOM = ("nodule", 500, "--phantom-nodules-per-patient", 1, 2025)  # what, patients, flag, per patient, seed


def _schedule_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="compact", choices=["compact", "paper"],
                   help="compact (CPU demo: small encoders, US 64 / CT 32 px) or paper (ResNet34/18, 288 / 96 px)")
    p.add_argument("--seg-epochs", type=int, help="segmentation-only epochs (default 4 compact, 100 paper)")
    p.add_argument("--joint-epochs", type=int, help="segmentation + classification epochs (default 14 compact, 200 paper)")
    p.add_argument("--fusion-epochs", type=int, default=150, help="fusion epochs on frozen branches (compact protocol)")
    p.add_argument("--joint-encoders", choices=["frozen", "trained"],
                   help="fused models: train fusion + classifier on the unimodal branches (frozen, compact default) "
                        "or re-train end to end (trained, the paper and the paper preset's default)")
    p.add_argument("--lr", type=float, help="Adam learning rate (default 2e-3 compact from scratch, 1e-4 paper)")
    p.add_argument("--folds", type=int, default=8, help="cross-validation folds (default 8, as the paper)")
    p.add_argument("--seed", type=int, default=0)


def settings(args: argparse.Namespace):
    from engine.train.dgfnet import DGFTrainSettings

    paper = args.preset == "paper"
    return DGFTrainSettings(
        preset=args.preset, seg_epochs=args.seg_epochs or (100 if paper else 4),
        joint_epochs=args.joint_epochs or (200 if paper else 14), fusion_epochs=args.fusion_epochs,
        joint_encoders=args.joint_encoders or ("trained" if paper else "frozen"),
        lr=args.lr or (1e-4 if paper else 2e-3), seed=args.seed, pretrained=getattr(args, "pretrained", None) or "")


def thyroid_data(args: argparse.Namespace):
    from engine.train.dgfnet_run import ThyroidData

    return phantom_data(args, ThyroidData)


def register_train(families: argparse._SubParsersAction) -> None:
    p = families.add_parser("dgfnet", help="DGFNet thyroid LNM (US + CT): cross-validated ablation per site and the "
                                           "central and lateral models")
    _schedule_options(p)
    p.add_argument("--sites", default="central_lnm,lateral_lnm", help="comma-separated sites to train")
    p.add_argument("--max-folds", type=int, help="stop after this many folds (a quick look; the tables need all)")
    p.add_argument("--pretrained", help="local torchvision ResNet18/34 ImageNet file for the encoders")
    add_phantom_data(p, *PHANTOM)
    add_models_dir(p, writing=True)
    p.set_defaults(run=run_train)


def register_evaluate(families: argparse._SubParsersAction) -> None:
    p = families.add_parser("dgfnet", help="the installed DGFNet models, or (--ablation) the cross-validated ablation")
    _schedule_options(p)
    p.add_argument("--ablation", action="store_true",
                   help="train and tabulate US, CT, concatenation, sum, product and DGF by cross-validation")
    add_phantom_data(p, *PHANTOM)
    add_evaluation_options(p)
    p.set_defaults(run=run_evaluate)


def register_bench(benches: argparse._SubParsersAction) -> None:
    p = benches.add_parser("dgfnet", help="per-case latency of DGFNet (both sites), with and without integrated "
                                          "gradients, eager PyTorch vs ONNX Runtime")
    p.add_argument("--repeats", type=int, default=20, help="timed calls without IG (default 20)")
    p.add_argument("--ig-repeats", type=int, default=3, help="timed calls with IG (default 3)")
    p.add_argument("--threads", type=int, help="CPU threads (default: all cores)")
    add_models_dir(p)
    p.set_defaults(run=run_bench)


def run_train(args: argparse.Namespace, ctx: Context) -> int:
    from engine.train.dgfnet_cards import DGFNetTrainRun, train_dgfnet

    sites = tuple(s.strip() for s in args.sites.split(",") if s.strip())
    unknown = [s for s in sites if s not in ("central_lnm", "lateral_lnm")]
    if unknown:
        raise ValueError(f"Unknown site(s) {', '.join(unknown)}: use central_lnm, lateral_lnm.")
    run = DGFNetTrainRun(base=settings(args), data=thyroid_data(args), sites=sites, folds=args.folds,
                         max_folds=args.max_folds, models_root=models_root(args), command=ctx.command_line)
    return train_dgfnet(run, ctx.say)


def run_evaluate(args: argparse.Namespace, ctx: Context) -> int:
    from engine.train.dgfnet_cards import DGFNetEvaluation, evaluate_dgfnet

    explicit = args.data != "phantom" or args.ablation
    ev = DGFNetEvaluation(out=args.out, data=thyroid_data(args) if explicit else None, split=args.split,
                          n_bootstrap=args.bootstrap, ablation=args.ablation, base=settings(args), folds=args.folds,
                          models_root=models_root(args))
    return evaluate_dgfnet(ev, ctx.say)


def run_bench(args: argparse.Namespace, ctx: Context) -> int:
    from engine.train.dgfnet_cards import DGFNetBench, bench_dgfnet

    return bench_dgfnet(DGFNetBench(repeats=args.repeats, ig_repeats=args.ig_repeats, threads=args.threads,
                                    models_root=models_root(args)),
                        ctx.say)
