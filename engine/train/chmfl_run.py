"""Runs of CHMFL as `oncolens train|evaluate|bench chmfl` ask for them, from typed settings: the paper's 6-fold
protocol for every ablation row, the table beside the paper's numbers, the shipped card, the latency bench."""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from engine.metrics.classification import auc
from engine.metrics.evaluation import evaluate_binary
from engine.train import ablation_rows
from engine.train.chmfl import (
    CHMFLTrainSettings,
    FoldResult,
    PetCtArrays,
    PetCtRecord,
    cross_validate,
    phantom_records,
    prepare_arrays,
    provisional_card,
    train_net,
)
from engine.train.data_source import PhantomOrManifest

Say = Callable[[str], None]
PAPER_METRICS = ("accuracy", "sensitivity", "specificity", "ppv", "f1", "auc")  # Acc, Sen, Spe, Pre, F1, AUC


@dataclass(frozen=True)
class Ablation:
    name: str
    overrides: dict
    paper_row: str = ""  # the closest row of the paper's Tables I/II
    paper: tuple[float, ...] | None = None  # Acc, Sen, Spe, Pre, F1, AUC


ABLATIONS: dict[str, Ablation] = {a.name: a for a in [
    Ablation("CHMFL", {}, "CHMFL", (0.854, 0.875, 0.833, 0.840, 0.857, 0.873)),
    Ablation("PET only", {"modalities": ("PET",)}, "3D-CNN-PET", (0.771, 0.750, 0.792, 0.783, 0.766, 0.734)),
    Ablation("CT only", {"modalities": ("CT",)}, "3D-CNN-CT", (0.667, 0.667, 0.667, 0.667, 0.667, 0.684)),
    Ablation("2-D", {"dims": 2}, "2D-CNN-PET-CT", (0.729, 0.792, 0.667, 0.703, 0.745, 0.698)),
    Ablation("no constrained decoder (w=0)", {"w": 0.0}, "(HMFL alone: not in the paper's tables)"),
    Ablation("plain 3-D CNN", {"w": 0.0, "head": "last"}, "3D-CNN-PET-CT", (0.792, 0.792, 0.792, 0.792, 0.792, 0.773)),
    Ablation("w=0.25", {"w": 0.25}, "Fig. 5 (values not printed)"),
    Ablation("w=0.75", {"w": 0.75}, "Fig. 5 (values not printed)"),
    Ablation("w=1", {"w": 1.0}, "Fig. 5 (values not printed)"),
]}
GROUPS = {
    "modalities": ["CHMFL", "PET only", "CT only"],
    "dims": ["CHMFL", "2-D"],
    "decoder": ["CHMFL", "no constrained decoder (w=0)", "plain 3-D CNN"],
    "w": ["no constrained decoder (w=0)", "w=0.25", "CHMFL", "w=0.75", "w=1"],
}
GROUPS["all"] = list(dict.fromkeys(GROUPS["modalities"] + GROUPS["dims"] + GROUPS["decoder"] + GROUPS["w"]))
# (better, worse): the orderings the paper claims, checked with a paired bootstrap of the AUC difference
ORDERINGS = [("CHMFL", "PET only"), ("PET only", "CT only"), ("CHMFL", "2-D"),
             ("CHMFL", "no constrained decoder (w=0)")]


def resolve_rows(spec: str) -> list[str]:
    return ablation_rows.resolve_rows(spec, GROUPS, ABLATIONS, "CHMFL ablation")


@dataclass(frozen=True)
class PetCtData(PhantomOrManifest):
    """Phantom patients (96, balanced, seed 7 by default) or a manifest CSV:
    patient_id, pet, ct, mask, dm (pet/ct: a DICOM folder or NIfTI file; the same DICOM folder for both is fine)."""

    patients: int = 96
    per_patient: int = 1
    seed: int = 7
    PER_PATIENT_KEY: ClassVar[str] = "volumes_per_patient"


MANIFEST_COLUMNS = ("patient_id", "pet", "ct", "mask", "dm")


def manifest_records(path: str | Path) -> list[PetCtRecord]:
    from engine.io.dicom import read_petct
    from engine.io.nifti import is_nifti, read_nifti
    from engine.io.tables import read_csv_table

    path = Path(path)
    records = []
    for line, row in enumerate(read_csv_table(path, MANIFEST_COLUMNS), start=2):
        label = (row["dm"] or "").strip()
        if label not in ("0", "1"):
            raise ValueError(f"{path}:{line}: column 'dm' must be 0 or 1, got {label!r}.")
        pet, ct = path.parent / row["pet"].strip(), path.parent / row["ct"].strip()
        if is_nifti(pet):
            images = {"PET": read_nifti(pet, "PET", "SUV"), "CT": read_nifti(ct, "CT", "HU")}
        else:
            images, _ = read_petct(pet) if pet == ct else ({"PET": read_petct(pet)[0]["PET"],
                                                             "CT": read_petct(ct)[0]["CT"]}, [])
        mask = read_nifti(path.parent / row["mask"].strip(), "mask", "label") if (row["mask"] or "").strip() else None
        records.append(PetCtRecord(row["patient_id"], int(label), images, mask))
    if not records:
        raise ValueError(f"{path}: the manifest lists no patients.")
    return records


def data_records(data: PetCtData) -> tuple[list[PetCtRecord], dict]:
    if data.source == "phantom":
        return phantom_records(data.patients, data.seed), data.describe("engine.phantoms.petct.make_petct_dataset",
                                                                        "PET-CT patients")
    return manifest_records(data.source), {"kind": "manifest", "path": str(data.source)}


@dataclass
class AblationRow:
    name: str
    result: FoldResult
    evaluation: Any  # BinaryEvaluation of the pooled out-of-fold scores at 0.5
    ablation: Ablation

    @property
    def dice(self) -> float | None:
        d = self.result.dice[np.isfinite(self.result.dice)]
        return float(d.mean()) if d.size else None

    def metric(self, key: str) -> dict:
        return self.evaluation.to_dict()["metrics"][key]

    def to_dict(self) -> dict:
        fold_auc = [f["auc"] for f in self.result.fold_metrics]
        return {"name": self.name, **{k: self.metric(k) for k in PAPER_METRICS},
                "dice_mean": self.dice, "fold_mean_auc": float(np.nanmean(fold_auc)),
                "paper_row": self.ablation.paper_row,
                "paper": dict(zip(PAPER_METRICS, self.ablation.paper)) if self.ablation.paper else None,
                "train_seconds": round(self.result.seconds, 1)}


def _cache_path(cache: Path, name: str) -> Path:
    return cache / ("".join(c if c.isalnum() else "_" for c in name) + ".json")


def _save_row(cache: Path, name: str, result: FoldResult, data: PetCtArrays) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    doc = {"name": name, "patients": data.patients, "scores": result.scores.tolist(), "folds": result.folds.tolist(),
           "dice": [None if not np.isfinite(d) else float(d) for d in result.dice], "seconds": result.seconds,
           "fold_metrics": result.fold_metrics, "settings": {k: list(v) if isinstance(v, tuple) else v
                                                              for k, v in result.settings.__dict__.items()}}
    _cache_path(cache, name).write_text(json.dumps(doc), encoding="utf-8")


def _load_row(cache: Path, name: str, settings: CHMFLTrainSettings, data: PetCtArrays) -> FoldResult | None:
    """A row cross-validated earlier with the same settings on the same patients (a stopped run resumes)."""
    path = _cache_path(cache, name)
    if not path.is_file():
        return None
    doc = json.loads(path.read_text(encoding="utf-8"))
    same = {k: list(v) if isinstance(v, tuple) else v for k, v in settings.__dict__.items()} == doc["settings"]
    if not same or doc["patients"] != data.patients:
        return None
    dice = np.array([np.nan if d is None else d for d in doc["dice"]], float)
    return FoldResult(np.asarray(doc["scores"]), np.asarray(doc["folds"]), dice, doc["seconds"], settings,
                      doc["fold_metrics"])


def run_rows(data: PetCtArrays, names: list[str], base: CHMFLTrainSettings, say: Say | None = None,
             cache: Path | None = None) -> list[AblationRow]:
    """Cross-validate every row with the same folds and seed; pooled out-of-fold metrics with CIs over patients.
    With `cache`, each finished row is kept there and rows already there (same settings) are not retrained."""
    rows = []
    for name in names:
        ab = ABLATIONS[name]
        settings = replace(base, **ab.overrides)
        result = _load_row(cache, name, settings, data) if cache else None
        if result is None:
            result = cross_validate(data, settings, say, name)
            if cache:
                _save_row(cache, name, result, data)
        evaluation = evaluate_binary(data.labels, result.scores, 0.5, n_resamples=base.n_bootstrap, seed=base.seed)
        row = AblationRow(name, result, evaluation, ab)
        if say:
            a = row.metric("auc")
            say(f"{name}: pooled AUC {a['value']:.3f} [{a['ci_low']:.3f}, {a['ci_high']:.3f}] ({result.seconds:.0f} s)")
        rows.append(row)
    return rows


def paired_auc_differences(rows: list[AblationRow], labels: np.ndarray, n_resamples: int = 2000,
                           seed: int = 0) -> list[dict]:
    """AUC(better) - AUC(worse) for the paper's orderings, with a paired bootstrap over patients (stratified)."""
    by = {r.name: r for r in rows}
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    samples = [np.concatenate([rng.choice(pos, pos.size), rng.choice(neg, neg.size)]) for _ in range(n_resamples)]
    out = []
    for better, worse in ORDERINGS:
        if better not in by or worse not in by:
            continue
        a, b = by[better].result.scores, by[worse].result.scores
        diff = auc(labels, a) - auc(labels, b)
        boots = np.array([auc(labels[s], a[s]) - auc(labels[s], b[s]) for s in samples])
        out.append({"better": better, "worse": worse, "auc_difference": float(diff),
                    "ci_low": float(np.percentile(boots, 2.5)), "ci_high": float(np.percentile(boots, 97.5)),
                    "holds": bool(diff >= 0)})
    return out


def _ci(entry: dict) -> str:
    return "n/a" if entry["value"] is None else f"{entry['value']:.3f} ({entry['ci_low']:.3f}-{entry['ci_high']:.3f})"


def format_table(rows: list[AblationRow], markdown: bool = False) -> str:
    head = ["configuration", "AUC (95% CI)", "Acc (95% CI)", "Sen", "Spe", "Pre", "F1", "tumour Dice",
            "paper row", "paper AUC", "paper Acc/Sen/Spe/Pre/F1"]
    body = []
    for r in rows:
        d = r.to_dict()
        paper = r.ablation.paper
        body.append([r.name, _ci(d["auc"]), _ci(d["accuracy"]),
                     *(("n/a" if d[k]["value"] is None else f"{d[k]['value']:.3f}")
                       for k in ("sensitivity", "specificity", "ppv", "f1")),
                     "" if d["dice_mean"] is None else f"{d['dice_mean']:.3f}", r.ablation.paper_row,
                     f"{paper[5]:.3f}" if paper else "", "/".join(f"{v:.3f}" for v in paper[:5]) if paper else ""])
    if markdown:
        return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
                         + ["| " + " | ".join(b) + " |" for b in body])
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*head)] + [fmt.format(*b) for b in body])


def format_orderings(diffs: list[dict], markdown: bool = False) -> str:
    lines = []
    for d in diffs:
        text = (f"{d['better']} - {d['worse']}: AUC difference {d['auc_difference']:+.3f} "
                f"(95% CI {d['ci_low']:+.3f} to {d['ci_high']:+.3f}) -> ordering "
                f"{'holds' if d['holds'] else 'does NOT hold'} in the point estimate")
        lines.append(f"- {text}" if markdown else text)
    return "\n".join(lines)


def write_tables(rows: list[AblationRow], diffs: list[dict], data: PetCtArrays, out: Path, title: str) -> list[Path]:
    from engine.metrics.plots import plot_roc

    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "chmfl_ablation.json", out / "chmfl_ablation.md", out / "chmfl_ablation_scores.csv",
             out / "chmfl_ablation_roc.png"]
    paths[0].write_text(json.dumps({"title": title, "rows": [r.to_dict() for r in rows], "orderings": diffs},
                                   indent=2), encoding="utf-8")
    paths[1].write_text(f"# {title}\n\n{format_table(rows, True)}\n\n{format_orderings(diffs, True)}\n",
                        encoding="utf-8")
    with open(paths[2], "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["configuration", "patient_id", "fold", "label", "p_dm", "tumour_dice"])
        for r in rows:
            for i, p in enumerate(data.patients):
                writer.writerow([r.name, p, int(r.result.folds[i]) + 1, int(data.labels[i]),
                                 f"{r.result.scores[i]:.6f}", f"{r.result.dice[i]:.4f}"])
    plot_roc({r.name: (data.labels, r.result.scores) for r in rows}, paths[3], title=title)
    return paths


def shipped_net(data: PetCtArrays, base: CHMFLTrainSettings, cache: Path, say: Say | None = None):
    """The net trained on every patient (the shipped weights), kept in `cache` as safetensors with its settings
    and patients, so a rerun with the same ones reuses it."""
    from safetensors.torch import load_file, save_file

    from engine.registry import build_net

    key = json.dumps({"settings": {k: list(v) if isinstance(v, tuple) else v for k, v in base.__dict__.items()},
                      "patients": data.patients}, sort_keys=True)
    weights, stamp = cache / "shipped_net.safetensors", cache / "shipped_net.json"
    if weights.is_file() and stamp.is_file() and stamp.read_text(encoding="utf-8") == key:
        net = build_net("chmfl", base.net_config())
        net.load_state_dict(load_file(str(weights)))
        return net.eval()
    if say:
        say("training the shipped net on every patient")
    net = train_net(data, np.arange(len(data.labels)), base, say, "chmfl (all patients)")
    cache.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(weights))
    stamp.write_text(key, encoding="utf-8")
    return net


@dataclass(frozen=True)
class CHMFLTrainRun:
    """`oncolens train chmfl`: the protocol's rows, the shipped net (all patients) and where they go."""

    base: CHMFLTrainSettings = field(default_factory=CHMFLTrainSettings)
    data: PetCtData = PetCtData()
    rows: tuple[str, ...] = tuple(GROUPS["all"])
    out: Path | None = None
    models_root: Path | None = None
    command: str = ""


def _threads() -> None:
    import torch

    torch.set_num_threads(max(1, int(os.environ.get("ONCOLENS_TRAIN_THREADS", "1"))))


def train_chmfl(run: CHMFLTrainRun, say: Say) -> int:
    from engine.paths import models_dir
    from engine.train.chmfl_card import save_chmfl_card

    _threads()
    started = time.perf_counter()
    records, description = data_records(run.data)
    data = prepare_arrays(records, provisional_card(run.base).preprocessing)
    names = list(dict.fromkeys(["CHMFL", *run.rows]))
    root = run.models_root or models_dir()
    out = run.out or root / "chmfl_pet_ct" / "ablation"
    rows = run_rows(data, names, run.base, say, cache=out / "rows")
    diffs = paired_auc_differences(rows, data.labels, seed=run.base.seed)
    title = (f"CHMFL phantom ablation: {len(data.labels)} patients, {run.base.folds}-fold CV, pooled out-of-fold, "
             f"{run.base.preset} configuration, {run.base.epochs} epochs")
    files = write_tables(rows, diffs, data, out, title)
    print(format_table(rows))
    print(format_orderings(diffs))
    net = shipped_net(data, run.base, out / "rows", say)
    card = save_chmfl_card(net, run.base, rows, diffs, title, files, description, run.command, root,
                           time.perf_counter() - started)
    say(f"{card.name} -> {card.folder}")
    return 0


@dataclass(frozen=True)
class CHMFLEvaluation:
    """`oncolens evaluate chmfl`: the installed card on new data (a new phantom or a manifest), or, with `rows`,
    train and tabulate those ablation rows with the paper's protocol."""

    out: Path
    data: PetCtData | None = None
    rows: tuple[str, ...] = ()
    base: CHMFLTrainSettings = field(default_factory=CHMFLTrainSettings)
    n_bootstrap: int = 1000
    models_root: Path | None = None


def evaluate_chmfl(ev: CHMFLEvaluation, say: Say) -> int:
    from engine.metrics.evaluation import write_evaluation
    from engine.predict.petct import CHMFLPredictor
    from engine.train.chmfl import score_patients

    _threads()
    if ev.rows:
        records, _ = data_records(ev.data or PetCtData())
        data = prepare_arrays(records, provisional_card(ev.base).preprocessing)
        rows = run_rows(data, list(ev.rows), ev.base, say, cache=ev.out / "rows")
        diffs = paired_auc_differences(rows, data.labels, seed=ev.base.seed)
        write_tables(rows, diffs, data, ev.out, f"CHMFL ablation ({ev.base.preset}, {ev.base.epochs} epochs)")
        print(format_table(rows))
        print(format_orderings(diffs))
        return 0
    predictor = CHMFLPredictor(device="cpu", root=ev.models_root)
    data_spec = ev.data or replace(PetCtData.of_card(predictor.card), seed=PetCtData.of_card(predictor.card).seed + 1000)
    records, _ = data_records(data_spec)
    data = prepare_arrays(records, predictor.card.preprocessing)
    scores, dice = score_patients(predictor, data, np.arange(len(records)))
    evaluation = evaluate_binary(data.labels, scores, predictor.card.threshold(), n_resamples=ev.n_bootstrap)
    write_evaluation({predictor.card.name: evaluation}, ev.out, "chmfl")
    d = evaluation.to_dict()["metrics"]
    for key in PAPER_METRICS:
        print(f"{key:<12} {_ci(d[key])}")
    print(f"tumour Dice (box) mean {np.nanmean(dice):.3f}; {evaluation.ci_description()}")
    say(f"wrote CSV and JSON to {ev.out}/ ({'new phantom, seed ' + str(data_spec.seed) if data_spec.source == 'phantom' else data_spec.source})")
    return 0
