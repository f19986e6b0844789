"""Adding a kind takes one module and its registration: the toy kind runs through the service, the CLI and a
reader study with no other edit (the GUI side is tests/app/test_toy_kind_gui.py)."""

import json

import pytest

from engine.cases.kinds import case_kinds, get_kind
from engine.cli import main
from engine.service import PredictionService, truth_labels
from engine.store import Store
from engine.studies import AIDED, UNAIDED, Study, analyze_study, create_study
from tests.engine.study_reading import read_every_arm
from tests.toy_kind import KIND, TASK, write_toy_case


@pytest.fixture
def toy_store(tmp_path):
    for i, level in enumerate((40, 80, 200, 220, 60, 170)):
        write_toy_case(tmp_path / "toys", f"toy-{i}", level, seed=i)
    store = Store()
    store.import_bundles(tmp_path / "toys")
    yield store
    store.close()


def test_the_toy_kind_is_registered_and_named_by_its_descriptor():
    assert get_kind(KIND).title == "Toy images" and KIND in [k.name for k in case_kinds()]


def test_the_service_predicts_and_stores_a_toy_case(toy_store):
    service = PredictionService(toy_store)
    case = toy_store.load_case("toy-2")
    (prediction,) = service.predict_case(case)
    assert prediction.model == "toy_brightness[v1]" and prediction.calls[TASK] == "bright"
    assert [s.summary.model for s in toy_store.predictions_for("toy-2")] == ["toy_brightness[v1]"]
    assert truth_labels(case) == {TASK: "bright"}


def test_oncolens_predict_runs_a_toy_bundle(toy_store, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["predict", str(tmp_path / "toys" / "toy-0"), "--out", str(out)]) == 0
    (result,) = json.loads(out.read_text())
    assert result["family"] == "toy_brightness" and result["tasks"][TASK]["call"] == "dark"


def test_a_reader_study_on_toy_cases_reads_aided_and_analyses(toy_store):
    service = PredictionService(toy_store)
    ids = [c.id for c in toy_store.list_cases(kind=KIND)]
    for case_id in ids:
        service.predict_case(toy_store.load_case(case_id))
    study = create_study(toy_store, Study(id="toy-study", name="Toy", task_label=TASK, case_ids=tuple(sorted(ids)),
                                          modalities=("TOY",), arms=(UNAIDED, AIDED), contours=True))
    assert study.model == "toy_brightness[v1]" and study.case_kind == KIND
    def answer(session, blinded, aided):
        assert blinded.kind == KIND and blinded.draw_contour
        level = float(blinded.images["TOY"].array.mean())
        session.answer(level >= 128, 5 if level >= 128 else 1, contour=[[(8, 8), (8, 24), (24, 24)]])

    read_every_arm(toy_store, "toy-study", ("r1", "r2"), "135790", answer)
    analysis = analyze_study(toy_store, "toy-study", n_boot=20, n_perm=20)
    assert analysis.result is not None
