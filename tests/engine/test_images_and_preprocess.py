import cv2
import numpy as np
import pytest

from engine.io.images import ImageReadError, read_image, write_image
from engine.preprocess.common import pad_to_square, square_resize
from engine.preprocess.fluorescence import autocontrast, log_normalise, normalise_fluorescence
from engine.preprocess.specimen import preprocess_specimen
from engine.train.fl_cnn import preprocessing_constants

FL_CONST = preprocessing_constants("FL", 64)
WL_CONST = preprocessing_constants("WL", 64)


def _blob(dtype, rgb=False, h=50, w=80):
    yy, xx = np.mgrid[:h, :w]
    base = np.exp(-((yy - h / 2) ** 2 + (xx - w / 2) ** 2) / 200.0)
    scale = np.iinfo(dtype).max
    img = (base * scale * 0.8).astype(dtype)
    return np.stack([img, img // 2, img // 3], axis=-1) if rgb else img


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("rgb", [False, True])
@pytest.mark.parametrize("const", [FL_CONST, WL_CONST], ids=["FL", "WL"])
def test_preprocess_any_depth_and_channels(dtype, rgb, const):
    x, geometry = preprocess_specimen(_blob(dtype, rgb), const)
    assert x.shape == (3, 64, 64) and x.dtype == np.float32
    assert np.isfinite(x).all()
    assert (geometry.height, geometry.width, geometry.side) == (50, 80, 80)


def test_fl_8_and_16_bit_give_similar_inputs():
    """The same scene at 8 and 16 bit must look alike to the net after normalisation + autocontrast."""
    img16 = _blob(np.uint16)
    img8 = (img16 // 257).astype(np.uint8)
    x16, _ = preprocess_specimen(img16, FL_CONST)
    x8, _ = preprocess_specimen(img8, FL_CONST)
    assert np.corrcoef(x16.ravel(), x8.ravel())[0, 1] > 0.95


def test_log_normalise_is_monotone_and_bounded():
    raw = np.arange(0, 65536, 257, dtype=np.uint16).reshape(16, 16)
    out = log_normalise(raw, 16)
    assert out.min() >= 0 and out.max() <= 1 and np.all(np.diff(out.ravel()) > 0)


def test_autocontrast_flat_image_stays_finite():
    out = autocontrast(np.full((20, 20), 0.3, np.float32), 1, 99)
    assert np.all(out == 0)


def test_denoise_applied_only_when_noisy():
    rng = np.random.default_rng(0)
    clean = (_blob(np.uint16)).astype(np.float32)
    noisy = np.clip(clean + rng.normal(0, 6000, clean.shape), 0, 65535).astype(np.uint16)
    a = normalise_fluorescence(noisy, 16, FL_CONST)
    b = normalise_fluorescence(clean.astype(np.uint16), 16, FL_CONST)
    # median filtering must reduce the pixel-to-pixel roughness of the noisy input
    rough = lambda im: np.abs(np.diff(im, axis=1)).mean()  # noqa: E731
    from engine.preprocess.fluorescence import autocontrast as ac
    from engine.preprocess.fluorescence import log_normalise as ln
    undenoised = ac(ln(noisy, 16, FL_CONST["log_gain"]), 1.0, 99.5)
    assert rough(a) < rough(undenoised)
    assert rough(b) < rough(a)


def test_zero_pad_centres_non_square():
    img = np.ones((10, 30), np.float32)
    padded, top, left = pad_to_square(img)
    assert padded.shape == (30, 30) and (top, left) == (10, 0)
    assert padded[:10].sum() == 0 and padded[20:].sum() == 0
    square, geometry = square_resize(img, 15)
    back = geometry.to_original(np.ones((15, 15), np.float32))
    assert back.shape == (10, 30)


@pytest.mark.parametrize("dtype,rgb", [(np.uint8, False), (np.uint16, False), (np.uint8, True), (np.uint16, True)])
def test_png_round_trip_exact(tmp_path, dtype, rgb):
    img = _blob(dtype, rgb)
    write_image(tmp_path / "x.png", img)
    back, meta = read_image(tmp_path / "x.png")
    assert back.dtype == img.dtype and np.array_equal(back, img)
    assert meta.bit_depth == (8 if dtype == np.uint8 else 16)


def test_empty_file_is_a_clear_error(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"empty\.png.*empty"):
        read_image(path)


def test_corrupt_file_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.png"
    ok, buf = cv2.imencode(".png", _blob(np.uint8))
    path.write_bytes(buf.tobytes()[:40])
    with pytest.raises(ImageReadError, match=r"broken\.png.*corrupt"):
        read_image(path)


def test_wrong_type_and_missing_file(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ImageReadError, match="unsupported file type"):
        read_image(tmp_path / "notes.txt")
    with pytest.raises(ImageReadError, match="not found"):
        read_image(tmp_path / "nope.png")


def test_nan_array_rejected():
    bad = np.full((20, 20), np.nan, np.float32)
    with pytest.raises(ImageReadError, match="NaN"):
        preprocess_specimen(bad, FL_CONST, where="scan.npy")
