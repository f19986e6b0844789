"""MFI-FFP end to end on tiny phantom data: preprocessing, training (one process and DDP), cards,
the predictor (heatmaps, ONNX fast path) and the ablation table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.data import image_of
from engine.io.images import ImageReadError
from engine.phantoms.lymph_node import make_node_dataset
from engine.preprocess.lymph_node import (
    check_node_images,
    foreground_mask,
    node_units,
    preprocessing_constants,
)
from engine.train.mfi_ffp import (
    MFIFFPTrainSettings,
    NodeSample,
    make_split,
    prepare_arrays,
    save_trained,
    train_mfi_ffp,
)
from engine.train.mfi_ffp_ablation import format_ablation, resolve_names, run_ablation

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def nodes():
    return make_node_dataset(n_patients=8, nodes_per_patient=6, seed=5, size=160, positive_rate=0.3)


@pytest.fixture(scope="module")
def arrays(nodes):
    samples = [NodeSample(n.node_id, n.patient_id, int(n.label), dict(n.images)) for n in nodes]
    return prepare_arrays(samples, 80)


def test_wli_background_removal_finds_the_node(nodes):
    ious = []
    for n in nodes[:12]:
        mask = foreground_mask(n.images["WLI"])
        ious.append((mask & n.mask).sum() / (mask | n.mask).sum())
    assert np.median(ious) > 0.85, ious


def test_preprocessing_is_aligned_and_keeps_pci_background(nodes):
    n = nodes[0]
    units, box = node_units(n.images, ("WLI", "FI", "PCI"), preprocessing_constants(80))
    assert units.shape == (80, 80, 9) and units.dtype == np.float32
    assert box.height == n.images["WLI"].shape[0]
    ys, xs = np.nonzero(n.mask)  # the crop is centred on the node and holds all of it
    assert box.top <= ys.min() and ys.max() < box.top + box.side
    assert box.left <= xs.min() and xs.max() < box.left + box.side
    wli, pci = units[..., 0:3], units[..., 6:9]
    inside = box.cut(np.ones(n.mask.shape, np.float32)) > 0  # pixels of the image, not padding
    inside = cv2.resize(inside.astype(np.uint8), (80, 80), interpolation=cv2.INTER_NEAREST) > 0
    cloth = (wli.sum(axis=2) == 0) & inside
    assert cloth.mean() > 0.3  # cloth removed from WLI ...
    assert pci[cloth].mean() > 0.05  # ... but kept in PCI, as in the paper
    heat = box.to_original(np.ones((80, 80), np.float32))
    assert heat.shape == n.mask.shape and heat[n.mask].min() > 0.99


def test_crop_box_is_found_on_pci_when_the_model_reads_it(nodes):
    from engine.preprocess.lymph_node import box_source, node_box

    constants = preprocessing_constants(80)
    assert box_source(("WLI", "FI", "PCI"), constants["box_order"]) == "PCI"
    assert box_source(("WLI", "PCI"), constants["box_order"]) == "PCI"
    assert box_source(("WLI", "FI"), constants["box_order"]) == "WLI"
    assert box_source(("FI",), constants["box_order"]) == "FI"
    assert box_source(("WLI", "FI", "PCI")) == "WLI"  # cards without box_order keep their old crop
    legacy = {k: v for k, v in constants.items() if k != "box_order"}
    grew = 0
    for n in nodes[:6]:
        shape = n.mask.shape
        pci_box = node_box(n.images, ("WLI", "PCI"), constants, shape)
        wli_box = node_box(n.images, ("WLI", "PCI"), legacy, shape)
        assert pci_box.side >= wli_box.side - 2  # the overlay covers the node and the tracer around it
        grew += pci_box.side > wli_box.side
    assert grew >= 3


def test_mismatched_or_missing_images_are_clear_errors(nodes):
    images = dict(nodes[0].images)
    images["FI"] = images["FI"][:-4]
    with pytest.raises(ImageReadError, match="not aligned.*FI 156x160"):
        check_node_images(images, ("WLI", "FI", "PCI"))
    with pytest.raises(ImageReadError, match="missing: PCI"):
        check_node_images({"WLI": images["WLI"]}, ("WLI", "PCI"))


def test_train_save_and_predict_with_heatmaps_and_onnx(arrays, tmp_path):
    from engine.metrics.classification import auc
    from engine.train.mfi_ffp import node_scores

    models = tmp_path / "models"
    settings = MFIFFPTrainSettings(epochs=1, batch_size=8, n_bootstrap=50)
    outcome = train_mfi_ffp(arrays, settings)
    assert outcome is not None and 0.0 <= outcome.threshold <= 1.0
    assert len(outcome.test_scores) == len(outcome.split.test)
    assert set(arrays.patients[i] for i in outcome.split.test).isdisjoint(
        arrays.patients[i] for i in outcome.split.fit)
    card = save_trained(outcome, arrays, {"kind": "phantom"}, "pytest", root=models)
    assert card.name == "mfi_ffp_wli_fi_pci" and card.weights["dtype"] == "float16"
    assert (models / card.name / "README.md").is_file()
    # ACC, F1, SEN, SPE at the validation-chosen threshold and, labelled, at argmax where the paper reports them
    argmax = card.evaluation["also_at"]["argmax (P(metastatic) >= 0.5), the paper's operating point"]
    assert argmax["threshold"] == 0.5 and outcome.argmax.threshold == 0.5
    assert argmax["counts"] == outcome.argmax.to_dict()["counts"]
    assert "At argmax (P(metastatic) >= 0.5)" in (models / card.name / "README.md").read_text()
    assert "s = 30" in card.training["loss"] and max(card.training["ldam_margins"]) == 0.5
    assert "our choice" in card.training["schedule"] and card.training["input"].startswith("crop 'node'")

    from engine.phantoms.lymph_node import make_node_dataset
    from engine.predict.lymph_node import MFIFFPPredictor

    predictor = MFIFFPPredictor(device="cpu", root=models)
    # The card's numbers are the app's: the installed predictor scores the test nodes as the card says.
    again = node_scores(predictor, arrays, outcome.split.test)
    assert np.allclose(again, outcome.test_scores, atol=1e-5)
    y = arrays.labels[outcome.split.test]
    assert auc(y, again) == pytest.approx(card.evaluation["metrics"]["auc"]["value"], abs=1e-9)
    node = make_node_dataset(n_patients=1, nodes_per_patient=1, seed=9, size=150)[0]
    images = {m: image_of(m, a) for m, a in node.images.items()}
    pred = predictor.predict(images, explain=True)
    assert pred.model == "mfi_ffp[WLI+FI+PCI]"
    assert 0.0 <= pred.probabilities["metastatic"] <= 1.0
    assert pred.calls["metastatic"] in ("benign", "metastatic")
    assert set(pred.heatmaps) == {"metastatic/WLI", "metastatic/FI", "metastatic/PCI", "metastatic/fusion"}
    for heat in pred.heatmaps.values():
        assert heat.shape == (150, 150) and heat.min() >= 0 and heat.max() <= 1

    fast = MFIFFPPredictor(device="cpu", backend="onnx", root=models)
    assert fast.predict(images, explain=False).probabilities["metastatic"] == pytest.approx(
        pred.probabilities["metastatic"], abs=1e-4)


def test_ablation_rows_and_table(arrays):
    assert resolve_names("modalities")[:2] == ["tri-modal", "WLI+FI"]
    with pytest.raises(ValueError, match="Unknown ablation"):
        resolve_names("tri-LSTM")
    base = MFIFFPTrainSettings(epochs=1, batch_size=8, n_bootstrap=20)
    rows = run_ablation(arrays, ["FI", "concat"], base, runs=2, split=make_split(arrays))
    assert [r.name for r in rows] == ["FI", "concat"]
    assert len(rows[0].runs_auc) == 2 and rows[0].params_m < rows[1].params_m
    table = format_ablation(rows)
    assert "FI" in table and "0.6396" in table and "0.7653" in table  # the paper's FI AUC and ACC beside ours
    assert "ACC val thr (95% CI)" in table and "ACC argmax (95% CI)" in table and "SEN/SPE argmax" in table
    assert "|" in format_ablation(rows, markdown=True)
    assert rows[0].to_dict()["argmax"]["accuracy"]["value"] is not None


def test_ablation_reuses_a_configuration_and_trains_the_resize_input(arrays):
    base = MFIFFPTrainSettings(epochs=1, batch_size=8, n_bootstrap=20)
    rows = run_ablation(arrays, ["crop", "tri-modal", "resize"], base, split=make_split(arrays))
    assert rows[0].median is rows[1].median  # compact 'tri-modal' is the crop: trained once
    assert [r.to_dict()["input"] for r in rows] == ["node", "node", "none"]
    assert rows[2].median.settings.crop_mode == "none" and "resize" in format_ablation(rows)


def test_paper_preset_resizes_the_whole_image_and_compact_crops(arrays):
    from dataclasses import replace

    from engine.preprocess.lymph_node import node_box

    assert MFIFFPTrainSettings(preset="paper").crop_mode == "none"
    assert MFIFFPTrainSettings().crop_mode == "node" and MFIFFPTrainSettings(crop="none").crop_mode == "none"
    whole = prepare_arrays(arrays.samples[:6], 80, crop="none")
    assert whole.constants["crop"] == "none" and "box_order" not in whole.constants
    assert whole.units["WLI"] is whole.units["FI"] is whole.units["PCI"]  # one box: the whole image
    node = arrays.samples[0]
    box = node_box(node.images, ("WLI", "FI", "PCI"), whole.constants, node.images["WLI"].shape[:2])
    assert (box.top, box.left, box.side) == (0, 0, node.images["WLI"].shape[0])
    with pytest.raises(ValueError, match="crop 'node'"):
        train_mfi_ffp(whole, replace(MFIFFPTrainSettings(epochs=1), crop="node"))


def test_table_i_permutations_loss_weight_sweep_and_what_is_not_implemented():
    from engine.train.mfi_ffp_ablation import ABLATIONS, GROUPS, NOT_IMPLEMENTED

    table_i = [a for a in ABLATIONS.values() if "I" in a.tables]
    assignments = {tuple(kind for _, kind in a.branches) for a in table_i}
    assert len(table_i) == 9 and len(assignments) == 9  # the 6 permutations of IRB/RB/ViT and 3 same-branch rows
    mixed = [a.name for a in table_i if a.tables == ("I",)]
    assert len(mixed) == 5 and set(mixed) <= set(GROUPS["branches"])
    assert ABLATIONS["WLI:ViT FI:RB PCI:IRB"].paper.auc == 0.8054  # WLI and PCI branches exchanged
    sweep = [ABLATIONS[n] for n in GROUPS["loss-weights"] if n != "tri-modal"]
    assert {(a.alpha, a.beta) for a in sweep} >= {(0.01, 0.01), (0.1, 0.1), (0.5, 0.5)}
    settings = sweep[0].settings(MFIFFPTrainSettings(), seed=0)
    assert (settings.alpha, settings.beta) == (sweep[0].alpha, sweep[0].beta)
    assert ABLATIONS["resize"].settings(MFIFFPTrainSettings(), 0).crop_mode == "none"
    assert set(GROUPS["all"]) == set(ABLATIONS)
    assert "Tables III/IV" in NOT_IMPLEMENTED and "not implemented" in NOT_IMPLEMENTED


def test_ldam_rows_compare_the_reference_with_the_literal_reading():
    from engine.train.mfi_ffp import loss_description
    from engine.train.mfi_ffp_ablation import ABLATIONS, GROUPS, resolve_names

    assert resolve_names("ldam") == GROUPS["ldam"]
    assert resolve_names(",".join(GROUPS["ldam"])) == GROUPS["ldam"]  # row names carry no comma
    literal = ABLATIONS["tri-modal (LDAM literal)"].settings(MFIFFPTrainSettings(), 0)
    reference = ABLATIONS["tri-modal"].settings(MFIFFPTrainSettings(), 0)
    assert (literal.ldam, reference.ldam) == ("literal", "reference") and literal.loss_terms == reference.loss_terms
    assert "taken literally" in loss_description(literal) and "s = 30" in loss_description(reference)
    assert ABLATIONS["LDAM literal"].settings(MFIFFPTrainSettings(), 0).loss_terms == ("ldam",)


@pytest.mark.slow
def test_torchrun_ddp_two_cpu_processes(tmp_path):
    """`torchrun --nproc_per_node 2` with gloo: both ranks finish and rank 0 writes the card."""
    env = {**os.environ, "ONCOLENS_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
           "-m", "engine.cli", "train", "mfi_ffp", "--variants", "FI", "--epochs", "1", "--batch-size", "8",
           "--phantom-patients", "20", "--phantom-nodes", "10", "--models-dir", str(tmp_path / "models"),
           "--out", str(tmp_path / "ablation")]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "weights identical on all 2 processes" in done.stderr  # gradients were averaged
    assert (tmp_path / "models" / "mfi_ffp_fi" / "config.json").is_file()
    assert (tmp_path / "ablation" / "mfi_ffp_ablation.csv").is_file()



@pytest.mark.slow
def test_cli_train_evaluate_and_bench(tmp_path, monkeypatch, capsys):
    from engine.cli import main

    models = tmp_path / "models"
    assert main(["train", "mfi_ffp", "--variants", "WLI+FI+PCI", "--epochs", "1", "--batch-size", "8",
                 "--phantom-patients", "20", "--phantom-nodes", "10", "--models-dir", str(models),
                 "--out", str(tmp_path / "ablation")]) == 0
    readme = (models / "mfi_ffp_wli_fi_pci" / "README.md").read_text(encoding="utf-8")
    assert "## Ablation" in readme and "tri-modal" in readme
    capsys.readouterr()
    assert main(["evaluate", "mfi_ffp", "--out", str(tmp_path / "eval"), "--bootstrap", "50",
                 "--models-dir", str(models)]) == 0
    table = capsys.readouterr().out
    assert "tri-modal" in table and "GFLOPs" in table
    assert (tmp_path / "eval" / "mfi_ffp_test_roc.png").is_file()
    assert main(["bench", "mfi_ffp", "--repeats", "4", "--models-dir", str(models)]) == 0
    bench = capsys.readouterr().out
    assert "ONNX Runtime fp32" in bench and "eager PyTorch fp32" in bench
