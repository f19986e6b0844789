"""US and CT input (PNG/JPEG/BMP captures, DICOM US single and multi-frame, CT slices and series), nodule boxes
and the paper's crops; every bad input is an error naming the file and the fix."""

import cv2
import numpy as np
import pytest

from engine.io.images import write_image
from engine.io.us_ct import UsCtReadError, read_ct, read_us
from engine.phantoms.thyroid import US_REGION, make_thyroid_dataset
from engine.preprocess.us_ct import (
    Box,
    RoiError,
    boundary_band,
    clean_us_capture,
    detect_us_region,
    preprocessing_constants,
    square_crop,
    tissue_edges,
    us_crop_unit,
    window_ct,
)
from tests.engine.dicom_fixtures import us_region, write_ct, write_dicom


@pytest.fixture(scope="module")
def nodule():
    return make_thyroid_dataset(1, seed=3)[0]


def test_us_captures_read_as_8_bit_grey_from_png_jpeg_bmp_and_rgb(tmp_path, nodule):
    grey = nodule.us[0]
    for suffix in (".png", ".bmp", ".jpg"):
        write_image(tmp_path / f"us{suffix}", grey)
        array, meta = read_us(tmp_path / f"us{suffix}")
        assert array.dtype == np.uint8 and array.shape == grey.shape and meta.bit_depth == 8
    rgb = np.repeat(grey[..., None], 3, axis=2)
    rgb[5:20, 5:60] = (255, 255, 0)  # a coloured annotation
    write_image(tmp_path / "capture.png", rgb)
    array, meta = read_us(tmp_path / "capture.png")
    assert array.ndim == 2 and meta.extra["captured_as"] == "RGB"
    assert np.abs(array[100:, 100:].astype(int) - grey[100:, 100:]).max() <= 1


def test_a_16_bit_us_is_refused_naming_the_file_and_the_fix(tmp_path):
    write_image(tmp_path / "us16.png", np.full((64, 64), 3000, np.uint16))
    with pytest.raises(UsCtReadError, match=r"us16\.png.*8-bit.*Export"):
        read_us(tmp_path / "us16.png")


def test_dicom_us_single_and_multi_frame_with_region_calibration(tmp_path, nodule):
    region = us_region(34, 26, 294, 230, 0.025)
    write_dicom(tmp_path / "us1.dcm", nodule.us[0], "US", SequenceOfUltrasoundRegions=[region])
    array, meta = read_us(tmp_path / "us1.dcm")
    assert np.array_equal(array, nodule.us[0]) and meta.spacing == (0.25, 0.25)
    assert meta.extra["us_region"]["x0"] == 34 and meta.extra["us_region"]["y1"] == 230
    clip = np.stack([nodule.us[0], nodule.us[1], 255 - nodule.us[0]])
    write_dicom(tmp_path / "clip.dcm", clip, "US")
    array, meta = read_us(tmp_path / "clip.dcm", frame=1)
    assert np.array_equal(array, nodule.us[1]) and meta.extra["frames"] == 3 and meta.spacing is None
    with pytest.raises(UsCtReadError, match=r"clip\.dcm: frame 5 does not exist; the clip has frames 0-2"):
        read_us(tmp_path / "clip.dcm", frame=5)


def test_ct_slice_and_series_are_rescaled_to_hu_and_the_slice_is_chosen(tmp_path, nodule):
    write_ct(tmp_path / "ct.dcm", nodule.ct[0])
    hu, meta = read_ct(tmp_path / "ct.dcm")
    assert np.array_equal(hu, nodule.ct[0]) and meta.units == "HU" and meta.spacing == (0.7, 0.7)
    series = tmp_path / "series"
    series.mkdir()
    for z, k in ((2.0, 2), (0.0, 0), (1.0, 1)):  # written out of order: sorted by position
        write_ct(series / f"slice{k}.dcm", nodule.ct[k], series="1.2.3.4", z=z)
    assert np.array_equal(read_ct(series, 2)[0], nodule.ct[2])
    assert read_ct(series)[1].extra["slice"] == 1  # the middle one by default
    with pytest.raises(UsCtReadError, match="slice 7 does not exist"):
        read_ct(series, 7)


def test_ct_without_rescale_tags_and_wrong_modalities_are_refused(tmp_path, nodule):
    write_ct(tmp_path / "norescale.dcm", nodule.ct[0], rescale=False)
    with pytest.raises(UsCtReadError, match=r"norescale\.dcm: CT without RescaleSlope/RescaleIntercept.*PACS"):
        read_ct(tmp_path / "norescale.dcm")
    write_ct(tmp_path / "ct.dcm", nodule.ct[0])
    with pytest.raises(UsCtReadError, match=r"ct\.dcm: the DICOM modality is CT, not US.*CT slot"):
        read_us(tmp_path / "ct.dcm")
    write_dicom(tmp_path / "us.dcm", nodule.us[0], "US")
    with pytest.raises(UsCtReadError, match=r"us\.dcm: the DICOM modality is US, not CT.*US slot"):
        read_ct(tmp_path / "us.dcm")
    write_image(tmp_path / "ct_screenshot.png", nodule.us[0])
    with pytest.raises(UsCtReadError, match="CT must be DICOM"):
        read_ct(tmp_path / "ct_screenshot.png")


def test_bad_boxes_give_clear_errors():
    with pytest.raises(RoiError, match="empty"):
        Box(10, 10, 11, 40).checked((100, 100), "US image us.png")
    with pytest.raises(RoiError, match=r"US image us\.png: the nodule box \(300, 10, 340, 50\) lies outside the "
                                       r"100 x 100 image"):
        Box(300, 10, 340, 50).checked((100, 100), "US image us.png")
    with pytest.raises(RoiError, match="four finite numbers"):
        Box.parse("1,2,3", "CT image")
    assert Box.parse("1;2;30;40").width == 29


def test_the_paper_square_crop_grows_the_box_by_the_margin_and_pads_with_zeros():
    crop = square_crop(Box(100, 50, 140, 70), margin=40, size=96)
    assert crop.side == 120 and crop.left == 60 and crop.top == 0  # 40 + 80 wide, centred
    image = np.full((100, 100), 200, np.uint8)
    cut = square_crop(Box(0, 0, 20, 20), 10, 40).cut(image)
    assert cut[0, 0] == 0 and cut[30, 30] == 200  # outside the image: zero padding


def test_burned_in_text_and_marks_never_enter_the_us_crop(nodule):
    capture = nodule.us[0]
    x0, y0, x1, y1 = detect_us_region(capture)
    ry0, rx0, ry1, rx1 = US_REGION
    assert abs(x0 - rx0) <= 2 and abs(y0 - ry0) <= 2 and abs(x1 - rx1) <= 2 and abs(y1 - ry1) <= 2
    cleaned, _, _ = clean_us_capture(capture)
    assert cleaned[:ry0].max() == 0 and cleaned[:, rx1:].max() == 0  # header text, depth scale and crosses
    assert cleaned.max() < 250  # no saturated overlay stroke left inside the image
    constants = preprocessing_constants(64, 32)
    corner = Box(rx1 - 30, ry0, rx1 + 30, ry0 + 40)  # a box touching the text: the crop still holds none
    unit, _, _ = us_crop_unit(capture, corner, constants)
    assert unit.max() < 250 / 255


def test_targets_boundary_band_and_ct_tissue_edges(nodule):
    mask = np.zeros((96, 96), np.uint8)
    cv2.circle(mask, (48, 48), 20, 1, -1)
    band = boundary_band(mask, 0.08)  # d = 7.7 px: 4 iterations each way
    assert band[48, 48 + 20] and not band[48, 48] and not band[0, 0]
    assert 6 <= band[48, 40:].sum() <= 10
    windowed = window_ct(nodule.ct[0], -100, 200)
    assert windowed.dtype == np.uint8 and windowed.max() == 255 and windowed.min() == 0
    edges = tissue_edges(windowed, preprocessing_constants(64, 32))
    assert edges.dtype == bool and 0 < edges.mean() < 0.3
