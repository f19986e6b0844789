"""Run the fluorescence segmentation protocol (`oncolens evaluate fluoro_seg`) on a lent GPU machine, in a fixed
time budget. Not part of the application: a developer's driver for a one-shot run.

1. Times one training step of each net on the GPU (batch 4, the compact preset's 128-pixel crops), alone and
   with `jobs` processes at once, to learn how much the processes overlap.
2. Picks the most epochs (of the list below) whose projected run fits the budget, and prints the projection.
3. Runs `oncolens evaluate fluoro_seg --nets all --folds 5 --device cuda --jobs N` with a hard timeout. The
   per-image CSV grows as folds finish, so if the timeout strikes, the finished folds are tabulated with
   `--tables-from` and the tables say how many images each cell has.

Usage (repository root): python3 packaging/device_seg_protocol.py OUT_DIR [--budget-s 420] [--jobs 14]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EPOCH_CHOICES = (200, 150, 100, 75, 50, 40, 30, 25, 20)
# Training steps per epoch over the whole protocol, per net (batch 4; phantom A 61, B 106 frames):
# two source trainings (A: 16, B: 27 steps) and 5 folds x 2 methods on A (49 frames: 13) and B (85: 22).
STEPS_PER_EPOCH = 16 + 27 + 10 * 13 + 10 * 22
ARCHS = ("unet", "unetplusplus", "deeplabv3plus", "swin_unetr")


def time_step(arch: str, steps: int, device: str, start_at: float = 0.0) -> float:
    """Seconds per training step of one net on the GPU (after warm-up)."""
    import torch

    from engine.registry import build_net
    from engine.train.fluoro_seg import SegTrainSettings, dice_bce_loss

    settings = SegTrainSettings(arch=arch)
    net = build_net("fluoro_seg", settings.net_config()).to(device).train()
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x = torch.randn(4, 1, 128, 128, device=device)
    y = (torch.rand(4, 1, 128, 128, device=device) > 0.7).float()
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        dice_bce_loss(net(x), y).backward()
        opt.step()

    for _ in range(5):
        step()
    sync()
    time.sleep(max(0.0, start_at - time.time()))  # concurrent timings start together
    t = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return (time.perf_counter() - t) / steps


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--budget-s", type=float, default=420.0)
    p.add_argument("--jobs", type=int, default=14)
    p.add_argument("--device", default="cuda")
    p.add_argument("--steps", type=int, default=40, help="timed steps per net in the calibration")
    p.add_argument("--phantom", nargs=2, metavar=("FRAMES", "SIZE"), help="smaller phantoms, for a dry run on a CPU")
    p.add_argument("--epochs", type=int, help="skip the choice: train this many epochs")
    p.add_argument("--nets", default="all")
    p.add_argument("--targets", default="A,B")
    p.add_argument("--encoder-bn", default="frozen")
    p.add_argument("--time-step", help=argparse.SUPPRESS)
    p.add_argument("--start-at", type=float, default=0.0, help=argparse.SUPPRESS)  # internal: one timing process
    args = p.parse_args()
    if args.time_step:  # internal: time the named nets ("all": every net) one after the other
        archs = ARCHS if args.time_step == "all" else args.time_step.split(",")
        print(json.dumps({a: time_step(a, args.steps, args.device, args.start_at) for a in archs}), flush=True)
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    me = [sys.executable, __file__, str(out), "--device", args.device, "--steps", str(args.steps)]
    if args.epochs:  # chosen already: no calibration
        run_protocol(args, out, args.epochs, t0)
        return 0
    line = subprocess.run([*me, "--time-step", "all"], capture_output=True, text=True, check=True).stdout
    single = json.loads(line.strip().splitlines()[-1])
    start_at = time.time() + 30  # after every process has imported torch and warmed up
    procs = [subprocess.Popen([*me, "--time-step", "unet", "--start-at", str(start_at)], stdout=subprocess.PIPE,
                              text=True) for _ in range(args.jobs)]
    together = [json.loads(proc.communicate()[0].strip().splitlines()[-1])["unet"] for proc in procs]
    overlap = args.jobs * single["unet"] / max(together)  # aggregate speed-up of `jobs` processes
    serial_per_epoch = STEPS_PER_EPOCH * sum(single.values())
    fixed = 90.0  # phantoms, workers' start, DRLSE and the metrics at full resolution (16 cores)
    epochs = next((e for e in EPOCH_CHOICES if fixed + e * serial_per_epoch / overlap <= 0.8 * args.budget_s),
                  EPOCH_CHOICES[-1])
    plan = {"step_ms_single": {a: round(1e3 * s, 2) for a, s in single.items()},
            "unet_step_ms_with_jobs": round(1e3 * max(together), 2), "jobs": args.jobs,
            "overlap": round(overlap, 2), "epochs": epochs,
            "projected_s": round(fixed + epochs * serial_per_epoch / overlap, 1),
            "calibration_s": round(time.perf_counter() - t0, 1)}
    print(json.dumps(plan, indent=1), flush=True)
    (out / "plan.json").write_text(json.dumps(plan, indent=1))
    run_protocol(args, out, epochs, t0)
    return 0


def run_protocol(args, out: Path, epochs: int, t0: float) -> None:
    table_dir = out / "tables"
    common = ["--folds", "5", "--targets", args.targets, "--epochs", str(epochs), "--encoder-bn", args.encoder_bn,
              "--out", str(table_dir)]
    if args.phantom:
        common += ["--phantom-frames", args.phantom[0], "--phantom-size", args.phantom[1]]
    cmd = [sys.executable, "-c", "from engine.cli import main; raise SystemExit(main())", "evaluate", "fluoro_seg",
           "--nets", args.nets, "--device", args.device, "--jobs", str(args.jobs), *common]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    remaining = args.budget_s - (time.perf_counter() - t0)
    with open(out / "protocol.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True)
        try:
            rc = proc.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the run and its worker processes
            proc.wait()
            rc = "timeout"
    print(f"protocol: {rc} after {time.perf_counter() - t0:.0f} s", flush=True)
    if rc != 0 and (table_dir / "per_image_metrics.csv").exists():  # tabulate the folds that finished
        partial = table_dir / "partial_per_image_metrics.csv"
        (table_dir / "per_image_metrics.csv").replace(partial)
        subprocess.run([*cmd, "--tables-from", str(partial)], cwd=ROOT, env=env)
    print((table_dir / "tables.md").read_text() if (table_dir / "tables.md").exists() else "no tables")
    with tarfile.open(out / "tables.tgz", "w:gz") as tar:  # the device returns at most 8 files
        tar.add(table_dir, arcname="tables")
    shutil.rmtree(table_dir)


if __name__ == "__main__":
    sys.exit(main())
