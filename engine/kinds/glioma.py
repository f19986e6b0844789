"""The glioma-specimen kind: one excised specimen imaged in NIR-II fluorescence (FL) and/or white light (WL),
read by the FL-CNN cascade once per modality present (FL-CNN is the paper's primary model)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from engine.cases.admission import admit_case
from engine.cases.kinds import CaseKind, ModalityRole, TaskInfo, register_kind
from engine.cases.model import FL, WL, Case
from engine.data import COUNTS, RGB, YX, YXC, PredictionSummary, model_id
from engine.io.images import ImageReadError, read_image
from engine.metrics.image_quality import object_findings

KIND = "glioma_specimen"
FAMILY = "fl_cnn"
TASKS = ("tumor", "grade", "ki67")
_FL_WORDS = ("fl", "nir", "nirii", "fluo", "fluorescence")
_WL_WORDS = ("wl", "white", "whitelight", "rgb", "color", "colour")


def guess_modality(path: str | Path, array: np.ndarray) -> str:
    """FL or WL for a specimen image: a word in the file name decides, else grey means FL and RGB means WL."""
    words = [w for w in re.split(r"[^a-z0-9]+", Path(path).stem.lower()) if w]
    if any(w in _WL_WORDS or w.startswith("white") for w in words):
        return WL
    if any(w in _FL_WORDS or w.startswith("nir") for w in words):
        return FL
    return WL if array.ndim == 3 else FL


def case_from_images(paths: list[Path], case_id: str | None = None, modality: str | None = None) -> Case:
    """One specimen case from one FL and/or one WL image file; errors name the file and the fix.

    `modality` forces FL or WL for every file instead of guessing from names and content."""
    case = Case(id=case_id or Case.new_id("specimen"), kind=KIND)
    origin: dict[str, Path] = {}
    for path in paths:
        array, meta = read_image(path)
        path = Path(path)
        modality_of_file = modality or guess_modality(path, array)
        if modality_of_file == FL and array.ndim == 3:
            raise ImageReadError(
                f"{path}: named as a fluorescence (FL) image but it is RGB; FL must be a grey 8/16-bit image."
            )
        if modality_of_file == WL and array.ndim == 2:
            raise ImageReadError(
                f"{path}: named as a white-light (WL) image but it is grey; WL must be an RGB image."
            )
        if modality_of_file in origin:
            raise ImageReadError(
                f"{path} and {origin[modality_of_file]} both look like {modality_of_file} images. Open one FL (grey) and one "
                "WL (RGB) image of the same specimen, or put 'fl' / 'wl' in their file names."
            )
        origin[modality_of_file] = path
        meta.units = "counts" if modality_of_file == FL else "RGB"
        case.add_image(modality_of_file, array, meta)
    if FL in case.images and WL in case.images:
        fl_shape, wl_shape = case.images[FL].array.shape[:2], case.images[WL].array.shape[:2]
        if fl_shape != wl_shape:
            raise ImageReadError(
                f"{origin[FL].name} is {fl_shape[1]}x{fl_shape[0]} but {origin[WL].name} is "
                f"{wl_shape[1]}x{wl_shape[0]}: a specimen's FL and WL images must be aligned (same size). "
                "Open them one at a time as separate cases."
            )
    case.notes = "Opened from " + ", ".join(str(p) for p in paths)
    return admit_case(case, GLIOMA_SPECIMEN)


class GliomaSpecimenKind(CaseKind):
    name = KIND
    title = "Glioma specimen"
    roles = (ModalityRole(FL, "NIR-II fluorescence (FL)", (YX,), COUNTS),
             ModalityRole(WL, "White light (WL)", (YXC,), RGB))
    tasks = (TaskInfo("tumor", "Tumor", "tumor vs non-tumor", ("non-tumor", "tumor")),
             TaskInfo("grade", "Grade", "GBM vs lower grade", ("lower grade", "GBM")),
             TaskInfo("ki67", "Ki-67", "Ki-67 ≥ 10 %", ("Ki-67 < 10%", "Ki-67 >= 10%")))
    group_each_modality = True  # one cascade per modality present; FL first (the paper's primary model)

    def make_predictor(self, modalities: tuple[str, ...], method: str | None = None):
        from engine.predict.glioma import GliomaCascadePredictor

        (modality,) = modalities
        return GliomaCascadePredictor(modality)

    def primary_model(self) -> str:
        return model_id(FAMILY, FL)

    def assess(self, images):
        """The standard checks; a white-light photo must also show a specimen against the tray (a specimen that
        does not fluoresce is a legitimate, dark FL image, so FL gets no object check)."""
        findings = super().assess(images)
        if WL in images and not any(f.blocking for f in findings):
            findings += object_findings(images[WL], "specimen")
        return findings

    def label_names(self, task: str) -> tuple[str, str]:
        from engine.predict.glioma import card_name
        from engine.registry import ModelError, load_card

        try:
            labels = load_card(card_name(FL, task)).labels
            return labels[0], labels[1]
        except ModelError:
            return super().label_names(task)

    def model_title(self, summary: PredictionSummary) -> tuple[str, str]:
        return f"{summary.variant}-CNN", ""

    def prediction_rank(self, summary: PredictionSummary) -> int:
        order = self.modality_codes
        return order.index(summary.variant) if summary.variant in order else len(order)

    def cards_label(self) -> str:
        from engine.paths import models_dir
        from engine.predict.glioma import card_name
        from engine.registry import ModelError, load_card

        parts = []
        for modality in self.modality_codes:
            try:
                shas = [load_card(card_name(modality, t)).weights["sha256"][:8] for t in TASKS]
            except ModelError:
                parts.append(f"{model_id(FAMILY, modality)} not installed")
                continue
            parts.append(f"{model_id(FAMILY, modality)} {'+'.join(shas)}")
        if all(p.endswith("not installed") for p in parts):
            return f"No FL-CNN models in {models_dir()}"
        return " · ".join(parts)

    def write_demo_cases(self, folder: Path) -> list[Path]:
        from engine.phantoms.glioma import write_glioma_demo_cases

        return write_glioma_demo_cases(folder, seed=7)

    def claims_files(self, paths: Sequence[Path]) -> int:
        """One or two loose images: an FL and/or a WL image of one specimen (the default reading of loose files)."""
        return 1 if 1 <= len(paths) <= 2 else 0

    def case_from_files(self, paths: Sequence[Path], modality: str | None = None) -> Case:
        return case_from_images(list(paths), modality=modality)


GLIOMA_SPECIMEN = register_kind(GliomaSpecimenKind())
