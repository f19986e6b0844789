"""The administrator's per-case look at readers' outlines: every reader's current outline per arm, the model's
mask and the truth, each with its Dice against the truth."""

from __future__ import annotations

import numpy as np
import pytest

from engine.metrics.segmentation import segmentation_metrics
from engine.seg.contours import contours_to_mask
from engine.service import PredictionService
from engine.store import Store
from engine.studies import AIDED, UNAIDED, Study, StudyError, create_study
from engine.studies.outlines import case_outlines, outline_dice_table
from tests.engine.study_reading import read_every_arm
from tests.toy_kind import TASK, write_toy_case

SQUARES = {"r1": [(24, 24), (24, 72), (72, 72), (72, 24)], "r2": [(30, 30), (30, 60), (60, 60), (60, 30)]}


@pytest.fixture
def outline_study(tmp_path):
    for i, level in enumerate((40, 200, 220)):
        write_toy_case(tmp_path / "toys", f"toy-{i}", level, seed=i)
    store = Store()
    store.import_bundles(tmp_path / "toys")
    service = PredictionService(store)
    for case_id in ("toy-0", "toy-1", "toy-2"):
        service.predict_case(store.load_case(case_id))
    create_study(store, Study(id="outl", name="Outlines", task_label=TASK, case_ids=("toy-0", "toy-1", "toy-2"),
                              modalities=("TOY",), arms=(UNAIDED, AIDED), contours=True))

    def answer(session, blinded, aided):
        if session.reader_id == "r2" and blinded.case_id == "toy-0" and not aided:
            session.answer(False, 1)  # no outline: an empty mask
            return
        session.answer(True, 5, contour=[SQUARES[session.reader_id]])

    read_every_arm(store, "outl", ("r1", "r2"), "135790", answer)
    yield store
    store.close()


def test_every_reader_outline_beside_the_model_and_truth_with_dice(outline_study):
    outlines = case_outlines(outline_study, "outl", "toy-1")
    truth = outline_study.load_case("toy-1").truth.masks["bright"].astype(bool)
    assert np.array_equal(outlines.truth, truth) and outlines.truth_contours
    assert [(o.rater, o.arm) for o in outlines.readers] == [("r1", UNAIDED), ("r1", AIDED), ("r2", UNAIDED),
                                                            ("r2", AIDED)]
    r2 = outlines.readers[2]
    drawn = contours_to_mask([np.asarray(SQUARES["r2"], float)[:, ::-1]], truth.shape)
    assert r2.dice == pytest.approx(segmentation_metrics(drawn, truth)["dice"]) and 0 < r2.dice < 1
    assert outlines.readers[0].dice > r2.dice  # r1 outlined the whole truth square
    assert outlines.model is not None and outlines.model.rater == "toy_brightness[v1]"
    model_mask = outline_study.load_case("toy-1").predictions[-1].masks["bright"]
    assert outlines.model.dice == pytest.approx(segmentation_metrics(model_mask, truth)["dice"])
    assert "Dice" in r2.title and r2.title.startswith("r2 · unaided")
    rows = outline_dice_table(outlines)
    assert [r["arm"] for r in rows] == ["model", UNAIDED, AIDED, UNAIDED, AIDED]


def test_a_reader_who_did_not_outline_counts_as_an_empty_mask(outline_study):
    outlines = case_outlines(outline_study, "outl", "toy-0")
    (r2_unaided,) = [o for o in outlines.readers if o.rater == "r2" and o.arm == UNAIDED]
    assert not r2_unaided.drawn and not r2_unaided.mask.any() and r2_unaided.dice == 0.0


def test_unknown_case_and_study_without_contours_are_refused(outline_study):
    with pytest.raises(StudyError, match="not in study 'outl'"):
        case_outlines(outline_study, "outl", "nope")
    create_study(outline_study, Study(id="plain", name="Plain", task_label=TASK, case_ids=("toy-0", "toy-1"),
                                      modalities=("TOY",)))
    with pytest.raises(StudyError, match="without contours"):
        case_outlines(outline_study, "plain", "toy-1")


def test_oncolens_review_outlines_prints_the_dice_table(outline_study, capsys):
    from engine.cli import main

    outline_study.close()
    assert main(["review", "outlines", "outl", "toy-1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["rater", "arm", "round", "drawn", "dice"]
    assert [line.split()[:2] for line in lines[1:]] == [["toy_brightness[v1]", "model"], ["r1", "unaided"],
                                                         ["r1", "aided"], ["r2", "unaided"], ["r2", "aided"]]
