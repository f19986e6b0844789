"""The PET-CT phantom: anatomy and units, the label's cue design (learnable from PET texture and CT margin, not
from trivial features), its DICOM series, and the PET tumour measures."""

from __future__ import annotations

import numpy as np
import pytest

from engine.data import HU, SUV, ZYX
from engine.io.volumes import Grid
from engine.metrics.classification import auc
from engine.metrics.pet import pet_measures, sphere_kernel
from engine.phantoms.petct import CT_GRID, make_patient, make_petct_dataset


def test_a_patient_has_suv_pet_hu_ct_and_its_tumour_inside_the_limb():
    p = make_patient(np.random.default_rng(0), 1, "P1")
    assert p.pet.axes == ZYX and p.pet.meta.units == SUV and p.ct.meta.units == HU
    assert Grid.of(p.pet).spacing == (3.27, 4.0, 4.0) and Grid.of(p.ct).spacing == (3.27, 2.0, 2.0)
    mask = p.truth_mask(CT_GRID).astype(bool)
    assert mask.any() and p.ct.array[mask].mean() > -200  # soft tissue, not air
    assert p.ct.array.min() < -900 and p.ct.array.max() > 700  # air and cortical bone
    pet_mask = p.truth_mask().astype(bool)
    assert p.pet.array[pet_mask].mean() > 2 * np.median(p.pet.array[p.pet.array > 0.2])  # tumour is hot
    np.testing.assert_allclose(p.pet.meta.extra["roi_center_mm"], p.tumour.centre, atol=1e-3)


@pytest.mark.slow
def test_trivial_features_do_not_solve_the_label_but_the_cues_do():
    patients = make_petct_dataset(60, seed=11)
    y = np.array([p.label for p in patients])
    trivial = {"suv_max": [], "suv_mean": [], "mtv_ml": [], "pet_volume_max": [], "pet_volume_mean": []}
    for p in patients:
        m = pet_measures(p.pet.array, p.truth_mask(), Grid.of(p.pet).spacing)
        trivial["suv_max"].append(m["suv_max"])
        trivial["suv_mean"].append(m["suv_mean"])
        trivial["mtv_ml"].append(m["mtv_ml"])
        trivial["pet_volume_max"].append(p.pet.array.max())
        trivial["pet_volume_mean"].append(p.pet.array.mean())
    for name, values in trivial.items():
        assert 0.3 <= auc(y, np.asarray(values)) <= 0.7, name  # near chance (0.5 +- the noise of 60 patients)
    assert auc(y, [p.cues["fine_weight"] for p in patients]) > 0.85  # the PET texture cue
    assert auc(y, [p.cues["margin_mm"] for p in patients]) > 0.7  # the weaker CT margin cue
    assert abs(np.corrcoef([p.cues["s_pet"] for p in patients], [p.cues["s_ct"] for p in patients])[0, 1]) < 0.6


def test_the_phantom_is_written_as_dicom_that_reads_back_in_suv(tmp_path):
    from engine.io.dicom import read_petct
    from engine.phantoms.petct import write_petct_dicom

    p = make_patient(np.random.default_rng(3), 0, "P3")
    files = write_petct_dicom(p, tmp_path)
    assert len(files["PT"]) == p.pet.array.shape[0] and len(files["CT"]) == p.ct.array.shape[0]
    images, warnings = read_petct(tmp_path)
    assert not warnings
    np.testing.assert_allclose(images["PET"].array, p.pet.array, atol=1e-3 * p.pet.array.max())
    np.testing.assert_array_equal(images["CT"].array, np.round(p.ct.array))
    assert images["PET"].meta.origin == p.pet.meta.origin


def test_pet_measures_of_a_uniform_sphere():
    spacing = (2.0, 2.0, 2.0)
    grid = Grid((30, 30, 30), spacing)
    pts = grid.physical_coordinates()
    mask = ((pts - 29) ** 2).sum(-1) <= 15 ** 2
    suv = np.where(mask, 4.0, 0.5).astype(np.float32)
    m = pet_measures(suv, mask, spacing)
    assert m["suv_max"] == 4.0 and m["suv_mean"] == 4.0 and m["suv_peak"] == pytest.approx(4.0)
    assert m["mtv_ml"] == pytest.approx(mask.sum() * 8 / 1000) and m["tlg"] == pytest.approx(4.0 * m["mtv_ml"])
    assert 0.7 < m["peak_sphere_ml"] < 1.3 and sphere_kernel(spacing).sum() > 100
    empty = pet_measures(suv, np.zeros_like(mask), spacing)
    assert empty["mtv_ml"] == 0 and np.isnan(empty["suv_max"])
    with pytest.raises(ValueError, match="resample the mask"):
        pet_measures(suv, mask[:-1], spacing)


def test_suvpeak_is_below_suvmax_for_a_single_hot_voxel():
    suv = np.ones((9, 9, 9), np.float32)
    suv[4, 4, 4] = 10.0
    m = pet_measures(suv, np.ones_like(suv, bool), (4.0, 4.0, 4.0))
    assert m["suv_max"] == 10.0 and 1.0 < m["suv_peak"] < 10.0
