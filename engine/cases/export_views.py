"""What a case kind hands the exporter: the pictures its view shows (`OverlayPanel`), the masks it segments
(`MaskExport`) and their outlines (`ContourSet`). The kind decides what they are (which heat map goes on which
image, which slice of a volume, which frame of a clip); engine.export draws and writes them the same way for
every kind. The `default_*` functions are what `CaseKind` does unless a kind overrides it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from engine.data import ModalityImage, Prediction
from engine.palette import HEAT_COLORMAP
from engine.seg.contours import Contour, contours_from_points, mask_to_contours

if TYPE_CHECKING:
    from engine.cases.kinds import CaseKind
    from engine.cases.model import Case

PREDICTION_LAYER, TRUTH_LAYER = "prediction", "truth"


def slug(text: str) -> str:
    """A file-name-safe form of a model id, mask key or modality ('fl_cnn[FL]' -> 'fl_cnn-FL')."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-.") or "x"


@dataclass
class OverlayPanel:
    """One picture of a case as its view shows it: a plane (grey or RGB), a heat layer in [0, 1] on the plane's
    grid, and contour layers ('prediction' yellow, 'truth' green) of (row, col) points."""

    name: str  # file-name part, unique within a case: 'FL', 'WLI-fusion', 'PET-axial-z22'
    title: str
    plane: np.ndarray
    spacing: tuple[float, float] | None = None  # (row, col) mm per pixel
    heat: np.ndarray | None = None
    heat_colormap: str = HEAT_COLORMAP
    heat_title: str = ""
    contours: dict[str, list[np.ndarray]] = field(default_factory=dict)
    levels: tuple[float, float] | None = None


@dataclass
class MaskExport:
    """One segmentation to write: `mask` on the grid of `reference` (a plane, or a volume for ZYX images)."""

    name: str
    model: str
    mask: np.ndarray
    reference: ModalityImage


@dataclass
class ContourSet:
    """Outlines of one structure by one model on one plane; `plane` names the frame or slice of a clip or
    volume (None for a plane image)."""

    name: str
    model: str
    contours: list[Contour]
    shape: tuple[int, int]
    spacing: tuple[float, float] | None
    plane: int | None = None


def plane_spacing(image: ModalityImage) -> tuple[float, float] | None:
    spacing = image.meta.spacing
    return None if spacing is None else (float(spacing[-2]), float(spacing[-1]))


def heat_for(predictions: Sequence[Prediction], kind: CaseKind, key_suffix: str) -> tuple[np.ndarray | None, str]:
    """The first heat map named '<task>/<key_suffix>' in the kind's task order and the predictions' order."""
    for task in kind.tasks:
        for prediction in predictions:
            heat = prediction.heatmaps.get(f"{task.name}/{key_suffix}")
            if heat is not None:
                return heat, f"{prediction.model} {task.title}"
    return None, ""


def truth_contours(case: Case, structure: str, shape: tuple[int, ...]) -> list[np.ndarray]:
    truth = case.truth.masks.get(structure) if case.truth is not None else None
    if truth is None or tuple(truth.shape) != tuple(shape):
        return []
    return [c.points for c in mask_to_contours(np.asarray(truth) != 0)]


def default_overlay_panels(kind: CaseKind, case: Case, predictions: Sequence[Prediction]) -> list[OverlayPanel]:
    """One panel per plane image of the case: its heat map ('<task>/<modality>'), the predicted contours on its
    grid and the truth outline of the same structure."""
    panels = []
    for code in kind.modality_codes:
        image = case.images.get(code)
        if image is None or image.is_volume or image.axes == "TYX":
            continue
        shape = image.spatial_shape
        heat, heat_title = heat_for(predictions, kind, code) if kind.overlay_heat else (None, "")
        layers: dict[str, list[np.ndarray]] = {}
        for prediction in predictions[:1]:
            for structure, contours in prediction.contours.items():
                mask = prediction.masks.get(structure)
                if mask is None or tuple(mask.shape) == tuple(shape):
                    layers.setdefault(PREDICTION_LAYER, []).extend(contours)
                    truth = truth_contours(case, structure, shape)
                    if truth:
                        layers.setdefault(TRUTH_LAYER, []).extend(truth)
        panels.append(OverlayPanel(code, kind.role(code).title, image.array, plane_spacing(image), heat,
                                   kind.heat_colormap, heat_title, layers))
    return panels


def reference_for(case: Case, key: str, mask: np.ndarray) -> ModalityImage | None:
    """The image a mask lies on: the modality its key starts with ('US/nodule'), else the first of its shape."""
    head = key.partition("/")[0]
    image = case.images.get(head)
    if image is not None and tuple(image.spatial_shape) == tuple(mask.shape):
        return image
    return next((im for im in case.images.values() if tuple(im.spatial_shape) == tuple(mask.shape)), None)


def default_masks(case: Case, predictions: Sequence[Prediction]) -> list[MaskExport]:
    """Every predicted mask that lies on one of the case's image grids (helper masks such as a crop box on the
    net's own grid are left out)."""
    out = []
    for prediction in predictions:
        for key, mask in prediction.masks.items():
            reference = reference_for(case, key, np.asarray(mask))
            if reference is not None:
                out.append(MaskExport(f"{slug(prediction.model)}_{slug(key)}", prediction.model,
                                      np.asarray(mask) != 0, reference))
    return out


def default_contours(case: Case, predictions: Sequence[Prediction]) -> list[ContourSet]:
    """The predictions' own contours where they have them (sub-pixel, as drawn), else outlines traced from each
    plane mask; volume masks are outlined slice by slice along their first axis."""
    out = []
    for prediction in predictions:
        done = set()
        for key, points in prediction.contours.items():
            mask = prediction.masks.get(key)
            reference = reference_for(case, key, np.asarray(mask)) if mask is not None else next(
                (im for im in case.images.values() if not im.is_volume), None)
            if reference is None:
                continue
            spacing = plane_spacing(reference)
            shape = tuple(reference.spatial_shape[-2:])
            out.append(ContourSet(f"{slug(prediction.model)}_{slug(key)}", prediction.model,
                                  contours_from_points(points, spacing), shape, spacing))
            done.add(key)
        for export in default_masks(case, [prediction]):
            key = export.name[len(slug(prediction.model)) + 1:]
            if key in {slug(k) for k in done}:
                continue
            spacing = plane_spacing(export.reference)
            if export.mask.ndim == 2:
                out.append(ContourSet(export.name, prediction.model, mask_to_contours(export.mask, spacing),
                                      export.mask.shape, spacing))
                continue
            for index in np.flatnonzero(export.mask.reshape(export.mask.shape[0], -1).any(axis=1)):
                out.append(ContourSet(export.name, prediction.model, mask_to_contours(export.mask[index], spacing),
                                      export.mask.shape[1:], spacing, int(index)))
    return out
