"""MFI-FFP ablations as the paper's Tables I/II/V/VI/VII and Fig. 6: every row is a training configuration.

Rows: the modality sets (Table II), every assignment of branches to modalities (Table I: the proposed one, the
five permutations and the three same-branch rows), concatenation instead of MFF (Tables VI/VII), the loss terms
(Table V), LDAM as its reference sets it against eq. (17) read literally, weighted cross-entropy (Table VI), a few settings of the loss weights alpha and beta (Fig. 6), and
the input (the paper's whole-image resize against our node-centred crop). Not implemented: the comparison models
of Tables III/IV (`NOT_IMPLEMENTED`).

`run_ablation` trains each configuration `runs` times (seeds 0..runs-1) on one patient-level split, keeps the run
with the median test AUC (the paper reports the median of 5 runs), and tabulates AUC, and ACC, F1, sensitivity
and specificity both at the validation-chosen threshold and at argmax (where the paper reports them), with 95%
CIs, params (M) and GFLOPs of the trained configuration and of the paper-sized configuration, beside the paper's
figures.
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
    prepare_arrays,
    train_mfi_ffp,
)

TRI = ("WLI", "FI", "PCI")
PROPOSED = {"WLI": "irb", "FI": "rb", "PCI": "vit"}
NOT_IMPLEMENTED = ("Tables III/IV: the comparison models (Swin Transformer, ConvNeXt, EfficientNet v2, MobileNet v3, "
                   "ResNet18, each with concatenation and attention fusion, ImageNet-pretrained, weighted "
                   "cross-entropy) are not implemented; their published figures are not reproduced here.")


@dataclass(frozen=True)
class Paper:
    """The paper's test-set figures for a row (ACC and F1 at argmax); None where it gives none."""

    auc: float | None = None
    acc: float | None = None
    f1: float | None = None
    params_m: float | None = None
    gflops: float | None = None


@dataclass(frozen=True)
class Ablation:
    name: str
    tables: tuple[str, ...]  # which paper tables (or figures) the row belongs to
    modalities: tuple[str, ...] = TRI
    branches: tuple[tuple[str, str], ...] = tuple(PROPOSED.items())
    fusion: str = "mff"
    loss_terms: tuple[str, ...] = ("ldam", "focal", "intra")
    paper: Paper = Paper()
    alpha: float = 1.0
    beta: float = 1.0
    crop: str = ""  # "" = the preset's (paper: whole-image resize; compact: node crop)
    ldam: str = "reference"  # "literal": eq. (17) as written, unscaled (what OncoLens trained with before)

    def settings(self, base: MFIFFPTrainSettings, seed: int) -> MFIFFPTrainSettings:
        return replace(base, modalities=self.modalities, branches=dict(self.branches), fusion=self.fusion,
                       loss_terms=self.loss_terms, seed=seed, alpha=self.alpha, beta=self.beta,
                       crop=self.crop or base.crop_mode, ldam=self.ldam)


def _same(kind: str) -> tuple[tuple[str, str], ...]:
    return tuple((m, kind) for m in TRI)


def _mixed(wli: str, fi: str, pci: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    names = {"irb": "IRB", "rb": "RB", "vit": "ViT"}
    return f"WLI:{names[wli]} FI:{names[fi]} PCI:{names[pci]}", (("WLI", wli), ("FI", fi), ("PCI", pci))


def _table_i(wli: str, fi: str, pci: str, paper: Paper) -> Ablation:
    name, branches = _mixed(wli, fi, pci)
    return Ablation(name, ("I",), branches=branches, paper=paper)


def _sweep(alpha: float, beta: float) -> Ablation:
    return Ablation(f"alpha={alpha:g} beta={beta:g}", ("Fig6",), alpha=alpha, beta=beta)


ABLATIONS: dict[str, Ablation] = {a.name: a for a in [
    # Table II: modalities (paper test-set AUC, ACC, F1, params M, GFLOPs)
    Ablation("tri-modal", ("I", "II", "V", "VI", "VII"), paper=Paper(0.8294, 0.8635, 0.4999, 122.40, 13.47)),
    Ablation("WLI+FI", ("II",), modalities=("WLI", "FI"), paper=Paper(0.7860, 0.8192, 0.3725, 45.80, 2.19)),
    Ablation("FI+PCI", ("II",), modalities=("FI", "PCI"), paper=Paper(0.6868, 0.7726, 0.2568, 88.03, 13.13)),
    Ablation("WLI+PCI", ("II",), modalities=("WLI", "PCI"), paper=Paper(0.7437, 0.8376, 0.3364, 111.22, 11.67)),
    Ablation("WLI", ("II",), modalities=("WLI",), paper=Paper(0.6618, 0.7601, 0.2574, 3.01, 0.33)),
    Ablation("FI", ("II",), modalities=("FI",), paper=Paper(0.6396, 0.7653, 0.2049, 11.31, 1.82)),
    Ablation("PCI", ("II",), modalities=("PCI",), paper=Paper(0.6280, 0.7437, 0.2016, 57.82, 11.29)),
    # Table I: which branch reads which modality (the five permutations besides the proposed one)
    _table_i("rb", "irb", "vit", Paper(0.7426, 0.7970, 0.3093)),
    _table_i("vit", "rb", "irb", Paper(0.8054, 0.8672, 0.4236)),
    _table_i("vit", "irb", "rb", Paper(0.7691, 0.8192, 0.3544)),
    _table_i("irb", "vit", "rb", Paper(0.7600, 0.7934, 0.3467)),
    _table_i("rb", "vit", "irb", Paper(0.7853, 0.8229, 0.3688)),
    # Tables VII / I: same branch for every modality, with and without MFF; concatenation instead of MFF
    Ablation("concat", ("VI", "VII"), fusion="concat", paper=Paper(0.7472, 0.7934, 0.4094)),
    Ablation("tri-IRB", ("I", "VII"), branches=_same("irb"), paper=Paper(0.7089, 0.7528, 0.2708)),
    Ablation("tri-RB", ("I", "VII"), branches=_same("rb"), paper=Paper(0.6268, 0.6753, 0.2317)),
    Ablation("tri-ViT", ("I", "VII"), branches=_same("vit"), paper=Paper(0.6357, 0.6827, 0.2275)),
    Ablation("tri-IRB concat", ("VII",), branches=_same("irb"), fusion="concat", paper=Paper(0.6810, 0.6974, 0.2407)),
    Ablation("tri-RB concat", ("VII",), branches=_same("rb"), fusion="concat", paper=Paper(0.6154, 0.6494, 0.2180)),
    Ablation("tri-ViT concat", ("VII",), branches=_same("vit"), fusion="concat", paper=Paper(0.6193, 0.6531, 0.2074)),
    # Table V: loss terms (all with MFF)
    Ablation("LDAM", ("V",), loss_terms=("ldam",), paper=Paper(0.7332, 0.8044, 0.3357)),
    Ablation("Focal", ("V",), loss_terms=("focal",), paper=Paper(0.6452, 0.7491, 0.2548)),
    Ablation("Intra", ("V",), loss_terms=("intra",), paper=Paper(0.6238, 0.7122, 0.2015)),
    Ablation("LDAM+Focal", ("V",), loss_terms=("ldam", "focal"), paper=Paper(0.7576, 0.7971, 0.4020)),
    Ablation("LDAM+Intra", ("V",), loss_terms=("ldam", "intra"), paper=Paper(0.7403, 0.8155, 0.3664)),
    Ablation("Focal+Intra", ("V",), loss_terms=("focal", "intra"), paper=Paper(0.6816, 0.7528, 0.3043)),
    # LDAM as its reference sets it (every row above) against eq. (17) taken literally (C / n_j^(1/4), logits
    # unscaled), as OncoLens trained before; the paper's figures are those of the rows they stand beside
    Ablation("tri-modal (LDAM literal)", ("V",), ldam="literal", paper=Paper(0.8294, 0.8635, 0.4999)),
    Ablation("LDAM literal", ("V",), loss_terms=("ldam",), ldam="literal", paper=Paper(0.7332, 0.8044, 0.3357)),
    # Table VI: weighted cross-entropy instead of L_All, with and without MFF
    Ablation("CE concat", ("VI",), fusion="concat", loss_terms=("ce",), paper=Paper(0.6933, 0.7380, 0.3112)),
    Ablation("CE MFF", ("VI",), loss_terms=("ce",), paper=Paper(0.7539, 0.8087, 0.4153)),
    # Fig. 6: loss weights alpha (focal) and beta (intra) from {0.01, 0.05, 0.1, 0.5, 1}; the paper plots them
    # (small values near AUC 0.75, best at alpha = beta = 1) and gives no table
    _sweep(0.01, 0.01), _sweep(0.1, 0.1), _sweep(0.5, 0.5), _sweep(0.01, 1.0), _sweep(1.0, 0.01),
    # Input: the paper resizes the whole image to 224 x 224; the compact demo preset crops around the node
    Ablation("resize", ("III-B",), crop="none", paper=Paper(0.8294, 0.8635, 0.4999)),
    Ablation("crop", ("ours",), crop="node"),
]}

GROUPS = {
    "modalities": ["tri-modal", "WLI+FI", "FI+PCI", "WLI+PCI", "WLI", "FI", "PCI", "concat"],
    "branches": ["tri-modal", *(n for n, a in ABLATIONS.items() if a.tables == ("I",)), "tri-IRB", "tri-RB",
                 "tri-ViT", "concat", "tri-IRB concat", "tri-RB concat", "tri-ViT concat"],
    "losses": ["tri-modal", "LDAM", "Focal", "Intra", "LDAM+Focal", "LDAM+Intra", "Focal+Intra", "CE MFF",
               "CE concat", "concat"],
    "loss-weights": ["tri-modal", *(n for n, a in ABLATIONS.items() if a.tables == ("Fig6",))],
    "input": ["crop", "resize"],
    "ldam": ["tri-modal", "tri-modal (LDAM literal)", "LDAM", "LDAM literal"],
}
GROUPS["all"] = list(dict.fromkeys(name for group in list(GROUPS.values()) for name in group))


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
    paper: Paper

    def metric(self, key: str) -> dict:
        return self.median.evaluation.to_dict()["metrics"][key]

    def argmax_metric(self, key: str) -> dict:
        return self.median.argmax.to_dict()["metrics"][key]

    def to_dict(self) -> dict:
        s = self.median.settings
        return {
            "name": self.name, "tables": list(self.tables), "runs_auc": [round(a, 4) for a in self.runs_auc],
            "n_runs": len(self.runs_auc), "input": s.crop_mode, "alpha": s.alpha, "beta": s.beta, "ldam": s.ldam,
            **{k: self.metric(k) for k in ("auc", *OPERATING_METRICS)},
            "threshold": round(self.median.threshold, 4),
            "argmax": {k: self.argmax_metric(k) for k in OPERATING_METRICS},
            "params_m": round(self.params_m, 3), "gflops": round(self.gflops, 3),
            "paper_config_params_m": round(self.paper_size_params_m, 2),
            "paper_config_gflops": round(self.paper_size_gflops, 2),
            "paper_test_auc": self.paper.auc, "paper_test_acc": self.paper.acc, "paper_test_f1": self.paper.f1,
            "paper_params_m": self.paper.params_m, "paper_gflops": self.paper.gflops,
            "train_seconds": round(self.median.seconds, 1),
        }


OPERATING_METRICS = ("accuracy", "f1", "sensitivity", "specificity")
INPUT_TITLES = {"node": "crop 1.5x", "none": "resize"}


def run_ablation(data: NodeArrays, names: list[str], base: MFIFFPTrainSettings, runs: int = 1,
                 split: Split | None = None, progress: Callable[[str], None] | None = None,
                 on_row: Callable[[AblationRow], None] | None = None) -> list[AblationRow]:
    """Train each row `runs` times on one split and keep the median-AUC run. A row whose settings equal an
    earlier row's (e.g. 'crop' and 'tri-modal' in the compact preset) reuses its runs; rows with another input
    (crop or whole-image resize) get the nodes prepared that way from the same images."""
    say = progress or (lambda _m: None)
    split = split or make_split(data, base.test_fraction, base.val_fraction, 0)
    arrays = {data.constants.get("crop"): data}
    trained: list[tuple[MFIFFPTrainSettings, list]] = []
    rows = []
    for name in names:
        ab = ABLATIONS[name]
        settings = ab.settings(base, seed=0)
        outcomes = next((done for done_settings, done in trained if done_settings == settings), None)
        if outcomes is None:
            if settings.crop_mode not in arrays:
                arrays[settings.crop_mode] = prepare_arrays(data.samples, base.input_size, crop=settings.crop_mode)
            outcomes = []
            for run in range(runs):
                outcome = train_mfi_ffp(arrays[settings.crop_mode], ab.settings(base, seed=run), split=split,
                                        progress=progress)
                if outcome is None:  # a non-zero DDP rank: rank 0 evaluates
                    continue
                auc = outcome.evaluation.to_dict()["metrics"]["auc"]["value"]
                say(f"{name} run {run + 1}/{runs}: test AUC {auc:.3f} ({outcome.seconds:.0f} s)")
                outcomes.append((auc, outcome))
            outcomes.sort(key=lambda pair: pair[0])
            trained.append((settings, outcomes))
        if not outcomes:
            continue
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


def pair_cell(first: dict, second: dict) -> str:
    """Two metric values in one cell, e.g. sensitivity/specificity."""
    return "/".join("n/a" if e["value"] is None else f"{e['value']:.3f}" for e in (first, second))


def _figure(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def format_ablation(rows: list[AblationRow] | list[dict], markdown: bool = False) -> str:
    """The table printed by `oncolens evaluate mfi_ffp --ablation`, plain or as Markdown for the card, from rows or
    their saved dicts (`AblationRow.to_dict`, the JSON's rows). ACC, F1, SEN/SPE are given twice: at the threshold
    chosen on validation patients ('val thr') and at argmax (P >= 0.5), where the paper reports its ACC and F1."""
    head = ["config", "tables", "input", "runs", "AUC (95% CI)", "ACC val thr (95% CI)", "F1 val thr (95% CI)",
            "SEN/SPE val thr", "ACC argmax (95% CI)", "F1 argmax (95% CI)", "SEN/SPE argmax", "params M", "GFLOPs",
            "paper-size params M", "paper-size GFLOPs", "paper AUC", "paper ACC", "paper F1", "paper params M",
            "paper GFLOPs"]
    body = []
    for r in rows:
        d = r if isinstance(r, dict) else r.to_dict()
        a = d["argmax"]
        body.append([d["name"], "/".join(d["tables"]), INPUT_TITLES.get(d["input"], d["input"]), str(d["n_runs"]),
                     _ci(d["auc"]), _ci(d["accuracy"]), _ci(d["f1"]), pair_cell(d["sensitivity"], d["specificity"]),
                     _ci(a["accuracy"]), _ci(a["f1"]), pair_cell(a["sensitivity"], a["specificity"]),
                     f"{d['params_m']:.2f}", f"{d['gflops']:.3f}", f"{d['paper_config_params_m']:.2f}",
                     f"{d['paper_config_gflops']:.2f}",
                     *(_figure(d[k]) for k in ("paper_test_auc", "paper_test_acc", "paper_test_f1", "paper_params_m",
                                               "paper_gflops"))])
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return "\n".join(lines + ["| " + " | ".join(b) + " |" for b in body])
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(head)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*head)] + [fmt.format(*b) for b in body])


TABLE_NOTE = ("ACC, F1, SEN/SPE at 'val thr': the operating threshold chosen on validation patients (ROC point "
              "closest to (0, 1)); at 'argmax': P(metastatic) >= 0.5, where the paper reports its ACC and F1. "
              "Fig6 rows: the paper plots that sweep and gives no figures. " + NOT_IMPLEMENTED)


def write_ablation(rows: list[AblationRow], data: NodeArrays, out_dir: str | Path, title: str) -> dict[str, Path]:
    """CSV + JSON + Markdown tables, per-node test scores of every row, and a ROC PNG."""
    from engine.metrics.plots import plot_roc

    out = Path(out_dir)
    paths = write_ablation_tables([r.to_dict() for r in rows], out, title)
    paths.update(scores=out / "mfi_ffp_ablation_scores.csv", roc=out / "mfi_ffp_ablation_roc.png")
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


def write_ablation_tables(dicts: list[dict], out_dir: str | Path, title: str) -> dict[str, Path]:
    """The CSV, JSON and Markdown tables of rows given as dicts (`AblationRow.to_dict`, or a saved JSON's rows)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "mfi_ffp_ablation.csv", "json": out / "mfi_ffp_ablation.json",
             "md": out / "mfi_ffp_ablation.md"}
    metric_columns = [f"{m}{suffix}" for m in ("auc", *OPERATING_METRICS) for suffix in ("", "_low", "_high")]
    argmax_columns = [f"{m}_argmax{suffix}" for m in OPERATING_METRICS for suffix in ("", "_low", "_high")]
    with open_csv(paths["csv"]) as fh:
        writer = csv_writer(fh)
        writer.writerow(["config", "tables", "input", "alpha", "beta", "runs", *metric_columns, "threshold",
                         *argmax_columns, "params_m", "gflops", "paper_config_params_m", "paper_config_gflops",
                         "paper_test_auc", "paper_test_acc", "paper_test_f1", "paper_params_m", "paper_gflops",
                         "runs_auc"])
        for d in dicts:
            cells = lambda entries: [e[f] for e in entries for f in ("value", "ci_low", "ci_high")]  # noqa: E731
            writer.writerow([d["name"], "/".join(d["tables"]), d["input"], d["alpha"], d["beta"], d["n_runs"],
                             *cells(d[k] for k in ("auc", *OPERATING_METRICS)), d["threshold"],
                             *cells(d["argmax"][k] for k in OPERATING_METRICS), d["params_m"], d["gflops"],
                             d["paper_config_params_m"], d["paper_config_gflops"], d["paper_test_auc"],
                             d["paper_test_acc"], d["paper_test_f1"], d["paper_params_m"], d["paper_gflops"],
                             " ".join(str(a) for a in d["runs_auc"])])
    paths["json"].write_text(json.dumps({"title": title, "note": TABLE_NOTE, "rows": dicts}, indent=2),
                             encoding="utf-8")
    paths["md"].write_text(f"# {title}\n\n{format_ablation(dicts, markdown=True)}\n\n{TABLE_NOTE}\n",
                           encoding="utf-8")
    return paths
