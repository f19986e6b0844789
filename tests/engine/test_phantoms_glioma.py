"""The glioma specimen phantoms: deterministic, well-formed, balanced, and learnable without being trivial."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from engine.cases.bundle import read_bundle, write_bundle
from engine.cases.model import FL, WL
from engine.phantoms.glioma import (
    PatientEffects,
    make_glioma_dataset,
    make_specimen,
    specimen_to_case,
    write_glioma_demo_cases,
)

SIZE_RANGE = (96, 160)


@pytest.fixture(scope="module")
def dataset():
    return make_glioma_dataset(n_patients=16, specimens_per_patient=25, seed=0, size_range=SIZE_RANGE)


@pytest.fixture(scope="module")
def tumors(dataset):
    return [s for s in dataset if s.tumor]


def separation(labels, scores) -> float:
    """AUC of the better of the two threshold directions: how well a single cut on `scores` separates."""
    auc = roc_auc_score(labels, scores)
    return max(auc, 1.0 - auc)


def tray_level(fl: np.ndarray) -> float:
    """Background (tray) level: median of a 3-pixel frame around the image."""
    frame = np.concatenate([fl[:3].ravel(), fl[-3:].ravel(), fl[:, :3].ravel(), fl[:, -3:].ravel()])
    return float(np.median(frame))


def specimen_contrast(fl: np.ndarray) -> float:
    """Specimen-to-tray contrast: bright specimen level above the tray, relative to the tray level."""
    fl = fl.astype(np.float64)
    tray = tray_level(fl)
    return (np.percentile(fl, 97) - tray) / tray


def necrotic_fraction(spec) -> float:
    """Share of the specimen's interior much darker than its bright rim (a necrotic core)."""
    fl = cv2.GaussianBlur(spec.fl.astype(np.float32) - tray_level(spec.fl), (0, 0), 1.5)
    interior = cv2.erode(spec.mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    values = fl[interior]
    return float(np.mean(values < 0.3 * np.percentile(values, 95))) if values.size else 0.0


def red_speckle(spec) -> float:
    """Fine red dots in WL: positive high-pass of redness inside the specimen."""
    rgb = spec.wl.astype(np.float32)
    redness = rgb[..., 0] - 0.5 * (rgb[..., 1] + rgb[..., 2])
    detail = redness - cv2.GaussianBlur(redness, (0, 0), 1.5)
    interior = cv2.erode(spec.mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    return float(np.clip(detail[interior], 0, None).mean())


def test_same_seed_same_data_other_seed_other_data():
    a = make_glioma_dataset(n_patients=2, specimens_per_patient=4, seed=5)
    b = make_glioma_dataset(n_patients=2, specimens_per_patient=4, seed=5)
    c = make_glioma_dataset(n_patients=2, specimens_per_patient=4, seed=6)
    for x, y in zip(a, b, strict=True):
        assert x.specimen_id == y.specimen_id and x.labels == y.labels
        np.testing.assert_array_equal(x.fl, y.fl)
        np.testing.assert_array_equal(x.wl, y.wl)
    assert any(x.fl.shape != z.fl.shape or not np.array_equal(x.fl, z.fl) for x, z in zip(a, c, strict=True))


def test_images_are_aligned_16_bit_fl_and_8_bit_rgb_wl(dataset):
    for s in dataset:
        h, w = s.fl.shape
        assert s.fl.dtype == np.uint16 and s.fl.ndim == 2
        assert s.wl.dtype == np.uint8 and s.wl.shape == (h, w, 3)
        assert s.mask.dtype == bool and s.mask.shape == (h, w)
        assert SIZE_RANGE[0] <= h <= SIZE_RANGE[1] and SIZE_RANGE[0] <= w <= SIZE_RANGE[1]
    assert sum(s.fl.shape[0] != s.fl.shape[1] for s in dataset) > 0.8 * len(dataset)


def test_specimen_lies_inside_the_frame_on_a_dark_tray(dataset):
    for s in dataset:
        assert 0.05 < s.mask.mean() < 0.7
        assert not (s.mask[0].any() or s.mask[-1].any() or s.mask[:, 0].any() or s.mask[:, -1].any())
        # The tray is darker than the tissue in white light.
        grey = s.wl.mean(axis=2)
        assert np.median(grey[~s.mask]) < np.median(grey[s.mask])
    # FL uses the 16-bit range far beyond 8 bits.
    assert max(int(s.fl.max()) for s in dataset) > 4096


def test_class_balance_follows_the_paper_with_more_gbm(dataset, tumors):
    assert 0.6 <= np.mean([s.tumor for s in dataset]) <= 0.8
    assert 0.22 <= np.mean([s.grade for s in tumors]) <= 0.40
    assert 0.30 <= np.mean([s.ki67 for s in tumors]) <= 0.50


def test_grade_and_ki67_exist_only_for_tumors(dataset):
    for s in dataset:
        if s.tumor:
            assert s.grade in (0, 1) and s.ki67 in (0, 1)
        else:
            assert s.grade is None and s.ki67 is None


def test_every_patient_has_tumor_and_non_tumor_specimens(dataset):
    by_patient: dict[str, set[int]] = {}
    for s in dataset:
        by_patient.setdefault(s.patient_id, set()).add(s.tumor)
    assert len(by_patient) == 16
    assert all(classes == {0, 1} for classes in by_patient.values())


def test_raw_intensity_does_not_reveal_tumor_but_tray_contrast_does(dataset):
    y = [s.tumor for s in dataset]
    centre = [int(s.fl[s.fl.shape[0] // 2, s.fl.shape[1] // 2]) for s in dataset]
    assert separation(y, [s.fl.mean() for s in dataset]) < 0.75
    assert separation(y, [s.fl.max() for s in dataset]) < 0.75
    assert separation(y, centre) < 0.75
    assert separation(y, [specimen_contrast(s.fl) for s in dataset]) > 0.8


def test_grade_shows_as_necrotic_core_not_brightness(tumors):
    y = [s.grade for s in tumors]
    assert separation(y, [s.fl.mean() for s in tumors]) < 0.75
    assert separation(y, [necrotic_fraction(s) for s in tumors]) > 0.75


def test_ki67_shows_as_red_speckle_not_brightness(tumors):
    y = [s.ki67 for s in tumors]
    assert separation(y, [s.fl.mean() for s in tumors]) < 0.7
    assert separation(y, [red_speckle(s) for s in tumors]) > 0.6


def test_labels_are_noisy_so_no_reader_is_perfect(dataset, tumors):
    # The latent scores behind the evidence overlap between classes by design.
    assert 0.85 < separation([s.tumor for s in dataset], [s.latent["tumor"] for s in dataset]) < 0.98
    assert 0.78 < separation([s.grade for s in tumors], [s.latent["grade"] for s in tumors]) < 0.95
    assert 0.65 < separation([s.ki67 for s in tumors], [s.latent["ki67"] for s in tumors]) < 0.88


def test_make_specimen_checks_its_labels():
    rng = np.random.default_rng(0)
    patient = PatientEffects.draw(rng, "P001")
    spec = make_specimen(rng, patient=patient, tumor=1, grade=1, ki67=0, size=(100, 140))
    assert spec.fl.shape == (100, 140) and spec.labels == {"tumor": 1, "grade": 1, "ki67": 0}
    with pytest.raises(ValueError, match="grade=None"):
        make_specimen(rng, patient=patient, tumor=0, grade=1, ki67=None)
    with pytest.raises(ValueError, match="grade and ki67"):
        make_specimen(rng, patient=patient, tumor=1, grade=None, ki67=1)


def test_specimen_to_case_carries_images_meta_and_truth(dataset):
    spec = dataset[0]
    case = specimen_to_case(spec)
    assert case.kind == "glioma_specimen" and case.patient_id == spec.patient_id
    assert case.image(FL).meta.bit_depth == 16 and case.image(FL).meta.units == "counts"
    assert case.image(WL).meta.bit_depth == 8 and case.image(WL).meta.units == "RGB"
    assert case.image(FL).meta.spacing == (0.1, 0.1)
    assert case.truth.labels == spec.labels
    assert "synthetic" in case.truth.source


def test_case_round_trips_exactly_through_a_bundle(dataset, tmp_path):
    case = specimen_to_case(dataset[1])
    back = read_bundle(write_bundle(case, tmp_path / case.id))
    assert back.kind == case.kind and back.patient_id == case.patient_id
    assert back.truth.labels == case.truth.labels and back.truth.source == case.truth.source
    for modality in (FL, WL):
        assert back.image(modality).meta.to_dict() == case.image(modality).meta.to_dict()
        assert back.image(modality).array.dtype == case.image(modality).array.dtype
        np.testing.assert_array_equal(back.image(modality).array, case.image(modality).array)


def test_demo_cases_mix_the_classes_and_are_reproducible(tmp_path):
    paths = write_glioma_demo_cases(tmp_path / "a", n=6, seed=11)
    assert [p.name for p in paths] == [f"demo-glioma-{i:02d}" for i in range(1, 7)]
    cases = [read_bundle(p) for p in paths]
    assert all(c.kind == "glioma_specimen" and c.id == p.name for c, p in zip(cases, paths, strict=True))
    labels = [c.truth.labels for c in cases]
    assert sum(lab["tumor"] == 0 for lab in labels) == 2
    assert sum(lab["grade"] == 0 for lab in labels) == 2
    assert sum(lab["grade"] == 1 for lab in labels) == 2
    assert {lab["ki67"] for lab in labels if lab["tumor"]} == {0, 1}
    again = [read_bundle(p) for p in write_glioma_demo_cases(tmp_path / "b", n=6, seed=11)]
    for first, second in zip(cases, again, strict=True):
        np.testing.assert_array_equal(first.image(FL).array, second.image(FL).array)
        np.testing.assert_array_equal(first.image(WL).array, second.image(WL).array)
