"""`oncolens bench live`: the live pipeline on the phantom NIR video, per device and inference path, in one run.

For every path (CPU eager and ONNX Runtime; on CUDA also eager and the fp16 CUDA graph) the phantom clip
plays at its frame rate (30 fps, 1024 x 1024 by default) for a fixed time through the chosen segmentation
net. The table gives p50/p99 of each stage (slot wait, inference including preprocessing, contour,
hand-over) and of capture-to-overlay, frames processed per second, frames dropped, and the GUI thread's
longest stall. With the app's live view available (the `oncolens` entry point plugs it in) the overlays are
drawn by the real view offscreen and a 5 ms heartbeat timer on the GUI thread measures its stalls; without
it a stand-in GUI thread marks each overlay shown and runs the same heartbeat (the table says which).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.exports import csv_writer, open_csv

HEARTBEAT_S = 0.005


@dataclass
class LiveBench:
    seconds: float = 10.0
    size: int = 1024
    fps: float = 30.0
    method: str = "unet"
    paths: tuple[str, ...] = ()  # e.g. ("cpu:eager", "cpu:onnx"); empty: every path this machine has
    smoothing: float | None = None
    out: Path | None = None
    models_root: Path | None = None


def available_paths() -> list[tuple[str, str]]:
    paths = [("cpu", "eager"), ("cpu", "onnx")]
    if torch.cuda.is_available():
        paths += [("cuda", "eager"), ("cuda", "cuda-graph")]
    return paths


def headless_view_run(source, segmenter, seconds: float, smoothing: float | None = None) -> dict:
    """The pipeline with a stand-in GUI thread: it takes each overlay, marks it shown and keeps a heartbeat
    (sleeping HEARTBEAT_S and recording how late it wakes, which is how long it could not run)."""
    from engine.live.pipeline import LivePipeline, LiveSettings

    delivered: list = []
    ready = threading.Condition()

    def on_overlay(overlay) -> None:
        with ready:
            delivered.append(overlay)
            ready.notify()

    pipeline = LivePipeline(source, segmenter, on_overlay=on_overlay, settings=LiveSettings(smoothing=smoothing))
    stalls: list[float] = []
    drawn = 0
    pipeline.start()
    end = time.perf_counter() + seconds
    last = time.perf_counter()
    while (now := time.perf_counter()) < end:
        with ready:
            ready.wait(HEARTBEAT_S)
            batch, delivered[:] = list(delivered), []
        if batch:  # like a GUI: draw the newest, mark every one handed over as shown
            for overlay in batch:
                pipeline.mark_shown(overlay)
            drawn += 1
        now = time.perf_counter()
        stalls.append(max(0.0, now - last - HEARTBEAT_S))
        last = now
    pipeline.stop()
    ms = np.asarray(stalls) * 1e3
    return {"stats": pipeline.stats.snapshot(), "gui_stall_max_ms": float(ms.max()) if ms.size else 0.0,
            "gui_stall_p99_ms": float(np.percentile(ms, 99)) if ms.size else 0.0, "frames_drawn": drawn,
            "gui": "stand-in thread"}


def bench_live(bench: LiveBench, say: Callable[[str], None],
               view_runner: Callable[..., dict] | None = None) -> int:
    from engine.live.sources import PhantomSource
    from engine.phantoms.fluoro_video import VideoSettings
    from engine.predict.fluoro import FluoroSegPredictor

    wanted = [tuple(p.split(":", 1)) for p in bench.paths] if bench.paths else available_paths()
    settings = VideoSettings(size=bench.size, fps=bench.fps)
    say(f"rendering the phantom clip ({settings.frames} frames of {bench.size} px, cached after the first run)")
    PhantomSource(settings).open()
    rows = []
    runner = view_runner or headless_view_run
    for device, path in wanted:
        segmenter = FluoroSegPredictor(bench.method, device=device, backend=path, root=bench.models_root)
        if segmenter.backend != path:
            say(f"{device}:{path} is not available here ({segmenter.fast.label}); skipped")
            continue
        warm = PhantomSource(settings, realtime=False, loop=False)
        warm.open()
        for _ in range(5):  # the first calls build graphs and check them against eager
            segmenter.work_probabilities(warm.read().image, warm.clip.bit_depth)
        say(f"{device}:{path}: {bench.seconds:.0f} s at {bench.fps:g} fps ({segmenter.fast.label})")
        result = runner(PhantomSource(settings), segmenter, bench.seconds, bench.smoothing)
        rows.append((device, path, segmenter.fast.label, result))
    _print_table(bench, rows)
    if bench.out:
        _write_csv(bench.out, rows, bench.seconds)
    return 0


STAGE_ROWS = (("wait", "slot wait"), ("inference", "inference (incl. preprocess)"), ("contour", "contour"),
              ("deliver", "hand-over"), ("capture_to_overlay", "capture-to-overlay"))


def _print_table(bench: LiveBench, rows: list) -> None:
    print(f"Live pipeline: phantom NIR video {bench.size} x {bench.size} at {bench.fps:g} fps, {bench.seconds:g} s "
          f"per path, method {bench.method}, smoothing {'off' if bench.smoothing is None else bench.smoothing}; "
          f"{torch.get_num_threads()} CPU threads")
    for device, path, label, result in rows:
        s = result["stats"]
        print(f"\n{device}:{path}  [{label}]  GUI: {result.get('gui', 'live view')}")
        print(f"  {'stage':<30} {'p50 ms':>8} {'p99 ms':>8}")
        for key, name in STAGE_ROWS:
            if f"{key}_p50_ms" in s:
                print(f"  {name:<30} {s[key + '_p50_ms']:>8.1f} {s[key + '_p99_ms']:>8.1f}")
        print(f"  fps in {s['fps_in']:.1f}, fps processed {s['processed'] / bench.seconds:.1f}, frames in "
              f"{s['frames_in']}, processed {s['processed']}, dropped {s['dropped']} (model busy), source gaps "
              f"{s['source_gaps']}, corrupt {s['corrupt']}")
        print(f"  GUI thread longest stall {result['gui_stall_max_ms']:.1f} ms (p99 {result['gui_stall_p99_ms']:.1f} "
              f"ms), overlays drawn {result['frames_drawn']}")


def _write_csv(path: Path, rows: list, seconds: float) -> None:
    fields = ["device", "path", "label", "gui", "fps_processed", "gui_stall_max_ms", "gui_stall_p99_ms"]
    stage_fields = [f"{k}_{q}_ms" for k, _ in STAGE_ROWS for q in ("p50", "p99")]
    counters = ["fps_in", "frames_in", "processed", "dropped", "source_gaps", "corrupt"]
    with open_csv(path) as fh:
        writer = csv_writer(fh)
        writer.writerow(fields + stage_fields + counters)
        for device, path_name, label, result in rows:
            s = result["stats"]
            writer.writerow([device, path_name, label, result.get("gui", "live view"), round(s["processed"] / seconds, 2),
                             round(result["gui_stall_max_ms"], 2), round(result["gui_stall_p99_ms"], 2)]
                            + [round(s.get(f, float("nan")), 2) for f in stage_fields]
                            + [s[c] if isinstance(s[c], int) else round(s[c], 2) for c in counters])
