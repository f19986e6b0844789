"""DICOM series as volumes: find the series in a folder, a DICOMDIR or a zip, list them, pick the PET and CT of
one study, and read one as a `ModalityImage` (axes ZYX, geometry per engine.io.volumes, CT in HU, PET in SUV).

Slices are ordered by their position along the slice normal (ImageOrientationPatient row x column), never by
file name or instance number. What would give a wrong volume is refused with the file and the fix: slices of
another size or orientation in one series, missing slices, uneven spacing, two different slices at one position,
a sheared (gantry-tilted) stack, pixel data no installed decoder reads. Identical duplicate files are dropped
with a warning.
"""

from __future__ import annotations

import io
import zipfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from engine.data import HU, SUV, ZYX, ImageMeta, ModalityImage
from engine.io.suv import SUVBW, suv_factors

PET_MODALITIES, CT_MODALITY = ("PT",), "CT"
SPACING_TOLERANCE = 0.01  # relative: slice gaps may differ by 1 % before the stack counts as uneven


class DicomError(ValueError):
    """A DICOM source cannot be read as the volume asked for; the message names the file and the fix."""


@dataclass(frozen=True)
class DicomFile:
    """One file: a path, or a member of a zip archive."""

    path: Path
    member: str | None = None

    def __str__(self) -> str:
        return f"{self.path}::{self.member}" if self.member else str(self.path)

    def read(self, header_only: bool = False) -> pydicom.Dataset:
        if self.member is None:
            return pydicom.dcmread(str(self.path), stop_before_pixels=header_only)
        with zipfile.ZipFile(self.path) as archive:
            return pydicom.dcmread(io.BytesIO(archive.read(self.member)), stop_before_pixels=header_only)


@dataclass
class SeriesInfo:
    """What `oncolens dicom info` lists for a series (read from the headers only)."""

    uid: str
    modality: str
    description: str
    study_uid: str
    frame_of_reference: str
    patient_id: str
    files: list[DicomFile] = field(default_factory=list)
    rows: int = 0
    columns: int = 0
    pixel_spacing: tuple[float, float] | None = None
    slice_spacing: float | None = None
    transfer_syntaxes: tuple[str, ...] = ()
    headers: list[Any] = field(default_factory=list, repr=False)

    @property
    def slices(self) -> int:
        return len(self.files)

    @property
    def is_image(self) -> bool:
        return self.rows > 0 and self.columns > 0

    def to_dict(self) -> dict[str, Any]:
        return {"series_uid": self.uid, "modality": self.modality, "description": self.description,
                "study_uid": self.study_uid, "frame_of_reference_uid": self.frame_of_reference,
                "patient_id": self.patient_id, "slices": self.slices, "rows": self.rows, "columns": self.columns,
                "pixel_spacing_mm": None if self.pixel_spacing is None else list(self.pixel_spacing),
                "slice_spacing_mm": self.slice_spacing, "transfer_syntaxes": list(self.transfer_syntaxes),
                "first_file": str(self.files[0]) if self.files else None}


def _is_dicom_bytes(head: bytes) -> bool:
    return len(head) >= 132 and head[128:132] == b"DICM"


def _files_in(path: Path) -> list[DicomFile]:
    """Every DICOM file a folder (recursively), a DICOMDIR, a zip or a single file holds."""
    if path.is_dir():
        dicomdir = path / "DICOMDIR"
        if dicomdir.is_file():
            return _files_in(dicomdir)
        out = []
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            if child.name == "DICOMDIR":
                continue
            if child.suffix.lower() == ".zip":
                out.extend(_files_in(child))
                continue
            with open(child, "rb") as fh:
                head = fh.read(132)
            if _is_dicom_bytes(head) or child.suffix.lower() == ".dcm":
                out.append(DicomFile(child))
        return out
    if path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as archive:
                names = [n for n in archive.namelist() if not n.endswith("/")]
                return [DicomFile(path, n) for n in names
                        if _is_dicom_bytes(archive.open(n).read(132)) or n.lower().endswith(".dcm")]
        except zipfile.BadZipFile as exc:
            raise DicomError(f"{path}: not a readable zip archive ({exc}).") from exc
    if path.name.upper() == "DICOMDIR":
        ds = pydicom.dcmread(str(path))
        out = []
        for record in getattr(ds, "DirectoryRecordSequence", []):
            ref = getattr(record, "ReferencedFileID", None)
            if ref:
                parts = [ref] if isinstance(ref, str) else list(ref)
                out.append(DicomFile(path.parent.joinpath(*parts)))
        missing = [str(f) for f in out if not f.path.is_file()]
        if missing:
            raise DicomError(f"{path}: the DICOMDIR lists {len(missing)} file(s) that are not there, e.g. "
                             f"{missing[0]}. Copy the whole media folder.")
        return out
    return [DicomFile(path)]


def scan_series(path: str | Path) -> list[SeriesInfo]:
    """The series a folder, DICOMDIR, zip or file holds (headers only), image series first by modality."""
    path = Path(path)
    if not path.exists():
        raise DicomError(f"{path}: file or folder not found.")
    series: dict[str, SeriesInfo] = {}
    for f in _files_in(path):
        try:
            ds = f.read(header_only=True)
        except (InvalidDicomError, OSError, ValueError) as exc:
            raise DicomError(f"{f}: not a readable DICOM file ({exc}). Remove it from the folder or re-export it.") \
                from exc
        uid = str(getattr(ds, "SeriesInstanceUID", "") or "")
        if not uid:
            raise DicomError(f"{f}: no SeriesInstanceUID (0020,000E); the file cannot be grouped into a series.")
        info = series.get(uid)
        if info is None:
            info = series[uid] = SeriesInfo(
                uid, str(getattr(ds, "Modality", "") or "?"), str(getattr(ds, "SeriesDescription", "") or ""),
                str(getattr(ds, "StudyInstanceUID", "") or ""), str(getattr(ds, "FrameOfReferenceUID", "") or ""),
                str(getattr(ds, "PatientID", "") or ""))
        info.files.append(f)
        info.headers.append(ds)
    if not series:
        raise DicomError(f"{path}: no DICOM files found (looked for the DICM preamble and .dcm files).")
    for info in series.values():
        ds0 = info.headers[0]
        info.rows, info.columns = int(getattr(ds0, "Rows", 0) or 0), int(getattr(ds0, "Columns", 0) or 0)
        spacing = getattr(ds0, "PixelSpacing", None)
        info.pixel_spacing = None if spacing is None else (float(spacing[0]), float(spacing[1]))
        info.transfer_syntaxes = tuple(sorted({str(getattr(getattr(h, "file_meta", None), "TransferSyntaxUID", "?"))
                                               for h in info.headers}))
        try:
            info.slice_spacing = float(np.median(np.diff(_positions(info)[0]))) if info.slices > 1 else None
        except DicomError:
            info.slice_spacing = None
    return sorted(series.values(), key=lambda s: (not s.is_image, s.modality, s.description, s.uid))


def _orientation(ds: Any, f: DicomFile) -> tuple[np.ndarray, np.ndarray]:
    iop = getattr(ds, "ImageOrientationPatient", None)
    if iop is None or getattr(ds, "ImagePositionPatient", None) is None:
        raise DicomError(f"{f}: ImageOrientationPatient (0020,0037) or ImagePositionPatient (0020,0032) is missing; "
                         "the slice cannot be placed in space.")
    row, col = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
    return row / np.linalg.norm(row), col / np.linalg.norm(col)


def _positions(info: SeriesInfo) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """(sorted positions along the normal, normal, order of info.files) after the stack checks."""
    row0, col0 = _orientation(info.headers[0], info.files[0])
    normal = np.cross(row0, col0)
    positions = []
    for ds, f in zip(info.headers, info.files):
        row, col = _orientation(ds, f)
        if not (np.allclose(row, row0, atol=1e-4) and np.allclose(col, col0, atol=1e-4)):
            raise DicomError(f"{f}: its ImageOrientationPatient differs from {info.files[0]}'s: series {info.uid} "
                             "mixes stacks (e.g. localizers or reformats). Export the axial stack alone.")
        if (int(ds.Rows), int(ds.Columns)) != (info.rows, info.columns):
            raise DicomError(f"{f}: {ds.Rows}x{ds.Columns} pixels, but {info.files[0]} has {info.rows}x{info.columns}: "
                             f"series {info.uid} mixes image sizes. Export one stack.")
        positions.append(float(np.dot(np.asarray(ds.ImagePositionPatient, float), normal)))
    order = sorted(range(len(positions)), key=lambda i: positions[i])
    return np.asarray(positions)[order], normal, order


def _check_stack(info: SeriesInfo, positions: np.ndarray, order: list[int]) -> tuple[list[int], float, list[str]]:
    """Drop identical duplicates; refuse distinct duplicates, gaps and uneven spacing; the slice spacing."""
    warnings, keep = [], [order[0]]
    for prev, cur, i in zip(positions[:-1], positions[1:], order[1:]):
        if abs(cur - prev) < 1e-3:
            a, b = info.files[keep[-1]], info.files[i]
            if _pixels(a) is not None and np.array_equal(_pixels(a), _pixels(b)):
                warnings.append(f"{b} duplicates {a} (same position and pixels); it was skipped.")
                continue
            raise DicomError(f"{a} and {b} are two different slices at the same position ({cur:.2f} mm along the "
                             "slice normal): the folder holds two acquisitions of series "
                             f"{info.uid} (e.g. frames of a dynamic scan). Export one time point.")
        keep.append(i)
    pos = np.asarray([float(np.dot(np.asarray(info.headers[i].ImagePositionPatient, float),
                                   np.cross(*_orientation(info.headers[order[0]], info.files[order[0]]))))
                      for i in keep])
    if len(keep) < 2:
        raise DicomError(f"Series {info.uid} ({info.files[0]}): one slice is not a volume.")
    gaps = np.diff(pos)
    step = float(np.median(gaps))
    bad = np.flatnonzero(np.abs(gaps - step) > SPACING_TOLERANCE * step)
    if bad.size:
        j = int(bad[0])
        a, b = info.files[keep[j]], info.files[keep[j + 1]]
        ratio = gaps[j] / step
        if ratio > 1.5 and abs(ratio - round(ratio)) < 0.1:
            raise DicomError(f"Series {info.uid}: {int(round(ratio)) - 1} slice(s) missing between {a} and {b} "
                             f"(gap {gaps[j]:.2f} mm, spacing {step:.2f} mm). Copy or re-export the complete series.")
        raise DicomError(f"Series {info.uid}: uneven slice spacing ({gaps.min():.2f} to {gaps.max():.2f} mm, first "
                         f"between {a} and {b}); a volume would be distorted. Export it with uniform spacing "
                         "(or resample it in the scanner software).")
    first = np.asarray(info.headers[keep[0]].ImagePositionPatient, float)
    last = np.asarray(info.headers[keep[-1]].ImagePositionPatient, float)
    normal = np.cross(*_orientation(info.headers[keep[0]], info.files[keep[0]]))
    travel = (last - first) / np.linalg.norm(last - first)
    if abs(float(np.dot(travel, normal))) < np.cos(np.radians(0.5)):
        raise DicomError(f"Series {info.uid}: the slices are sheared (gantry tilt of "
                         f"{np.degrees(np.arccos(min(1.0, abs(float(np.dot(travel, normal)))))):.1f} degrees): "
                         "reconstruct it without tilt or correct the tilt before opening it.")
    return keep, step, warnings


_PIXEL_CACHE: dict[str, np.ndarray] = {}


def _pixels(f: DicomFile) -> np.ndarray | None:
    key = str(f)
    if key not in _PIXEL_CACHE:
        _PIXEL_CACHE.clear()
        _PIXEL_CACHE[key] = _decode(f.read(), f)
    return _PIXEL_CACHE[key]


def _decode(ds: Any, f: DicomFile) -> np.ndarray:
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    try:
        return ds.pixel_array
    except (RuntimeError, NotImplementedError, ValueError, AttributeError) as exc:
        name = getattr(syntax, "name", str(syntax))
        raise DicomError(f"{f}: pixel data in transfer syntax '{name}' ({syntax}) cannot be decoded here ({exc}). "
                         "Install a pydicom pixel handler for it (pylibjpeg with -libjpeg/-openjpeg/-rle, or "
                         "python-gdcm), or re-export the series uncompressed.") from exc


def read_series(info: SeriesInfo, suv: str | None = SUVBW) -> tuple[ModalityImage, list[str]]:
    """The series as a ZYX volume, and warnings. CT -> HU (RescaleSlope/Intercept); PET -> SUV (`suv`: SUVbw or
    SUL; None keeps the rescaled values, e.g. Bq/ml); other modalities keep their rescaled values."""
    if not info.is_image:
        raise DicomError(f"Series {info.uid} ({info.modality}, {info.files[0]}) holds no images.")
    positions, normal, order = _positions(info)
    keep, step, warnings = _check_stack(info, positions, order)
    headers = [info.headers[i] for i in keep]
    files = [info.files[i] for i in keep]
    slices = []
    for f in files:
        ds = f.read()
        pixels = _decode(ds, f).astype(np.float32)
        if pixels.ndim != 2:
            raise DicomError(f"{f}: multi-frame or colour pixel data ({pixels.shape}); OncoLens reads one grey slice "
                             "per file.")
        slope = float(getattr(ds, "RescaleSlope", 1) or 1)
        slices.append(pixels * slope + float(getattr(ds, "RescaleIntercept", 0) or 0))
    volume = np.stack(slices)
    row, col = _orientation(headers[0], files[0])
    ps = headers[0].PixelSpacing
    spacing = (step, float(ps[0]), float(ps[1]))  # z; y = between rows; x = between columns
    origin = np.asarray(headers[0].ImagePositionPatient, float)
    direction = np.stack([normal[::-1], col[::-1], row[::-1]], axis=1)  # columns: array axes z, y, x (zyx comps)
    source = {"file": str(files[0]), "files": [str(f) for f in files], "series_uid": info.uid,
              "study_uid": info.study_uid, "frame_of_reference_uid": info.frame_of_reference,
              "modality": info.modality, "description": info.description, "patient_id": info.patient_id}
    extra: dict[str, Any] = {}
    units = str(getattr(headers[0], "Units", "") or "")
    if info.modality == CT_MODALITY:
        units = HU
        if float(np.abs(volume - np.round(volume)).max()) == 0 and -32768 <= volume.min() and volume.max() <= 32767:
            volume = volume.astype(np.int16)
    elif info.modality in PET_MODALITIES and suv:
        result = suv_factors(headers, suv, where=f"PET series {info.uid} ({files[0]})")
        volume = volume * np.asarray(result.factors, np.float32)[:, None, None]
        extra["suv"] = result.to_dict()
        warnings.extend(result.warnings)
        units = SUV
    bits = 16 if volume.dtype == np.int16 else 32
    meta = ImageMeta(bits, units or "a.u.", spacing, origin=tuple(origin[::-1].tolist()),
                     direction=tuple(direction.ravel().tolist()), source=source, extra=extra)
    return ModalityImage("PET" if info.modality in PET_MODALITIES else info.modality, volume, meta, ZYX), warnings


def pick_pet_ct(series: list[SeriesInfo]) -> tuple[SeriesInfo, SeriesInfo]:
    """The PET and CT image series of one study, when that is unambiguous; otherwise an error listing them."""
    pets = [s for s in series if s.is_image and s.modality in PET_MODALITIES and s.slices > 1]
    cts = [s for s in series if s.is_image and s.modality == CT_MODALITY and s.slices > 1]
    pairs = [(p, c) for p in pets for c in cts if p.study_uid == c.study_uid
             and (not p.frame_of_reference or not c.frame_of_reference or p.frame_of_reference == c.frame_of_reference)]
    if len(pairs) == 1:
        return pairs[0]
    listing = "; ".join(f"{s.modality} '{s.description}' ({s.slices} slices, {s.uid})" for s in pets + cts) or "none"
    if not pairs:
        raise DicomError(f"No PET and CT series of one study found (image series: {listing}). A PET-CT case needs "
                         "both, acquired together (same study and frame of reference).")
    raise DicomError(f"Several PET/CT pairs could be meant ({listing}); choose the series by UID (e.g. "
                     "`oncolens dicom info PATH` lists them; --pet-series / --ct-series pick them).")


def read_petct(path: str | Path, pet_series: str | None = None, ct_series: str | None = None,
               suv: str = SUVBW) -> tuple[dict[str, ModalityImage], list[str]]:
    """{'PET': SUV volume, 'CT': HU volume} of the PET-CT study in `path`, and the readers' warnings."""
    series = [s for s in scan_series(path) if s.is_image]
    by_uid = {s.uid: s for s in series}
    for uid in (pet_series, ct_series):
        if uid and uid not in by_uid:
            raise DicomError(f"{path}: no series {uid}; it holds {', '.join(by_uid)}.")
    pet, ct = (by_uid[pet_series], by_uid[ct_series]) if pet_series and ct_series else pick_pet_ct(series)
    pet_image, w1 = read_series(pet, suv)
    ct_image, w2 = read_series(ct)
    return {"PET": pet_image, "CT": ct_image}, w1 + w2


def describe_series(path: str | Path, suv: str = SUVBW) -> list[dict[str, Any]]:
    """`oncolens dicom info`: every series, and for PET the SUV factor with its inputs (or the reason it fails)."""
    out = []
    grouped: dict[str, list[SeriesInfo]] = defaultdict(list)
    for info in scan_series(path):
        grouped[info.study_uid].append(info)
        entry = info.to_dict()
        if info.modality in PET_MODALITIES and info.is_image:
            try:
                entry["suv"] = suv_factors(info.headers, suv, where=f"PET series {info.uid}").to_dict()
            except ValueError as exc:
                entry["suv_error"] = str(exc)
        out.append(entry)
    return out
