"""Exports of a volume segmentation: DICOM SEG (highdicom) referencing the source PET series, NIfTI on the PET
grid, and per-case measures as CSV; and reading a DICOM SEG back onto its source series' grid."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from engine.data import ZYX, ModalityImage
from engine.exports import csv_dict_writer, open_csv
from engine.io.nifti import write_nifti

SEG_LABEL = "Tumour"


class ExportError(ValueError):
    """An export cannot be written: the message says what is missing and what would work."""


def _source_datasets(image: ModalityImage) -> list:
    """The image's DICOM files (slice order), re-read; an error when the image did not come from DICOM."""
    import pydicom

    from engine.io.dicom import DicomFile

    files = image.meta.source.get("files")
    if not files:
        raise ExportError(f"{image.modality} image has no DICOM source (it was opened from "
                          f"{image.meta.file_name or 'a bundle or NIfTI'}); DICOM SEG needs the source series. "
                          "Export NIfTI instead.")
    out = []
    type2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
             "ReferringPhysicianName", "StudyID", "AccessionNumber")
    for name in files:
        path, _, member = str(name).partition("::")
        try:
            ds = DicomFile(Path(path), member or None).read()
        except (OSError, pydicom.errors.InvalidDicomError) as exc:
            raise ExportError(f"{name}: the source DICOM file of the {image.modality} series cannot be read "
                              f"({exc}); DICOM SEG needs it.") from exc
        for keyword in type2:  # DICOM type 2: present, possibly empty; some exports leave them out
            if keyword not in ds:
                setattr(ds, keyword, "")
        out.append(ds)
    return out


def write_dicom_seg(mask: np.ndarray, reference: ModalityImage, path: str | Path, label: str = SEG_LABEL,
                    algorithm: str = "CHMFL", version: str = "1") -> Path:
    """A binary DICOM SEG of `mask` (ZYX on `reference`'s grid) referencing the reference's DICOM series."""
    import highdicom as hd

    sources = _source_datasets(reference)
    if mask.shape != reference.array.shape:
        raise ExportError(f"The mask {mask.shape} is not on the {reference.modality} grid {reference.array.shape}.")
    description = _tumour_segment(label, algorithm, version)
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=mask.astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=[description],
        series_instance_uid=hd.UID(), series_number=900, sop_instance_uid=hd.UID(), instance_number=1,
        manufacturer="OncoLens", manufacturer_model_name=algorithm, software_versions=version,
        device_serial_number="0", omit_empty_frames=False,
        series_description=f"{algorithm} tumour segmentation (research use only)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    seg.save_as(str(path))
    return path


def write_slice_dicom_seg(mask: np.ndarray, source: str | Path, path: str | Path, label: str = SEG_LABEL,
                          algorithm: str = "OncoLens", version: str = "1") -> Path:
    """A binary DICOM SEG of a 2-D `mask` on one source DICOM image (e.g. the CT slice a nodule was read on)."""
    import highdicom as hd
    import pydicom

    try:
        ds = pydicom.dcmread(str(source))
    except (OSError, pydicom.errors.InvalidDicomError) as exc:
        raise ExportError(f"{source}: the source DICOM image cannot be read ({exc}); DICOM SEG needs it. "
                          "Export NIfTI instead.") from exc
    if mask.shape != (int(ds.Rows), int(ds.Columns)):
        raise ExportError(f"The mask {mask.shape} does not fit the source image {source} ({ds.Rows} x {ds.Columns}).")
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                    "ReferringPhysicianName", "StudyID", "AccessionNumber"):
        if keyword not in ds:
            setattr(ds, keyword, "")
    description = _tumour_segment(label, algorithm, version)
    try:
        seg = hd.seg.Segmentation(
            source_images=[ds], pixel_array=mask.astype(np.uint8)[None],
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=[description],
            series_instance_uid=hd.UID(), series_number=900, sop_instance_uid=hd.UID(), instance_number=1,
            manufacturer="OncoLens", manufacturer_model_name=algorithm, software_versions=version,
            device_serial_number="0", omit_empty_frames=False,
            series_description=f"{algorithm} segmentation (research use only)")
    except (AttributeError, ValueError, TypeError) as exc:  # the source lacks what a SEG must reference
        raise ExportError(f"{source}: a DICOM SEG cannot reference this image ({exc}); export NIfTI instead.") from exc
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    seg.save_as(str(path))
    return path


def read_dicom_seg(path: str | Path, reference: ModalityImage, segment: int = 1) -> np.ndarray:
    """The segment of a DICOM SEG as a uint8 ZYX mask on `reference`'s grid (the series the SEG references)."""
    import highdicom as hd

    seg = hd.seg.segread(str(path))
    uids = [str(ds.SOPInstanceUID) for ds in _source_datasets(reference)]
    referenced = {str(r[2]) for r in seg.get_source_image_uids()}
    if not referenced & set(uids):
        raise ExportError(f"{path}: the segmentation references other images than the {reference.modality} series "
                          f"{reference.meta.source.get('series_uid')}.")
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, segment_numbers=[segment],
                                               ignore_spatial_locations=True, assert_missing_frames_are_empty=True)
    return pixels[..., 0].astype(np.uint8)


def write_mask_nifti(mask: np.ndarray, reference: ModalityImage, path: str | Path) -> Path:
    """The mask as NIfTI with the reference image's geometry (uint8, 1 = tumour)."""
    meta = reference.meta
    from engine.data import ImageMeta

    image = ModalityImage("mask", mask.astype(np.uint8), ImageMeta(8, "label", meta.spacing, origin=meta.origin,
                                                                   direction=meta.direction), ZYX)
    return write_nifti(image, path)


def write_measures_csv(rows: Sequence[Mapping[str, object]], path: str | Path) -> Path:
    """One row per case: its id, the model, and every measure (columns are the union, in first-seen order)."""
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    path = Path(path)
    with open_csv(path) as fh:  # text cells neutralised against formula injection, the file 0600
        writer = csv_dict_writer(fh, columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _tumour_segment(label: str, algorithm: str, version: str):
    """The one segment OncoLens writes: a neoplasm found automatically by the named AI algorithm."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    return hd.seg.SegmentDescription(
        segment_number=1, segment_label=label,
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Neoplasm,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(
            name=algorithm, version=version, family=codes.DCM.ArtificialIntelligence))
