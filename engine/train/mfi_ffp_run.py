"""Runs of MFI-FFP as the `oncolens train|evaluate|bench mfi_ffp` commands ask for them, from typed settings
(engine.cli turns the arguments into these; no argparse object comes here)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from engine.data import image_of
from engine.exports import csv_writer, open_csv
from engine.fastpath import latency_percentiles
from engine.predict.lymph_node import card_name
from engine.preprocess.lymph_node import NODE_MODALITIES
from engine.train.data_source import PhantomOrManifest
from engine.train.mfi_ffp import MFIFFPTrainSettings, NodeArrays, Split, phantom_samples, prepare_arrays
from engine.train.mfi_ffp_ablation import (
    ABLATIONS,
    OPERATING_METRICS,
    TABLE_NOTE,
    format_ablation,
    pair_cell,
    run_ablation,
    write_ablation,
)

Say = Callable[[str], None]
ALL_VARIANTS = [("WLI", "FI", "PCI"), ("WLI", "FI"), ("FI", "PCI"), ("WLI", "PCI"), ("WLI",), ("FI",), ("PCI",)]


def row_name(modalities: Sequence[str]) -> str:
    return "tri-modal" if len(modalities) == 3 else "+".join(modalities)


def parse_variants(spec: str) -> list[tuple[str, ...]]:
    if spec in ("all", "installed"):
        return list(ALL_VARIANTS)
    out = []
    for part in spec.split(","):
        mods = tuple(m for m in NODE_MODALITIES if m in part.strip().upper().split("+"))
        if not mods or len(mods) != len(part.strip().split("+")):
            raise ValueError(f"Unknown modality set {part!r}: use e.g. WLI+FI+PCI, WLI+FI, FI.")
        out.append(mods)
    return out


@dataclass(frozen=True)
class NodeData(PhantomOrManifest):
    """Phantom nodes (60 patients x about 30 nodes, seed 2024 by default) or a node manifest."""

    patients: int = 60
    seed: int = 2024
    PER_PATIENT_KEY: ClassVar[str] = "nodes_per_patient"


def node_data(data: NodeData) -> tuple[list, dict]:
    from engine.train.mfi_ffp import load_node_manifest

    if data.source == "phantom":
        return (phantom_samples(data.patients, data.per_patient, data.seed),
                data.describe("engine.phantoms.lymph_node.make_node_dataset", "nodes"))
    return load_node_manifest(data.source), {"kind": "manifest", "path": str(data.source)}


def _input_size(preset: str) -> int:
    return MFIFFPTrainSettings(preset=preset).input_size


@dataclass(frozen=True)
class MFIFFPTrainRun:
    """`oncolens train mfi_ffp`: the variants to install, extra ablation rows, and where everything goes."""

    base: MFIFFPTrainSettings
    data: NodeData = NodeData()
    variants: tuple[tuple[str, ...], ...] = tuple(ALL_VARIANTS)
    ablation: tuple[str, ...] = ()  # extra ablation rows trained for the tri-modal card's table
    runs: int = 1
    out: Path | None = None  # ablation tables (default: in the tri-modal card's folder)
    models_root: Path | None = None  # default: the shipped models folder
    command: str = ""  # the command line, recorded in the cards


def train_mfi_ffp_variants(run: MFIFFPTrainRun, say: Say) -> int:
    """Train the modality variants (and optional ablation rows); install the variants' cards."""
    import torch

    from engine.paths import models_dir
    from engine.train.loop import distributed
    from engine.train.mfi_ffp import save_trained

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("WORLD_SIZE", "1"))))
    rank, _ = distributed()
    samples, description = node_data(run.data)
    data = prepare_arrays(samples, run.base.input_size, crop=run.base.crop_mode)
    names = list(dict.fromkeys([row_name(v) for v in run.variants] + list(run.ablation)))
    root = run.models_root or models_dir()
    rows = run_ablation(data, names, run.base, runs=run.runs, progress=say if rank == 0 else None)
    if rank != 0:
        return 0
    title = (f"MFI-FFP ablation on phantom test patients ({len(rows[0].median.split.test)} nodes), "
             f"{run.base.preset} configuration, {run.base.epochs} epochs, median of {run.runs} run(s)")
    table = format_ablation(rows, markdown=True) + "\n\n" + TABLE_NOTE
    out = run.out or root / card_name(NODE_MODALITIES) / "ablation"
    paths = write_ablation(rows, data, out, title)
    print(format_ablation(rows))
    by_name = {r.name: r for r in rows}
    for v in run.variants:
        row = by_name[row_name(v)]
        ablation = {"title": title, "rows": [r.to_dict() for r in rows], "markdown": table,
                    "files": sorted(p.name for p in paths.values())} if len(v) == 3 else None
        card = save_trained(row.median, data, description, run.command, ablation=ablation, root=root)
        auc = row.metric("auc")
        say(f"{card.name}: test AUC {auc['value']:.3f} [{auc['ci_low']:.3f}, {auc['ci_high']:.3f}] -> {card.folder}")
    say(f"ablation tables in {out}")
    return 0


def installed_variants(root: Path | None = None) -> list[tuple[str, ...]]:
    from engine.registry import ModelError, load_card

    found = []
    for v in ALL_VARIANTS:
        try:
            load_card(card_name(v), root)
            found.append(v)
        except ModelError:
            pass
    return found


def evaluate_installed(data: NodeArrays, variants: list[tuple[str, ...]], split_name: str, out_dir: Path,
                       n_bootstrap: int = 1000, root: Path | None = None) -> list[dict]:
    """Score the installed variant cards at their operating thresholds, through the predictor the app runs;
    CSV/JSON tables and a ROC PNG."""
    from engine.device import select_device
    from engine.metrics.evaluation import evaluate_binary, write_evaluation
    from engine.metrics.plots import plot_roc
    from engine.nets.mfi_ffp import count_flops, count_parameters
    from engine.predict.lymph_node import MFIFFPPredictor
    from engine.train.mfi_ffp import node_scores

    device = select_device()
    evaluations, curves, rows = {}, {}, []
    for v in variants:
        predictor = MFIFFPPredictor(v, device=device, root=root, backend="eager")  # card figures: the fp32 reference
        net, card = predictor.net, predictor.card
        index = np.arange(len(data.labels))
        if split_name == "test":
            test_patients = set(card.training.get("test_patients", []))
            index = np.array([i for i, p in enumerate(data.patients) if p in test_patients])
        if len(index) == 0:
            raise ValueError(f"{card.name}: no nodes of its test patients in this data; use --split all.")
        y = data.labels[index]
        scores = node_scores(predictor, data, index)
        ev = evaluate_binary(y, scores, card.threshold(), n_resamples=n_bootstrap)
        at_argmax = evaluate_binary(y, scores, 0.5, n_resamples=n_bootstrap)
        evaluations[row_name(v)], curves[row_name(v)] = ev, (y, scores)
        evaluations[f"{row_name(v)} at argmax"] = at_argmax
        d, a = ev.to_dict(), at_argmax.to_dict()
        rows.append({"variant": row_name(v), "model": card.name, "n": int(len(y)), "positives": int(y.sum()),
                     "threshold": card.threshold(),
                     **{k: d["metrics"][k] for k in ("auc", *OPERATING_METRICS)},
                     "argmax": {k: a["metrics"][k] for k in OPERATING_METRICS},
                     "params_m": count_parameters(net) / 1e6, "gflops": count_flops(net.cpu()) / 2e9,
                     "ci": d["ci"]["description"]})
        net.to(device)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_evaluation(evaluations, out_dir, f"mfi_ffp_{split_name}")
    plot_roc(curves, out_dir / f"mfi_ffp_{split_name}_roc.png", title=f"MFI-FFP variants ({split_name} split)")
    (out_dir / f"mfi_ffp_{split_name}_table.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return rows


def _cell(e: dict) -> str:
    return "n/a" if e["value"] is None else f"{e['value']:.3f} ({e['ci_low']:.3f}, {e['ci_high']:.3f})"


@dataclass(frozen=True)
class MFIFFPEvaluation:
    """`oncolens evaluate mfi_ffp`: installed variants on their test split (or all of a manifest), or, with
    `ablation`, train and tabulate those ablation rows."""

    out: Path
    variants: tuple[tuple[str, ...], ...] | None = None  # None: every installed variant
    data: NodeData | None = None  # None: the phantom the cards were trained on
    split: str = "test"
    n_bootstrap: int = 1000
    ablation: tuple[str, ...] = ()
    base: MFIFFPTrainSettings = field(default_factory=lambda: MFIFFPTrainSettings(epochs=12))  # ablation rows
    runs: int = 1
    models_root: Path | None = None


def evaluate_mfi_ffp(ev: MFIFFPEvaluation, say: Say) -> int:
    from engine.registry import load_card

    if ev.ablation:
        samples, _ = node_data(ev.data or NodeData())
        data = prepare_arrays(samples, ev.base.input_size, crop=ev.base.crop_mode)
        def title(rows: list) -> str:
            return (f"MFI-FFP ablation ({ev.base.preset}, {len(set(data.patients))} phantom patients / "
                    f"{len(data.labels)} nodes, {len(rows[0].median.split.test) if rows else 0} test nodes, "
                    f"{ev.base.epochs} epochs, median of {ev.runs} run(s))")

        done: list = []

        def keep(row) -> None:  # the tables grow row by row, so a stopped run keeps the rows it finished
            done.append(row)
            write_ablation(done, data, ev.out, title(done))

        rows = run_ablation(data, list(ev.ablation), ev.base, runs=ev.runs, progress=say, on_row=keep)
        print(format_ablation(rows))
        say(f"wrote CSV, JSON, Markdown and ROC PNG to {ev.out}/")
        return 0
    variants = list(ev.variants) if ev.variants else installed_variants(ev.models_root)
    if not variants:
        raise ValueError("No MFI-FFP model cards are installed; train them with `oncolens train mfi_ffp`.")
    card = load_card(card_name(variants[0]), ev.models_root)
    samples, _ = node_data(ev.data or NodeData.of_card(card))
    data = prepare_arrays(samples, int(card.input.size[0]), crop=str(card.preprocessing.get("crop", "node")))
    rows = evaluate_installed(data, variants, ev.split, ev.out, ev.n_bootstrap, ev.models_root)
    print(format_installed(rows))
    say(f"wrote CSV, JSON and ROC PNG to {ev.out}/")
    return 0


def format_installed(rows: list[dict]) -> str:
    """The `evaluate mfi_ffp` table: ACC, F1, SEN/SPE at the card's validation-chosen threshold and at argmax."""
    lines = [f"{'variant':<12} {'n':>5} {'pos':>4}  {'AUC (95% CI)':<24} {'ACC val thr (95% CI)':<24} "
             f"{'F1 val thr (95% CI)':<24} {'SEN/SPE val thr':<16} {'ACC argmax (95% CI)':<24} "
             f"{'F1 argmax (95% CI)':<24} {'SEN/SPE argmax':<15} {'params M':>8} {'GFLOPs':>7}"]
    for r in rows:
        a = r["argmax"]
        lines.append(f"{r['variant']:<12} {r['n']:>5} {r['positives']:>4}  {_cell(r['auc']):<24} "
                     f"{_cell(r['accuracy']):<24} {_cell(r['f1']):<24} "
                     f"{pair_cell(r['sensitivity'], r['specificity']):<16} {_cell(a['accuracy']):<24} "
                     f"{_cell(a['f1']):<24} {pair_cell(a['sensitivity'], a['specificity']):<15} "
                     f"{r['params_m']:>8.2f} {r['gflops']:>7.3f}")
    if rows:
        lines.append("val thr: the card's threshold, chosen on validation patients; argmax: P(metastatic) >= 0.5, "
                     "where the paper reports ACC and F1. " + rows[0]["ci"])
    return "\n".join(lines)


@dataclass(frozen=True)
class LatencyBench:
    """`oncolens bench mfi_ffp|seg`: repeats per measurement, which nets, an optional CSV of the table."""

    repeats: int = 50
    nets: str = "installed"
    out: Path | None = None
    models_root: Path | None = None


def bench_mfi_ffp(bench: LatencyBench, say: Say) -> int:
    """Per-case latency of the tri-modal net: eager PyTorch vs ONNX Runtime, same process, same inputs."""
    import torch

    from engine.phantoms.lymph_node import make_node_dataset
    from engine.predict.lymph_node import MFIFFPPredictor
    from engine.preprocess.lymph_node import preprocess_node

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    eager = MFIFFPPredictor(NODE_MODALITIES, device="cpu", backend="eager", root=bench.models_root)
    t = time.perf_counter()
    fast = MFIFFPPredictor(NODE_MODALITIES, device="cpu", backend="onnx", root=bench.models_root)
    say(f"ONNX graph ready in {time.perf_counter() - t:.1f} s (cached in the user data folder)")
    nodes = make_node_dataset(n_patients=2, nodes_per_patient=10, seed=99)
    inputs = [torch.from_numpy(preprocess_node(n.images, NODE_MODALITIES, eager.card.preprocessing)[0])[None]
              for n in nodes]
    results: dict[str, list[float]] = {"preprocess": [], "eager": [], "onnx": [], "gradcam": []}
    diffs = []
    for i in range(bench.repeats):
        node, x = nodes[i % len(nodes)], inputs[i % len(inputs)]
        t = time.perf_counter()
        preprocess_node(node.images, NODE_MODALITIES, eager.card.preprocessing)
        results["preprocess"].append(time.perf_counter() - t)
        t = time.perf_counter()
        with torch.inference_mode():
            ref = torch.softmax(eager.net(x), 1)[0, 1].item()
        results["eager"].append(time.perf_counter() - t)
        t = time.perf_counter()
        out = fast.fast.runner(x.numpy())
        results["onnx"].append(time.perf_counter() - t)
        diffs.append(abs(float(torch.softmax(torch.from_numpy(out), 1)[0, 1]) - ref))
        if i < 10:
            t = time.perf_counter()
            eager.predict({m: image_of(m, a) for m, a in node.images.items()}, explain=True)
            results["gradcam"].append(time.perf_counter() - t)
    eager_p50, eager_p99 = latency_percentiles(results["eager"])
    rows = [("preprocess (WLI background removal, resize)", *latency_percentiles(results["preprocess"])),
            ("eager PyTorch fp32", eager_p50, eager_p99),
            ("ONNX Runtime fp32", *latency_percentiles(results["onnx"])),
            ("full predict incl. 4 Grad-CAMs (eager)", *latency_percentiles(results["gradcam"]))]
    print(f"MFI-FFP tri-modal ({eager.card.name}, input {list(eager.card.input.size)}), batch 1, "
          f"{torch.get_num_threads()} CPU threads, {bench.repeats} repeats")
    print(f"{'path':<44} {'p50 ms':>8} {'p99 ms':>8} {'speed-up (p50)':>15}")
    for name, p50, p99 in rows:
        ratio = f"{eager_p50 / p50:.2f}x" if name.startswith(("eager", "ONNX")) else ""
        print(f"{name:<44} {p50:>8.2f} {p99:>8.2f} {ratio:>15}")
    print(f"max |P_onnx - P_eager| over {bench.repeats} cases: {max(diffs):.2e}")
    if bench.out:
        with open_csv(bench.out) as fh:
            writer = csv_writer(fh)
            writer.writerow(["path", "p50_ms", "p99_ms"])
            writer.writerows([(n, f"{a:.3f}", f"{b:.3f}") for n, a, b in rows])
    return 0


__all__ = ["ABLATIONS", "LatencyBench", "MFIFFPEvaluation", "MFIFFPTrainRun", "NodeData", "Split", "bench_mfi_ffp",
           "evaluate_mfi_ffp", "train_mfi_ffp_variants"]
