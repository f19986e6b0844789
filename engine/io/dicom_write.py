"""Writing a ZYX volume as a DICOM series (CT Image Storage or PET Image Storage), one slice per file.

Used by the phantoms (so that the demo exercises the DICOM reader) and by tests that build small series and then
damage them. CT is stored as int16 with RescaleSlope 1 and RescaleIntercept -1024; PET as Bq/ml with a per-slice
RescaleSlope and the tags SUV needs (Units BQML, DecayCorrection START, the radiopharmaceutical sequence, weight).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    PositronEmissionTomographyImageStorage,
    generate_uid,
)

from engine.data import ModalityImage
from engine.io.volumes import Grid


@dataclass(frozen=True)
class Acquisition:
    """Patient and study facts shared by the series of one PET-CT study."""

    patient_id: str
    study_uid: str
    frame_of_reference_uid: str
    patient_name: str = "PHANTOM^PETCT"
    weight_kg: float = 70.0
    height_m: float = 1.75
    sex: str = "M"
    dose_bq: float = 370e6
    half_life_s: float = 6586.2
    date: str = "20240115"
    injection_time: str = "090000"
    scan_time: str = "100000"

    def suv_factor(self) -> float:
        """SUVbw factor (g/Bq) of a series scanned at `scan_time`, injected at `injection_time` (same day)."""
        def seconds(t: str) -> int:
            return int(t[:2]) * 3600 + int(t[2:4]) * 60 + int(t[4:6])

        decay = seconds(self.scan_time) - seconds(self.injection_time)
        return self.weight_kg * 1000.0 / (self.dose_bq * 2.0 ** (-decay / self.half_life_s))


def new_acquisition(patient_id: str, **kwargs) -> Acquisition:
    return Acquisition(patient_id, generate_uid(), generate_uid(), **kwargs)


def _base(acq: Acquisition, modality: str, series_uid: str, number: int, description: str) -> Dataset:
    ds = Dataset()
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = acq.patient_name, acq.patient_id, ""
    ds.PatientWeight, ds.PatientSize, ds.PatientSex = f"{acq.weight_kg:.1f}", f"{acq.height_m:.2f}", acq.sex
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = acq.study_uid, series_uid, \
        acq.frame_of_reference_uid
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = acq.date
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = acq.scan_time
    ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "1", "", ""
    ds.Modality, ds.SeriesNumber, ds.SeriesDescription = modality, number, description
    ds.Manufacturer = "OncoLens phantom"
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    return ds


def write_series(image: ModalityImage, folder: str | Path, acq: Acquisition, modality: str,
                 description: str = "", series_number: int = 1, file_names: str = "sequential") -> list[Path]:
    """Write `image` (ZYX; CT in HU, PET in SUV) as one series; returns the files, one per slice.

    `file_names` "sequential" names files by slice order; "shuffled" names them in a random order, so readers
    that trust file names are caught."""
    if modality not in ("CT", "PT"):
        raise ValueError(f"write_series: modality must be CT or PT, got {modality!r}.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    grid = Grid.of(image)
    d = np.asarray(grid.direction, float).reshape(3, 3)
    normal, col, row = d[::-1, 0], d[::-1, 1], d[::-1, 2]  # back to x, y, z components
    series_uid = generate_uid()
    factor = acq.suv_factor()
    order = np.arange(grid.shape[0])
    if file_names == "shuffled":
        order = np.random.default_rng(0).permutation(order)
    paths = []
    for k in range(grid.shape[0]):
        ds = _base(acq, modality, series_uid, series_number, description or f"{modality} phantom")
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage if modality == "CT" else PositronEmissionTomographyImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
        ds.InstanceNumber = int(grid.shape[0] - k)  # deliberately against the spatial order
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*row, *col)]
        ds.ImagePositionPatient = [f"{v:.4f}" for v in grid.to_physical(np.array([k, 0, 0]))[::-1]]
        ds.SliceLocation = f"{float(np.dot(ds.ImagePositionPatient, normal)):.4f}"
        ds.PixelSpacing = [f"{grid.spacing[1]:.6f}", f"{grid.spacing[2]:.6f}"]
        ds.SliceThickness = f"{grid.spacing[0]:.4f}"
        ds.Rows, ds.Columns = grid.shape[1], grid.shape[2]
        plane = image.array[k].astype(np.float64)
        if modality == "CT":
            ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, -1024, "HU"
            stored = np.clip(np.round(plane + 1024), -32768, 32767).astype(np.int16)
        else:
            bqml = plane / factor
            slope = max(float(np.abs(bqml).max()) / 32000.0, 1e-6)
            ds.RescaleSlope, ds.RescaleIntercept = f"{slope:.10g}", 0
            stored = np.clip(np.round(bqml / float(ds.RescaleSlope)), -32768, 32767).astype(np.int16)
            ds.Units, ds.DecayCorrection, ds.CorrectedImage = "BQML", "START", ["DECY", "ATTN", "SCAT"]
            ds.SeriesType = ["STATIC", "IMAGE"]
            rp = Dataset()
            rp.Radiopharmaceutical = "Fluorodeoxyglucose"
            rp.RadionuclideTotalDose = f"{acq.dose_bq:.6g}"
            rp.RadionuclideHalfLife = f"{acq.half_life_s:.6g}"
            rp.RadiopharmaceuticalStartTime = acq.injection_time
            rp.RadiopharmaceuticalStartDateTime = acq.date + acq.injection_time
            ds.RadiopharmaceuticalInformationSequence = Sequence([rp])
        ds.PixelData = stored.tobytes()
        path = folder / f"{modality}{series_number}_{int(order[k]) + 1:04d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
