"""FL-CNN on the command line: `oncolens train fl_cnn` and `oncolens evaluate fl_cnn`."""

from __future__ import annotations

import argparse

from engine.cli.common import (
    Context,
    add_evaluation_options,
    add_models_dir,
    add_phantom_data,
    check_output_folder,
    models_root,
    phantom_data,
)


def add_data(p: argparse.ArgumentParser, evaluating: bool = False) -> None:
    add_phantom_data(p, "specimen", 30, "--phantom-per-patient", 30, 2021, with_phantom=not evaluating)


def specimen_data(args: argparse.Namespace):
    from engine.train.fl_cnn_run import SpecimenData

    return phantom_data(args, SpecimenData)


def register_train(families: argparse._SubParsersAction) -> None:
    fl = families.add_parser("fl_cnn", help="FL-CNN / WL-CNN cascades (glioma specimens)")
    fl.add_argument("--modality", default="all", choices=["FL", "WL", "all"], help="which cascade (default both)")
    fl.add_argument("--task", default="all", choices=["tumor", "grade", "ki67", "all"],
                    help="which net of the cascade (default all three)")
    fl.add_argument("--preset", default="compact", choices=["compact", "paper"],
                    help="compact: the demo nets (128 px, width 0.5); paper: EfficientNet-B0 at 224 px")
    fl.add_argument("--epochs", type=int, default=10, help="training epochs (default 10)")
    fl.add_argument("--batch-size", type=int, default=32, help="batch size (default 32)")
    fl.add_argument("--seed", type=int, default=0, help="training seed (split, initialisation, augmentation)")
    fl.add_argument("--pretrained", help="local ImageNet EfficientNet-B0 weights (.pth/.safetensors)")
    add_data(fl)
    add_models_dir(fl, writing=True)
    fl.set_defaults(run=run_train)


def register_evaluate(families: argparse._SubParsersAction) -> None:
    fl = families.add_parser("fl_cnn", help="the FL-CNN / WL-CNN cascades")
    fl.add_argument("--modality", default="all", choices=["FL", "WL", "all"], help="which cascade (default both)")
    add_data(fl, evaluating=True)
    add_evaluation_options(fl)
    fl.set_defaults(run=run_evaluate)


def run_train(args: argparse.Namespace, ctx: Context) -> int:
    from engine.train.fl_cnn import FLCNNTrainSettings
    from engine.train.fl_cnn_run import TASKS, FLCNNTrainRun, train_fl_cnn_nets

    base = FLCNNTrainSettings(preset=args.preset, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                              pretrained_path=args.pretrained)
    run = FLCNNTrainRun(base=base, modalities=("FL", "WL") if args.modality == "all" else (args.modality,),
                        tasks=TASKS if args.task == "all" else (args.task,), data=specimen_data(args),
                        models_root=models_root(args), command=ctx.command_line)
    return train_fl_cnn_nets(run, ctx.say)


def run_evaluate(args: argparse.Namespace, ctx: Context) -> int:
    from engine.train.fl_cnn_run import FLCNNEvaluation, evaluate_fl_cnn_nets

    check_output_folder(args.out)
    ev = FLCNNEvaluation(out=args.out, modalities=("FL", "WL") if args.modality == "all" else (args.modality,),
                         data=specimen_data(args), split=args.split, n_bootstrap=args.bootstrap,
                         models_root=models_root(args))
    return evaluate_fl_cnn_nets(ev, ctx.say)
