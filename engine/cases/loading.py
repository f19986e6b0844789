"""Turning what a user opens (image files, case bundles, folders of bundles) into cases.

Loose images become a new glioma specimen case saved as a bundle in the user data folder, so that
everything opened appears in the case browser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.cases.bundle import is_bundle, read_bundle, write_bundle
from engine.cases.model import FL, WL, Case
from engine.io.images import IMAGE_SUFFIXES, ImageReadError, read_image
from engine.paths import user_data_dir

LOOSE_IMAGE_KIND = "glioma_specimen"
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
    case = Case(id=case_id or Case.new_id("specimen"), kind=LOOSE_IMAGE_KIND)
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
    return case


@dataclass
class OpenRequest:
    """What a list of dropped or chosen paths holds, sorted by how each is opened."""

    bundles: list[Path] = field(default_factory=list)
    bundle_folders: list[Path] = field(default_factory=list)  # folders holding bundles one level down
    images: list[Path] = field(default_factory=list)


def sort_paths(paths: list[str | Path]) -> OpenRequest:
    """Classify paths; anything OncoLens cannot open is an error naming it and what would work."""
    request = OpenRequest()
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise ImageReadError(f"{path}: file or folder not found.")
        if path.is_dir():
            if is_bundle(path):
                request.bundles.append(path)
            elif any(is_bundle(child) for child in path.iterdir() if child.is_dir()):
                request.bundle_folders.append(path)
            else:
                raise ImageReadError(
                    f"{path}: folder is neither a case bundle (no case.json) nor a folder of case bundles."
                )
        elif path.name == "case.json":
            request.bundles.append(path.parent)
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            request.images.append(path)
        else:
            raise ImageReadError(
                f"{path}: cannot open '{path.suffix or path.name}' files. "
                f"Open images ({', '.join(IMAGE_SUFFIXES)}) or a case bundle folder."
            )
    return request


def open_into_store(paths: list[str | Path], store) -> list[str]:
    """Add what `paths` holds to the store; return the ids of the cases opened (first is shown).

    Images are read and checked before anything is written, so a bad file adds nothing.
    """
    request = sort_paths(paths)
    new_case = case_from_images(request.images) if request.images else None
    bundle_cases = [(read_bundle(folder), folder) for folder in request.bundles]
    opened: list[str] = []
    if new_case is not None:
        folder = write_bundle(new_case, user_data_dir() / "cases" / new_case.id)
        store.add_case(new_case, folder, actor="oncolens-gui")
        opened.append(new_case.id)
    for case, folder in bundle_cases:
        store.add_case(case, folder, actor="oncolens-gui")
        opened.append(case.id)
    for folder in request.bundle_folders:
        opened.extend(store.import_bundles(folder, actor="oncolens-gui"))
    return opened


def load_case_source(path: str | Path) -> Case:
    """One bundle folder (or its case.json) or one image file -> Case, without touching the store."""
    request = sort_paths([path])
    if request.bundles:
        return read_bundle(request.bundles[0])
    if request.images:
        return case_from_images(request.images)
    raise ImageReadError(f"{path}: a folder of several bundles; open one bundle or image at a time here.")
