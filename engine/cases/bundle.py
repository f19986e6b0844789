"""Case bundles on disk: a folder with case.json plus one file per image, mask and heatmap.

Images and truth round-trip exactly: uint8/uint16 planes go to PNG, every other array (volumes, clips, floats)
to .npy. A prediction's arrays are stored compactly (engine.cases.compact: 8-bit heatmaps with their scale,
masks as bits), its probabilities, calls, thresholds and contours exactly, with its model and weights hashes.
Format 3 adds the compact prediction arrays and the case name; format 2 records each image's axes and
geometry and each prediction's typed summary; bundles of formats 1 and 2 are read unchanged.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from engine.cases.admission import admit_case
from engine.cases.bundle_schema import CaseDocument, confined, is_safe_case_id, validation_problems
from engine.cases.compact import decode_array, encode_array
from engine.cases.kinds import find_kind
from engine.cases.model import Case, GroundTruth, Read
from engine.data import ImageMeta, ModalityImage, Prediction, PredictionSummary
from engine.io.gate import ImageLimits, check_npy_header
from engine.io.images import ImageReadError, read_image, write_image
from engine.paths import open_private, private_dir, private_file

BUNDLE_FORMAT = "oncolens-case"
BUNDLE_VERSION = 3
CASE_FILE = "case.json"


class BundleError(ValueError):
    """A case bundle is missing, malformed or refers to files that are not there."""


MAX_CASE_FILE_BYTES = 64 * 1024 * 1024  # a case.json is text; anything larger is not one of ours


MAP_BYTES = 256 * 1024 * 1024  # a larger .npy (a long clip) is memory-mapped, not read


def _array_file(stem: str, array: np.ndarray, axes: str = "") -> str:
    planar = axes in ("YX", "YXC") if axes else (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3))
    lossless_png = array.dtype in (np.uint8, np.uint16) and planar
    return f"{stem}.png" if lossless_png else f"{stem}.npy"


def _file_stem(prefix: str, key: str) -> str:
    """A safe file stem for a modality, mask or heatmap name ('tumor/NIR' -> 'tumor__NIR')."""
    return prefix + re.sub(r"[^A-Za-z0-9._-]", "_", key.replace("/", "__"))


def _save_array(folder: Path, stem: str, array: np.ndarray, axes: str = "") -> str:
    name = _array_file(stem, array, axes)
    if isinstance(array, np.memmap) and array.filename and Path(array.filename).resolve() == (folder / name).resolve():
        return name  # already there (a recording written in place)
    write_image(folder / name, array)
    private_file(folder / name)
    return name


def _load_array(folder: Path, name: str, case_file: Path, what: str, limits: ImageLimits) -> np.ndarray:
    try:
        path = confined(folder, name)
    except ValueError as exc:
        raise BundleError(f"{case_file}: {what}: {exc}. A bundle's files stay inside its folder.") from None
    if not path.is_file():
        raise BundleError(f"{case_file} refers to {name} ({what}), which is missing from the bundle folder.")
    try:
        if name.endswith(".npy"):
            mapped = path.stat().st_size > MAP_BYTES
            check_npy_header(path, limits, mapped=mapped)
            return np.load(path, allow_pickle=False, mmap_mode="r" if mapped else None)
        array, _ = read_image(path, limits)
    except (ImageReadError, ValueError, OSError) as exc:
        raise BundleError(f"{case_file}: {what}: {exc}") from None
    return array


def bundle_folder(root: str | Path, case_id: str) -> Path:
    """The folder for case `case_id` under `root`, after checking the id cannot leave `root`."""
    if not is_safe_case_id(case_id):
        raise BundleError(f"Case id {case_id!r} cannot name a bundle folder: use 1-128 letters, digits, '.', '_' "
                          "or '-', not starting with '.'.")
    return Path(root) / case_id


def _attach(folder: Path, key: str, path: Path) -> str:
    """The name of an attachment inside the bundle folder (copied in when it lives elsewhere)."""
    path = Path(path)
    if path.parent.resolve() != folder.resolve():
        shutil.copy2(path, folder / path.name)
        private_file(folder / path.name)  # copy2 copied the source's mode too
    return path.name


def write_bundle(case: Case, folder: str | Path) -> Path:
    """Write `case` to `folder` (created if needed). case.json is replaced atomically, written last.
    Folders it creates are 0700 and every file it writes 0600 (engine.paths: private_dir, private_file)."""
    if not is_safe_case_id(case.id):
        raise BundleError(f"Case id {case.id!r} cannot be written as a bundle: use 1-128 letters, digits, '.', '_' "
                          "or '-', not starting with '.'.")
    folder = private_dir(folder)
    images = {}
    for modality, img in case.images.items():
        images[modality] = {"file": _save_array(folder, _file_stem("image_", modality), img.array, img.axes),
                            "axes": img.axes,
                            "meta": img.meta.to_dict()}
    truth = None
    if case.truth is not None:
        truth = {
            "labels": case.truth.labels,
            "source": case.truth.source,
            "masks": {k: _save_array(folder, _file_stem("truth_", k), m) for k, m in case.truth.masks.items()},
        }
    predictions = [_prediction_entry(folder, i, pred) for i, pred in enumerate(case.predictions)]
    doc = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "id": case.id,
        "kind": case.kind,
        "patient_id": case.patient_id,
        "name": case.name,
        "created": case.created,
        "notes": case.notes,
        "images": images,
        "truth": truth,
        "predictions": predictions,
        "reads": [r.__dict__ for r in case.reads],
        "attachments": {key: _attach(folder, key, path) for key, path in case.attachments.items()},
    }
    _replace_case_file(folder, doc)
    return folder


def _replace_case_file(folder: Path, doc: dict) -> None:
    """Write case.json atomically (a reader sees the old or the new file, never half of one)."""
    tmp = folder / (CASE_FILE + ".tmp")
    with open_private(tmp, encoding="utf-8") as handle:
        handle.write(json.dumps(doc, indent=2))
    os.replace(tmp, folder / CASE_FILE)


def _prediction_entry(folder: Path, index: int, pred: Prediction) -> dict:
    """A prediction's case.json entry, its arrays written compactly beside it (their encodings recorded)."""
    entry = pred.summary().to_dict()
    encodings: dict[str, dict] = {}

    def save(stem: str, array: np.ndarray) -> str:
        stored, encoding = encode_array(array)
        name = _save_array(folder, stem, stored)
        if encoding is not None:
            encodings[name] = encoding
        return name

    entry["masks"] = {k: save(_file_stem(f"pred{index}_mask_", k), m) for k, m in pred.masks.items()}
    entry["heatmaps"] = {k: save(_file_stem(f"pred{index}_heat_", k), h) for k, h in pred.heatmaps.items()}
    entry["contours"] = {k: [np.asarray(c).tolist() for c in cs] for k, cs in pred.contours.items()}
    entry["encodings"] = encodings
    return entry


def append_predictions(folder: str | Path, predictions: list[Prediction]) -> None:
    """Add `predictions` (with their arrays, compactly) to the bundle in `folder`, beside those it holds; the
    images are not rewritten. BundleError naming the folder when it is not a bundle or cannot be written."""
    folder = Path(folder)
    case_file = folder / CASE_FILE
    _document(folder, case_file)  # refuse a broken or foreign case.json before touching anything
    doc = json.loads(case_file.read_text(encoding="utf-8"))
    entries = list(doc.get("predictions") or [])
    stems = {Path(name).stem for e in entries for part in ("masks", "heatmaps")
             for name in (e.get(part) or {}).values()}
    index = len(entries)
    try:
        for prediction in predictions:
            while any(s.startswith(f"pred{index}_") for s in stems):
                index += 1
            entries.append(_prediction_entry(folder, index, prediction))
            index += 1
        doc["predictions"] = entries
        doc["version"] = max(int(doc.get("version") or 1), BUNDLE_VERSION)
        _replace_case_file(folder, doc)
    except OSError as exc:
        raise BundleError(f"{folder}: the new result could not be saved in the case bundle ({exc}). Check that "
                          "the folder is writable, or copy the case to a writable folder and open it there.") \
            from None


def set_bundle_identity(folder: str | Path, *, patient_id: str | None, name: str) -> None:
    """Change the patient id and case name recorded in a bundle's case.json (nothing else is touched)."""
    folder = Path(folder)
    case_file = folder / CASE_FILE
    _document(folder, case_file)
    doc = json.loads(case_file.read_text(encoding="utf-8"))
    doc["patient_id"], doc["name"] = patient_id, name
    doc["version"] = max(int(doc.get("version") or 1), BUNDLE_VERSION)
    try:
        _replace_case_file(folder, doc)
    except OSError as exc:
        raise BundleError(f"{folder}: the patient id and case name could not be saved ({exc}). Check that the "
                          "folder is writable.") from None


def is_bundle(path: str | Path) -> bool:
    return (Path(path) / CASE_FILE).is_file()


def _document(folder: Path, case_file: Path) -> CaseDocument:
    """case.json read and checked against the schema; BundleError naming the file and the fields otherwise."""
    if not case_file.is_file():
        raise BundleError(f"{folder}: not a case bundle (no {CASE_FILE}). Open an image file or a bundle folder.")
    if case_file.stat().st_size > MAX_CASE_FILE_BYTES:
        raise BundleError(f"{case_file}: {case_file.stat().st_size / 1e6:.0f} MB is far too large for a case.json "
                          "(images are separate files in the bundle).")
    try:
        raw = json.loads(case_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BundleError(f"{case_file}: invalid JSON ({exc}).") from None
    if not isinstance(raw, dict):
        raise BundleError(f"{case_file}: not an OncoLens case (the file is not a JSON object).")
    if raw.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{case_file}: not an OncoLens case (format is {raw.get('format')!r}).")
    version = raw.get("version", 0)
    if isinstance(version, int) and not isinstance(version, bool) and version > BUNDLE_VERSION:
        raise BundleError(
            f"{case_file}: bundle version {version} is newer than this OncoLens understands "
            f"({BUNDLE_VERSION}). Update OncoLens."
        )
    try:
        return CaseDocument.model_validate(raw)
    except ValidationError as exc:
        raise BundleError(f"{case_file}: {validation_problems(exc)}. Fix these fields or re-export the bundle.") \
            from None


def read_bundle(folder: str | Path, limits: ImageLimits | None = None) -> Case:
    """The case in a bundle folder, after the schema, every file reference and every image passed the gate."""
    folder = Path(folder)
    case_file = folder / CASE_FILE
    doc = _document(folder, case_file)
    limits = limits or ImageLimits.from_settings()
    case = Case(id=doc.id, kind=doc.kind, patient_id=doc.patient_id, created=doc.created, notes=doc.notes,
                name=doc.name)
    for modality, entry in doc.images.items():
        array = _load_array(folder, entry.file, case_file, f"image {modality}", limits)
        try:
            meta = ImageMeta.from_dict(entry.meta.model_dump())
            case.images[modality] = ModalityImage(modality, array, meta, entry.axes)
        except (ValueError, TypeError) as exc:
            raise BundleError(f"{case_file}: image {modality}: {exc}") from None
    if doc.truth is not None:
        case.truth = GroundTruth(
            labels=dict(doc.truth.labels),
            masks={k: _load_array(folder, f, case_file, f"truth mask {k}", limits) for k, f in doc.truth.masks.items()},
            source=doc.truth.source,
        )
    for i, entry in enumerate(doc.predictions):
        summary_fields = {k: v for k, v in (entry.model_extra or {}).items()}
        try:
            summary = PredictionSummary.from_dict(summary_fields)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BundleError(f"{case_file}: predictions.{i}: not a prediction summary ({type(exc).__name__}: "
                              f"{exc}).") from None

        def array(name: str, what: str, i: int = i, entry=entry) -> np.ndarray:
            stored = _load_array(folder, name, case_file, f"predictions.{i} {what}", limits)
            try:
                return decode_array(stored, entry.encodings.get(name), f"{case_file}: predictions.{i} {what}")
            except ValueError as exc:
                raise BundleError(str(exc)) from None

        case.predictions.append(Prediction.from_summary(
            summary,
            masks={k: array(f, f"mask {k}") for k, f in entry.masks.items()},
            contours={k: [np.asarray(c, dtype=np.float32) for c in cs] for k, cs in entry.contours.items()},
            heatmaps={k: array(f, f"heatmap {k}") for k, f in entry.heatmaps.items()},
        ))
    case.reads = [Read(**r.model_dump()) for r in doc.reads]
    for key, name in doc.attachments.items():
        try:
            path = confined(folder, name)
        except ValueError as exc:
            raise BundleError(f"{case_file}: attachment {key}: {exc}. A bundle's files stay inside its folder.") \
                from None
        if not path.is_file():
            raise BundleError(f"{case_file} refers to {name} (attachment {key}), which is missing from the bundle "
                              "folder.")
        case.attachments[key] = path
    kind = find_kind(case.kind)
    if kind is not None:  # a registered kind: every image must fit its role (the same gate as loose files)
        try:
            admit_case(case, kind, str(case_file))
        except ImageReadError as exc:
            raise BundleError(str(exc)) from None
    return case
