"""Reader-drawn contours in a study: stored with the answer, rasterised on the frame's pixel grid, scored against
the truth mask beside the model's mask (Dice, FPSR, FNSR, HD95), in the tables and the report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from engine.cases.bundle import write_bundle
from engine.cases.model import Case, GroundTruth
from engine.data import ImageMeta, Prediction, TaskResult
from engine.store import Store
from engine.studies import ReadingSession, Study, StudyError, add_reader, create_study
from engine.studies.analysis import analyze_study
from engine.studies.contours import polygons_to_mask
from engine.studies.report import render_report

SHAPE = (24, 24)
PINS = {"r1": "111111", "r2": "222222"}
STATS = {"n_boot": 200, "n_perm": 400}
# A square outline through pixel corners: it holds the pixel centres of rows 4..11 and columns 6..13.
SQUARE = [(5.5, 3.5), (13.5, 3.5), (13.5, 11.5), (5.5, 11.5)]


def shifted(polygon, dx: float) -> list[tuple[float, float]]:
    return [(x + dx, y) for x, y in polygon]


def truth_mask(positive: bool) -> np.ndarray:
    mask = np.zeros(SHAPE, bool)
    if positive:
        mask[4:12, 6:14] = True  # 64 px
    return mask


def model_mask(positive: bool) -> np.ndarray:
    mask = np.zeros(SHAPE, bool)
    if positive:
        mask[4:12, 6:12] = True  # 48 px, all inside the truth: Dice 96 / 112
    return mask


@pytest.fixture
def store() -> Store:
    opened = Store()
    yield opened
    opened.close()


def add_frames(store: Store, root, labels=(1, 0, 1, 0, 1, 0)) -> list[str]:
    ids = []
    for i, label in enumerate(labels):
        case = Case(id=f"fr-{i}", kind="fluoro_frame")
        frame = (np.random.default_rng(i).integers(100, 200, SHAPE) + 1500 * truth_mask(bool(label))).astype(np.uint16)
        case.add_image("NIR", frame, ImageMeta(bit_depth=12, spacing=(0.2, 0.2)))
        case.truth = GroundTruth(labels={"tumor": label}, masks={"tumor": truth_mask(bool(label))}, source="test")
        prediction = Prediction(family="fluoro_seg", variant="unet", weights_sha256={"fluoro_seg_unet": "cd" * 32},
                                tasks={"tumor": TaskResult("tumor" if label else "no tumor", 0.9 if label else 0.1,
                                                           0.5)},
                                masks={"tumor": model_mask(bool(label))})
        case.predictions.append(prediction)
        store.add_case(case, write_bundle(case, root / case.id))
        store.add_prediction(case.id, prediction)
        ids.append(case.id)
    return ids


def contour_study(store: Store, root) -> Study:
    ids = add_frames(store, root)
    study = create_study(store, Study(id="seg", name="Outline study", task_label="tumor", case_ids=tuple(ids),
                                      modalities=("NIR",), contours=True, seed=5))
    for reader, pin in PINS.items():
        add_reader(store, study.id, reader, f"Dr {reader}", pin)
    return study


def read_with_outlines(store: Store, reader: str, outline, skip: tuple[str, ...] = ()) -> None:
    """Call the positive frames positive and outline them (except the frames in `skip`)."""
    session = ReadingSession.open(store, "seg", reader, PINS[reader])
    case = session.current_case()
    while case is not None:
        positive = case.case_id in ("fr-0", "fr-2", "fr-4")
        drawn = outline if positive and case.case_id not in skip else None
        session.answer(positive, 5 if positive else 1, contour=drawn)
        case = session.next()
    assert session.is_complete


def test_polygons_are_rasterised_on_the_pixel_grid_with_x_as_column():
    mask = polygons_to_mask(json.dumps([SQUARE]), SHAPE)
    assert np.array_equal(mask, truth_mask(True))
    assert not polygons_to_mask(None, SHAPE).any()
    hole = [(7.5, 5.5), (11.5, 5.5), (11.5, 9.5), (7.5, 9.5)]  # rows 6..9, columns 8..11
    with_hole = polygons_to_mask(json.dumps([SQUARE, hole]), SHAPE)
    assert with_hole.sum() == 64 - 16 and not with_hole[6:10, 8:12].any()


def test_contours_are_only_for_single_frame_kinds(store, tmp_path):
    from test_studies import add_cases

    ids = add_cases(store, tmp_path / "gl", 4)
    with pytest.raises(StudyError, match="draw contours only on fluoro_frame"):
        create_study(store, Study(id="x", name="x", task_label="tumor", case_ids=tuple(ids), modalities=("FL",),
                                  contours=True))


def test_drawn_outlines_are_scored_against_truth_beside_the_model(store, tmp_path):
    contour_study(store, tmp_path / "bundles")
    read_with_outlines(store, "r1", [SQUARE])  # exact outline on every positive frame
    read_with_outlines(store, "r2", [shifted(SQUARE, 4)])  # 4 columns off: half the truth covered
    analysis = analyze_study(store, "seg", **STATS)

    rows = {r["rater"]: r for r in analysis.contours.summary}
    assert set(rows) == {"model", "r1", "r2"} and all(r["n_cases"] == 6 for r in rows.values())
    # Negative frames: nothing drawn, empty truth: Dice 1 by convention. Positive frames by hand:
    # r1 = 1; r2 = 2 * 32 / (64 + 64) = 0.5; the model = 2 * 48 / (48 + 64) = 6 / 7.
    assert rows["r1"]["dice_mean"] == pytest.approx(1.0)
    assert rows["r2"]["dice_mean"] == pytest.approx((3 * 1 + 3 * 0.5) / 6)
    assert rows["model"]["dice_mean"] == pytest.approx((3 * 1 + 3 * 6 / 7) / 6)
    assert rows["r2"]["fpsr_mean"] == pytest.approx(3 * 0.25 / 6) and rows["r2"]["fnsr_mean"] == pytest.approx(3 * 0.25 / 6)
    assert rows["model"]["fpsr_mean"] == pytest.approx(0.0)
    for r in rows.values():
        assert r["dice_ci_low"] <= r["dice_mean"] <= r["dice_ci_high"]
    assert rows["r2"]["model_minus_rater_dice"] == pytest.approx(rows["model"]["dice_mean"] - rows["r2"]["dice_mean"])
    assert rows["r1"]["model_minus_rater_dice"] < 0 < rows["r2"]["model_minus_rater_dice"]
    assert 0 < rows["r2"]["p_value"] <= 1

    per_case = [r for r in analysis.contours.per_case if r["rater"] == "r2" and r["case_id"] == "fr-0"]
    assert per_case[0]["dice"] == pytest.approx(0.5) and per_case[0]["drawn_px"] == 64
    tables = analysis.tables()
    assert tables["contours"] and len(tables["contour_cases"]) == 3 * 6
    written = analysis.write(tmp_path / "out")
    assert any(p.name.endswith("_contour_cases.csv") for p in written)
    html = render_report(analysis)
    assert "Reader outlines" in html and "0.750" in html  # r2's mean Dice


def test_a_study_without_truth_masks_says_so_and_still_analyses_the_calls(store, tmp_path):
    contour_study(store, tmp_path / "bundles")
    for case_id in ("fr-0", "fr-1"):
        case = store.load_case(case_id)
        case.truth.masks = {}
        store.add_case(case, write_bundle(case, tmp_path / "bundles2" / case_id))
    read_with_outlines(store, "r1", [SQUARE])
    read_with_outlines(store, "r2", [SQUARE])
    analysis = analyze_study(store, "seg", **STATS)
    assert all(r["n_cases"] == 4 for r in analysis.contours.summary)
    assert set(analysis.contours.excluded) == {"fr-0", "fr-1"}
    assert any("2 of 6 cases have no truth mask" in n for n in analysis.notes)
    assert analysis.result.comparison.n == 6  # the calls are analysed on every case


def test_outlines_missing_on_tumor_frames_are_counted_as_undefined_hd95(store, tmp_path):
    contour_study(store, tmp_path / "bundles")
    read_with_outlines(store, "r1", [SQUARE])
    read_with_outlines(store, "r2", [shifted(SQUARE, 4)], skip=("fr-0", "fr-2"))  # calls them, draws nothing
    analysis = analyze_study(store, "seg", **STATS)
    rows = {r["rater"]: r for r in analysis.contours.summary}
    assert rows["r1"]["hd95_undefined"] == 0 and rows["r2"]["hd95_undefined"] == 2
    # r2's defined HD95: 0 on the 3 empty-empty frames and 4 px on fr-4 (both directed P95 are 4): median 0
    assert rows["r2"]["hd95_median_px"] == 0.0
    html = render_report(analysis)
    assert "HD95 undefined" in html and "directed 95th percentiles" in html
    section = html[html.index("Reader outlines against"):]
    row = next(line for line in section.split("<tr>") if "<td class=\"l\">r2</td>" in line)
    assert "<td class=\"\">2</td>" in row
