"""What the PET-CT viewer draws, without Qt: the overlay grid in physical space (also for a tilted or flipped
PET), contours in CT plane pixels, the measures fallback, the rotating MIP's orientation, the SUV factor lines."""

from __future__ import annotations

import numpy as np
import pytest

from engine.data import HU, SUV, ZYX, ModalityImage
from engine.explain.petct_display import (
    fusion_volumes,
    iter_mip,
    overlay_factors,
    overlay_grid,
    overlay_slice,
    prediction_overlays,
    suv_factor_lines,
    window_to_levels,
)
from engine.io.volumes import Grid, resample
from engine.metrics.pet import pet_measures

CT_GRID = Grid((20, 48, 48), (3.0, 1.0, 1.0), (-30.0, -24.0, -24.0))


def _ball(grid: Grid, centre, radius: float) -> np.ndarray:
    return (np.linalg.norm(grid.physical_coordinates() - np.asarray(centre), axis=-1) <= radius).astype(np.float32)


def _images(pet_grid: Grid, centre=(0.0, 5.0, -6.0)) -> dict[str, ModalityImage]:
    ct = np.zeros(CT_GRID.shape, np.int16)
    pet = 1.0 + 7.0 * _ball(pet_grid, centre, 9.0)
    return {"PET": ModalityImage("PET", pet.astype(np.float32), pet_grid.meta(32, SUV), ZYX),
            "CT": ModalityImage("CT", ct, CT_GRID.meta(16, HU), ZYX)}


def test_overlay_grid_groups_ct_voxels_by_the_pet_voxel_size():
    pet = Grid((20, 12, 12), (3.0, 4.0, 4.0), (-30.0, -22.5, -22.5))
    factors = overlay_factors(CT_GRID, pet)
    assert factors == (1, 4, 4)
    overlay = overlay_grid(CT_GRID, factors)
    assert overlay.shape == (20, 12, 12) and overlay.spacing == (3.0, 4.0, 4.0)
    # overlay voxel p sits at the centre of CT voxels p*f .. p*f+f-1
    np.testing.assert_allclose(overlay.to_physical([0, 1, 2]), CT_GRID.to_physical([0, 5.5, 9.5]))
    assert [overlay_slice(i, 4, 12) for i in (0, 3, 4, 47)] == [0, 0, 1, 11]
    assert window_to_levels(400, 40) == (-160.0, 240.0)


@pytest.mark.parametrize("direction", [None, (-1, 0, 0, 0, 1, 0, 0, 0, -1),
                                       tuple(np.array([[1, 0, 0], [0, np.cos(0.3), -np.sin(0.3)],
                                                       [0, np.sin(0.3), np.cos(0.3)]]).ravel())],
                         ids=["aligned", "flipped", "tilted"])
def test_pet_lands_where_it_is_in_physical_space(direction):
    centre = np.array([0.0, 5.0, -6.0])
    pet_grid = Grid.centred(np.zeros(3), (18, 14, 14), (3.5, 4.0, 4.0), direction)
    volumes = fusion_volumes(_images(pet_grid, centre))
    assert volumes.reference_modality == "CT" and volumes.reference_array is not None
    assert volumes.pet.nbytes < CT_GRID.shape[0] * CT_GRID.shape[1] * CT_GRID.shape[2] * 4 / 4  # far below the CT's
    hottest = np.unravel_index(int(np.argmax(volumes.pet)), volumes.pet.shape)
    assert np.linalg.norm(volumes.overlay.to_physical(hottest) - centre) < 6.0  # within about one PET voxel


def test_contours_come_in_ct_plane_pixels_and_measures_fall_back_to_the_mask():
    pet_grid = Grid((20, 12, 12), (3.0, 4.0, 4.0), (-30.0, -22.5, -22.5))
    images = _images(pet_grid)
    volumes = fusion_volumes(images)
    mask = _ball(pet_grid, (0.0, 5.0, -6.0), 9.0).astype(np.uint8)
    overlays = prediction_overlays(volumes, images["PET"], mask, heat=mask.astype(np.float32))
    expected = pet_measures(images["PET"].array, mask, pet_grid.spacing)
    assert overlays.measures["suv_max"] == pytest.approx(expected["suv_max"])
    assert overlays.heat is not None and overlays.heat.shape == volumes.overlay.shape
    axial = overlays.contours["axial"]
    centre_slice = int(np.round(CT_GRID.to_index(np.array([0.0, 5.0, -6.0]))[0]))
    (loop,) = axial[overlay_slice(centre_slice, 1, 20)]
    rows, cols = loop[:, 0], loop[:, 1]
    centre_px = CT_GRID.to_index(np.array([0.0, 5.0, -6.0]))[1:]
    assert abs(rows.mean() - centre_px[0]) < 2 and abs(cols.mean() - centre_px[1]) < 2  # CT pixels, not PET voxels
    assert 12 < rows.max() - rows.min() < 24  # about the ball's 18 mm at 1 mm CT pixels
    assert set(overlays.contours) == {"axial", "coronal", "sagittal"} and all(overlays.contours.values())
    given = prediction_overlays(volumes, images["PET"], mask, None, measures={"suv_max": 99.0})
    assert given.measures["suv_max"] == 99.0  # the prediction's own measures win
    with pytest.raises(ValueError, match="another image"):
        prediction_overlays(volumes, images["PET"], mask[:-1], None)


@pytest.mark.parametrize("feet_first", [False, True])
def test_mip_has_the_head_up_and_rotates(feet_first):
    grid = Grid((30, 16, 16), (2.0, 2.0, 2.0), (0.0, -15.0, -15.0))
    points = grid.physical_coordinates()
    volume = np.zeros(grid.shape, np.float32)
    volume[points[..., 0] > 50] = 1.0  # the upper (head) end is hot
    volume[(np.abs(points[..., 0] - 20) < 3) & (points[..., 2] > 8)] = 5.0  # a hot spot on the left, low
    if feet_first:  # the same patient stored from the head down
        volume = volume[::-1]
        grid = Grid(grid.shape, grid.spacing, tuple(grid.to_physical([29, 0, 0])), (-1, 0, 0, 0, 1, 0, 0, 0, 1))
    pet = ModalityImage("PET", volume, grid.meta(32, SUV), ZYX)
    frames = list(iter_mip(pet, n_angles=4))
    assert [f.angle_deg for f in frames] == [0.0, 90.0, 180.0, 270.0]
    front = frames[0].image
    assert front[:3].mean() > 0.9 and front[-3:].mean() < 0.1  # head at the top
    assert front[:, -3:].max() == 5.0 and front[:, :3].max() < 5.0  # the spot on its side
    assert not np.allclose(frames[2].image, front)  # half a turn shows it on the other side
    assert frames[2].image[:, :3].max() == pytest.approx(5.0, abs=0.5)


def test_suv_factor_lines_show_entered_inputs():
    meta = Grid((2, 2, 2), (1, 1, 1)).meta(32, SUV, extra={"suv": {
        "kind": "SUVbw", "factor": 0.000201, "method": "Units BQML, DecayCorrection START",
        "inputs": {"weight_kg": 72.5, "dose_bq": 3.7e8, "decay_s": 3600.0, "entered_by_user": ["weight_kg"]}}})
    lines = suv_factor_lines(ModalityImage("PET", np.zeros((2, 2, 2), np.float32), meta, ZYX))
    assert lines[0].startswith("SUVbw factor 0.000201")
    assert "weight 72.5 kg (entered)" in lines[1] and "dose 370 MBq" in lines[1] and "decay time 60 min" in lines[1]
    assert suv_factor_lines(None) == []


def test_resample_identity_sanity():
    array = np.arange(8, dtype=np.float32).reshape(2, 2, 2)
    grid = Grid((2, 2, 2), (1.0, 1.0, 1.0))
    np.testing.assert_allclose(resample(array, grid, grid), array)


def test_bench_petct_view_needs_the_app_and_builds_a_study_of_the_asked_size(capsys):
    from engine.cli import main
    from engine.train.petct_view_bench import PetCtViewBench, bench_study, summarise

    assert main(["bench", "petct-view", "--steps", "2"]) == 2  # no app runner plugged in
    assert "oncolens` entry point" in capsys.readouterr().err
    images, prediction = bench_study(PetCtViewBench(ct_shape=(12, 64, 64), pet_side=16))
    assert images["CT"].array.shape == (12, 64, 64) and images["CT"].array.dtype == np.int16
    assert prediction.masks["tumor"].shape == images["PET"].array.shape and prediction.measures["mtv_ml"] > 0
    (row,) = summarise({"axial": [1.0, 2.0, 30.0]}, {"axial": [1.0, 1.0, 2.0]})
    assert row["p50_ms"] == 2.0 and row["max_ms"] == 30.0 and row["within_budget"] == pytest.approx(2 / 3)
