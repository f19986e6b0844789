"""DICOM series and NIfTI volumes: geometry (oblique, flipped, shuffled files), sources (folder, zip, DICOMDIR),
and every bad input named in the issue, each on a tiny series written here."""

from __future__ import annotations

import shutil
import zipfile

import numpy as np
import pydicom
import pytest
from scipy.spatial.transform import Rotation

from engine.data import HU, SUV, ZYX, ModalityImage
from engine.io.dicom import DicomError, describe_series, pick_pet_ct, read_petct, read_series, scan_series
from engine.io.dicom_write import new_acquisition, write_series
from engine.io.nifti import NiftiError, read_nifti, write_nifti
from engine.io.volumes import Grid

SHAPE = (6, 8, 10)
MARK = (4, 2, 7)


def volume(direction=None, spacing=(3.0, 2.0, 1.5), origin=(10.0, -20.0, 30.0), modality="CT", units=HU):
    array = np.arange(np.prod(SHAPE), dtype=np.float32).reshape(SHAPE) % 50 - 20
    array[MARK] = 900
    grid = Grid(SHAPE, spacing, origin, tuple(np.eye(3).ravel()) if direction is None else direction)
    return ModalityImage(modality, array, grid.meta(16, units), ZYX)


def rotated(degrees=(20, -10, 35)):
    return tuple(Rotation.from_euler("zyx", degrees, degrees=True).as_matrix().ravel())


def mark_point(image):
    index = np.unravel_index(int(np.argmax(image.array)), image.array.shape)
    return Grid.of(image).to_physical(np.asarray(index, float))


@pytest.fixture
def acq():
    return new_acquisition("PX1")


@pytest.mark.parametrize("direction", [None, rotated(), (1, 0, 0, 0, -1, 0, 0, 0, -1), (-1, 0, 0, 0, 1, 0, 0, 0, 1)],
                         ids=["axial", "oblique", "flipped-yx", "flipped-z"])
def test_a_series_reads_back_with_its_geometry_whatever_the_orientation(tmp_path, acq, direction):
    image = volume(direction)
    write_series(image, tmp_path / "ct", acq, "CT", file_names="shuffled")
    (info,) = scan_series(tmp_path)
    back, warnings = read_series(info)
    assert back.axes == ZYX and back.meta.units == HU and not warnings
    np.testing.assert_allclose(mark_point(back), mark_point(image), atol=1e-3)
    ordered = Grid.of(back)
    np.testing.assert_allclose(ordered.spacing, image.meta.spacing, atol=1e-4)
    # the reader orders slices along the normal: the same array, or the same one read from the other end
    same = np.array_equal(back.array, image.array.astype(np.int16)) or np.array_equal(
        back.array[::-1], image.array.astype(np.int16))
    assert same


def test_pet_series_becomes_suv_with_the_factor_kept(tmp_path, acq):
    pet = volume(modality="PET", units=SUV)
    pet.array[:] = np.abs(pet.array) / 100
    write_series(pet, tmp_path / "pt", acq, "PT")
    (info,) = scan_series(tmp_path)
    back, _ = read_series(info)
    assert back.meta.units == SUV and back.meta.extra["suv"]["factor"] == pytest.approx(acq.suv_factor())
    np.testing.assert_allclose(back.array, pet.array, atol=2e-3 * pet.array.max())
    assert back.meta.extra["suv"]["inputs"]["weight_kg"] == pytest.approx(acq.weight_kg)


def test_folder_zip_and_dicomdir_give_the_same_pet_ct_pair(tmp_path, acq):
    write_series(volume(), tmp_path / "study" / "ct", acq, "CT")
    write_series(volume(modality="PET", units=SUV), tmp_path / "study" / "pt", acq, "PT")
    (tmp_path / "study" / "notes.txt").write_text("not dicom")
    images, _ = read_petct(tmp_path / "study")
    with zipfile.ZipFile(tmp_path / "study.zip", "w") as z:
        for f in (tmp_path / "study").rglob("*.dcm"):
            z.write(f, f.relative_to(tmp_path))
    zipped, _ = read_petct(tmp_path / "study.zip")
    from pydicom.fileset import FileSet

    fs = FileSet()
    for f in sorted((tmp_path / "study").rglob("*.dcm")):
        fs.add(str(f))
    fs.write(tmp_path / "media")
    media, _ = read_petct(tmp_path / "media" / "DICOMDIR")
    for other in (zipped, media):
        for code in ("PET", "CT"):
            np.testing.assert_array_equal(other[code].array, images[code].array)
            assert other[code].meta.origin == images[code].meta.origin


def _series(tmp_path, acq, **kw):
    paths = write_series(volume(**kw), tmp_path / "ct", acq, "CT")
    return sorted(paths, key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2]))


def _edit(path, **changes):
    ds = pydicom.dcmread(path)
    for key, value in changes.items():
        setattr(ds, key, value)
    ds.save_as(path)


def _read(tmp_path):
    return read_series(next(s for s in scan_series(tmp_path) if s.is_image))


def test_a_missing_slice_is_an_error_naming_the_neighbours(tmp_path, acq):
    paths = _series(tmp_path, acq)
    paths[3].unlink()
    with pytest.raises(DicomError, match=r"1 slice\(s\) missing between .*"):
        _read(tmp_path)


def test_an_identical_duplicate_is_skipped_with_a_warning(tmp_path, acq):
    paths = _series(tmp_path, acq)
    shutil.copy(paths[2], tmp_path / "ct" / "copy.dcm")
    image, warnings = _read(tmp_path)
    assert image.array.shape == SHAPE and "duplicates" in warnings[0]


def test_two_different_slices_at_one_position_are_refused(tmp_path, acq):
    paths = _series(tmp_path, acq)
    ds = pydicom.dcmread(paths[2])
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.PixelData = (ds.pixel_array + 5).astype(np.int16).tobytes()
    ds.save_as(tmp_path / "ct" / "other.dcm")
    with pytest.raises(DicomError, match="same position"):
        _read(tmp_path)


def test_uneven_spacing_is_refused(tmp_path, acq):
    paths = _series(tmp_path, acq)
    ds = pydicom.dcmread(paths[4])
    _edit(paths[4], ImagePositionPatient=[*ds.ImagePositionPatient[:2], float(ds.ImagePositionPatient[2]) + 1.0])
    with pytest.raises(DicomError, match="uneven slice spacing"):
        _read(tmp_path)


def test_a_sheared_gantry_tilt_stack_is_refused(tmp_path, acq):
    for k, path in enumerate(_series(tmp_path, acq)):
        ds = pydicom.dcmread(path)
        _edit(path, ImagePositionPatient=[ds.ImagePositionPatient[0], float(ds.ImagePositionPatient[1]) + 0.5 * k,
                                          ds.ImagePositionPatient[2]])
    with pytest.raises(DicomError, match="gantry tilt"):
        _read(tmp_path)


@pytest.mark.parametrize("change, message", [
    (dict(ImageOrientationPatient=[0, 1, 0, 0, 0, -1]), "mixes stacks"),
    (dict(Rows=4), "mixes image sizes"),
])
def test_mixed_stacks_in_one_series_are_refused(tmp_path, acq, change, message):
    paths = _series(tmp_path, acq)
    if "Rows" in change:
        ds = pydicom.dcmread(paths[1])
        ds.Rows = 4
        ds.PixelData = ds.pixel_array[:4].tobytes()
        ds.save_as(paths[1])
    else:
        _edit(paths[1], **change)
    with pytest.raises(DicomError, match=message):
        _read(tmp_path)


def test_missing_position_is_an_error(tmp_path, acq):
    paths = _series(tmp_path, acq)
    ds = pydicom.dcmread(paths[0])
    del ds.ImagePositionPatient
    ds.save_as(paths[0])
    with pytest.raises(DicomError, match="ImagePositionPatient"):
        _read(tmp_path)


def test_mixed_series_in_one_folder_are_listed_and_an_ambiguous_pair_is_refused(tmp_path, acq):
    write_series(volume(), tmp_path / "all", acq, "CT", description="CT A")
    write_series(volume(), tmp_path / "all", acq, "CT", description="CT B", series_number=2)
    pet = volume(modality="PET", units=SUV)
    write_series(pet, tmp_path / "pet", acq, "PT")
    series = scan_series(tmp_path)
    assert sorted(s.modality for s in series) == ["CT", "CT", "PT"]
    with pytest.raises(DicomError, match="Several PET/CT pairs"):
        pick_pet_ct(series)


def test_pet_without_ct_is_refused(tmp_path, acq):
    write_series(volume(modality="PET", units=SUV), tmp_path, acq, "PT")
    with pytest.raises(DicomError, match="No PET and CT"):
        read_petct(tmp_path)


def test_compressed_series_decode_and_an_unknown_syntax_names_the_file(tmp_path, acq):
    from pydicom.uid import RLELossless

    paths = _series(tmp_path, acq)
    reference, _ = _read(tmp_path)
    for path in paths:
        ds = pydicom.dcmread(path)
        ds.compress(RLELossless)
        ds.save_as(path)
    image, _ = _read(tmp_path)
    np.testing.assert_array_equal(image.array, reference.array)
    ds = pydicom.dcmread(paths[0])
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: no pixel handler decodes it
    ds.save_as(paths[0], enforce_file_format=False)
    with pytest.raises(DicomError, match=r"MPEG2|1\.2\.840\.10008\.1\.2\.4\.100"):
        _read(tmp_path)


def test_pet_without_weight_names_the_tag_and_dicom_info_reports_it(tmp_path, acq):
    pet = volume(modality="PET", units=SUV)
    paths = write_series(pet, tmp_path, acq, "PT")
    for path in paths:
        ds = pydicom.dcmread(path)
        del ds.PatientWeight
        ds.save_as(path)
    with pytest.raises(ValueError, match="PatientWeight"):
        _read(tmp_path)
    (entry,) = describe_series(tmp_path)
    assert "PatientWeight" in entry["suv_error"]


def test_a_broken_dcm_file_is_named(tmp_path, acq):
    _series(tmp_path, acq)
    (tmp_path / "ct" / "broken.dcm").write_bytes(b"not a dicom file at all")
    with pytest.raises(DicomError, match="broken.dcm"):
        scan_series(tmp_path)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize("direction", [None, rotated(), (1, 0, 0, 0, -1, 0, 0, 0, -1)], ids=["identity", "oblique", "flip"])
def test_nifti_round_trip_keeps_array_and_geometry(tmp_path, suffix, direction):
    image = volume(direction, units=SUV, modality="PET")
    path = write_nifti(image, tmp_path / f"pet{suffix}")
    back = read_nifti(path, "PET")
    np.testing.assert_array_equal(back.array, image.array)
    assert back.meta.units == SUV
    for field in ("spacing", "origin", "direction"):
        np.testing.assert_allclose(getattr(back.meta, field), getattr(image.meta, field), atol=1e-5)


def test_nifti_affine_is_ras_and_matches_the_dicom_lps_point(tmp_path):
    import nibabel as nib

    image = volume(rotated())
    path = write_nifti(image, tmp_path / "ct.nii.gz")
    affine = nib.load(str(path)).affine
    k, j, i = MARK
    ras = affine @ np.array([i, j, k, 1.0])
    lps_zyx = mark_point(image)
    np.testing.assert_allclose([-ras[0], -ras[1], ras[2]], lps_zyx[::-1], atol=1e-4)


def test_bad_nifti_files_are_named(tmp_path):
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4, 3), np.float32), np.eye(4)), str(tmp_path / "dyn.nii"))
    with pytest.raises(NiftiError, match="4-D"):
        read_nifti(tmp_path / "dyn.nii", "PET")
    sheared = np.eye(4)
    sheared[0, 1] = 0.5
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), sheared), str(tmp_path / "shear.nii"))
    with pytest.raises(NiftiError, match="sheared"):
        read_nifti(tmp_path / "shear.nii", "PET")
    (tmp_path / "junk.nii").write_bytes(b"junk")
    with pytest.raises(NiftiError, match="junk.nii"):
        read_nifti(tmp_path / "junk.nii", "PET")
