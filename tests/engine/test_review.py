"""Offline review in the engine: compact prediction arrays in bundles, runs kept beside each other and read back
exactly, the history, the review filter, case identity (name, patient id, content hash, bundle conflicts) and
the migration that adds it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from alembic import command

from engine.cases.bundle import BundleError, read_bundle
from engine.cases.compact import decode_array, encode_array
from engine.cases.model import content_sha256
from engine.cli import main
from engine.kinds.opening import KEEP_BOTH, REPLACE, CaseConflictError, bundle_conflicts, open_into_store
from engine.review import ReviewFilter, filtered_cases, prediction_history, review_facts
from engine.service import PredictionService
from engine.store import Store, StoreError
from engine.store.db import alembic_config
from tests.toy_kind import KIND, MODALITY, TASK, write_toy_case

LEGACY = Path(__file__).resolve().parents[1] / "data" / "legacy_v1"


@pytest.fixture
def toy_store(tmp_path):
    for i, level in enumerate((40, 200, 220)):
        write_toy_case(tmp_path / "toys", f"toy-{i}", level, seed=i)
    store = Store()
    store.import_bundles(tmp_path / "toys")
    yield store
    store.close()


# -- compact arrays ----------------------------------------------------------------------------------------


def test_masks_round_trip_exactly_and_heatmaps_within_half_a_step():
    rng = np.random.default_rng(0)
    plane, volume = rng.random((30, 40)) > 0.5, rng.random((3, 30, 41)) > 0.7
    heat = rng.random((30, 40)).astype(np.float32) * 0.6 + 0.2
    for mask in (plane, volume):
        stored, encoding = encode_array(mask)
        assert stored.dtype == np.uint8 and stored.nbytes <= mask.size
        back = decode_array(stored, encoding, "m")
        assert back.dtype == bool and np.array_equal(back, mask)
    assert encode_array(volume)[0].nbytes == int(np.ceil(volume.size / 8))  # packed: one bit a voxel
    stored, encoding = encode_array(heat)
    assert stored.dtype == np.uint8 and stored.nbytes == heat.size  # a quarter of float32
    back = decode_array(stored, encoding, "h")
    assert back.dtype == np.float32 and np.abs(back - heat).max() <= (0.6 / 255) / 2 + 1e-6
    labels = rng.integers(0, 4, (10, 10)).astype(np.uint8)
    assert encode_array(labels) == (labels, None)  # integer label masks stay as they are
    with pytest.raises(ValueError, match="unknown array encoding 'zip'.*Update OncoLens"):
        decode_array(stored, {"encoding": "zip"}, "h")


# -- runs kept in the bundle, read back as shown -----------------------------------------------------------


def test_a_run_is_kept_in_the_bundle_and_reopens_as_computed(toy_store):
    service = PredictionService(toy_store)
    case = toy_store.load_case("toy-1")
    (computed,) = service.predict_case(case)
    folder = toy_store.get_case_record("toy-1").bundle_path
    doc = json.loads((Path(folder) / "case.json").read_text())
    assert doc["version"] == 3 and len(doc["predictions"]) == 1
    assert doc["predictions"][0]["weights_sha256"] == {"toy_brightness_v1": "0" * 64}
    assert set(doc["predictions"][0]["encodings"].values().__iter__().__next__()) >= {"encoding"}

    again = toy_store.load_case("toy-1")
    (run,) = prediction_history(again, [(s.id, s.summary) for s in toy_store.predictions_for("toy-1")])
    (shown,) = run.predictions
    assert run.has_arrays and run.prediction_ids[0] is not None
    assert shown.tasks == computed.tasks  # probabilities, calls and thresholds exactly
    assert shown.model == computed.model and shown.weights_sha256 == computed.weights_sha256
    assert np.array_equal(shown.masks["bright"], computed.masks["bright"])
    heat, back = computed.heatmaps[f"{TASK}/{MODALITY}"], shown.heatmaps[f"{TASK}/{MODALITY}"]
    assert np.abs(back - heat).max() <= (heat.max() - heat.min()) / 510 + 1e-6
    assert "Brightness v1 00000000" in run.label(KIND)


def test_an_identical_result_is_not_stored_twice_unless_asked_and_runs_are_kept_apart(toy_store):
    service = PredictionService(toy_store)
    service.predict_case(toy_store.load_case("toy-2"))
    service.predict_case(toy_store.load_case("toy-2"))  # the same result again: not stored
    assert len(toy_store.predictions_for("toy-2")) == 1
    service.predict_case(toy_store.load_case("toy-2"), keep_all=True)  # F5: kept beside the first
    stored = toy_store.predictions_for("toy-2")
    assert len(stored) == 2
    case = toy_store.load_case("toy-2")
    assert len(case.predictions) == 2
    runs = prediction_history(case, [(s.id, s.summary) for s in stored])
    assert len(runs) == 2 and runs[0].created >= runs[1].created
    assert [r.prediction_ids for r in runs] == [(stored[1].id,), (stored[0].id,)]
    assert all(r.has_arrays for r in runs)


def test_a_bundle_written_before_format_3_reads_its_lossless_arrays(toy_store, tmp_path):
    service = PredictionService(toy_store)
    case = toy_store.load_case("toy-0")
    (computed,) = service.predict_case(case)
    folder = Path(toy_store.get_case_record("toy-0").bundle_path)
    doc = json.loads((folder / "case.json").read_text())
    entry = doc["predictions"][0]
    heat_file = entry["heatmaps"][f"{TASK}/{MODALITY}"]
    (folder / heat_file).unlink()
    np.save(folder / "old_heat.npy", computed.heatmaps[f"{TASK}/{MODALITY}"])
    entry["heatmaps"][f"{TASK}/{MODALITY}"] = "old_heat.npy"
    del entry["encodings"]
    doc["version"] = 2
    (folder / "case.json").write_text(json.dumps(doc))
    back = read_bundle(folder).predictions[0]
    assert np.array_equal(back.heatmaps[f"{TASK}/{MODALITY}"], computed.heatmaps[f"{TASK}/{MODALITY}"])
    # without an encoding a file reads as stored (how format-2 bundles kept uint8 masks)
    assert back.masks["bright"].dtype == np.uint8 and np.array_equal(back.masks["bright"] != 0,
                                                                     computed.masks["bright"])


def test_a_bad_encoding_names_the_file(toy_store):
    PredictionService(toy_store).predict_case(toy_store.load_case("toy-0"))
    folder = Path(toy_store.get_case_record("toy-0").bundle_path)
    doc = json.loads((folder / "case.json").read_text())
    name = next(iter(doc["predictions"][0]["encodings"]))
    doc["predictions"][0]["encodings"][name] = {"encoding": "uint8-linear", "scale": "x"}
    (folder / "case.json").write_text(json.dumps(doc))
    with pytest.raises(BundleError, match=r"case.json: predictions.0 .*offset, scale or dtype"):
        read_bundle(folder)


# -- the review filter -------------------------------------------------------------------------------------


def test_the_review_filter_by_truth_call_disagreement_and_date(toy_store):
    service = PredictionService(toy_store)
    for case_id in ("toy-0", "toy-1"):
        service.predict_case(toy_store.load_case(case_id))

    def ids(**wanted) -> list[str]:
        return sorted(c.id for c in filtered_cases(toy_store, wanted=ReviewFilter(**wanted)))

    assert ids() == ["toy-0", "toy-1", "toy-2"]
    assert ids(truth="positive") == ["toy-1", "toy-2"] and ids(truth="negative") == ["toy-0"]
    assert ids(call="none") == ["toy-2"] and ids(call="positive") == ["toy-1"]
    assert ids(disagreement="truth") == []  # the toy model calls these right
    assert ids(since="2999-01-01") == [] and ids(since="2000-01-01") == ["toy-0", "toy-1", "toy-2"]
    # a wrong call and two models that disagree, from summaries alone
    summary = toy_store.predictions_for("toy-1")[0].summary
    summary.tasks[TASK] = type(summary.tasks[TASK])("dark", 0.2, 0.5)
    other = type(summary).from_dict({**summary.to_dict(), "variant": "v2"})
    other.tasks[TASK] = type(summary.tasks[TASK])("bright", 0.9, 0.5)
    facts = review_facts(KIND, {TASK: 1}, [summary, other], "2026-01-01")
    assert facts.models_disagree and facts.model_vs_truth and facts.call_positive is False


# -- case identity -----------------------------------------------------------------------------------------


def test_loose_images_opened_again_find_the_stored_case(tmp_path):
    import cv2

    rng = np.random.default_rng(3)
    cv2.imwrite(str(tmp_path / "spec_FL.png"), rng.integers(0, 65535, (64, 80), dtype=np.uint16))
    with Store() as store:
        (first,) = open_into_store([tmp_path / "spec_FL.png"], store)
        shutil.copy(tmp_path / "spec_FL.png", tmp_path / "renamed_FL.png")
        (again,) = open_into_store([tmp_path / "renamed_FL.png"], store)
        assert again == first and len(store.list_cases()) == 1
        record = store.get_case_record(first)
        assert record.content_sha256 == content_sha256(store.load_case(first))


def test_name_and_patient_id_are_saved_in_row_and_bundle_and_audited_keyed(toy_store):
    assert toy_store.set_case_identity("toy-0", patient_id="PAT-7", name="left node 3", actor="dr-a")
    assert not toy_store.set_case_identity("toy-0", patient_id="PAT-7", name="left node 3", actor="dr-a")
    case = toy_store.load_case("toy-0")
    assert (case.patient_id, case.name) == ("PAT-7", "left node 3")
    (listed,) = [c for c in toy_store.list_cases(text="left node") if c.id == "toy-0"]
    assert listed.name == "left node 3" and listed.patient_id == "PAT-7"
    event = toy_store.audit_log("toy-0", actions=("case.update",))[-1]
    assert event["actor"] == "dr-a"
    text = json.dumps(event["detail"])
    assert "PAT-7" not in text and "left node" not in text
    assert set(event["detail"]["changed"]) == {"patient_ref", "name_ref"}
    with pytest.raises(StoreError, match="at most 256"):
        toy_store.set_case_identity("toy-0", patient_id=None, name="x" * 300, actor="dr-a")
    toy_store.close()
    assert main(["store", "verify"]) == 0  # the fingerprints follow the change


def test_a_bundle_of_a_stored_case_from_another_folder_needs_a_choice(toy_store, tmp_path):
    copy = tmp_path / "elsewhere" / "toy-1"
    shutil.copytree(toy_store.get_case_record("toy-1").bundle_path, copy)
    (conflict,) = bundle_conflicts([copy], toy_store)
    assert conflict.case_id == "toy-1" and conflict.new_folder == copy
    before = toy_store.get_case_record("toy-1").bundle_path
    with pytest.raises(CaseConflictError, match="replace, keep both, cancel"):
        open_into_store([copy], toy_store)
    assert toy_store.get_case_record("toy-1").bundle_path == before  # never silently re-pointed
    assert open_into_store([copy], toy_store, {"toy-1": "cancel"}) == []
    (kept,) = open_into_store([copy], toy_store, {"toy-1": KEEP_BOTH})
    assert kept == "toy-1-copy2" and toy_store.get_case_record("toy-1").bundle_path == before
    assert toy_store.load_case(kept).images[MODALITY].array.shape == (96, 96)
    assert open_into_store([copy], toy_store, {"toy-1": REPLACE}) == ["toy-1"]
    assert Path(toy_store.get_case_record("toy-1").bundle_path) == copy.resolve()
    assert bundle_conflicts([copy], toy_store) == []  # the same folder again: no question


# -- migration 0004 ----------------------------------------------------------------------------------------


def test_migration_0004_upgrades_a_store_written_before_it(tmp_path):
    shutil.copytree(LEGACY, tmp_path / "legacy")
    url = f"sqlite:///{(tmp_path / 'legacy' / 'store.sqlite3').as_posix()}"
    engine = sa.create_engine(url)
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0003")
    with engine.connect() as conn:
        assert "name" not in {r[1] for r in conn.exec_driver_sql("PRAGMA table_info(cases)")}
        n_cases = conn.exec_driver_sql("SELECT count(*) FROM cases").scalar()
    engine.dispose()
    assert n_cases >= 1
    with Store(url) as store:
        assert store.schema_revision() == "0004"
        case_id = store.list_cases()[0].id
        assert store.get_case_record(case_id).name is None
        assert [e["action"] for e in store.audit_log(case_id)][-1] == "case.baseline"
    assert main(["store", "--db", url, "verify"]) == 0


def test_the_installation_is_never_written_results_stay_summaries(toy_store, tmp_path, monkeypatch):
    folder = Path(toy_store.get_case_record("toy-1").bundle_path)
    monkeypatch.setattr("engine.service.resources_dir", lambda: folder.parent)  # as if the toys were shipped
    before = (folder / "case.json").read_bytes()
    (prediction,) = PredictionService(toy_store).predict_case(toy_store.load_case("toy-1"))
    assert (folder / "case.json").read_bytes() == before and not list(folder.glob("pred*"))
    assert any("part of the OncoLens installation" in w for w in prediction.warnings)
    (stored,) = toy_store.predictions_for("toy-1")
    assert stored.summary.tasks == prediction.tasks


def test_history_groups_legacy_results_by_time_only_where_a_run_has_several_models(toy_store):
    from engine.cases.model import Case
    from engine.data import ImageMeta, Prediction

    def result(model_variant: str, created: str) -> Prediction:
        p = Prediction(family="fl_cnn", variant=model_variant, created=created)
        p.set_result("tumor", "tumor", 0.7, 0.5)
        return p

    glioma = Case(id="g", kind="glioma_specimen")
    for modality in ("FL", "WL"):
        glioma.add_image(modality, np.zeros((8, 8), np.uint16), ImageMeta(16))
    legacy = [result("FL", "2026-01-01T10:00:00.100+00:00"), result("WL", "2026-01-01T10:00:00.900+00:00"),
              result("FL", "2026-01-02T10:00:00.000+00:00"), result("WL", "2026-01-02T10:00:00.000+00:00")]
    runs = prediction_history(glioma, [(i, p.summary()) for i, p in enumerate(legacy, 1)])
    assert [r.prediction_ids for r in runs] == [(3, 4), (1, 2)]  # one old run from its two close stamps
    toy = toy_store.load_case("toy-0")  # one model per run: results a minute apart stay apart
    singles = [result("v1", "2026-01-01T10:00:00.000+00:00"), result("v2", "2026-01-01T10:01:00.000+00:00")]
    assert len(prediction_history(toy, [(i, p.summary()) for i, p in enumerate(singles, 1)])) == 2


def test_the_review_commands(toy_store, capsys):
    PredictionService(toy_store).predict_case(toy_store.load_case("toy-1"))
    assert main(["review", "history", "toy-1"]) == 0
    out = capsys.readouterr().out
    assert "Brightness v1 00000000" in out and "masks/heatmaps kept" in out and "bright bright (0.7" in out
    assert main(["review", "identify", "toy-1", "--name", "bright one"]) == 0
    assert toy_store.get_case_record("toy-1").name == "bright one"
    assert toy_store.get_case_record("toy-1").patient_id == "T-toy-1"  # left out: unchanged
    capsys.readouterr()
    assert main(["review", "identify", "toy-1", "--name", "bright one"]) == 0
    assert "nothing changed" in capsys.readouterr().err
    assert main(["review", "history", "nope"]) == 2
    assert "No case 'nope'" in capsys.readouterr().err
