"""The `oncolens` command end to end (engine side; the GUI is launched by app.launcher)."""

import csv
import json

import pytest

from engine.cli import main


def test_models_lists_every_shipped_card(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for mod in ("fl", "wl"):
        for task in ("tumor", "grade", "ki67"):
            assert f"fl_cnn_{mod}_{task}" in out
    assert "Research use only" in out


def test_make_demo_data_then_predict_json_and_csv(tmp_path, capsys):
    assert main(["make-demo-data", "--out", str(tmp_path / "demo")]) == 0
    made = sorted(p.parent for p in (tmp_path / "demo").glob("*/case.json"))
    assert {p.name.rsplit("-", 1)[0] for p in made} >= {"demo-glioma", "demo-node", "demo-fluoro", "demo-petct", "demo-thyroid"}
    assert (tmp_path / "demo_dicom" / "petct-demo-01" / "PT").is_dir()
    bundles = [p for p in made if p.name.startswith("demo-glioma")]
    assert len(bundles) >= 4
    out_json = tmp_path / "r.json"
    assert main(["predict", *map(str, bundles[:2]), "--out", str(out_json)]) == 0
    results = json.loads(out_json.read_text())
    assert len(results) == 4  # FL and WL cascade per case
    assert {r["model"] for r in results} == {"fl_cnn[FL]", "fl_cnn[WL]"}
    assert all(0 <= t["probability"] <= 1 for r in results for t in r["tasks"].values() if t["probability"] is not None)
    assert {(r["family"], r["variant"]) for r in results} == {("fl_cnn", "FL"), ("fl_cnn", "WL")}
    out_csv = tmp_path / "r.csv"
    assert main(["predict", str(bundles[0] / "image_FL.png"), "--out", str(out_csv)]) == 0
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["task"] for r in rows] == ["tumor", "grade", "ki67"] and rows[0]["model"] == "fl_cnn[FL]"


def test_predict_bad_file_reports_the_file(tmp_path, capsys):
    bad = tmp_path / "scan.png"
    bad.write_bytes(b"not a png")
    assert main(["predict", str(bad)]) == 2
    assert "scan.png" in capsys.readouterr().err


def test_gui_needs_a_launcher(capsys):
    assert main(["gui"]) == 2


@pytest.mark.slow
def test_train_then_evaluate_tiny_run(tmp_path, monkeypatch, capsys):
    """Train one tiny FL tumor net on a small phantom set into a temp models folder, then evaluate it."""
    models = tmp_path / "models"
    args = ["train", "fl_cnn", "--modality", "FL", "--task", "tumor", "--epochs", "1",
            "--phantom-patients", "8", "--phantom-per-patient", "12", "--models-dir", str(models)]
    assert main(args) == 0
    card = json.loads((models / "fl_cnn_fl_tumor" / "config.json").read_text())
    assert card["training"]["regenerate"].startswith("oncolens train fl_cnn")
    assert card["weights"]["dtype"] == "float16" and len(card["weights"]["sha256"]) == 64
    assert 0 <= card["evaluation"]["metrics"]["auc"]["value"] <= 1
    assert set(card["training"]["test_patients"]).isdisjoint(card["training"]["validation_patients"])
    assert (models / "fl_cnn_fl_tumor" / "README.md").exists()
    # `evaluate` of the installed net (the app's predictor, regenerated test patients) reproduces the card
    out = tmp_path / "eval"
    assert main(["evaluate", "fl_cnn", "--modality", "FL", "--models-dir", str(models), "--out", str(out)]) == 2
    assert "fl_cnn_fl_grade" in capsys.readouterr().err  # the cascade's other nets are not installed: named
    from engine.predict.glioma import GliomaCascadePredictor
    from engine.train.fl_cnn import record_scores
    from engine.train.fl_cnn_run import SpecimenData, specimen_records
    from engine.train.specimen_data import task_records

    predictor = GliomaCascadePredictor("FL", device="cpu", tasks=("tumor",), root=models)
    records, _ = specimen_records(SpecimenData("phantom", 8, 12, 2021))
    test = [r for r in task_records(records, "tumor", "FL") if r.patient_id in set(card["training"]["test_patients"])]
    from engine.metrics.classification import auc

    scores = record_scores(predictor, "tumor", test)
    assert auc([r.labels["tumor"] for r in test], scores) == pytest.approx(
        card["evaluation"]["metrics"]["auc"]["value"], abs=1e-9)


@pytest.mark.slow
def test_evaluate_shipped_fl_models_on_their_phantom_test_split(tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["evaluate", "fl_cnn", "--modality", "FL", "--bootstrap", "200", "--out", str(out)]) == 0
    table = capsys.readouterr().out
    assert "FL-CNN tumor" in table and "FL-CNN grade" in table and "FL-CNN ki67" in table
    for suffix in (".csv", ".json", "_per_specimen.csv", "_roc.png"):
        assert (out / f"fl_cnn_fl_test{suffix}").stat().st_size > 0
    doc = json.loads((out / "fl_cnn_fl_test.json").read_text())
    tumor = doc["evaluations"]["FL-CNN tumor"]["metrics"]["auc"]
    assert tumor["ci_low"] <= tumor["value"] <= tumor["ci_high"]
