"""`oncolens train|evaluate|bench dgfnet`: the cross-validation per site, the installed cards (metrics through the
predictor, the IG baseline, IG completeness, the batch-vs-single gap, the ablation table) and the latency bench."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from engine.fastpath import latency_percentiles
from engine.metrics.evaluation import evaluate_binary
from engine.nets.dgfnet import gradcam_layers
from engine.predict.thyroid import SITE_TITLES, SITES, DGFNetPredictor, card_name
from engine.preprocess.us_ct import CT, US, preprocessing_constants, to_input
from engine.registry import CardInput, ModelCard, Threshold, round_trip_fp16, save_weights, write_card
from engine.train.dgfnet import DGFTrainSettings
from engine.train.dgfnet_data import prepare_crops
from engine.train.dgfnet_run import (
    ThyroidData,
    ablation_rows,
    batch_gap,
    cross_validate,
    format_table,
    load_records,
    nodule_images,
    write_tables,
)

Say = Callable[[str], None]
SOURCE = ("Li, Yao, Peng, Hu, Zhao, Feng, Yang, Xu, Li, Sha, He: Multimodal Diverse Granularity Fusion Network based "
          "on US and CT Images for Lymph Node Metastasis Prediction of Thyroid Carcinoma (DGFNet).")
LABELS = ["no LNM", "LNM"]
IG_STEPS = 200  # 50 (the spec's suggestion) left completeness errors of up to 0.7 on the phantom; 200 keeps them small
THRESHOLD_RULE = "0.5 on the sigmoid (the paper's threshold is not stated; the training sets are balanced)"


@dataclass(frozen=True)
class DGFNetTrainRun:
    """`oncolens train dgfnet`: settings shared by the sites, the data, the folds, where cards go."""

    base: DGFTrainSettings = DGFTrainSettings()
    data: ThyroidData = ThyroidData()
    sites: tuple[str, ...] = SITES
    folds: int = 8
    max_folds: int | None = None  # stop after this many folds (quick runs); None = all
    n_bootstrap: int = 1000
    ig_cases: int = 12
    models_root: Path | None = None
    command: str = ""


def ig_baseline(predictor: DGFNetPredictor, site: str, constants: dict) -> dict:
    """Constant grey levels for the US and the CT crop whose P(LNM) is closest to 0.5 (a 21 x 21 grid; the paper
    chose its baseline by hand so that the output is about 0.5). One level for both crops is preferred when it
    comes within 0.02 of 0.5."""
    net = predictor.nets[site][0]
    sizes = constants["size"]
    levels = np.linspace(0, 1, 21)
    us = torch.from_numpy(np.stack([to_input(np.full((sizes[US],) * 2, v, np.float32), constants) for v in levels]))
    ct = torch.from_numpy(np.stack([to_input(np.full((sizes[CT],) * 2, v, np.float32), constants) for v in levels]))
    with torch.no_grad():
        p = torch.sigmoid(torch.stack([net(us, ct[j:j + 1].expand(len(levels), -1, -1, -1))
                                       for j in range(len(levels))], dim=1)).numpy()  # [us level, ct level]
    gap = np.abs(p - 0.5)
    same = int(np.argmin(np.diag(gap)))
    i, j = (same, same) if gap[same, same] < 0.02 else np.unravel_index(int(np.argmin(gap)), gap.shape)
    return {"kind": "constant grey level per crop", "us_value": round(float(levels[i]), 4),
            "ct_value": round(float(levels[j]), 4), "probability": round(float(p[i, j]), 4), "n_steps": IG_STEPS,
            "method": "captum IntegratedGradients, Gauss-Legendre",
            "rule": "grid of 21 x 21 grey levels in [0, 1] (US, CT); P(LNM) closest to 0.5, one level for both "
                    "preferred within 0.02 (the paper picks a baseline with output about 0.5)"}


def ig_summary(predictor: DGFNetPredictor, site: str, cases: list[tuple[dict, int]]) -> dict:
    """IG completeness and modality shares over some test nodules (sign toward the true class for 'US > CT')."""
    errors, shares, us_wins = [], [], 0
    for images, label in cases:
        ig, _ = predictor.explain(site, predictor.inputs_for(images, site))
        errors.append(ig.completeness_error)
        shares.append(ig.shares()[0])
        sign = 1 if label else -1
        us_wins += int(sign * ig.sums[0] > sign * ig.sums[1])
    return {"n": len(cases), "completeness_error_mean": float(np.mean(errors)),
            "completeness_error_max": float(np.max(errors)), "us_share_mean": float(np.mean(shares)),
            "us_contributes_more_toward_truth": float(us_wins / max(1, len(cases))),
            "paper_us_more": 0.649 if site == "central_lnm" else 0.552}


def build_card(site: str, net, s: DGFTrainSettings, constants: dict, root: Path | None) -> ModelCard:
    config = {**s.config(), "nodule_context": "single"}
    sizes = constants["size"]
    encoder = "ResNet34" if site == "central_lnm" else "ResNet18"
    return ModelCard(
        name=card_name(site), family="dgfnet", task=f"{site}: {SITE_TITLES[site].lower()} (no LNM vs LNM)",
        config=config,
        input=CardInput((US, CT), 6, (sizes[US], sizes[US]),
                        f"US 8-bit grey/RGB capture + CT slice in HU, each with a nodule box; crops US {sizes[US]} px, "
                        f"CT {sizes[CT]} px"),
        preprocessing=constants, labels=LABELS, thresholds={site: Threshold(0.5, THRESHOLD_RULE)},
        gradcam_layers=gradcam_layers(config), training={}, evaluation={}, weights={"file": f"{card_name(site)}.safetensors"},
        description=(f"DGFNet, {SITE_TITLES[site]} model ({s.preset} configuration; the paper uses {encoder} "
                     "encoders at this site): US and CT encoders with two decoders each (US nodule mask and boundary "
                     "band, CT nodule mask and tissue edges), diverse granularity fusion (dimension, modality and "
                     "nodule branches multiplied) and a two-layer classifier. The app runs each nodule alone "
                     "(nodule branch A^N = [1]); the evaluation reports the gap to the paper's batch-of-30 scoring."),
        source=SOURCE, root=root)


def install_site(data, result, s: DGFTrainSettings, rows: list[dict], gap: dict, description: dict, command: str,
                 root: Path | None, n_bootstrap: int, ig_cases: int, say: Say) -> ModelCard:
    net = result.shipped
    round_trip_fp16(net)  # evaluate the weights that ship
    card = build_card(s.site, net, s, data.constants, root)
    predictor = DGFNetPredictor(device="cpu", nets={s.site: (net, card)})
    card.extra["ig_baseline"] = ig_baseline(predictor, s.site, data.constants)
    test = result.folds[0][1]
    y = data.labels[s.site]
    scores = np.array([predictor.score(nodule_images(data, int(i)), s.site) for i in test])
    ev = evaluate_binary(y[test], scores, 0.5, n_resamples=n_bootstrap, seed=s.seed)
    cases = [(nodule_images(data, int(i)), int(y[i])) for i in test[:ig_cases]]
    ig = ig_summary(predictor, s.site, cases)
    card.training = {"data": description, **s.describe(),
                     "protocol": "per-site under-sampling once (seeded), 8-fold StratifiedGroupKFold by patient; "
                                 "fold 1's DGF model is installed",
                     "test_nodules": [data.nodule_ids[int(i)] for i in test],
                     "train_nodules": len(result.folds[0][0]), "regenerate": command}
    card.evaluation = {
        "description": (f"Fold 1's held-out nodules ({len(test)}, largest-area US and CT images), scored through the "
                        f"predictor the app runs (one nodule at a time), threshold 0.5. {ev.ci_description()}"),
        **ev.to_dict(), "threshold_rule": THRESHOLD_RULE, "batch_vs_single": gap, "integrated_gradients": ig,
        "cross_validation_seconds": round(result.seconds, 1),
        "ablation": {"title": f"{SITE_TITLES[s.site]}: 8-fold cross-validation on the phantom, pooled out-of-fold "
                              "metrics at 0.5 with 95 % CIs; the paper's Tables 2-3 in brackets",
                     "rows": rows, "markdown": format_table(s.site, rows), "folder": "ablation",
                     "files": ["dgfnet_ablation.csv", "dgfnet_ablation.json", "dgfnet_ablation.md"]},
    }
    save_weights(net, card, dtype="float16")
    write_card(card)
    auc = ev.to_dict()["metrics"]["auc"]
    say(f"{card.name}: held-out AUC {auc['value']:.3f} [{auc['ci_low']:.3f}, {auc['ci_high']:.3f}], IG completeness "
        f"error {ig['completeness_error_mean']:.4f} -> {card.folder}")
    return card


def train_dgfnet(run: DGFNetTrainRun, say: Say) -> int:
    from engine.paths import models_dir

    torch.set_num_threads(int(os.environ.get("ONCOLENS_TRAIN_THREADS", max(1, os.cpu_count() or 1))))
    started = time.perf_counter()
    records, description = load_records(run.data)
    sizes = run.base.config()["sizes"]
    data = prepare_crops(records, preprocessing_constants(sizes[US], sizes[CT]))
    say(f"prepared {len(records)} nodules ({len(data.us)} US, {len(data.ct)} CT images) in "
        f"{time.perf_counter() - started:.0f} s")
    root = run.models_root or models_dir()
    tables, cards = {}, []
    for site in run.sites:
        s = replace(run.base, site=site)
        result = cross_validate(data, s, run.folds, say, run.max_folds)
        rows = ablation_rows(result, data.labels[site], run.n_bootstrap)
        gap = batch_gap(result)
        tables[site] = {"rows": rows, "markdown": format_table(site, rows), "batch_vs_single": gap,
                        "seconds": round(result.seconds, 1)}
        print(tables[site]["markdown"] + "\n")
        cards.append(install_site(data, result, s, rows, gap, description, run.command, root, run.n_bootstrap,
                                  run.ig_cases, say))
    for card in cards:
        write_tables(tables, card.folder / "ablation")
    say(f"done in {time.perf_counter() - started:.0f} s")
    return 0


@dataclass(frozen=True)
class DGFNetEvaluation:
    """`oncolens evaluate dgfnet`: the installed cards on their held-out nodules (or all of a manifest), or with
    `ablation` the cross-validated ablation table again (written to `out`)."""

    out: Path
    data: ThyroidData | None = None
    split: str = "test"
    n_bootstrap: int = 1000
    ablation: bool = False
    base: DGFTrainSettings = field(default_factory=DGFTrainSettings)
    folds: int = 8
    models_root: Path | None = None


def evaluate_dgfnet(ev: DGFNetEvaluation, say: Say) -> int:
    from engine.predict.thyroid import installed_sites
    from engine.registry import load_card

    if ev.ablation:
        records, _ = load_records(ev.data or ThyroidData())
        sizes = ev.base.config()["sizes"]
        data = prepare_crops(records, preprocessing_constants(sizes[US], sizes[CT]))
        tables = {}
        for site in SITES:
            result = cross_validate(data, replace(ev.base, site=site), ev.folds, say)
            rows = ablation_rows(result, data.labels[site], ev.n_bootstrap)
            tables[site] = {"rows": rows, "markdown": format_table(site, rows), "batch_vs_single": batch_gap(result)}
            print(tables[site]["markdown"] + "\n")
        write_tables(tables, ev.out)
        say(f"wrote the ablation tables to {ev.out}/")
        return 0
    sites = installed_sites(ev.models_root)
    if not sites:
        raise ValueError("No DGFNet model cards are installed; train them with `oncolens train dgfnet`.")
    card = load_card(card_name(sites[0]), ev.models_root)
    records, _ = load_records(ev.data or ThyroidData.of_card(card))
    data = prepare_crops(records, card.preprocessing)
    predictor = DGFNetPredictor(device="cpu", root=ev.models_root, sites=sites)
    print(f"{'site':<12} {'n':>4}  " + "  ".join(f"{m:<22}" for m in ("AUC", "ACC", "SENS", "SPEC", "F1")))
    for site in sites:
        site_card = predictor.cards[site]
        y = data.labels[site]
        index = np.flatnonzero(y >= 0)
        if ev.split == "test":
            wanted = set(site_card.training.get("test_nodules", []))
            index = np.array([i for i in index if data.nodule_ids[i] in wanted])
        scores = np.array([predictor.score(nodule_images(data, int(i)), site) for i in index])
        result = evaluate_binary(y[index], scores, site_card.threshold(site), n_resamples=ev.n_bootstrap).to_dict()
        cells = [result["metrics"][m] for m in ("auc", "accuracy", "sensitivity", "specificity", "f1")]
        print(f"{site:<12} {len(index):>4}  " + "  ".join(
            f"{c['value']:.3f} ({c['ci_low']:.3f}-{c['ci_high']:.3f})" for c in cells))
    return 0


@dataclass(frozen=True)
class DGFNetBench:
    repeats: int = 20
    ig_repeats: int = 3
    threads: int | None = None  # default: every CPU core
    models_root: Path | None = None


def bench_dgfnet(bench: DGFNetBench, say: Say) -> int:
    """Per-case CPU latency of both sites' models, with and without integrated gradients, eager vs ONNX Runtime."""
    from engine.train.dgfnet_data import phantom_records

    torch.set_num_threads(bench.threads or max(1, os.cpu_count() or 1))
    eager = DGFNetPredictor(device="cpu", root=bench.models_root)
    t = time.perf_counter()
    fast = DGFNetPredictor(device="cpu", backend="onnx", root=bench.models_root)
    say(f"ONNX graphs ready in {time.perf_counter() - t:.1f} s (cached in the user data folder)")
    records = phantom_records(4, seed=99)
    data = prepare_crops(records, eager.cards[eager.sites[0]].preprocessing)
    cases = [nodule_images(data, i) for i in range(len(records))]
    times: dict[str, list[float]] = {k: [] for k in ("eager", "onnx", "eager+ig", "onnx+ig")}
    diffs = []
    for i in range(bench.repeats):
        case = cases[i % len(cases)]
        for name, predictor in (("eager", eager), ("onnx", fast)):
            t = time.perf_counter()
            pred = predictor.predict(case, explain=False)
            times[name].append(time.perf_counter() - t)
            if name == "eager":
                reference = pred.probabilities
            else:
                diffs.append(max(abs(pred.probabilities[s] - reference[s]) for s in reference))
        if i < bench.ig_repeats:
            for name, predictor in (("eager+ig", eager), ("onnx+ig", fast)):
                t = time.perf_counter()
                predictor.predict(case, explain=True)
                times[name].append(time.perf_counter() - t)
    print(f"DGFNet per case ({' + '.join(eager.sites)}: {len(eager.sites)} models, US {eager.cards[eager.sites[0]].preprocessing['size'][US]} px, "
          f"CT {eager.cards[eager.sites[0]].preprocessing['size'][CT]} px), batch 1, {torch.get_num_threads()} CPU threads")
    print(f"{'path':<46} {'p50 ms':>9} {'p99 ms':>9} {'calls':>6}")
    steps = eager.cards[eager.sites[0]].extra.get("ig_baseline", {}).get("n_steps", 50)
    labels = {"eager": "eager PyTorch, no IG", "onnx": "ONNX Runtime, no IG",
              "eager+ig": f"eager PyTorch + IG ({steps} steps) + Grad-CAM", "onnx+ig": "ONNX Runtime + IG/Grad-CAM (eager)"}
    for key, label in labels.items():
        p50, p99 = latency_percentiles(times[key])
        print(f"{label:<46} {p50:>9.1f} {p99:>9.1f} {len(times[key]):>6}")
    print(f"speed-up of ONNX Runtime without IG (p50): {latency_percentiles(times['eager'])[0] / latency_percentiles(times['onnx'])[0]:.2f}x; "
          f"max |P_onnx - P_eager| = {max(diffs):.2e}")
    return 0
