"""`oncolens bench chmfl`: CPU time per case from a DICOM study on disk to a prediction, eager PyTorch against the
ONNX Runtime fast path, in one run on the same cases: load (read the series, SUV), resample (the box), predict."""

from __future__ import annotations

import csv
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.fastpath import latency_percentiles


@dataclass(frozen=True)
class CHMFLBench:
    repeats: int = 5
    out: Path | None = None
    models_root: Path | None = None


def bench_chmfl(bench: CHMFLBench, say) -> int:
    import torch

    from engine.io.dicom import read_petct
    from engine.phantoms.petct import make_patient, write_petct_dicom
    from engine.predict.petct import CHMFLPredictor

    eager = CHMFLPredictor(device="cpu", root=bench.models_root)
    t = time.perf_counter()
    fast = CHMFLPredictor(device="cpu", backend="onnx", root=bench.models_root)
    say(f"ONNX graph ready in {time.perf_counter() - t:.1f} s (cached in the user data folder)")
    rng = np.random.default_rng(4242)
    times: dict[str, list[float]] = {k: [] for k in ("load", "preprocess", "eager", "onnx", "measures", "gradcam")}
    diffs = []
    with tempfile.TemporaryDirectory() as tmp:
        studies = []
        for i in range(min(bench.repeats, 3)):
            folder = Path(tmp) / f"p{i}"
            write_petct_dicom(make_patient(rng, i % 2, f"B{i}"), folder)
            studies.append(folder)
        for i in range(bench.repeats):
            folder = studies[i % len(studies)]
            t = time.perf_counter()
            images, _ = read_petct(folder)
            times["load"].append(time.perf_counter() - t)
            t = time.perf_counter()
            box = eager.preprocess(images)
            times["preprocess"].append(time.perf_counter() - t)
            t = time.perf_counter()
            p_eager, _ = eager.run_net(box.array)
            times["eager"].append(time.perf_counter() - t)
            t = time.perf_counter()
            p_fast, _ = fast.run_net(box.array)
            times["onnx"].append(time.perf_counter() - t)
            diffs.append(abs(p_fast - p_eager))
            t = time.perf_counter()
            pred = eager.predict(images, explain=False)
            times["measures"].append(time.perf_counter() - t - pred.timings_ms["inference"] / 1e3)
            t = time.perf_counter()
            eager.predict(images, explain=True)
            times["gradcam"].append(time.perf_counter() - t)
    p = {k: latency_percentiles(v)[0] for k, v in times.items()}
    rows = [("load DICOM PET + CT, SUV", p["load"]), ("resample to the box, normalise", p["preprocess"]),
            ("net, eager PyTorch", p["eager"]), ("net, ONNX Runtime", p["onnx"]),
            ("mask to PET grid + PET measures", p["measures"]),
            ("per case, eager (load + SUV + resample + predict)", p["load"] + p["preprocess"] + p["eager"] + p["measures"]),
            ("per case, ONNX (load + SUV + resample + predict)", p["load"] + p["preprocess"] + p["onnx"] + p["measures"]),
            ("full predict with 3-D Grad-CAM (eager, after load)", p["gradcam"])]
    print(f"CHMFL ({eager.card.name}, box {list(eager.card.input.size)}), {torch.get_num_threads()} CPU threads, "
          f"{bench.repeats} cases, median ms")
    for name, ms in rows:
        print(f"{name:<55} {ms:>9.1f}")
    print(f"net speed-up ONNX vs eager: {p['eager'] / p['onnx']:.2f}x; max |P_onnx - P_eager| {max(diffs):.2e}")
    if bench.out:
        with open(bench.out, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["step", "median_ms"])
            writer.writerows([(n, f"{v:.2f}") for n, v in rows])
    return 0
