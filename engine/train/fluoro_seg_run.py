"""Runs of the fluorescence segmentation nets as `oncolens train|evaluate fluoro_seg` and `oncolens bench seg` ask
for them, from typed settings (engine.cli turns the arguments into these; no argparse object comes here)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from engine.exports import csv_writer, open_csv
from engine.fastpath import latency_percentiles
from engine.metrics.segmentation import HD95_CONVENTION
from engine.nets.fluoro_seg import ARCH_NAMES, ARCHS
from engine.train.fluoro_seg import (
    PHANTOM_COUNTS,
    SegArrays,
    SegTrainSettings,
    describe_settings,
    evaluate_net,
    load_fluoro_manifest,
    phantom_seg_samples,
    prepare_seg_arrays,
    seg_card,
    train_seg,
)
from engine.train.fluoro_seg_eval import (
    PER_IMAGE_FILE,
    ProtocolResult,
    ProtocolSettings,
    RowLog,
    format_tables,
    pretrained_encoder,
    protocol_tables,
    read_rows,
    run_protocol,
    summarise_rows,
    write_protocol,
)

Say = Callable[[str], None]
COMPACT_EPOCHS = 25


def parse_nets(spec: str) -> tuple[str, ...]:
    names = ARCHS if spec == "all" else tuple(n.strip() for n in spec.split(",") if n.strip())
    unknown = [n for n in names if n not in ARCHS]
    if unknown or not names:
        raise ValueError(f"Unknown segmentation nets {unknown or spec!r}; use 'all' or some of {', '.join(ARCHS)}.")
    return names


def parse_protocol_nets(spec: str) -> tuple[tuple[str, ...], bool]:
    """--nets of the protocol: nets, plus 'drlse' for the level-set baseline ('all': the four nets and DRLSE)."""
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if names == ["all"]:
        return ARCHS, True
    archs = [n for n in names if n != "drlse"]
    return (parse_nets(",".join(archs)) if archs else ()), "drlse" in names


def protocol_device(choice: str) -> str:
    from engine.device import select_device

    return str(select_device(choice))


def parse_imagenet(items: Sequence[str] | None) -> dict[str, str]:
    """['unet=resnet18.pth', ...] -> {'unet': 'resnet18.pth'}."""
    out = {}
    for item in items or []:
        arch, sep, path = item.partition("=")
        if not sep or arch not in ARCHS:
            raise ValueError(f"--imagenet-encoder takes NET=FILE with NET one of {', '.join(ARCHS)}; got {item!r}.")
        out[arch] = path
    return out


def parse_counts(spec: str) -> dict[str, int]:
    counts = {}
    for item in spec.split(","):
        key, sep, n = item.partition("=")
        if not sep or not n.strip().isdigit():
            raise ValueError(f"--phantom-frames takes e.g. 'A=61,B=106,C=24'; got {spec!r}.")
        counts[key.strip()] = int(n)
    return counts


@dataclass(frozen=True)
class FrameData:
    """Where the frames come from: the phantom generator (frames per dataset, seed, size) or a CSV manifest."""

    source: str = "phantom"
    counts: tuple[tuple[str, int], ...] = tuple(PHANTOM_COUNTS.items())
    seed: int = 2024
    size: int = 1024


def seg_data(data: FrameData) -> tuple[list, dict]:
    if data.source == "phantom":
        counts = dict(data.counts)
        return phantom_seg_samples(counts, data.seed, data.size), {
            "kind": "phantom", "generator": "engine.phantoms.fluoro_frames.make_fluoro_dataset",
            "frames": counts, "seed": data.seed, "size": data.size,
            "note": "synthetic phantom frames (A, B, C stand in for ABFM, DTHP, DTHL), not patient data; demo only"}
    return load_fluoro_manifest(data.source), {"kind": "manifest", "path": str(data.source)}


@dataclass(frozen=True)
class SegRun:
    """`oncolens train|evaluate fluoro_seg`: the nets, the protocol, the data, where the work runs and goes."""

    base: SegTrainSettings
    nets: tuple[str, ...] = ("unetplusplus", "unet")
    drlse: bool = True  # evaluate: the level-set baseline joins the protocol tables
    data: FrameData = FrameData()
    folds: int = 0
    targets: tuple[str, ...] = ("A", "B")
    imagenet: tuple[tuple[str, str], ...] = ()  # (net, local ImageNet encoder file)
    device: str = "auto"
    jobs: int = 1
    compare_end_to_end: bool = True
    tables_from: tuple[Path, ...] = ()  # evaluate: tabulate saved per-image rows, no training
    out: Path | None = None
    models_root: Path | None = None
    command: str = ""

    def protocol(self) -> ProtocolSettings:
        return ProtocolSettings(archs=self.nets, folds=self.folds, targets=self.targets, base=self.base,
                                imagenet=dict(self.imagenet), drlse=self.drlse, seed=self.base.seed)


def protocol_title(protocol: ProtocolSettings) -> str:
    base = protocol.base
    return (f"Fluorescence segmentation, {base.preset} preset, {base.epochs} epochs, {protocol.folds}-fold "
            f"cross-validation, transfer encoders' BatchNorm statistics {base.encoder_bn}")


def _bootstrap_mean(values: Sequence[float], n: int = 1000, seed: int = 0) -> dict:
    """Mean over the finite values with a percentile bootstrap CI; `n_undefined` counts the others (HD on a
    frame where one mask is empty)."""
    values = np.asarray(values, float)
    v = values[np.isfinite(values)]
    undefined = {"n_undefined": int(values.size - v.size)}
    if len(v) == 0:
        return {"value": None, "ci_low": None, "ci_high": None, **undefined}
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), (n, len(v)))].mean(axis=1)
    return {"value": float(v.mean()), "ci_low": float(np.percentile(means, 2.5)),
            "ci_high": float(np.percentile(means, 97.5)), **undefined}


def build_seg_card(arch: str, outcome, data: SegArrays, description: dict, pretrained: str, test_rows: list[dict],
                   command: str, tables: dict | None, test_key: str, comparison: dict | None = None,
                   root: Path | None = None):
    from engine.nets.fluoro_seg import count_parameters
    s = outcome.settings
    summary = summarise_rows(test_rows, ("net",))[0] if test_rows else {}
    metrics = {"dice": _bootstrap_mean([r["dice"] for r in test_rows]),
               "fpsr": _bootstrap_mean([r["fpsr"] for r in test_rows]),
               "fnsr": _bootstrap_mean([r["fnsr"] for r in test_rows]),
               "hd95_px": _bootstrap_mean([r["hd95"] for r in test_rows])}
    card = seg_card(arch, s, data.constants, root)
    card.training = {
        "data": description, "preset": s.preset,
        "protocol": (f"transfer: encoder from {pretrained}, frozen (BatchNorm statistics {s.encoder_bn}); "
                     f"decoder trained on all {outcome.n_train} frames of dataset B"),
        "pretrained": pretrained, **describe_settings(s),
        "params_m": round(count_parameters(outcome.net), 3),
        "train_seconds": round(outcome.seconds, 1), "regenerate": command,
    }
    card.evaluation = {
        "description": (f"Dataset {test_key} ({len(test_rows)} frames), never used in training or pretraining; "
                        "each frame segmented by the predictor the app runs, metrics per frame at full resolution, "
                        "mean with a 95% bootstrap CI over frames (1000 resamples). Dice/FPSR/FNSR as fractions, "
                        f"HD95 in pixels: {HD95_CONVENTION}, averaged over the frames where both masks are "
                        "non-empty (n_undefined counts the others)."),
        "metrics": metrics,
        "held_out_summary": summary,
        **({"end_to_end_comparison": comparison} if comparison else {}),
        **({"tables": tables} if tables else {}),
    }
    card.description = seg_description(arch, s.preset, pretrained)
    card.training["transfer_source"] = transfer_source(pretrained)
    return card


def transfer_source(pretrained: str) -> str:
    """Where a transfer model's frozen encoder came from, against the paper's ImageNet."""
    if pretrained.startswith("ImageNet"):
        return f"{pretrained}, as in the paper (encoders pretrained on ImageNet, frozen)"
    return (f"{pretrained}, not ImageNet as in the paper: no ImageNet weights can be downloaded here. To run the "
            "paper's protocol unchanged, pass a local ImageNet state dict of the net's encoder: "
            "--imagenet-encoder NET=FILE (.pth/.pt/.safetensors)")


def seg_description(arch: str, preset: str, pretrained: str) -> str:
    source = ("an ImageNet encoder file, as in the paper" if pretrained.startswith("ImageNet")
              else "phantom dataset A (end-to-end training), not ImageNet as in the paper")
    return (f"{ARCH_NAMES[arch]} ({preset} configuration) for tumor segmentation in NIR fluorescence frames, one grey "
            f"input channel, one tumor logit. Transfer learning: its encoder came from {source}, and was frozen "
            "while the decoder trained on dataset B.")


def train_fluoro_seg(run: SegRun, say: Say) -> int:
    """Per net: pretrain (dataset A, or an ImageNet encoder file), optionally run the k-fold protocol for the
    card's tables, then fine-tune on all of B with the encoder frozen, test on C and install the card."""
    import torch

    from engine.paths import models_dir
    from engine.registry import round_trip_fp16, save_weights, write_card

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    root = run.models_root or models_dir()
    nets = run.nets
    samples, description = seg_data(run.data)
    data = prepare_seg_arrays(samples, run.base.preset)
    base = run.base
    command = run.command
    cache: dict = {}
    protocol = replace(run.protocol(), drlse=True)
    device = protocol_device(run.device)
    tables, files = None, []
    if run.folds:
        out = run.out or root / "fluoro_seg_tables"
        result = run_protocol(data, protocol, progress=say, cache=cache, jobs=run.jobs, device=device,
                              on_rows=RowLog(out / PER_IMAGE_FILE))
        title = protocol_title(protocol)
        files = [p.name for p in write_protocol(result, out, title).values()]
        print(format_tables(protocol_tables(result), protocol))
        tables = {"title": title, "markdown": format_tables(protocol_tables(result), protocol, markdown=True),
                  "files": files, "folder": out.name}
    for arch in nets:
        init, pretrained = pretrained_encoder(data, arch, "B", protocol, say, cache, device)
        outcome = train_seg(data, data.where("B"), replace(base, arch=arch, freeze_encoder=True), init_state=init,
                            init=pretrained, progress=say, device=device)
        round_trip_fp16(outcome.net)  # evaluate the weights that ship
        rows = evaluate_net(outcome.net, data, data.where("C"), method="Transfer", net=arch, fold=0)
        comparison = None
        if run.compare_end_to_end:  # the same net trained from scratch on B, read on C
            e2e = train_seg(data, data.where("B"), replace(base, arch=arch), progress=say, device=device)
            e2e_rows = evaluate_net(e2e.net, data, data.where("C"), method="End-to-end", net=arch, fold=0)
            comparison = {"description": f"end-to-end on all of B ({e2e.n_train} frames), scored on {len(e2e_rows)} "
                                         "frames of C like the shipped transfer model",
                          "dice": _bootstrap_mean([r["dice"] for r in e2e_rows]),
                          "transfer_minus_end_to_end_dice": float(np.mean([r["dice"] for r in rows])
                                                                  - np.mean([r["dice"] for r in e2e_rows]))}
            say(f"{ARCH_NAMES[arch]} on C: transfer Dice {np.mean([r['dice'] for r in rows]):.3f}, end-to-end "
                f"{comparison['dice']['value']:.3f}")
        card = build_seg_card(arch, outcome, data, description, pretrained, rows, command, tables, "C", comparison,
                              root=root)
        save_weights(outcome.net, card, dtype="float16")
        write_card(card)
        dice = card.evaluation["metrics"]["dice"]
        say(f"installed {card.name}: Dice on C {dice['value']:.3f} ({dice['ci_low']:.3f}-{dice['ci_high']:.3f}), "
            f"{card.weights['bytes'] / 1e6:.2f} MB")
    return 0


def evaluate_fluoro_seg(run: SegRun, say: Say) -> int:
    """The paper's protocol (end-to-end vs transfer, k-fold CV, held-out C, DRLSE): tables and per-image CSV."""
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    protocol = run.protocol()
    title = protocol_title(protocol)
    out = run.out or Path("evaluation")
    if run.tables_from:  # tabulate rows saved by an earlier (possibly stopped) run
        rows = [r for path in run.tables_from for r in read_rows(path)]
        result = ProtocolResult(rows, protocol)
    else:
        samples, _ = seg_data(run.data)
        data = prepare_seg_arrays(samples, run.base.preset)
        result = run_protocol(data, protocol, progress=say, jobs=run.jobs, device=protocol_device(run.device),
                              on_rows=RowLog(out / PER_IMAGE_FILE))
    write_protocol(result, out, title)
    print(format_tables(protocol_tables(result), protocol))
    say(f"wrote per-image CSV, table CSVs, JSON and Markdown to {out}/")
    return 0


def bench_seg(bench, say: Say) -> int:
    """Per installed net, at 256 and 512 px: eager fp32 vs ONNX Runtime latency (p50/p99) and the masks' Dice."""
    import torch

    from engine.metrics.segmentation import dice
    from engine.predict.fluoro import FluoroSegPredictor, installed_methods

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    nets = [m for m in installed_methods(bench.models_root) if m != "drlse"]
    if bench.nets != "installed":
        nets = [n for n in parse_nets(bench.nets) if n in nets]
    if not nets:
        raise ValueError("No segmentation nets are installed; train them with `oncolens train fluoro_seg`.")
    rng = np.random.default_rng(5)
    from engine.phantoms.fluoro_frames import make_frame

    rows = []
    for arch in nets:
        eager = FluoroSegPredictor(arch, device="cpu", backend="eager", root=bench.models_root)
        t = time.perf_counter()
        fast = FluoroSegPredictor(arch, device="cpu", backend="onnx", root=bench.models_root)
        say(f"{ARCH_NAMES[arch]}: ONNX graph ready in {time.perf_counter() - t:.1f} s (cached)")
        for size in (256, 512):
            frames = [make_frame(rng, key, size) for key in ("A", "B", "C")]
            xs = [np.pad(*_prepared(eager, f.image, f.bit_depth, size)) for f in frames]
            times: dict[str, list[float]] = {"eager": [], "onnx": []}
            dices = []
            for i in range(bench.repeats):
                x = xs[i % len(xs)]
                t = time.perf_counter()
                with torch.inference_mode():
                    ref = eager.net.core(torch.from_numpy(x)).numpy()
                times["eager"].append(time.perf_counter() - t)
                t = time.perf_counter()
                out = fast.fast.runner(x)
                times["onnx"].append(time.perf_counter() - t)
                if i < len(xs):
                    dices.append(dice(out[0, 0] >= 0, ref[0, 0] >= 0))
            e50, e99 = latency_percentiles(times["eager"])
            o50, o99 = latency_percentiles(times["onnx"])
            rows.append((ARCH_NAMES[arch], size, e50, e99, o50, o99, e50 / o50, min(dices)))
    print(f"Segmentation nets, batch 1, {torch.get_num_threads()} CPU threads, {bench.repeats} repeats per size; "
          "net input only (frame already scaled to the size)")
    header = f"{'net':<12} {'size':>5} {'eager p50':>10} {'eager p99':>10} {'ONNX p50':>9} {'ONNX p99':>9} " \
             f"{'speed-up':>9} {'min Dice':>9}"
    print(header)
    for name, size, e50, e99, o50, o99, ratio, d in rows:
        print(f"{name:<12} {size:>5} {e50:>10.1f} {e99:>10.1f} {o50:>9.1f} {o99:>9.1f} {ratio:>8.2f}x {d:>9.4f}"
              + ("" if d >= 0.99 else "  MASKS DIFFER"))
    if bench.out:
        with open_csv(bench.out) as fh:
            writer = csv_writer(fh)
            writer.writerow(["net", "size", "eager_p50_ms", "eager_p99_ms", "onnx_p50_ms", "onnx_p99_ms", "speedup",
                             "min_dice_onnx_vs_eager"])
            writer.writerows(rows)
    return 0 if all(r[-1] >= 0.99 for r in rows) else 1


def _prepared(predictor, image: np.ndarray, bit_depth: int, size: int) -> tuple[np.ndarray, tuple]:
    """The net input for a frame at `size` (already that size), padded to a multiple of 32: (array, pad spec)."""
    from engine.preprocess.fluoro import grey_unit, standardise

    x = standardise(grey_unit(image, bit_depth))[None, None]
    h, w = x.shape[-2:]
    return x, ((0, 0), (0, 0), (0, (-h) % 32), (0, (-w) % 32))


__all__ = ["PHANTOM_COUNTS", "FrameData", "SegRun", "bench_seg", "evaluate_fluoro_seg", "train_fluoro_seg"]
