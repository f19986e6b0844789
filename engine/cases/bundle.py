"""Case bundles on disk: a folder with case.json plus one lossless file per image, mask and heatmap.

Round-trip is exact: uint8/uint16 planes go to PNG, every other array (volumes, clips, floats) to .npy.
Format 2 records each image's axes and geometry and each prediction's typed summary; format 1 bundles
(written before the typed data model) are read unchanged.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from engine.cases.model import Case, GroundTruth, Read
from engine.data import ImageMeta, ModalityImage, Prediction, PredictionSummary
from engine.io.images import ImageReadError, read_image, write_image
from engine.paths import open_private, private_dir, private_file

BUNDLE_FORMAT = "oncolens-case"
BUNDLE_VERSION = 2
CASE_FILE = "case.json"


class BundleError(ValueError):
    """A case bundle is missing, malformed or refers to files that are not there."""


def _array_file(stem: str, array: np.ndarray) -> str:
    lossless_png = array.dtype in (np.uint8, np.uint16) and (
        array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)
    )
    return f"{stem}.png" if lossless_png else f"{stem}.npy"


def _save_array(folder: Path, stem: str, array: np.ndarray) -> str:
    name = _array_file(stem, array)
    write_image(folder / name, array)
    private_file(folder / name)
    return name


def _load_array(folder: Path, name: str) -> np.ndarray:
    path = folder / name
    if not path.exists():
        raise BundleError(f"{folder / CASE_FILE} refers to {name}, which is missing from the bundle folder.")
    if name.endswith(".npy"):
        return np.load(path, allow_pickle=False)
    array, _ = read_image(path)
    return array


def write_bundle(case: Case, folder: str | Path) -> Path:
    """Write `case` to `folder` (created if needed). case.json is replaced atomically, written last.
    Folders it creates are 0700 and every file it writes 0600 (engine.paths: private_dir, private_file)."""
    folder = private_dir(folder)
    images = {}
    for modality, img in case.images.items():
        images[modality] = {"file": _save_array(folder, f"image_{modality}", img.array), "axes": img.axes,
                            "meta": img.meta.to_dict()}
    truth = None
    if case.truth is not None:
        truth = {
            "labels": case.truth.labels,
            "source": case.truth.source,
            "masks": {k: _save_array(folder, f"truth_{k}", m) for k, m in case.truth.masks.items()},
        }
    predictions = []
    for i, pred in enumerate(case.predictions):
        entry = pred.summary().to_dict()
        entry["masks"] = {k: _save_array(folder, f"pred{i}_mask_{k}", m) for k, m in pred.masks.items()}
        entry["heatmaps"] = {
            k: _save_array(folder, f"pred{i}_heat_{k.replace('/', '__')}", h) for k, h in pred.heatmaps.items()
        }
        entry["contours"] = {k: [c.tolist() for c in cs] for k, cs in pred.contours.items()}
        predictions.append(entry)
    doc = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "id": case.id,
        "kind": case.kind,
        "patient_id": case.patient_id,
        "created": case.created,
        "notes": case.notes,
        "images": images,
        "truth": truth,
        "predictions": predictions,
        "reads": [r.__dict__ for r in case.reads],
    }
    tmp = folder / (CASE_FILE + ".tmp")
    with open_private(tmp, encoding="utf-8") as handle:
        handle.write(json.dumps(doc, indent=2))
    os.replace(tmp, folder / CASE_FILE)
    return folder


def is_bundle(path: str | Path) -> bool:
    return (Path(path) / CASE_FILE).is_file()


def read_bundle(folder: str | Path) -> Case:
    folder = Path(folder)
    case_file = folder / CASE_FILE
    if not case_file.is_file():
        raise BundleError(f"{folder}: not a case bundle (no {CASE_FILE}). Open an image file or a bundle folder.")
    try:
        doc = json.loads(case_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BundleError(f"{case_file}: invalid JSON ({exc}).") from exc
    if doc.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{case_file}: not an OncoLens case (format is {doc.get('format')!r}).")
    if int(doc.get("version", 0)) > BUNDLE_VERSION:
        raise BundleError(
            f"{case_file}: bundle version {doc['version']} is newer than this OncoLens understands "
            f"({BUNDLE_VERSION}). Update OncoLens."
        )
    try:
        case = Case(id=doc["id"], kind=doc["kind"], patient_id=doc.get("patient_id"),
                    created=doc.get("created", ""), notes=doc.get("notes", ""))
        for modality, entry in doc["images"].items():
            try:
                array = _load_array(folder, entry["file"])
            except ImageReadError as exc:
                raise BundleError(f"{case_file}: image {modality}: {exc}") from exc
            try:
                case.images[modality] = ModalityImage(modality, array, ImageMeta.from_dict(entry["meta"]),
                                                      entry.get("axes", ""))
            except ValueError as exc:
                raise BundleError(f"{case_file}: image {modality}: {exc}") from exc
        if doc.get("truth") is not None:
            t = doc["truth"]
            case.truth = GroundTruth(
                labels=dict(t.get("labels") or {}),
                masks={k: _load_array(folder, f) for k, f in (t.get("masks") or {}).items()},
                source=t.get("source", ""),
            )
        for entry in doc.get("predictions") or []:
            summary = PredictionSummary.from_dict({k: v for k, v in entry.items()
                                                   if k not in ("masks", "heatmaps", "contours")})
            case.predictions.append(Prediction.from_summary(
                summary,
                masks={k: _load_array(folder, f) for k, f in entry["masks"].items()},
                contours={k: [np.asarray(c, dtype=np.float32) for c in cs] for k, cs in entry["contours"].items()},
                heatmaps={k: _load_array(folder, f) for k, f in entry["heatmaps"].items()},
            ))
        case.reads = [Read(**r) for r in doc.get("reads") or []]
    except KeyError as exc:
        raise BundleError(f"{case_file}: required field {exc} is missing.") from exc
    return case
