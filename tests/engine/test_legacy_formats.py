"""Bundles and a store written by OncoLens before the typed data model (format 1) are read unchanged."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.cases.bundle import read_bundle, write_bundle
from engine.service import stored_predictions
from engine.store import Store
from engine.studies import analyze_study, list_studies, load_study

LEGACY = Path(__file__).resolve().parents[1] / "data" / "legacy_v1"


@pytest.fixture
def legacy(tmp_path):
    shutil.copytree(LEGACY, tmp_path / "legacy")
    return tmp_path / "legacy"


def test_format_1_bundles_read_with_axes_geometry_and_typed_predictions(legacy, tmp_path):
    specimen = read_bundle(legacy / "bundles" / "legacy-specimen-01")
    assert specimen.images["FL"].axes == "YX" and specimen.images["WL"].axes == "YXC"
    assert specimen.images["FL"].meta.file_name == "fl.png"  # a format-1 source was the file name
    fl, wl = specimen.predictions
    assert (fl.family, fl.variant, fl.model) == ("fl_cnn", "FL", "fl_cnn[FL]")
    assert fl.probabilities == {"tumor": 0.81, "grade": 0.3}
    assert fl.tasks["ki67"].call.startswith("not assessed") and fl.tasks["ki67"].threshold == 0.5
    assert fl.heatmaps["tumor/FL"].shape == (24, 32) and wl.variant == "WL"

    node = read_bundle(legacy / "bundles" / "legacy-node-01")
    assert node.predictions[0].variant == "WLI+FI+PCI" and node.predictions[0].notes == ["ONNX Runtime"]

    frame = read_bundle(legacy / "bundles" / "legacy-fluoro-01")
    seg = frame.predictions[0]
    assert frame.images["NIR"].meta.spacing == (0.1, 0.1) and frame.images["NIR"].meta.extra == {"dataset": "B"}
    assert seg.masks["tumor"].sum() == 121 and len(seg.contours["tumor"]) == 1

    # written again in today's format and read back: the same case
    again = read_bundle(write_bundle(frame, tmp_path / "again"))
    assert again.predictions[0].summary() == seg.summary()
    assert np.array_equal(again.truth.masks["tumor"], frame.truth.masks["tumor"])


def test_a_format_1_store_reads_its_cases_predictions_and_study(legacy):
    with Store(f"sqlite:///{legacy / 'store.sqlite3'}") as store:
        assert {c.id for c in store.list_cases()} == {"legacy-specimen-01", "legacy-node-01", "legacy-fluoro-01"}
        store.import_bundles(legacy / "bundles", actor="test")  # the bundles moved with the store
        summaries = [s.summary for s in store.predictions_for("legacy-specimen-01")]
        assert [s.model for s in summaries] == ["fl_cnn[FL]", "fl_cnn[WL]"]
        assert summaries[0].tasks["tumor"].probability == 0.81 and summaries[0].heatmap_names == ("tumor/FL",)
        case = store.load_case("legacy-specimen-01")
        shown = stored_predictions(case, summaries)
        assert [p.variant for p in shown] == ["FL", "WL"] and "tumor/FL" in shown[0].heatmaps
        study = load_study(store, "legacy-study")
        assert study.model == "fl_cnn[FL]" and [s.id for s in list_studies(store)] == ["legacy-study"]
        with pytest.raises(ValueError):  # one case, one class: analysed only with truth of both classes
            analyze_study(store, "legacy-study", n_boot=10, n_perm=10)
