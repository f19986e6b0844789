"""MFI-FFP ablations as the paper's Tables I/II/V/VI/VII: every row is a training configuration.

`run_ablation` trains each configuration `runs` times (seeds 0..runs-1) on one patient-level split,
keeps the run with the median test AUC (the paper reports the median of 5 runs), and tabulates AUC,
ACC and F1 with 95% bootstrap CIs, params (M) and GFLOPs of the trained configuration and of the
paper-sized configuration, beside the paper's figures.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from engine.exports import csv_writer, open_csv
from engine.nets.mfi_ffp import count_flops, count_parameters
from engine.registry import build_net
from engine.train.ablation_rows import resolve_rows
from engine.train.mfi_ffp import (
    MFIFFPTrainSettings,
    NodeArrays,
    Split,
    TrainOutcome,
    make_split,
    train_mfi_ffp,
)

TRI = ("WLI", "FI", "PCI")
PROPOSED = {"WLI": "irb", "FI": "rb", "PCI": "vit"}


@dataclass(frozen=True)
class Ablation:
    name: str
    tables: tuple[str, ...]  # which paper tables the row belongs to
    modalities: tuple[str, ...] = TRI
    branches: tuple[tuple[str, str], ...] = tuple(PROPOSED.items())
    fusion: str = "mff"
    loss_terms: tuple[str, ...] = ("ldam", "focal", "intra")
    paper: tuple[float | None, float | None, float | None] = (None, None, None)  # test AUC, params M, GFLOPs

    def settings(self, base: MFIFFPTrainSettings, seed: int) -> MFIFFPTrainSettings:
        return replace(base, modalities=self.modalities, branches=dict(self.branches), fusion=self.fusion,
                       loss_terms=self.loss_terms, seed=seed)


def _same(kind: str) -> tuple[tuple[str, str], ...]:
    return tuple((m, kind) for m in TRI)


ABLATIONS: dict[str, Ablation] = {a.name: a for a in [
    # Table II: modalities (paper test-set AUC, params M, GFLOPs)
    Ablation("tri-modal", ("II", "V", "VI", "VII"), paper=(0.8294, 122.40, 13.47)),
    Ablation("WLI+FI", ("II",), modalities=("WLI", "FI"), paper=(0.7860, 45.80, 2.19)),
    Ablation("FI+PCI", ("II",), modalities=("FI", "PCI"), paper=(0.6868, 88.03, 13.13)),
    Ablation("WLI+PCI", ("II",), modalities=("WLI", "PCI"), paper=(0.7437, 111.22, 11.67)),
    Ablation("WLI", ("II",), modalities=("WLI",), paper=(0.6618, 3.01, 0.33)),
    Ablation("FI", ("II",), modalities=("FI",), paper=(0.6396, 11.31, 1.82)),
    Ablation("PCI", ("II",), modalities=("PCI",), paper=(0.6280, 57.82, 11.29)),
    # Table VII / I: same branch for every modality, with and without MFF; concatenation instead of MFF
    Ablation("concat", ("VI", "VII"), fusion="concat", paper=(0.7472, None, None)),
    Ablation("tri-IRB", ("I", "VII"), branches=_same("irb"), paper=(0.7089, None, None)),
    Ablation("tri-RB", ("I", "VII"), branches=_same("rb"), paper=(0.6268, None, None)),
    Ablation("tri-ViT", ("I", "VII"), branches=_same("vit"), paper=(0.6357, None, None)),
    Ablation("tri-IRB concat", ("VII",), branches=_same("irb"), fusion="concat", paper=(0.6810, None, None)),
    Ablation("tri-RB concat", ("VII",), branches=_same("rb"), fusion="concat", paper=(0.6154, None, None)),
    Ablation("tri-ViT concat", ("VII",), branches=_same("vit"), fusion="concat", paper=(0.6193, None, None)),
    # Table V: loss terms (all with MFF)
    Ablation("LDAM", ("V",), loss_terms=("ldam",), paper=(0.7332, None, None)),
    Ablation("Focal", ("V",), loss_terms=("focal",), paper=(0.6452, None, None)),
    Ablation("Intra", ("V",), loss_terms=("intra",), paper=(0.6238, None, None)),
    Ablation("LDAM+Focal", ("V",), loss_terms=("ldam", "focal"), paper=(0.7576, None, None)),
    Ablation("LDAM+Intra", ("V",), loss_terms=("ldam", "intra"), paper=(0.7403, None, None)),
    Ablation("Focal+Intra", ("V",), loss_terms=("focal", "intra"), paper=(0.6816, None, None)),
    # Table VI: weighted cross-entropy instead of L_All, with and without MFF
    Ablation("CE concat", ("VI",), fusion="concat", loss_terms=("ce",), paper=(0.6933, None, None)),
    Ablation("CE MFF", ("VI",), loss_terms=("ce",), paper=(0.7539, None, None)),
]}

GROUPS = {
    "modalities": ["tri-modal", "WLI+FI", "FI+PCI", "WLI+PCI", "WLI", "FI", "PCI", "concat"],
    "branches": ["tri-modal", "tri-IRB", "tri-RB", "tri-ViT", "concat", "tri-IRB concat", "tri-RB concat",
                 "tri-ViT concat"],
    "losses": ["tri-modal", "LDAM", "Focal", "Intra", "LDAM+Focal", "LDAM+Intra", "Focal+Intra", "CE MFF",
               "CE concat", "concat"],
}
GROUPS["all"] = list(dict.fromkeys(GROUPS["modalities"] + GROUPS["branches"] + GROUPS["losses"]))


def resolve_names(spec: str) -> list[str]:
    """'all', a group name, or comma-separated row names."""
    return resolve_rows(spec, GROUPS, ABLATIONS)


def size_of(ablation: Ablation, preset: str) -> tuple[float, float]:
    """(params in millions, GFLOPs as multiply-adds) of the configuration at `preset` size."""
    net = build_net("mfi_ffp", ablation.settings(MFIFFPTrainSettings(preset=preset), 0).net_config())
    return count_parameters(net) / 1e6, count_flops(net) / 2e9


@dataclass
class AblationRow:
    name: str
    tables: tuple[str, ...]
    runs_auc: list[float]
    median: TrainOutcome
    params_m: float
    gflops: float
    paper_size_params_m: float
    paper_size_gflops: float
    paper: tuple

    def metric(self, key: str) -> dict:
        return self.median.evaluation.to_dict()["metrics"][key]

    def to_dict(self) -> dict:
        return {
            "name": self.name, "tables": list(self.tables), "runs_auc": [round(a, 4) for a in self.runs_auc],
            "n_runs": len(self.runs_auc),
            **{k: self.metric(k) for k in ("auc", "accuracy", "f1", "sensitivity", "specificity")},
            "threshold": round(self.median.threshold, 4),
            "params_m": round(self.params_m, 3), "gflops": round(self.gflops, 3),
            "paper_config_params_m": round(self.paper_size_params_m, 2),
            "paper_config_gflops": round(self.paper_size_gflops, 2),
            "paper_test_auc": self.paper[0], "paper_params_m": self.paper[1], "paper_gflops": self.paper[2],
            "train_seconds": round(self.median.seconds, 1),
        }


def run_ablation(data: NodeArrays, names: list[str], base: MFIFFPTrainSettings, runs: int = 1,
                 split: Split | None = None, progress: Callable[[str], None] | None = None,
                 on_row: Callable[[AblationRow], None] | None = None) -> list[AblationRow]:
    say = progress or (lambda _m: None)
    split = split or make_split(data, base.test_fraction, base.val_fraction, 0)
    rows = []
    for name in names:
        ab = ABLATIONS[name]
        outcomes = []
        for run in range(runs):
            outcome = train_mfi_ffp(data, ab.settings(base, seed=run), split=split, progress=progress)
            if outcome is None:  # a non-zero DDP rank: rank 0 evaluates
                continue
            auc = outcome.evaluation.to_dict()["metrics"]["auc"]["value"]
            say(f"{name} run {run + 1}/{runs}: test AUC {auc:.3f} ({outcome.seconds:.0f} s)")
            outcomes.append((auc, outcome))
        if not outcomes:
            continue
        outcomes.sort(key=lambda pair: pair[0])
        median = outcomes[(len(outcomes) - 1) // 2][1]  # the lower median for an even count: a real run
        params, gflops = size_of(ab, base.preset)
        paper_params, paper_gflops = size_of(ab, "paper")
        row = AblationRow(name, ab.tables, [a for a, _ in outcomes], median, params, gflops, paper_params,
                          paper_gflops, ab.paper)
        rows.append(row)
        if on_row:
            on_row(row)
    return rows


def _ci(entry: dict) -> str:
    if entry["value"] is None:
        return "n/a"
    return f"{entry['value']:.3f} ({entry['ci_low']:.3f}, {entry['ci_high']:.3f})"


def format_ablation(rows: list[AblationRow], markdown: bool = False) -> str:
    """The table printed by `oncolens evaluate mfi_ffp --ablation`, plain or as Markdown for the card."""
    head = ["config", "tables", "runs", "AUC (95% CI)", "ACC (95% CI)", "F1 (95% CI)", "params M", "GFLOPs",
            "paper-size params M", "paper-size GFLOPs", "paper AUC", "paper params M", "paper GFLOPs"]
    body = []
    for r in rows:
        d = r.to_dict()
        body.append([r.name, "/".join(r.tables), str(d["n_runs"]), _ci(d["auc"]), _ci(d["accuracy"]), _ci(d["f1"]),
                     f"{d['params_m']:.2f}", f"{d['gflops']:.3f}", f"{d['paper_config_params_m']:.2f}",
                     f"{d['paper_config_gflops']:.2f}",
                     *("" if v is None else f"{v:.4g}" for v in (d["paper_test_auc"], d["paper_params_m"],
                                                                 d["paper_gflops"]))])
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return "\n".join(lines + ["| " + " | ".join(b) + " |" for b in body])
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*head)] + [fmt.format(*b) for b in body])


def write_ablation(rows: list[AblationRow], data: NodeArrays, out_dir: str | Path, title: str) -> dict[str, Path]:
    """CSV + JSON + Markdown tables, per-node test scores of every row, and a ROC PNG."""
    from engine.metrics.plots import plot_roc

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "mfi_ffp_ablation.csv", "json": out / "mfi_ffp_ablation.json",
             "md": out / "mfi_ffp_ablation.md", "scores": out / "mfi_ffp_ablation_scores.csv",
             "roc": out / "mfi_ffp_ablation_roc.png"}
    dicts = [r.to_dict() for r in rows]
    with open_csv(paths["csv"]) as fh:
        writer = csv_writer(fh)
        writer.writerow(["config", "tables", "runs", "auc", "auc_low", "auc_high", "acc", "acc_low", "acc_high",
                         "f1", "f1_low", "f1_high", "threshold", "params_m", "gflops", "paper_config_params_m",
                         "paper_config_gflops", "paper_test_auc", "paper_params_m", "paper_gflops", "runs_auc"])
        for d in dicts:
            writer.writerow([d["name"], "/".join(d["tables"]), d["n_runs"],
                             *(d[k][f] for k in ("auc", "accuracy", "f1") for f in ("value", "ci_low", "ci_high")),
                             d["threshold"], d["params_m"], d["gflops"], d["paper_config_params_m"],
                             d["paper_config_gflops"], d["paper_test_auc"], d["paper_params_m"], d["paper_gflops"],
                             " ".join(str(a) for a in d["runs_auc"])])
    paths["json"].write_text(json.dumps({"title": title, "rows": dicts}, indent=2), encoding="utf-8")
    paths["md"].write_text(f"# {title}\n\n{format_ablation(rows, markdown=True)}\n", encoding="utf-8")
    with open_csv(paths["scores"]) as fh:
        writer = csv_writer(fh)
        writer.writerow(["config", "node_id", "patient_id", "label", "score"])
        for r in rows:
            for i, score in zip(r.median.split.test, r.median.test_scores):
                writer.writerow([r.name, data.node_ids[i], data.patients[i], int(data.labels[i]), f"{score:.6f}"])
    curves = {r.name: (data.labels[r.median.split.test], r.median.test_scores)
              for r in rows if r.name in GROUPS["modalities"]} or {
        r.name: (data.labels[r.median.split.test], r.median.test_scores) for r in rows}
    plot_roc(curves, paths["roc"], title=title)
    return paths
