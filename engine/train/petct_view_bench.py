"""`oncolens bench petct-view`: how long the PET-CT viewer takes to change slice, per plane, on a clinical-size
study (a 512 x 512 x 300 CT with a 128 x 128 PET over it, a tumour segmentation and a Grad-CAM), fused display
with contours and the heat layer on: the worst case a reader scrolls through.

The volumes are synthetic (a torso-like body with bones, a hot tumour); the view is the app's own, driven
offscreen by the runner the `oncolens` entry point plugs in (the engine never imports Qt). A slice change is
timed from the request to the end of the synchronous repaint of all three planes (the crosshair moves in the
other two). The table gives p50 / p95 / max per plane, and the one-off preparation times.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.data import HU, SUV, ZYX, ModalityImage, Prediction
from engine.exports import csv_writer, open_csv
from engine.io.volumes import Grid
from engine.metrics.pet import pet_measures

TASK = "distant_metastasis"
BUDGET_MS = 16.0


@dataclass
class PetCtViewBench:
    ct_shape: tuple[int, int, int] = (300, 512, 512)
    pet_side: int = 128
    steps: int = 120  # slice changes timed per plane
    out: Path | None = None


def bench_study(bench: PetCtViewBench, seed: int = 0) -> tuple[dict[str, ModalityImage], Prediction]:
    """A synthetic PET-CT of `bench.ct_shape` (CT 0.98 mm in-plane, 3 mm slices; PET 4 mm voxels over a slightly
    larger field) and a CHMFL-like prediction on it (tumour mask and Grad-CAM on the PET grid)."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = bench.ct_shape
    ct_grid = Grid(bench.ct_shape, (3.0, 0.977, 0.977), (-nz * 1.5, -ny * 0.4885, -nx * 0.4885))
    yy, xx = np.meshgrid((np.arange(ny) - ny / 2) / (ny / 2), (np.arange(nx) - nx / 2) / (nx / 2), indexing="ij")
    body = (xx / 0.85) ** 2 + (yy / 0.6) ** 2 <= 1
    fat = body & ((xx / 0.8) ** 2 + (yy / 0.55) ** 2 > 1)
    bone = ((xx - 0.35) ** 2 + yy ** 2 <= 0.012) | ((xx + 0.35) ** 2 + yy ** 2 <= 0.012)
    base = np.full((ny, nx), -1000, np.int16)
    base[body] = 40
    base[fat] = -100
    base[bone] = 700
    ct = np.empty(bench.ct_shape, np.int16)
    noise = rng.integers(-15, 16, (8, ny, nx), dtype=np.int16)
    for k in range(nz):
        ct[k] = base + noise[k % 8]
    pet_n = bench.pet_side
    pet_nz = int(round(nz * 3.0 / 4.0))
    pet_grid = Grid((pet_nz, pet_n, pet_n), (4.0, 4.0, 4.0), (-pet_nz * 2.0, -pet_n * 2.0, -pet_n * 2.0))
    points = pet_grid.physical_coordinates()
    centre = np.array([0.0, -0.15 * ny * 0.977, 0.2 * nx * 0.977])  # in the body, off its middle
    distance = np.sqrt(((points - centre) ** 2).sum(-1))
    pet_body = ((points[..., 2] / (nx * 0.4885 * 0.85)) ** 2 + (points[..., 1] / (ny * 0.4885 * 0.6)) ** 2) <= 1
    pet = (pet_body * 1.2 + 7.0 * np.exp(-(distance / 18.0) ** 2)).astype(np.float32)
    pet += rng.normal(0, 0.1, pet.shape).astype(np.float32) * pet_body
    mask = (distance <= 25.0).astype(np.uint8)
    heat = np.exp(-(np.sqrt(((points - centre - 10.0) ** 2).sum(-1)) / 35.0) ** 2).astype(np.float32)
    images = {"PET": ModalityImage("PET", pet, pet_grid.meta(32, SUV), ZYX),
              "CT": ModalityImage("CT", ct, ct_grid.meta(16, HU), ZYX)}
    prediction = Prediction(family="chmfl", variant="PET+CT", masks={"tumor": mask},
                            heatmaps={f"{TASK}/fusion": heat})
    prediction.set_result(TASK, "distant metastasis", 0.71, 0.5)
    prediction.measures.update(pet_measures(pet, mask, pet_grid.spacing))
    return images, prediction


def summarise(times_ms: dict[str, list[float]], cpu_ms: dict[str, list[float]]) -> list[dict[str, float | str]]:
    """Per plane: wall-clock and GUI-thread CPU p50 / p95 / max (ms) and the share of changes within budget."""
    rows = []
    for plane, values in times_ms.items():
        ms, used = np.asarray(values, float), np.asarray(cpu_ms[plane], float)
        rows.append({"plane": plane, "changes": int(ms.size), "p50_ms": float(np.percentile(ms, 50)),
                     "p95_ms": float(np.percentile(ms, 95)), "max_ms": float(ms.max()),
                     "within_budget": float((ms <= BUDGET_MS).mean()),
                     "cpu_p50_ms": float(np.percentile(used, 50)), "cpu_p95_ms": float(np.percentile(used, 95)),
                     "cpu_max_ms": float(used.max())})
    return rows


def bench_petct_view(bench: PetCtViewBench, say: Callable[[str], None], runner: Callable[..., dict] | None) -> int:
    """Build the study, let the app's view runner time it, print the table (and write it as CSV)."""
    if runner is None:
        say("`bench petct-view` needs the app's view: run it through the `oncolens` entry point (app.launcher).")
        return 2
    import time

    t0 = time.perf_counter()
    images, prediction = bench_study(bench)
    say(f"study built in {time.perf_counter() - t0:.1f} s: CT {images['CT'].array.shape} "
        f"({images['CT'].array.nbytes / 2**20:.0f} MiB), PET {images['PET'].array.shape}")
    import os

    load_before = os.getloadavg()[0]
    result = runner(images, prediction, bench.steps)
    rows = summarise(result["times_ms"], result["cpu_ms"])
    print(f"PET-CT viewer slice change (fused, contours + Grad-CAM on), CT {bench.ct_shape[2]}x{bench.ct_shape[1]}x"
          f"{bench.ct_shape[0]}, budget {BUDGET_MS:g} ms; {os.cpu_count()} CPUs, load average {load_before:.1f} before "
          f"and {os.getloadavg()[0]:.1f} after (wall clock includes waiting for a CPU; CPU = the GUI thread's own)")
    print(f"{'plane':<10} {'changes':>7} {'wall p50':>9} {'p95':>7} {'max':>7} {'<=16 ms':>8} {'CPU p50':>8} "
          f"{'p95':>7} {'max':>7}")
    for r in rows:
        print(f"{r['plane']:<10} {r['changes']:>7} {r['p50_ms']:>9.2f} {r['p95_ms']:>7.2f} {r['max_ms']:>7.2f} "
              f"{100 * r['within_budget']:>7.0f}% {r['cpu_p50_ms']:>8.2f} {r['cpu_p95_ms']:>7.2f} "
              f"{r['cpu_max_ms']:>7.2f}")
    for key, value in result.get("prepare_s", {}).items():
        print(f"prepare  {key:<28} {value:8.2f} s (worker)")
    for key, value in result.get("memory_mib", {}).items():
        print(f"memory   {key:<28} {value:8.1f} MiB")
    if bench.out is not None:
        with open_csv(bench.out) as fh:
            writer = csv_writer(fh)
            writer.writerow(list(rows[0]))
            for r in rows:
                writer.writerow(list(r.values()))
    return 0
