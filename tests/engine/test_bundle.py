import json

import numpy as np
import pytest

from engine.cases.bundle import BundleError, read_bundle, write_bundle
from engine.cases.model import Case, GroundTruth, Read
from engine.data import ImageMeta, Prediction, TaskResult


def _case():
    rng = np.random.default_rng(1)
    case = Case(id="case-x", kind="format_test", patient_id="P01", notes="ok")  # no kind registered: no role checks
    case.add_image("FL", rng.integers(0, 65535, (40, 60), dtype=np.uint16),
                   ImageMeta(16, "counts", (0.1, 0.1), source={"file": "fl.png"}, extra={"exposure_ms": 50}))
    case.add_image("WL", rng.integers(0, 255, (40, 60, 3), dtype=np.uint8), ImageMeta(8, "RGB"))
    case.add_image("PET", rng.random((8, 40, 60)).astype(np.float32), ImageMeta(32, "SUV", (2.0, 1.0, 1.0)), axes="ZYX")
    case.truth = GroundTruth({"tumor": 1, "grade": None}, {"tumor": rng.random((40, 60)) > 0.5}, "pathology")
    case.predictions.append(Prediction(
        family="fl_cnn", variant="FL", weights_sha256={"a": "ff"},
        tasks={"tumor": TaskResult("tumor", 0.8123456789, 0.4)}, masks={"tumor": rng.random((40, 60)) > 0.3},
        contours={"tumor": [rng.random((7, 2)).astype(np.float32)]},
        heatmaps={"tumor/FL": rng.random((40, 60)).astype(np.float32)}, timings_ms={"total": 12.5}))
    case.reads.append(Read("r1", "tumor?", "1", 4.0, "clear"))
    return case


def test_bundle_round_trip_is_exact(tmp_path):
    case = _case()
    write_bundle(case, tmp_path / "b")
    back = read_bundle(tmp_path / "b")
    assert (back.id, back.kind, back.patient_id, back.notes, back.created) == (
        case.id, case.kind, case.patient_id, case.notes, case.created)
    for m, img in case.images.items():
        assert back.images[m].array.dtype == img.array.dtype
        assert np.array_equal(back.images[m].array, img.array)
        assert back.images[m].meta == img.meta
    assert back.truth.labels == case.truth.labels
    assert np.array_equal(back.truth.masks["tumor"], case.truth.masks["tumor"])
    p, q = case.predictions[0], back.predictions[0]
    assert q.probabilities == p.probabilities and q.calls == p.calls and q.timings_ms == p.timings_ms
    # heatmaps are kept as 8-bit codes with their scale: within half a step of 1/255 of their range
    heat, back_heat = p.heatmaps["tumor/FL"], q.heatmaps["tumor/FL"]
    assert back_heat.dtype == heat.dtype and back_heat.shape == heat.shape
    step = (heat.max() - heat.min()) / 255
    assert 0 < np.abs(back_heat - heat).max() <= step / 2 + 1e-6
    assert q.masks["tumor"].dtype == bool and np.array_equal(q.masks["tumor"], p.masks["tumor"])
    assert np.array_equal(q.contours["tumor"][0], p.contours["tumor"][0])
    assert back.reads == case.reads
    # and writing the read-back case again gives the same case.json
    write_bundle(back, tmp_path / "c")
    assert json.loads((tmp_path / "b/case.json").read_text()) == json.loads((tmp_path / "c/case.json").read_text())


def test_missing_image_file_named_in_error(tmp_path):
    write_bundle(_case(), tmp_path / "b")
    (tmp_path / "b/image_WL.png").unlink()
    with pytest.raises(BundleError, match="image_WL.png"):
        read_bundle(tmp_path / "b")


def test_not_a_bundle_and_bad_json(tmp_path):
    with pytest.raises(BundleError, match="not a case bundle"):
        read_bundle(tmp_path)
    (tmp_path / "case.json").write_text("{oops")
    with pytest.raises(BundleError, match="invalid JSON"):
        read_bundle(tmp_path)


def test_newer_bundle_version_refused(tmp_path):
    write_bundle(_case(), tmp_path / "b")
    doc = json.loads((tmp_path / "b/case.json").read_text())
    doc["version"] = 99
    (tmp_path / "b/case.json").write_text(json.dumps(doc))
    with pytest.raises(BundleError, match="newer"):
        read_bundle(tmp_path / "b")
