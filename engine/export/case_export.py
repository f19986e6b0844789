"""`export_case`: every artefact of one case written into one folder, the same for every case kind.

The kind says what its view shows and what it segments (`CaseKind.overlay_panels`, `export_masks`,
`export_contours`, `export_tables`, and `export_results` for its own formats such as PET-CT's DICOM SEG); this
module draws and writes them. Files go only into `<out>/<case id>/`: every target is resolved and checked to lie
inside the folder the user named, and an existing file is never replaced unless `force` is given.

Which results are exported: the case's own saved results (a bundle's predictions, with their arrays) when it
has them, else the models run now (the export says so in its notes).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.cases.export_views import ContourSet, MaskExport, OverlayPanel, slug
from engine.cases.kinds import CaseKind, KindError, get_kind
from engine.cases.model import Case
from engine.data import ZYX, ImageMeta, ModalityImage, Prediction, utc_now
from engine.exports import write_csv
from engine.io.nifti import write_nifti
from engine.io.overlay import render_overlay, write_png
from engine.paths import open_private, private_dir, private_file

ARTEFACTS = ("overlay", "masks", "contours", "probabilities", "report", "seg")
Progress = Callable[[str], None]


class ExportError(ValueError):
    """An export cannot be written as asked: the message names the file or option and the fix."""


class ExportExists(ExportError):
    """A file to write is there already (from an earlier export) and `force` was not given."""


def parse_what(text: str | Iterable[str] | None) -> tuple[str, ...]:
    """'overlay,masks' -> ('overlay', 'masks'); None or 'all' -> every artefact; unknown names are an error."""
    if text is None:
        return ARTEFACTS
    items = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    if items == ["all"]:
        return ARTEFACTS
    unknown = [t for t in items if t not in ARTEFACTS]
    if unknown or not items:
        raise ExportError(f"--what {','.join(items) or '(empty)'}: unknown {', '.join(unknown) or 'list'}; choose "
                          f"from {','.join(ARTEFACTS)} (or all).")
    return tuple(dict.fromkeys(items))


@dataclass
class ExportOptions:
    what: tuple[str, ...] = ARTEFACTS
    force: bool = False  # replace files an earlier export wrote
    frame: int | None = None  # frame of a clip / slice of a volume to draw (None: the kind's choice)
    heat_opacity: float | None = None  # None: the default opacity of the view
    notes: list[str] = field(default_factory=list)


class _Target:
    """Where one case's files go: `<out>/<case id>/`, checked to stay inside `out`."""

    def __init__(self, out: Path, case: Case, force: bool) -> None:
        self.out = Path(out).resolve()
        self.folder = self.out / slug(case.id)
        self.force = force
        self.written: list[Path] = []
        if self.folder.is_symlink() or not self._inside(self.folder.resolve()):
            raise ExportError(f"{self.folder}: leads outside the export folder {self.out}; remove the link or "
                              "choose another --out.")

    def _inside(self, path: Path) -> bool:
        return path == self.out or self.out in path.parents

    def path(self, name: str) -> Path:
        """The checked path of one file to write (an existing file is refused unless forced)."""
        if "/" in name or "\\" in name or name in ("", ".", ".."):
            raise ExportError(f"{name!r}: an export file name may not name a folder.")
        private_dir(self.folder)
        path = self.folder / name
        if not self._inside(path.resolve()):
            raise ExportError(f"{path}: leads outside the export folder {self.out}; nothing was written there.")
        if path.exists() and not self.force:
            raise ExportExists(f"{path} exists already (from an earlier export). Choose another --out folder, or "
                              "add --force to replace it.")
        return path

    def add(self, path: Path) -> Path:
        self.written.append(path)
        return path


def load_export_case(source: str | Path, store=None) -> Case:
    """A case from a bundle folder (or case.json), or from the store by its case id."""
    from engine.kinds.opening import load_case_source

    path = Path(source)
    if path.exists():
        return load_case_source(path)
    if store is None:
        raise ExportError(f"{source}: no such bundle folder, and no store to look the case id up in.")
    return store.load_case(str(source))


def predictions_for_export(case: Case, service=None) -> tuple[list[Prediction], str]:
    """The newest saved result per model with its arrays; without any, the kind's models run now. (results, note)"""
    from engine.service import PredictionService, stored_predictions

    if case.predictions:
        return stored_predictions(case, []), "results saved with the case"
    service = service or PredictionService(store=None, actor="oncolens-export")
    predictions = service.predict_case(case, explain=True)
    return predictions, f"results computed at export time ({utc_now()}): the case had no saved results"


def export_case(case: Case, out: str | Path, options: ExportOptions | None = None,
                predictions: Sequence[Prediction] | None = None, progress: Progress | None = None,
                service=None) -> list[Path]:
    """Write the artefacts `options.what` of `case` into `<out>/<case id>/`; return the files written."""
    options = options or ExportOptions()
    progress = progress or (lambda _message: None)
    kind = get_kind(case.kind)
    target = _Target(Path(out), case, options.force)
    if predictions is None:
        progress(f"{case.id}: results")
        predictions, source = predictions_for_export(case, service)
        options.notes.append(source)
    predictions = list(predictions)
    if not predictions:
        raise ExportError(f"Case {case.id}: nothing to export; it has no results and no model ran.")
    stem = slug(case.id)
    steps = {"overlay": _overlays, "masks": _masks, "contours": _contours, "probabilities": _probabilities,
             "seg": _seg, "report": _report}
    for what in ARTEFACTS:
        if what in options.what:
            progress(f"{case.id}: {what}")
            steps[what](kind, case, predictions, target, stem, options)
    return target.written


# -- the artefacts ------------------------------------------------------------------------------------------


def _overlays(kind: CaseKind, case: Case, predictions, target: _Target, stem: str, options: ExportOptions) -> None:
    for panel in kind.overlay_panels(case, predictions, options.frame):
        target.add(write_png(draw_panel(panel, options.heat_opacity), target.path(f"{stem}_overlay_{slug(panel.name)}.png")))


def draw_panel(panel: OverlayPanel, opacity: float | None = None) -> np.ndarray:
    """A panel as the view shows it, at the image's full resolution."""
    kwargs = {} if opacity is None else {"opacity": opacity}
    return render_overlay(panel.plane, heat=panel.heat, heat_colormap=panel.heat_colormap, contours=panel.contours,
                          levels=panel.levels, **kwargs)


def mask_nifti_image(export: MaskExport) -> ModalityImage:
    """A mask as a NIfTI-ready volume: volumes keep their geometry; a plane becomes one slice whose voxel size is
    the image's pixel spacing (1 mm along the unused axis; 1 mm per pixel when the spacing is unknown)."""
    meta = export.reference.meta
    mask = export.mask.astype(np.uint8)
    if mask.ndim == 3:
        return ModalityImage("mask", mask, ImageMeta(8, "label", meta.spacing, origin=meta.origin,
                                                     direction=meta.direction), ZYX)
    spacing = meta.spacing[-2:] if meta.spacing is not None else (1.0, 1.0)
    return ModalityImage("mask", mask[None], ImageMeta(8, "label", (1.0, *spacing)), ZYX)


def _write_mask_nifti(export: MaskExport, target: _Target, stem: str) -> None:
    path = target.path(f"{stem}_{export.name}_mask.nii.gz")
    target.add(private_file(write_nifti(mask_nifti_image(export), path)))


def _masks(kind: CaseKind, case: Case, predictions, target: _Target, stem: str, options: ExportOptions) -> None:
    exports = kind.export_masks(case, predictions)
    if not exports:
        options.notes.append("no masks: the case's models do not segment")
    for export in exports:
        if export.mask.ndim == 2:
            png = (export.mask.astype(np.uint8) * 255)
            target.add(write_png(png, target.path(f"{stem}_{export.name}_mask.png")))
        _write_mask_nifti(export, target, stem)


def _contours(kind: CaseKind, case: Case, predictions, target: _Target, stem: str, options: ExportOptions) -> None:
    sets = kind.export_contours(case, predictions)
    if not sets:
        options.notes.append("no contours: the case's models do not segment")
        return
    groups: dict[str, list[ContourSet]] = {}
    for item in sets:
        groups.setdefault(item.name, []).append(item)
    for name, group in groups.items():
        doc = contours_document(case, group)
        json_path = target.path(f"{stem}_{name}_contours.json")
        with open_private(json_path, "w", encoding="utf-8") as fh:
            json.dump(doc, fh, indent=1)
        target.add(json_path)
        target.add(write_contours_csv(case, group, target.path(f"{stem}_{name}_contours.csv")))


def contours_document(case: Case, group: Sequence[ContourSet]) -> dict:
    """One structure's outlines by one model: a plane's contours, or one entry per frame / slice."""
    from engine.seg.contours import CONTOURS_FORMAT, CONTOURS_VERSION

    first = group[0]
    head = {"format": CONTOURS_FORMAT, "version": CONTOURS_VERSION,
            "coordinates": "(row, col) pixels, pixel centres at integers; *_mm = pixels x spacing_mm",
            "case_id": case.id, "patient_id": case.patient_id, "model": first.model, "structure": first.name,
            "shape": [int(v) for v in first.shape],
            "spacing_mm": None if first.spacing is None else list(first.spacing)}

    def entries(item: ContourSet) -> list[dict]:
        out = []
        for i, contour in enumerate(item.contours):
            entry = contour.to_dict(i)
            if contour.spacing is not None:
                entry["points_mm"] = np.round(contour.points_mm, 5).tolist()
            out.append(entry)
        return out

    if len(group) == 1 and first.plane is None:
        return {**head, "contours": entries(first)}
    return {**head, "planes": [{"plane": item.plane, "contours": entries(item)} for item in group]}


def write_contours_csv(case: Case, group: Sequence[ContourSet], path: Path) -> Path:
    """One row per contour point: plane (frame or slice, empty for a plane image), contour id, point index, row,
    col, and row_mm / col_mm when the spacing is known, hole flag."""
    from engine.exports import csv_writer, open_csv

    spacing = group[0].spacing
    header = ["case_id", "model", "plane", "contour_id", "point_index", "row", "col"]
    header += ["row_mm", "col_mm"] if spacing is not None else []
    header.append("is_hole")
    with open_csv(path) as fh:
        writer = csv_writer(fh)
        writer.writerow(header)
        for item in group:
            for cid, contour in enumerate(item.contours):
                for k, (r, c) in enumerate(contour.points):
                    row = [case.id, item.model, "" if item.plane is None else item.plane, cid, k, f"{r:.4f}", f"{c:.4f}"]
                    if spacing is not None:
                        row += [f"{r * spacing[0]:.5f}", f"{c * spacing[1]:.5f}"]
                    row.append(int(contour.is_hole))
                    writer.writerow(row)
    return path


PROBABILITY_COLUMNS = ("patient_id", "case_id", "kind", "model", "weights_sha256", "task", "probability",
                       "threshold", "call", "truth", "truth_label", "device", "created")


def probability_rows(case: Case, predictions: Sequence[Prediction]) -> list[dict]:
    """One row per model and task: the probability, the card's threshold, the call, and the truth when known."""
    from engine.service import truth_labels

    words = truth_labels(case) or {}
    labels = case.truth.labels if case.truth is not None else {}
    rows = []
    for p in predictions:
        hashes = ";".join(f"{card}={sha}" for card, sha in p.weights_sha256.items())
        for task, result in p.tasks.items():
            rows.append({"patient_id": case.patient_id or "", "case_id": case.id, "kind": case.kind,
                         "model": p.model, "weights_sha256": hashes, "task": task,
                         "probability": "" if result.probability is None else result.probability,
                         "threshold": "" if result.threshold is None else result.threshold,
                         "call": result.call, "truth": words.get(task, ""),
                         "truth_label": "" if labels.get(task) is None else int(labels[task]),
                         "device": p.device, "created": p.created})
    return rows


def _probabilities(kind: CaseKind, case: Case, predictions, target: _Target, stem: str, options: ExportOptions
                   ) -> None:
    rows = probability_rows(case, predictions)
    target.add(write_csv(target.path(f"{stem}_probabilities.csv"), rows, PROBABILITY_COLUMNS))
    doc = {"format": "oncolens-probabilities", "version": 1, "exported": utc_now(), "patient_id": case.patient_id,
           "case_id": case.id, "kind": case.kind, "notes": list(options.notes),
           "predictions": [{**p.summary().to_dict(),
                            "truth": {t: r["truth"] or None for t, r in ((r["task"], r) for r in rows
                                                                           if r["model"] == p.model)}}
                           for p in predictions]}
    path = target.path(f"{stem}_probabilities.json")
    with open_private(path, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1)
    target.add(path)
    with tempfile.TemporaryDirectory(dir=target.folder, prefix=".export-") as tmp:
        for made in kind.export_tables(case, predictions, Path(tmp)):
            _move_in(Path(made), target)


def _move_in(made: Path, target: _Target) -> None:
    destination = target.path(made.name)
    shutil.move(str(made), str(destination))
    target.add(private_file(destination))


def _seg(kind: CaseKind, case: Case, predictions, target: _Target, stem: str, options: ExportOptions) -> None:
    """The kind's own segmentation formats (PET-CT: DICOM SEG referencing the source series, NIfTI, measures)
    where it has them; otherwise every mask as NIfTI (2-D masks with the pixel spacing)."""
    own = type(kind).export_results is not CaseKind.export_results
    if own:
        private_dir(target.folder)
        with tempfile.TemporaryDirectory(dir=target.folder, prefix=".export-") as tmp:
            try:
                made = kind.export_results(case, predictions, Path(tmp))
            except KindError as exc:  # e.g. the images did not come from DICOM: NIfTI below
                options.notes.append(f"no DICOM SEG: {exc}")
                made = None
            for path in made or []:
                if "masks" in options.what and path.name.endswith((".nii", ".nii.gz")):
                    continue  # the same mask was written as NIfTI with the masks
                _move_in(Path(path), target)
        if made is not None:
            if not any(p.name.endswith(".dcm") for p in made):
                options.notes.append("no DICOM SEG: the images did not come from DICOM (NIfTI written instead)")
            return
    if "masks" in options.what:
        return  # the masks step wrote every mask as NIfTI already
    for export in kind.export_masks(case, predictions):
        _write_mask_nifti(export, target, stem)


def _report(kind: CaseKind, case: Case, predictions, target: _Target, stem: str, options: ExportOptions) -> None:
    from engine.export.report import write_case_report

    paths = {suffix: target.path(f"{stem}_report.{suffix}") for suffix in ("pdf", "png", "html")}
    for path in write_case_report(case, predictions, paths, frame=options.frame, notes=options.notes):
        target.add(private_file(path))
