"""The paper's evaluation protocol for fluorescence segmentation, and its tables.

For each network and each fine-tuning dataset T (the paper's ABFM and DTHP; phantom A and B):
- end-to-end: the net trained from random weights on T;
- transfer: an encoder pretrained elsewhere, frozen, and the decoder trained on T. The paper's
  encoders were pretrained on ImageNet; with a local ImageNet weight file that is used here too,
  otherwise the pretraining is a full training on the other fluorescence dataset (B for A, A for B).
Both are scored by k-fold cross-validation on T (5 folds in the paper). The held-out dataset C
(the paper's DTHL) is never trained on: every fold model of the B protocol is tested on all of it.
DRLSE, the level-set baseline, runs on every frame.

Tables like the paper's: 2 (dataset A), 3 (B), 4 (B per group: tumor type in a hospital's data, the
kind of uptake in phantoms), 5 (C). Dice, FPSR, FNSR in percent as the paper prints them; HD and
HD95 in pixels of the original frame (mm columns when the spacing is known); HD95 is the larger of the two
directed 95th percentiles (MONAI's convention, see engine.metrics.segmentation). Means over images (for C, over
images x fold models), with the SD across images. HD and HD95 are undefined on a frame where one mask is empty
(the net found nothing, or marked tumor on a frame without one): such frames are left out of the HD means and
every table prints how many there were.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from engine.exports import csv_dict_writer, open_csv, restore_cell
from engine.metrics.segmentation import HD95_CONVENTION, METRIC_NAMES
from engine.nets.fluoro_seg import ARCH_NAMES
from engine.train.fluoro_seg import SegArrays, SegTrainSettings, evaluate_net, metric_row, train_seg

METHODS = ("DRLSE", "End-to-end", "Transfer")
PERCENT = ("dice", "fpsr", "fnsr")
TABLE_COLUMNS = ("dice", "hausdorff", "hd95", "fpsr", "fnsr")
PAPER_TABLES = {  # Dice, HD, FPSR, FNSR as printed in Hou et al. 2024 (Tables 2, 3, 5)
    "A": {"DRLSE": {"DRLSE": (34.06, None, None, None)},
          "End-to-end": {"unet": (80.41, 35.83, 3.97, 15.61), "deeplabv3plus": (69.40, 60.20, 5.89, 24.71),
                         "unetplusplus": (80.71, 33.34, 5.08, 14.20), "swin_unetr": (74.42, 48.95, 5.69, 19.89)},
          "Transfer": {"unet": (80.76, 34.76, 3.88, 15.36), "deeplabv3plus": (71.71, 58.94, 7.14, 21.15),
                       "unetplusplus": (82.17, 37.49, 4.04, 13.79), "swin_unetr": (75.21, 39.27, 5.27, 19.52)}},
    "B": {"DRLSE": {"DRLSE": (54.12, None, None, None)},
          "End-to-end": {"unet": (94.25, 32.96, 2.77, 2.98), "deeplabv3plus": (96.35, 20.03, 1.83, 1.82),
                         "unetplusplus": (94.90, 29.16, 2.61, 2.49), "swin_unetr": (90.03, 101.32, 4.19, 5.78)},
          "Transfer": {"unet": (94.33, 32.11, 2.84, 2.82), "deeplabv3plus": (96.48, 20.25, 1.70, 1.82),
                       "unetplusplus": (95.61, 25.77, 2.03, 2.37), "swin_unetr": (91.82, 82.14, 3.27, 4.91)}},
    "C": {"DRLSE": {"DRLSE": (64.26, None, None, None)},
          "End-to-end": {"unet": (81.48, 303.21, 5.63, 12.89), "deeplabv3plus": (80.97, 381.06, 8.87, 10.16),
                         "unetplusplus": (83.68, 335.40, 5.03, 11.29), "swin_unetr": (75.59, 505.02, 8.84, 15.57)},
          "Transfer": {"unet": (83.59, 342.25, 10.73, 5.67), "deeplabv3plus": (82.76, 321.95, 8.29, 8.95),
                       "unetplusplus": (85.49, 293.47, 12.49, 2.02), "swin_unetr": (77.66, 495.03, 6.81, 15.53)}},
}
TABLE_NUMBERS = {"A": 2, "B": 3, "C": 5}


def kfold(n: int, k: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """k (train, test) splits of range(n): a seeded shuffle cut into k nearly equal test folds."""
    if not 2 <= k <= n:
        raise ValueError(f"Cross-validation needs 2 <= folds <= frames, got {k} folds for {n} frames.")
    order = np.random.default_rng(seed).permutation(n)
    tests = np.array_split(order, k)
    return [(np.sort(np.setdiff1d(order, t)), np.sort(t)) for t in tests]


@dataclass
class ProtocolSettings:
    archs: tuple[str, ...] = ("unet", "unetplusplus", "deeplabv3plus", "swin_unetr")
    folds: int = 5
    targets: tuple[str, ...] = ("A", "B")
    test: str = "C"
    source: dict = field(default_factory=lambda: {"A": "B", "B": "A"})  # pretraining data per target
    base: SegTrainSettings = field(default_factory=SegTrainSettings)
    imagenet: dict = field(default_factory=dict)  # arch -> local ImageNet encoder file
    drlse: bool = True
    seed: int = 0


@dataclass
class ProtocolResult:
    rows: list[dict]  # per image: method, net, fold, dataset, frame_id, group, metrics
    settings: ProtocolSettings
    seconds: dict = field(default_factory=dict)
    pretrained: dict = field(default_factory=dict)  # (arch, target) -> description
    final_states: dict = field(default_factory=dict)  # (arch, source) -> state dict of the full source training


def _source_training(data: SegArrays, arch: str, source: str, s: ProtocolSettings,
                     progress: Callable[[str], None] | None, device: str = "cpu") -> dict:
    """The full end-to-end training on the source dataset whose weights start a transfer model (CPU tensors)."""
    index = data.where(source)
    if len(index) == 0:
        raise ValueError(f"Transfer pretrains on dataset {source}, which has no frames.")
    outcome = train_seg(data, index, replace(s.base, arch=arch, freeze_encoder=False, seed=s.seed),
                        progress=progress, device=device)
    return {k: v.detach().cpu().clone() for k, v in outcome.net.state_dict().items()}


def _source_description(data: SegArrays, source: str) -> str:
    return f"end-to-end training on all of dataset {source} ({len(data.where(source))} frames)"


def pretrained_encoder(data: SegArrays, arch: str, target: str, s: ProtocolSettings,
                       progress: Callable[[str], None] | None, cache: dict, device: str = "cpu") -> tuple[dict, str]:
    """The starting weights of the transfer model for `target`: an ImageNet encoder file when given, else a
    full end-to-end training on the source dataset (cached: the same training serves as that dataset's model)."""
    from engine.train.fluoro_seg_encoders import init_from_imagenet

    if arch in s.imagenet:
        state = init_from_imagenet(replace(s.base, arch=arch), s.imagenet[arch])
        return state, f"ImageNet encoder from {Path(s.imagenet[arch]).name}"
    source = s.source[target]
    if (arch, source) not in cache:
        cache[(arch, source)] = _source_training(data, arch, source, s, progress, device)
    return cache[(arch, source)], _source_description(data, source)


def drlse_rows(data: SegArrays, index: Sequence[int]) -> list[dict]:
    from engine.seg.drlse import drlse_segment

    rows = []
    for i in index:
        s = data.samples[i]
        rows.append(metric_row(drlse_segment(s.image).mask, s, method="DRLSE", net="DRLSE", fold=0))
    return rows


def fold_rows(data: SegArrays, s: ProtocolSettings, arch: str, target: str, k: int, method: str,
              init: dict | None, description: str, device: str = "cpu") -> tuple[list[dict], float]:
    """Train one fold model (end-to-end, or transfer from `init`) and score its held-out frames of `target`,
    and for target B also every frame of the test dataset: (rows, training seconds)."""
    target_index = data.where(target)
    fit, held = kfold(len(target_index), s.folds, s.seed)[k - 1]
    settings = replace(s.base, arch=arch, freeze_encoder=method == "Transfer", seed=s.seed + k)
    kwargs = {"init_state": init, "init": description} if method == "Transfer" else {}
    outcome = train_seg(data, target_index[fit], settings, device=device, **kwargs)
    labels = {"method": method, "net": arch, "fold": k}
    rows = evaluate_net(outcome.net, data, target_index[held], **labels)
    if target == "B":  # the held-out dataset is read by the models fine-tuned on B
        rows += evaluate_net(outcome.net, data, data.where(s.test), **labels)
    return rows, outcome.seconds


# ---------------------------------------------------------------------------------------- parallel running
# With jobs > 1 the trainings run in worker processes (spawned, so CUDA works in them): each worker gets the
# prepared frames once. End-to-end folds and DRLSE start at once; a target's transfer folds start as soon as
# the source training they fine-tune is done. Every task is seeded as in a serial run, so the rows are the
# same up to floating-point reduction order.

_WORKER: dict = {}
TRAINING_COST = {"swin_unetr": 4, "unetplusplus": 3, "deeplabv3plus": 2, "unet": 1}  # rough, for ordering


def _init_worker(data: SegArrays, s: ProtocolSettings, device: str, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    _WORKER.update(data=data, settings=s, device=device)


def _worker_task(task: tuple) -> tuple[tuple, object]:
    return _run_task(task, _WORKER["data"], _WORKER["settings"], _WORKER["device"])


def _run_task(task: tuple, data: SegArrays, s: ProtocolSettings, device: str) -> tuple[tuple, object]:
    """('source', arch, dataset) -> state dict; ('drlse', frames) -> (rows, 0); ('fold', ...) -> (rows, seconds)."""
    step = task[0]
    if step == "source":
        return task, _source_training(data, task[1], task[2], s, None, device)
    if step == "drlse":
        return task, (drlse_rows(data, task[1]), 0.0)
    _, arch, target, k, method, init, description = task
    return task[:5], fold_rows(data, s, arch, target, k, method, init, description, device)


def _fold_tasks(s: ProtocolSettings, arch: str, target: str, method: str, init=None, description: str = ""):
    return [("fold", arch, target, k, method, init, description) for k in range(1, s.folds + 1)]


def _row_order(row: dict) -> tuple:
    nets = list(ARCH_NAMES) + ["DRLSE"]
    return (nets.index(row["net"]) if row["net"] in nets else 99, METHODS.index(row["method"]), row["fold"],
            row["dataset"], row["frame_id"])


def run_protocol(data: SegArrays, s: ProtocolSettings, progress: Callable[[str], None] | None = None,
                 cache: dict | None = None, jobs: int = 1, device: str = "cpu",
                 on_rows: Callable[[list[dict]], None] | None = None) -> ProtocolResult:
    """Every fold model of every net, both methods, both targets, and DRLSE on every frame. `jobs` worker
    processes share the work (one device); `on_rows` sees each finished task's rows (e.g. to save them as
    they come, so a stopped run keeps what it finished)."""
    import time

    say = progress or (lambda _m: None)
    cache = {} if cache is None else cache
    result = ProtocolResult([], s, final_states=cache)
    missing = [t for t in (*s.targets, s.test) if len(data.where(t)) == 0]
    if missing:
        raise ValueError(f"No frames for dataset(s) {missing}; the data has {data.datasets}.")
    for target in s.targets if s.archs else ():
        if len(data.where(target)) < s.folds:
            raise ValueError(f"Dataset {target} has {len(data.where(target))} frames, fewer than {s.folds} folds.")
    start = time.perf_counter()
    busy: dict[str, float] = {}

    def finished(task: tuple, value: tuple[list[dict], float]) -> None:
        rows, seconds = value
        if task[0] == "fold":
            busy[task[1]] = busy.get(task[1], 0.0) + seconds
        result.rows.extend(rows)
        if on_rows:
            on_rows(rows)
        if task[0] == "fold":
            _, arch, target, k, method = task[:5]
            dice = np.mean([r["dice"] for r in rows if r["dataset"] == target])
            say(f"{ARCH_NAMES[arch]} {method} on {target}, fold {k}/{s.folds}: Dice {dice:.3f} "
                f"({time.perf_counter() - start:.0f} s into the run)")

    # transfer inputs: an ImageNet file (no training) or a source training (a task)
    ready, sources = {}, []
    for arch in s.archs:
        for target in s.targets:
            if arch in s.imagenet or (arch, s.source[target]) in cache:
                ready[(arch, target)] = pretrained_encoder(data, arch, target, s, progress, cache)
            elif ("source", arch, s.source[target]) not in sources:
                sources.append(("source", arch, s.source[target]))
    tasks = sorted(sources, key=lambda t: -TRAINING_COST.get(t[1], 1))
    for arch in sorted(s.archs, key=lambda a: -TRAINING_COST.get(a, 1)):  # the longest first in a pool
        for target in s.targets:
            tasks += _fold_tasks(s, arch, target, "End-to-end")
            if (arch, target) in ready:
                tasks += _fold_tasks(s, arch, target, "Transfer", *ready[(arch, target)])
    if s.drlse:
        index = np.concatenate([data.where(t) for t in (*s.targets, s.test)])
        tasks += [("drlse", chunk) for chunk in np.array_split(index, max(1, min(len(index), 4 * jobs)))]

    def follow_ups(task: tuple, state: dict) -> list[tuple]:
        _, arch, source = task
        cache[(arch, source)] = state
        description = _source_description(data, source)
        out = []
        for target in s.targets:
            if s.source[target] == source and arch not in s.imagenet:
                result.pretrained[f"{arch}/{target}"] = description
                out += _fold_tasks(s, arch, target, "Transfer", state, description)
        return out

    for key, (_, description) in ready.items():
        result.pretrained["/".join(key)] = description
    if jobs <= 1:
        while tasks:
            task, value = _run_task(tasks.pop(0), data, s, device)
            if task[0] == "source":
                tasks[:0] = follow_ups(task, value)
            else:
                finished(task, value)
    else:
        _run_pool(tasks, data, s, device, jobs, finished, follow_ups)
    result.rows.sort(key=_row_order)
    result.seconds = {arch: round(busy.get(arch, 0.0), 1) for arch in s.archs}
    result.seconds["wall"] = round(time.perf_counter() - start, 1)
    return result


def _run_pool(tasks: list[tuple], data: SegArrays, s: ProtocolSettings, device: str, jobs: int,
              finished: Callable, follow_ups: Callable) -> None:
    import multiprocessing as mp
    import os
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    threads = max(1, (os.cpu_count() or 1) // jobs)
    with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                             initargs=(data, s, device, threads)) as pool:
        pending = {pool.submit(_worker_task, t) for t in tasks}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                task, value = future.result()
                if task[0] == "source":
                    pending |= {pool.submit(_worker_task, t) for t in follow_ups(task, value)}
                else:
                    finished(task, value)


def _mean_sd(values: Sequence[float]) -> tuple[float | None, float | None, int]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return None, None, 0
    return float(np.mean(finite)), float(np.std(finite)), len(values) - len(finite)


def summarise_rows(rows: Sequence[dict], group_by: Sequence[str]) -> list[dict]:
    """Mean and SD per metric for each combination of `group_by` keys (in first-seen order). Infinite
    distances (one mask empty) are left out of the HD means and counted in `hd_undefined`."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in group_by), []).append(r)
    out = []
    for key, members in groups.items():
        entry = dict(zip(group_by, key))
        entry["n"] = len(members)
        for name in (*METRIC_NAMES, "hausdorff_mm", "hd95_mm"):
            if name not in members[0]:
                continue
            scale = 100.0 if name in PERCENT else 1.0
            mean, sd, undefined = _mean_sd([m.get(name) for m in members])
            entry[name] = None if mean is None else round(mean * scale, 3)
            entry[f"{name}_sd"] = None if sd is None else round(sd * scale, 3)
            if name == "hausdorff":
                entry["hd_undefined"] = undefined
        out.append(entry)
    return out


def _method_order(entry: dict) -> tuple:
    nets = list(ARCH_NAMES) + ["DRLSE"]
    return METHODS.index(entry["method"]), nets.index(entry["net"]) if entry["net"] in nets else 99


def protocol_tables(result: ProtocolResult) -> dict[str, list[dict]]:
    """{'A': [...], 'B': [...], 'B groups': [...], 'C': [...]}: one row per method x net (x group)."""
    tables = {}
    for key in (*result.settings.targets, result.settings.test):
        rows = [r for r in result.rows if r["dataset"] == key]
        entries = sorted(summarise_rows(rows, ("method", "net")), key=_method_order)
        for e in entries:
            paper = PAPER_TABLES.get(key, {}).get(e["method"], {}).get(e["net"])
            e["paper_dice"], e["paper_hd"] = (paper[0], paper[1]) if paper else (None, None)
        tables[key] = entries
    if "B" in result.settings.targets:
        rows = [r for r in result.rows if r["dataset"] == "B" and r["method"] == "Transfer" and r["group"]]
        tables["B groups"] = sorted(summarise_rows(rows, ("method", "net", "group")),
                                    key=lambda e: (*_method_order(e), e["group"]))
    return tables


def _cell(entry: dict, name: str) -> str:
    value = entry.get(name)
    if value is None:
        return "—"
    sd = entry.get(f"{name}_sd")
    return f"{value:.2f} ± {sd:.2f}" if sd is not None else f"{value:.2f}"


def table_title(key: str, settings: ProtocolSettings) -> str:
    if key == "B groups":
        return "Table 4 analogue: dataset B by group, transfer models (cross-validation)"
    number = TABLE_NUMBERS.get(key, "")
    how = (f"{settings.folds}-fold cross-validation" if key in settings.targets
           else "held out: every fold model fine-tuned on B, never trained on C")
    return f"Table {number} analogue: dataset {key} ({how})"


def format_tables(tables: dict[str, list[dict]], settings: ProtocolSettings, markdown: bool = False) -> str:
    lines = []
    for key, entries in tables.items():
        lines.append(("### " if markdown else "") + table_title(key, settings))
        header = ["method", "net"] + (["group"] if key == "B groups" else []) + \
                 ["n", "Dice %", "HD px", "HD95 px", "FPSR %", "FNSR %", "HD undefined", "paper Dice", "paper HD"]
        if markdown:
            lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        else:
            lines.append("  ".join(f"{h:<13}" if i < 3 else f"{h:>15}" for i, h in enumerate(header)))
        for e in entries:
            cells = [e["method"], ARCH_NAMES.get(e["net"], e["net"])] + ([e["group"]] if key == "B groups" else [])
            cells += [str(e["n"])] + [_cell(e, m) for m in TABLE_COLUMNS] + [str(e.get("hd_undefined", 0))]
            cells += ["—" if e.get("paper_dice") is None else f"{e['paper_dice']:.2f}",
                      "—" if e.get("paper_hd") is None else f"{e['paper_hd']:.2f}"]
            if markdown:
                lines.append("| " + " | ".join(cells) + " |")
            else:
                lines.append("  ".join(f"{c:<13}" if i < 3 else f"{c:>15}" for i, c in enumerate(cells)))
        lines += ["", TABLE_NOTE, ""]
    return "\n".join(lines)


TABLE_NOTE = (f"HD95: {HD95_CONVENTION}. HD undefined: frames where one mask is empty (no HD or HD95); "
              "the HD and HD95 means and SDs are over the other frames, Dice, FPSR and FNSR over all n.")


PER_IMAGE_FILE = "per_image_metrics.csv"
PER_IMAGE_COLUMNS = ("method", "net", "fold", "dataset", "frame_id", "group", *METRIC_NAMES, "hausdorff_mm",
                     "hd95_mm", "pred_pixels", "truth_pixels")
_INT_COLUMNS = ("fold", "pred_pixels", "truth_pixels")


class RowLog:
    """Per-image rows appended to a CSV as each task finishes, so a run that is stopped keeps its finished folds
    (`oncolens evaluate fluoro_seg --tables-from` tabulates them)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open_csv(self.path) as fh:
            csv_dict_writer(fh, PER_IMAGE_COLUMNS).writeheader()

    def __call__(self, rows: Sequence[dict]) -> None:
        with open_csv(self.path, "a") as fh:
            csv_dict_writer(fh, PER_IMAGE_COLUMNS, extrasaction="ignore").writerows(rows)


def read_rows(path: str | Path) -> list[dict]:
    """Per-image rows from a CSV written by the protocol (numbers parsed back; 'inf' stays infinite)."""
    from engine.io.tables import read_csv_table

    required = ("method", "net", "fold", "dataset", "frame_id", "dice")
    rows = []
    for row in read_csv_table(path, required, what=f"Per-image metrics ({PER_IMAGE_FILE} of an earlier run)",
                              expected=f"the columns of a {PER_IMAGE_FILE} written by the protocol"):
        out: dict = {}
        for key, value in row.items():
            if key in ("method", "net", "dataset", "frame_id", "group"):
                out[key] = restore_cell(value)
            elif value in ("", None):
                continue  # e.g. the mm columns of frames without a pixel size
            else:
                out[key] = int(value) if key in _INT_COLUMNS else float(value)
        rows.append(out)
    if not rows:
        raise ValueError(f"{path}: no rows.")
    return rows


def write_protocol(result: ProtocolResult, out_dir: str | Path, title: str) -> dict[str, Path]:
    """Per-image CSV, one CSV per table, JSON and Markdown with every table."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = protocol_tables(result)
    paths = {"per_image": out / PER_IMAGE_FILE, "json": out / "tables.json", "markdown": out / "tables.md"}
    with open_csv(paths["per_image"]) as fh:
        writer = csv_dict_writer(fh, PER_IMAGE_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(result.rows)
    for key, entries in tables.items():
        path = out / f"table_{key.replace(' ', '_')}.csv"
        with open_csv(path) as fh:
            writer = csv_dict_writer(fh, list(entries[0]) if entries else ["method"])
            writer.writeheader()
            writer.writerows(entries)
        paths[f"table {key}"] = path
    paths["json"].write_text(json.dumps({"title": title, "tables": tables, "pretrained": result.pretrained,
                                         "seconds": result.seconds}, indent=2), encoding="utf-8")
    paths["markdown"].write_text(f"## {title}\n\n" + format_tables(tables, result.settings, markdown=True),
                                 encoding="utf-8")
    return paths
