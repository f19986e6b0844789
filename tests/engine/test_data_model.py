"""The typed data model: images with explicit axes and geometry, predictions with typed per-task results."""

import json
import math

import numpy as np
import pytest

from engine.cases.bundle import read_bundle, write_bundle
from engine.cases.model import Case
from engine.data import (
    ImageMeta,
    ModalityImage,
    Prediction,
    PredictionError,
    PredictionSummary,
    TaskResult,
    image_of,
    model_id,
)
from engine.store import Store

ROTATED = (0.0, 0.0, 1.0,  # z along x, y along -y, x along z: orthonormal, not the identity
           0.0, -1.0, 0.0,
           1.0, 0.0, 0.0)


def volume_case() -> Case:
    rng = np.random.default_rng(5)
    case = Case(id="vol-1", kind="sarcoma_petct", patient_id="P-vol")
    meta = ImageMeta(32, "SUV", (3.27, 0.9765625, 0.9765625), origin=(-250.5, -180.25, 1042.0), direction=ROTATED,
                     source={"SeriesInstanceUID": "1.2.3.4.5"}, extra={"decay_corrected": True})
    case.add_image("PET", rng.gamma(2.0, 1.3, (7, 20, 24)).astype(np.float32), meta, axes="ZYX")
    ct = ImageMeta(16, "HU", (3.27, 0.9765625, 0.9765625), origin=(-250.5, -180.25, 1042.0), direction=ROTATED)
    case.add_image("CT", rng.integers(-1024, 3000, (7, 20, 24)).astype(np.int16), ct, axes="ZYX")
    return case


def test_axes_tell_a_three_slice_volume_from_an_rgb_image():
    data = np.zeros((8, 8, 3), np.uint8)
    assert ModalityImage("WL", data, ImageMeta(8)).axes == "YXC"
    volume = ModalityImage("PET", np.zeros((3, 8, 8), np.float32), ImageMeta(32, spacing=(2, 1, 1)), "ZYX")
    assert volume.spatial_shape == (3, 8, 8) and volume.is_volume and not volume.is_rgb
    with pytest.raises(ValueError, match="say its axes"):
        ModalityImage("PET", np.zeros((3, 8, 8), np.float32), ImageMeta(32))
    with pytest.raises(ValueError, match="3 colour channels"):
        ModalityImage("WL", np.zeros((8, 8, 4), np.uint8), ImageMeta(8), "YXC")
    with pytest.raises(ValueError, match="one per spatial axis"):
        ModalityImage("PET", np.zeros((3, 8, 8), np.float32), ImageMeta(32, spacing=(1, 1)), "ZYX")
    with pytest.raises(ValueError, match="orthonormal"):
        ModalityImage("CT", np.zeros((8, 8), np.int16), ImageMeta(16, direction=(1, 0, 0, 2)))
    with pytest.raises(ValueError, match="positive"):
        ImageMeta(8, spacing=(0.0, 1.0))


def test_the_affine_maps_indices_to_physical_millimetres():
    image = volume_case().images["PET"]
    affine = image.affine()
    spacing, origin = np.array(image.meta.spacing), np.array(image.meta.origin)
    index = np.array([2, 5, 7])
    expected = origin + np.array(ROTATED).reshape(3, 3) @ (spacing * index)
    assert np.allclose(affine[:3, :3] @ index + affine[:3, 3], expected)
    assert ModalityImage("NIR", np.zeros((4, 4)), ImageMeta(8)).affine().shape == (3, 3)


def test_a_zyx_volume_round_trips_through_a_bundle_and_the_store_bit_exactly(tmp_path):
    case = volume_case()
    folder = write_bundle(case, tmp_path / "bundle")
    with Store(f"sqlite:///{tmp_path / 'store.sqlite3'}") as store:
        store.add_case(case, folder)
        back = store.load_case("vol-1")
        assert store.list_cases()[0].modalities == ("PET", "CT")
    for modality, image in case.images.items():
        other = back.images[modality]
        assert other.axes == "ZYX" and other.array.dtype == image.array.dtype
        assert other.array.tobytes() == image.array.tobytes()  # bit-exact
        assert other.meta == image.meta
        assert np.array_equal(other.affine(), image.affine())
    assert read_bundle(folder).images["PET"].meta.direction == ROTATED


def test_predictions_carry_family_variant_and_typed_results():
    pred = Prediction(family="fl_cnn", variant="FL")
    pred.set_result("tumor", "tumor", 0.8, 0.3)
    pred.set_result("grade", "not assessed (non-tumor call)", threshold=0.6)
    assert pred.model == model_id("fl_cnn", "FL") == "fl_cnn[FL]"
    assert pred.probabilities == {"tumor": 0.8} and pred.thresholds == {"tumor": 0.3, "grade": 0.6}
    assert pred.tasks["tumor"].positive and not pred.tasks["grade"].assessed
    with pytest.raises(TypeError):
        pred.probabilities["tumor"] = 0.1  # results change only through set_result
    summary = pred.summary()
    again = PredictionSummary.from_dict(json.loads(json.dumps(summary.to_dict())))
    assert again == summary


@pytest.mark.parametrize("bad", [math.nan, math.inf, -0.1, 1.5, "0.5x"])
def test_a_model_output_that_is_not_a_probability_is_an_error_never_a_call(bad):
    pred = Prediction(family="fl_cnn", variant="FL")
    with pytest.raises(PredictionError, match="fl_cnn\\[FL\\] tumor"):
        pred.set_result("tumor", "non-tumor", bad, 0.5)
    assert "tumor" not in pred.tasks


def test_format_1_summaries_are_read_without_parsing_elsewhere():
    old = {"model": "mfi_ffp[WLI+FI]", "weights_sha256": {"x": "ab"}, "probabilities": {"metastatic": 0.25},
           "thresholds": {"metastatic": 0.3}, "calls": {"metastatic": "benign"}, "timings_ms": {"total": 5},
           "device": "cpu", "created": "2026-01-01", "notes": [], "masks": [], "heatmaps": ["metastatic/WLI"]}
    summary = PredictionSummary.from_dict(old)
    assert (summary.family, summary.variant) == ("mfi_ffp", "WLI+FI")
    assert summary.tasks == {"metastatic": TaskResult("benign", 0.25, 0.3)}
    assert summary.heatmap_names == ("metastatic/WLI",)
    assert summary.to_dict()["summary_version"] == 2


def test_image_of_takes_the_bit_depth_from_the_dtype():
    assert image_of("FL", np.zeros((4, 4), np.uint16)).meta.bit_depth == 16
    assert image_of("FL", np.zeros((4, 4), np.uint16), 12, spacing=(0.1, 0.1)).meta.bit_depth == 12
