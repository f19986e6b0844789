"""Small DICOM files written with pydicom for the US + CT reader tests (no real patient data)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

SOP_CLASS = {"US": "1.2.840.10008.5.1.4.1.1.6.1", "CT": "1.2.840.10008.5.1.4.1.1.2"}


def write_dicom(path: Path, pixels: np.ndarray, modality: str, series: str | None = None, **tags) -> Path:
    """A minimal uncompressed DICOM file: (H, W) or (frames, H, W) grey, uint8 or int16/uint16 pixels."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SOP_CLASS.get(modality, SOP_CLASS["CT"])
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.SeriesInstanceUID = series or generate_uid()
    ds.Rows, ds.Columns = pixels.shape[-2:]
    if pixels.ndim == 3:
        ds.NumberOfFrames = pixels.shape[0]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
    ds.PixelRepresentation = int(np.issubdtype(pixels.dtype, np.signedinteger))
    for key, value in tags.items():
        setattr(ds, key, value)
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return path


def us_region(x0: int, y0: int, x1: int, y1: int, delta_cm: float) -> Dataset:
    region = Dataset()
    region.RegionLocationMinX0, region.RegionLocationMinY0 = x0, y0
    region.RegionLocationMaxX1, region.RegionLocationMaxY1 = x1 - 1, y1 - 1
    region.PhysicalUnitsXDirection = region.PhysicalUnitsYDirection = 3
    region.PhysicalDeltaX = region.PhysicalDeltaY = delta_cm
    region.RegionSpatialFormat = 1
    return region


def write_ct(path: Path, hu: np.ndarray, rescale: bool = True, series: str | None = None, z: float = 0.0,
             modality: str = "CT") -> Path:
    """A CT slice stored as HU + 1024 with RescaleIntercept -1024 (or without the rescale tags)."""
    tags = {"PixelSpacing": [0.7, 0.7], "ImagePositionPatient": [0.0, 0.0, z], "SliceThickness": 1.0}
    if rescale:
        tags.update(RescaleSlope=1, RescaleIntercept=-1024)
    return write_dicom(path, (hu.astype(np.int32) + 1024).astype(np.int16), modality, series, **tags)
