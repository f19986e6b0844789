"""The tri-modal lymph-node phantoms: well-formed, aligned, deterministic, and each cue readable in its own mode only."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from engine.cases.bundle import read_bundle
from engine.phantoms.lymph_node import (
    CUE_STRENGTH,
    MODALITIES,
    make_node,
    make_node_dataset,
    node_to_case,
    write_node_demo_cases,
)


@pytest.fixture(scope="module")
def balanced_nodes():
    """50 benign and 50 metastatic nodes at the model input size, for checks of what each image shows."""
    rng = np.random.default_rng(7)
    return [make_node(rng, i % 2) for i in range(100)]


def auc(records, score) -> float:
    return roc_auc_score([r.label for r in records], [score(r) for r in records])


def within_class_correlation(records, score, cue: str) -> float:
    """Rank correlation of `score` with a latent cue inside each class, averaged: does the image follow the cue
    itself, beyond what the label explains?"""
    rhos = []
    for label in (0, 1):
        group = [r for r in records if r.label == label]
        rhos.append(spearmanr([score(r) for r in group], [r.cues[cue] for r in group])[0])
    return float(np.mean(rhos))


def inner_mask(record, margin: int = 3) -> np.ndarray:
    kernel = np.ones((2 * margin + 1, 2 * margin + 1), np.uint8)
    return cv2.erode(record.mask.astype(np.uint8), kernel).astype(bool)


def border_median(img: np.ndarray) -> float:
    """Median of a 4-pixel frame around a grey image (bare cloth)."""
    return float(np.median(np.concatenate([img[:4].ravel(), img[-4:].ravel(), img[:, :4].ravel(), img[:, -4:].ravel()])))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


# Crude readers, one per cue: each uses one image and the node mask.


def whiteness(img: np.ndarray, record) -> float:
    """WLI cue: how grey-white (unsaturated) the node surface is, mean of min/max over RGB."""
    px = img[inner_mask(record)].astype(np.float32)
    return float(np.mean(px.min(1) / (px.max(1) + 1.0)))


def uptake_variation(img: np.ndarray, record) -> float:
    """FI cue: coefficient of variation of the smoothed intensity inside the node (cold defects)."""
    grey = img.astype(np.float32) if img.ndim == 2 else img.astype(np.float32).mean(-1)
    values = cv2.GaussianBlur(grey, (0, 0), 1.5)[inner_mask(record)]
    return float(values.std() / (values.mean() + 1.0))


def spill_outside(img: np.ndarray, record) -> float:
    """PCI cue: bright excess over the local background outside the node (tracer spill along lymphatics)."""
    plane = np.ascontiguousarray(img[..., 1] if img.ndim == 3 else img)
    excess = plane.astype(np.float32) - cv2.medianBlur(plane, 21).astype(np.float32)
    outside = ~cv2.dilate(record.mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    return float(np.clip(excess[outside] - 20.0, 0, None).sum())


# --------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("label", [0, 1])
def test_node_images_have_the_documented_shapes_and_types(label):
    record = make_node(np.random.default_rng(label), label, size=160)
    assert record.images["WLI"].shape == (160, 160, 3) and record.images["WLI"].dtype == np.uint8
    assert record.images["FI"].shape == (160, 160) and record.images["FI"].dtype == np.uint8
    assert record.images["PCI"].shape == (160, 160, 3) and record.images["PCI"].dtype == np.uint8
    assert record.mask.shape == (160, 160) and record.mask.dtype == bool
    assert 0.01 < record.mask.mean() < 0.5
    assert record.label == label and set(record.cues) == {"s_W", "s_F", "s_P"}


def test_bad_arguments_are_refused_with_a_clear_message():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="label must be 0"):
        make_node(rng, 2)
    with pytest.raises(ValueError, match="at least 64"):
        make_node(rng, 0, size=32)


def test_the_three_images_are_aligned_with_the_node_mask(balanced_nodes):
    for record in balanced_nodes[:40]:
        # The cloth is blue-green (little red); the node is pink, tan, yellow or greyish-white.
        wli = record.images["WLI"].astype(np.float32)
        assert iou(wli[..., 0] > 0.6 * wli[..., 2], record.mask) > 0.9

        fi = cv2.GaussianBlur(record.images["FI"].astype(np.float32), (0, 0), 1.0)
        background = border_median(fi)
        top = float(np.percentile(fi[record.mask], 95))
        assert iou(fi > background + 0.15 * (top - background), record.mask) > 0.85

        pci = record.images["PCI"][inner_mask(record)].astype(np.int16)
        overlay_red = (pci[:, 0] > 170) & (pci[:, 2] < 90)
        assert overlay_red.mean() > 0.95  # the saturated overlay covers the whole node


def test_same_seed_same_node_and_different_seed_different_node():
    a, b = (make_node(np.random.default_rng(42), 1, size=96) for _ in range(2))
    c = make_node(np.random.default_rng(43), 1, size=96)
    for modality in MODALITIES:
        np.testing.assert_array_equal(a.images[modality], b.images[modality])
    np.testing.assert_array_equal(a.mask, b.mask)
    assert a.cues == b.cues
    assert not np.array_equal(a.images["WLI"], c.images["WLI"])


def test_dataset_is_deterministic_with_about_one_positive_in_eleven():
    nodes = make_node_dataset(n_patients=20, nodes_per_patient=12, seed=3, size=64)
    again = make_node_dataset(n_patients=2, nodes_per_patient=12, seed=3, size=64)
    first_two = [n for n in nodes if n.patient_id in ("P001", "P002")]
    assert [n.node_id for n in first_two] == [n.node_id for n in again]
    np.testing.assert_array_equal(first_two[-1].images["PCI"], again[-1].images["PCI"])

    counts = np.bincount([int(n.patient_id[1:]) for n in nodes])[1:]
    assert counts.min() >= 7 and counts.max() <= 17 and len(set(counts)) > 1  # varies around 12
    assert len({n.node_id for n in nodes}) == len(nodes)
    rate = np.mean([n.label for n in nodes])
    assert 0.05 < rate < 0.14, rate


def test_latent_cues_follow_the_label_independently():
    rng = np.random.default_rng(5)
    nodes = [make_node(rng, i % 2, size=64) for i in range(120)]
    labels = np.array([n.label for n in nodes])
    cues = np.array([[n.cues[k] for k in ("s_W", "s_F", "s_P")] for n in nodes])
    shift = cues[labels == 1].mean(0) - cues[labels == 0].mean(0)
    assert np.all(np.abs(shift - CUE_STRENGTH) < 0.5)
    within = np.corrcoef((cues - np.where(labels[:, None] == 1, CUE_STRENGTH, 0.0)).T)
    assert np.all(np.abs(within[np.triu_indices(3, 1)]) < 0.25)  # independent given the label


def test_each_cue_is_readable_from_its_own_modality(balanced_nodes):
    assert auc(balanced_nodes, lambda r: whiteness(r.images["WLI"], r)) > 0.65
    assert auc(balanced_nodes, lambda r: uptake_variation(r.images["FI"], r)) > 0.65
    # PCI's spill lies outside the node: it varies (below) but carries no label (issue 18: no leakage)
    assert abs(auc(balanced_nodes, lambda r: spill_outside(r.images["PCI"], r)) - 0.5) < 0.12


def test_cues_do_not_leak_into_the_other_modalities(balanced_nodes):
    # The spill lies below the FI noise floor, and white light does not show it at all.
    assert abs(auc(balanced_nodes, lambda r: spill_outside(r.images["FI"], r)) - 0.5) < 0.12
    assert abs(auc(balanced_nodes, lambda r: spill_outside(r.images["WLI"], r)) - 0.5) < 0.12
    # Within a class, the FI defects follow s_F in FI but not in PCI, whose saturated overlay hides them.
    assert within_class_correlation(balanced_nodes, lambda r: uptake_variation(r.images["FI"], r), "s_F") > 0.3
    assert abs(within_class_correlation(balanced_nodes, lambda r: uptake_variation(r.images["PCI"], r), "s_F")) < 0.2
    # Likewise the spill follows s_P in PCI (in FI the spill feature is zero throughout).
    assert within_class_correlation(balanced_nodes, lambda r: spill_outside(r.images["PCI"], r), "s_P") > 0.3


def test_no_global_brightness_gives_the_label_away(balanced_nodes):
    for modality in MODALITIES:
        score = auc(balanced_nodes, lambda r, m=modality: float(r.images[m].mean()))
        assert abs(score - 0.5) < 0.15, modality


def test_node_to_case_carries_images_truth_and_provenance():
    record = make_node(np.random.default_rng(1), 1, size=96, node_id="P007-N003", patient_id="P007")
    case = node_to_case(record)
    assert case.kind == "lymph_node" and case.id == "P007-N003" and case.patient_id == "P007"
    assert set(case.images) == set(MODALITIES)
    for modality in MODALITIES:
        image = case.image(modality)
        assert image.array is record.images[modality]
        assert image.meta.bit_depth == 8 and image.meta.source == {"generator": "phantom generator", "node": "P007-N003"}
    assert case.image("FI").meta.units == "a.u."
    assert case.truth.labels == {"metastatic": 1}
    assert case.truth.masks["node"] is record.mask
    assert case.truth.source == "phantom generator"


def test_demo_cases_round_trip_through_bundles(tmp_path):
    paths = write_node_demo_cases(tmp_path, seed=11, count=6)
    assert [p.name for p in paths] == [f"demo-node-{i:02d}" for i in range(1, 7)]
    cases = [read_bundle(p) for p in paths]
    assert sum(c.truth.labels["metastatic"] for c in cases) >= 2
    assert sum(c.truth.labels["metastatic"] == 0 for c in cases) >= 2
    for case in cases:
        assert case.kind == "lymph_node" and set(case.images) == set(MODALITIES)
        assert case.image("WLI").array.shape == (224, 224, 3) and case.image("FI").array.ndim == 2
        mask = case.truth.masks["node"]
        assert mask.dtype == bool and mask.shape == (224, 224) and mask.any()
    again = read_bundle(write_node_demo_cases(tmp_path / "again", seed=11, count=1)[0])
    np.testing.assert_array_equal(again.image("PCI").array, cases[0].image("PCI").array)
