"""`oncolens bench FAMILY|live|study|ci-coverage`: measured tables, printed (and optionally written as CSV)."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.cli.common import Context, add_models_dir, check_output_file, check_output_folder, models_root
from engine.cli.families import FAMILIES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="speed and statistics benchmarks that print a table (same run, side by side)")
    which = p.add_subparsers(dest="bench", required=True, metavar="BENCH")

    for family in FAMILIES:
        if hasattr(family, "register_bench"):
            family.register_bench(which)

    study = which.add_parser("study", help="time a simulated reader study's reading and analysis on a fresh store")
    study.add_argument("--readers", type=int, default=10, help="simulated readers (default 10)")
    study.add_argument("--cases", type=int, default=300, help="simulated cases (default 300)")
    study.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    study.add_argument("--n-perm", type=int, default=10000, help="permutation resamples (default 10000)")
    study.add_argument("--seed", type=int, default=0, help="simulation seed")
    study.add_argument("--out", type=Path, help="keep the tables and the HTML report in this folder")
    study.set_defaults(run=run_study)

    live = which.add_parser("live", help="the live pipeline on the phantom NIR video, per device and inference path: "
                                         "stage latencies, fps processed, dropped frames, GUI stall")
    live.add_argument("--seconds", type=float, default=10.0, help="streaming time per path (default 10)")
    live.add_argument("--size", type=int, default=1024, help="phantom frame size in pixels (default 1024)")
    live.add_argument("--fps", type=float, default=30.0, help="source frame rate (default 30)")
    live.add_argument("--method", default="unet", help="segmentation net (default unet, the compact live net)")
    live.add_argument("--path", action="append", dest="paths", metavar="DEVICE:BACKEND",
                      help="only this path, e.g. cpu:onnx or cuda:cuda-graph (repeatable; default: all available)")
    live.add_argument("--smoothing", type=float, help="temporal smoothing weight of the newest frame (default off)")
    live.add_argument("--headless", action="store_true", help="a stand-in GUI thread even when the live view exists")
    live.add_argument("--out", type=Path, help="also write the table as CSV")
    add_models_dir(live)
    live.set_defaults(run=run_live)

    cov = which.add_parser("ci-coverage", help="coverage of the interval methods for sensitivity and specificity "
                                               "in simulated studies")
    cov.add_argument("--studies", type=int, default=2000, help="simulated studies (default 2000)")
    cov.add_argument("--n-pos", type=int, default=195, help="positive cases per study (default 195)")
    cov.add_argument("--n-neg", type=int, default=75, help="negative cases per study (default 75)")
    cov.add_argument("--sensitivity", type=float, default=0.145, help="true sensitivity (default 0.145)")
    cov.add_argument("--specificity", type=float, default=0.938, help="true specificity (default 0.938)")
    cov.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples per study (default 1000)")
    cov.add_argument("--seed", type=int, default=0, help="simulation seed")
    cov.add_argument("--out", type=Path, help="also write the table as Markdown")
    cov.set_defaults(run=run_coverage)


def run_study(args: argparse.Namespace, ctx: Context) -> int:
    from engine.studies.simulate import StudyBench, bench_study

    check_output_folder(args.out)
    return bench_study(StudyBench(readers=args.readers, cases=args.cases, n_boot=args.n_boot, n_perm=args.n_perm,
                                  seed=args.seed, out=args.out), ctx.say)


def run_live(args: argparse.Namespace, ctx: Context) -> int:
    from engine.train.live_bench import LiveBench, bench_live

    check_output_file(args.out, (".csv",))
    if args.seconds <= 0 or args.size < 64 or args.fps <= 0:
        raise ValueError("--seconds and --fps must be positive and --size at least 64.")
    runner = None if args.headless else ctx.live_view_runner
    return bench_live(LiveBench(seconds=args.seconds, size=args.size, fps=args.fps, method=args.method,
                                paths=tuple(args.paths or ()), smoothing=args.smoothing, out=args.out,
                                models_root=models_root(args)), ctx.say, runner)


def run_coverage(args: argparse.Namespace, ctx: Context) -> int:
    from engine.metrics.ci_coverage import CoverageBench, bench_ci_coverage

    check_output_file(args.out, (".md",))
    return bench_ci_coverage(CoverageBench(studies=args.studies, n_pos=args.n_pos, n_neg=args.n_neg,
                                           sensitivity=args.sensitivity, specificity=args.specificity,
                                           n_resamples=args.n_boot, seed=args.seed, out=args.out), ctx.say)
