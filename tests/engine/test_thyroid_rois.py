"""Keeping edited nodule boxes with a stored thyroid case (`save_rois`, what the GUI's box edits call): checked
like `oncolens predict` checks them, written to the case's own bundle in the user data folder (an imported bundle
is never rewritten), logged, and a bad box changes nothing."""

from __future__ import annotations

import numpy as np
import pytest

from engine.cases.bundle import read_bundle, write_bundle
from engine.cases.model import Case
from engine.data import AU, HU, ImageMeta
from engine.kinds.thyroid_usct import KIND, save_rois, set_roi, stored_roi
from engine.paths import user_data_dir
from engine.preprocess.us_ct import CT, US, Box, RoiError
from engine.store import Store


@pytest.fixture
def stored_case(tmp_path):
    rng = np.random.default_rng(3)
    case = Case(id="thy-roi-1", kind=KIND, patient_id="P1")
    case.add_image(US, rng.integers(0, 255, (120, 160), dtype=np.uint8), ImageMeta(8, AU, (0.25, 0.25)))
    case.add_image(CT, rng.integers(-100, 200, (80, 80)).astype(np.int16), ImageMeta(16, HU, (0.7, 0.7)))
    set_roi(case, US, (40, 30, 90, 70))
    set_roi(case, CT, (20, 20, 45, 40))
    imported = write_bundle(case, tmp_path / "shared" / case.id)
    store = Store()
    store.add_case(case, imported)
    yield store, case.id, imported
    store.close()


def test_saved_boxes_go_to_a_bundle_of_our_own_and_the_audit_log(stored_case):
    store, case_id, imported = stored_case
    folder = save_rois(store, case_id, {US: {"x0": 45, "y0": 30, "x1": 95, "y1": 72}})
    assert folder == user_data_dir() / "cases" / case_id
    loaded = store.load_case(case_id)
    assert stored_roi(loaded, US) == Box(45, 30, 95, 72) and stored_roi(loaded, CT) == Box(20, 20, 45, 40)
    assert stored_roi(read_bundle(imported), US) == Box(40, 30, 90, 70)  # the imported bundle is untouched
    (event,) = store.audit_log(case_id, actions=("case.roi",))
    assert event["detail"]["boxes"] == {US: {"x0": 45.0, "y0": 30.0, "x1": 95.0, "y1": 72.0}}
    assert event["detail"]["copied_from"] == str(imported)
    save_rois(store, case_id, {CT: "21,20,46,40"})  # the second edit rewrites our own bundle in place
    assert stored_roi(store.load_case(case_id), CT) == Box(21, 20, 46, 40)
    assert "copied_from" not in store.audit_log(case_id, actions=("case.roi",))[-1]["detail"]


@pytest.mark.parametrize(("box", "message"), [((10, 10, 11, 40), "is empty"),
                                              ((500, 500, 560, 540), "lies outside the 160 x 120 image"),
                                              ((120, 90, 220, 190), "mostly outside")])
def test_a_bad_box_is_named_and_nothing_changes(stored_case, box, message):
    store, case_id, imported = stored_case
    with pytest.raises(RoiError, match=message):
        save_rois(store, case_id, {US: box})
    assert stored_roi(store.load_case(case_id), US) == Box(40, 30, 90, 70)
    assert store.get_case_record(case_id).bundle_path == str(imported)
    assert store.audit_log(case_id, actions=("case.roi",)) == []
