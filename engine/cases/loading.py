"""Turn what a user points at (image files or a bundle folder) into a Case."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from engine.cases.bundle import is_bundle, read_bundle
from engine.cases.model import FL, WL, Case, ImageMeta
from engine.io.images import IMAGE_SUFFIXES, ImageReadError, read_image

_NAME_HINTS = [
    (re.compile(r"(^|[^a-z])(fl|nir|nir-?ii|fluo\w*|icg)([^a-z]|$)", re.I), FL),
    (re.compile(r"(^|[^a-z])(wl|white\w*|rgb|color|colour)([^a-z]|$)", re.I), WL),
]


def guess_specimen_modality(path: Path, array: np.ndarray) -> str:
    """FL or WL from the file name (fl/nir/icg vs wl/white/rgb), else from content (grey -> FL, RGB -> WL)."""
    for pattern, modality in _NAME_HINTS:
        if pattern.search(path.stem):
            return modality
    return WL if array.ndim == 3 else FL


def case_from_image_files(paths: list[str | Path], modalities: dict[str, str] | None = None,
                          kind: str = "glioma_specimen") -> Case:
    """Build a specimen Case from loose image files; `modalities` maps a path to FL/WL to skip guessing."""
    modalities = modalities or {}
    case = Case(id=Case.new_id("case"), kind=kind)
    for raw in paths:
        path = Path(raw)
        array, meta = read_image(path)
        modality = modalities.get(str(raw)) or guess_specimen_modality(path, array)
        if modality in case.images:
            raise ImageReadError(
                f"{path}: a second {modality} image for one case (already have "
                f"{case.images[modality].meta.source}). Pick one {modality} and at most one other image."
            )
        if modality == FL:
            meta = ImageMeta(bit_depth=meta.bit_depth, units="counts", source=meta.source)
        elif modality == WL:
            meta = ImageMeta(bit_depth=meta.bit_depth, units="RGB", source=meta.source)
        case.add_image(modality, array, meta)
    shapes = {m: img.array.shape[:2] for m, img in case.images.items()}
    if len(set(shapes.values())) > 1:
        detail = ", ".join(f"{m} {h}x{w}" for m, (h, w) in shapes.items())
        raise ImageReadError(f"FL and WL images of one specimen must be aligned and the same size; got {detail}.")
    return case


def load_case_source(path: str | Path) -> Case:
    """A bundle folder or one image file -> Case."""
    path = Path(path)
    if path.is_dir():
        if not is_bundle(path):
            raise ImageReadError(f"{path}: folder is not a case bundle (no case.json).")
        return read_bundle(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES and path.name == "case.json":
        return read_bundle(path.parent)
    return case_from_image_files([path])
