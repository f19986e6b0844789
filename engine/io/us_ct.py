"""Reading the ultrasound (US) and CT images of a thyroid nodule, with errors that name the file and the fix.

US: 8-bit PNG/JPEG/BMP screen captures (grey, or RGB converted to grey) or DICOM US (single or multi-frame;
pixel spacing from the Sequence of Ultrasound Regions when present). CT: one DICOM slice, or a folder holding a
series (the slice is chosen by index, default the middle one), rescaled to HU with RescaleSlope/Intercept.

This module reads only what US + CT needs; a general DICOM series reader lives elsewhere (engine.io.dicom).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.data import HU, ImageMeta
from engine.io.images import ImageReadError, read_image

DICOM_SUFFIXES = (".dcm", ".dicom")
US_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".npy")
_US_MODALITIES = ("US", "IVUS")
_CM_UNITS = 3  # PhysicalUnitsXDirection code for centimetres (DICOM PS3.3 C.8.5.5.1.1)


class UsCtReadError(ImageReadError):
    """A US or CT input cannot be used; the message names the file and what to do."""


def is_dicom_path(path: str | Path) -> bool:
    """A .dcm/.dicom file, a file starting with the DICM preamble, or a folder holding such files."""
    path = Path(path)
    if path.is_dir():
        return any(is_dicom_path(p) for p in sorted(path.iterdir())[:20] if p.is_file())
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        with open(path, "rb") as fh:
            return fh.read(132)[128:132] == b"DICM"
    except OSError:
        return False


def _read_dataset(path: Path):
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(str(path), force=False)
    except (InvalidDicomError, OSError, ValueError) as exc:
        raise UsCtReadError(f"{path}: not a readable DICOM file ({exc}).") from exc


def _pixels(ds, path: Path) -> np.ndarray:
    try:
        return np.asarray(ds.pixel_array)
    except Exception as exc:  # pydicom raises several types for missing pixel data or codecs
        raise UsCtReadError(f"{path}: the DICOM pixel data cannot be decoded ({exc}). Export it uncompressed "
                            "(explicit VR little endian) from the PACS or scanner.") from exc


@dataclass(frozen=True)
class UsRegion:
    """The calibrated image area of a US capture: bounds in pixels (x1, y1 exclusive) and spacing in mm."""

    x0: int
    y0: int
    x1: int
    y1: int
    spacing_mm: tuple[float, float] | None  # (row, column)

    def to_dict(self) -> dict:
        return {"x0": self.x0, "y0": self.y0, "x1": self.x1, "y1": self.y1,
                "spacing_mm": None if self.spacing_mm is None else list(self.spacing_mm)}


def ultrasound_region(ds) -> UsRegion | None:
    """The first 2-D region of the Sequence of Ultrasound Regions with its physical deltas (cm -> mm)."""
    regions = getattr(ds, "SequenceOfUltrasoundRegions", None)
    if not regions:
        return None
    for region in regions:
        try:
            bounds = [int(region.RegionLocationMinX0), int(region.RegionLocationMinY0),
                      int(region.RegionLocationMaxX1) + 1, int(region.RegionLocationMaxY1) + 1]
        except AttributeError:
            continue
        spacing = None
        units = (getattr(region, "PhysicalUnitsXDirection", None), getattr(region, "PhysicalUnitsYDirection", None))
        dx, dy = getattr(region, "PhysicalDeltaX", None), getattr(region, "PhysicalDeltaY", None)
        if units == (_CM_UNITS, _CM_UNITS) and dx and dy:
            spacing = (abs(float(dy)) * 10.0, abs(float(dx)) * 10.0)
        return UsRegion(*bounds, spacing)
    return None


def us_grey(array: np.ndarray, where: str) -> np.ndarray:
    """An 8-bit US capture as grey uint8: RGB screen captures are converted (luma), 16-bit data refused."""
    if array.dtype != np.uint8:
        raise UsCtReadError(
            f"{where}: ultrasound images must be 8-bit (got {array.dtype}, e.g. a 16-bit export). Export the "
            "capture as an 8-bit PNG/JPEG/BMP or as DICOM US with 8 bits allocated.")
    if array.ndim == 3:
        if array.shape[2] != 3:
            raise UsCtReadError(f"{where}: expected a grey or RGB capture, got shape {array.shape}.")
        array = np.round(array.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.uint8)
    if array.ndim != 2:
        raise UsCtReadError(f"{where}: expected a 2-D grey or RGB capture, got shape {array.shape}.")
    return array


def read_us(path: str | Path, frame: int | None = None) -> tuple[np.ndarray, ImageMeta]:
    """A US image as uint8 (H, W) grey with its metadata; DICOM multi-frame takes `frame` (default 0)."""
    path = Path(path)
    if not path.exists():
        raise UsCtReadError(f"{path}: file not found.")
    if is_dicom_path(path):
        return _read_us_dicom(path, frame)
    if path.suffix.lower() not in US_IMAGE_SUFFIXES:
        raise UsCtReadError(f"{path}: not an ultrasound image; use PNG, JPEG, BMP or DICOM US.")
    array, meta = read_image(path)
    grey = us_grey(array, str(path))
    meta.bit_depth = 8
    meta.extra["captured_as"] = "RGB" if array.ndim == 3 else "grey"
    return grey, meta


def _read_us_dicom(path: Path, frame: int | None) -> tuple[np.ndarray, ImageMeta]:
    ds = _read_dataset(path)
    modality = str(getattr(ds, "Modality", "") or "")
    if modality not in _US_MODALITIES:
        raise UsCtReadError(f"{path}: the DICOM modality is {modality or 'missing'}, not US. Give the nodule's "
                            "ultrasound image here (the CT goes in the CT slot).")
    pixels = _pixels(ds, path)
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2"))
    if frames > 1:
        index = 0 if frame is None else int(frame)
        if not 0 <= index < frames:
            raise UsCtReadError(f"{path}: frame {index} does not exist; the clip has frames 0-{frames - 1}.")
        pixels = pixels[index]
    elif frame not in (None, 0):
        raise UsCtReadError(f"{path}: a single-frame image has no frame {frame}; leave the frame out.")
    if photometric.startswith("YBR") and pixels.ndim == 3:
        from pydicom.pixels import convert_color_space

        pixels = convert_color_space(pixels, photometric, "RGB")
    if int(getattr(ds, "BitsAllocated", 8)) != 8:
        raise UsCtReadError(f"{path}: DICOM US with {ds.BitsAllocated} bits allocated; ultrasound must be 8-bit. "
                            "Re-export the capture with 8 bits.")
    grey = us_grey(pixels, str(path))
    if photometric == "MONOCHROME1":
        grey = 255 - grey
    region = ultrasound_region(ds)
    meta = ImageMeta(8, source={"file": path.name, "sop_instance_uid": str(getattr(ds, "SOPInstanceUID", "")),
                                "series_instance_uid": str(getattr(ds, "SeriesInstanceUID", ""))})
    if region is not None:
        meta.spacing = region.spacing_mm
        meta.extra["us_region"] = region.to_dict()
    if frames > 1:
        meta.extra["frame"], meta.extra["frames"] = int(frame or 0), frames
    return grey, meta


def _ct_slices(path: Path) -> list:
    files = [p for p in sorted(path.iterdir()) if p.is_file() and is_dicom_path(p)] if path.is_dir() else [path]
    if not files:
        raise UsCtReadError(f"{path}: the folder holds no DICOM files; give a CT slice (.dcm) or a series folder.")
    datasets = [(_read_dataset(f), f) for f in files]
    series = {str(getattr(ds, "SeriesInstanceUID", "")) for ds, _ in datasets}
    if len(series) > 1:
        raise UsCtReadError(f"{path}: the folder mixes {len(series)} DICOM series; put one CT series per folder.")

    def position(item) -> float:
        ds, _ = item
        ipp = getattr(ds, "ImagePositionPatient", None)
        return float(ipp[2]) if ipp is not None else float(getattr(ds, "InstanceNumber", 0) or 0)

    return sorted(datasets, key=position)


def read_ct(path: str | Path, slice_index: int | None = None) -> tuple[np.ndarray, ImageMeta]:
    """One CT slice in HU (int16 (H, W)): a DICOM file, or a series folder's `slice_index` (default the middle)."""
    path = Path(path)
    if not path.exists():
        raise UsCtReadError(f"{path}: file or folder not found.")
    if not path.is_dir() and not is_dicom_path(path):
        if path.suffix.lower() == ".npy":
            return _read_ct_npy(path)
        raise UsCtReadError(f"{path}: CT must be DICOM (a slice or a series folder) so that the HU rescale is "
                            "known; a PNG/JPEG screenshot of CT has lost it. Export the slice as DICOM.")
    slices = _ct_slices(path)
    index = len(slices) // 2 if slice_index is None else int(slice_index)
    if not 0 <= index < len(slices):
        raise UsCtReadError(f"{path}: slice {index} does not exist; the series has slices 0-{len(slices) - 1}.")
    ds, file = slices[index]
    modality = str(getattr(ds, "Modality", "") or "")
    if modality != "CT":
        raise UsCtReadError(f"{file}: the DICOM modality is {modality or 'missing'}, not CT. Give the nodule's CT "
                            "slice here (the ultrasound goes in the US slot).")
    if getattr(ds, "RescaleSlope", None) is None or getattr(ds, "RescaleIntercept", None) is None:
        raise UsCtReadError(f"{file}: CT without RescaleSlope/RescaleIntercept: the stored values cannot be turned "
                            "into Hounsfield units. Export the original CT from the PACS (not a secondary capture "
                            "or an anonymiser that drops these tags).")
    pixels = _pixels(ds, file)
    if pixels.ndim != 2:
        raise UsCtReadError(f"{file}: expected one CT slice, got pixel data of shape {pixels.shape}.")
    hu = pixels.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    spacing = getattr(ds, "PixelSpacing", None)
    meta = ImageMeta(16, HU, spacing=None if spacing is None else (float(spacing[0]), float(spacing[1])),
                     source={"file": file.name, "sop_instance_uid": str(getattr(ds, "SOPInstanceUID", "")),
                             "series_instance_uid": str(getattr(ds, "SeriesInstanceUID", ""))})
    meta.extra.update({"slice": index, "slices": len(slices),
                       "slice_thickness_mm": float(getattr(ds, "SliceThickness", 0) or 0) or None})
    return np.clip(np.round(hu), -32768, 32767).astype(np.int16), meta


def _read_ct_npy(path: Path) -> tuple[np.ndarray, ImageMeta]:
    """An .npy array already in HU (what OncoLens bundles store); refused unless it is a signed 2-D array."""
    array = np.load(path, allow_pickle=False)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.signedinteger) and not np.issubdtype(
            array.dtype, np.floating):
        raise UsCtReadError(f"{path}: a CT .npy must be a 2-D signed array in HU, got {array.dtype} {array.shape}.")
    return array.astype(np.int16), ImageMeta(16, HU, source={"file": path.name})
