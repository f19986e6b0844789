"""Fluorescence segmentation: nets at odd sizes, transfer freezing, data handling, loss, protocol tables,
manifest loading, ImageNet encoder files, and train -> card -> predictor (eager and ONNX) end to end."""

from __future__ import annotations

import csv
import json
import math

import cv2
import numpy as np
import pytest
import torch

from engine.data import image_of
from engine.nets.fluoro_seg import ARCHS, PAPER_CONFIGS, FluoroSegNet, config_for
from engine.preprocess.fluoro import frame_geometry, grey_unit, prepare_frame, preprocessing_constants
from engine.train.fluoro_seg import (
    SegArrays,
    SegSample,
    SegTrainSettings,
    dice_bce_loss,
    dihedral,
    load_fluoro_manifest,
    prepare_seg_arrays,
    roi_crop,
    train_seg,
)
from engine.train.fluoro_seg_eval import ProtocolSettings, format_tables, kfold, summarise_rows


@pytest.mark.parametrize("arch", ARCHS)
def test_each_net_gives_one_logit_per_pixel_at_odd_sizes(arch):
    torch.manual_seed(0)
    net = FluoroSegNet(config_for(arch)).eval()
    for h, w in ((67, 93), (32, 45), (129, 64)):
        with torch.no_grad():
            out = net(torch.randn(2, 1, h, w))
        assert out.shape == (2, 1, h, w)
        assert torch.isfinite(out).all()


def test_paper_configs_are_the_library_defaults():
    assert PAPER_CONFIGS["unet"]["encoder"] == "resnet34"
    assert PAPER_CONFIGS["swin_unetr"]["feature_size"] == 48
    net = FluoroSegNet(config_for("unet", "paper")).eval()
    with torch.no_grad():
        assert net(torch.randn(1, 1, 75, 41)).shape == (1, 1, 75, 41)
    with pytest.raises(Exception, match="Unknown segmentation net"):
        config_for("segformer")


@pytest.mark.parametrize("arch", ["unetplusplus", "swin_unetr"])
def test_frozen_encoder_stays_fixed_and_keeps_its_batchnorm_statistics(arch):
    torch.manual_seed(0)
    net = FluoroSegNet(config_for(arch))
    net.freeze_encoder(True)
    net.train()
    assert not any(p.requires_grad for p in net.encoder.parameters())
    assert not net.encoder.training and net.core.training  # frozen encoder in eval mode, decoder training
    before_enc = {k: v.clone() for k, v in net.encoder.state_dict().items()}
    decoder = [p for p in net.parameters() if p.requires_grad]
    before_dec = [p.detach().clone() for p in decoder]
    optimizer = torch.optim.Adam(decoder, lr=1e-2)
    x, y = torch.randn(2, 1, 64, 64), (torch.rand(2, 1, 64, 64) > 0.7).float()
    dice_bce_loss(net(x), y).backward()
    optimizer.step()
    for key, value in net.encoder.state_dict().items():
        assert torch.equal(value, before_enc[key]), key  # weights and running statistics unchanged
    assert any(not torch.equal(a, b) for a, b in zip(decoder, before_dec))
    net.freeze_encoder(False)
    net.train()
    assert net.encoder.training


def test_frozen_encoder_can_adapt_its_batchnorm_statistics_and_nothing_else():
    torch.manual_seed(0)
    net = FluoroSegNet(config_for("unet"))
    net.freeze_encoder(True, batchnorm="adapt")
    net.train()
    assert net.encoder.training and not any(p.requires_grad for p in net.encoder.parameters())
    before = {k: v.clone() for k, v in net.encoder.state_dict().items()}
    net(torch.randn(2, 1, 64, 64) * 3 + 1)
    after = net.encoder.state_dict()
    stats = [k for k in after if "running_" in k]
    assert stats and all(not torch.equal(after[k], before[k]) for k in stats if "running_mean" in k)
    weights = [k for k in after if "running_" not in k and "num_batches" not in k]
    assert all(torch.equal(after[k], before[k]) for k in weights)
    with pytest.raises(Exception, match="BatchNorm"):
        net.freeze_encoder(True, batchnorm="sometimes")


def test_dice_bce_loss_by_hand():
    target = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    logits = torch.zeros_like(target)  # p = 0.5 everywhere
    dice = (2 * 0.5 + 1) / (2.0 + 1.0 + 1)
    expected = (1 - dice) + math.log(2)
    assert float(dice_bce_loss(logits, target)) == pytest.approx(expected, rel=1e-6)
    good = dice_bce_loss(target * 20 - 10, target)
    assert float(good) < 0.01


def test_roi_crop_is_centred_near_the_tumor_and_keeps_frame_and_mask_aligned():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 300)).astype(np.float32)
    y = np.zeros((200, 300), bool)
    y[150:160, 250:262] = True
    x[y] = 50.0
    for _ in range(20):
        cx, cy = roi_crop(x, y, 64, rng, roi=True)
        assert cx.shape == (64, 64) and cy.any()
        assert np.array_equal(cx == 50.0, cy)
    small_x, small_y = roi_crop(x[:40, :50], y[:40, :50], 64, rng, roi=True)  # smaller than the crop: padded
    assert small_x.shape == (64, 64) and small_y.shape == (64, 64)


def test_dihedral_augmentation_moves_frame_and_mask_together():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(32, 32)).astype(np.float32)
    y = x > 1.0
    seen = set()
    for _ in range(60):
        ax, ay = dihedral(x, y, rng)
        assert np.array_equal(ax > 1.0, ay)
        seen.add(ax.tobytes())
    assert len(seen) == 8  # the 4 rotations x flips give the dihedral group of the square


def test_frame_preparation_scales_standardises_and_maps_back():
    constants = preprocessing_constants(256, 128)
    frame = (np.random.default_rng(2).random((300, 500)) * 4095).astype(np.uint16)
    x, geometry = prepare_frame(frame, constants, bit_depth=12)
    assert x.shape == (154, 256) and geometry.work_height == 154
    assert abs(float(x.mean())) < 1e-4 and float(x.std()) == pytest.approx(1.0, rel=1e-3)
    back = geometry.to_frame(np.ones(x.shape, np.float32))
    assert back.shape == (300, 500)
    rgb = np.dstack([frame // 16] * 3).astype(np.uint8)
    assert grey_unit(rgb).ndim == 2
    assert frame_geometry((1024, 1024), 1024).work_height == 1024


def test_kfold_splits_are_disjoint_and_cover_every_frame():
    folds = kfold(23, 5, seed=3)
    tests = np.concatenate([t for _, t in folds])
    assert sorted(tests.tolist()) == list(range(23))
    for train, test in folds:
        assert not set(train) & set(test) and len(train) + len(test) == 23
        assert len(test) in (4, 5)
    with pytest.raises(ValueError, match="folds"):
        kfold(3, 5)


def test_summaries_leave_infinite_distances_out_and_count_them():
    rows = [{"method": "Transfer", "net": "unet", "dice": 0.8, "fpsr": 0.1, "fnsr": 0.1, "hausdorff": 10.0,
             "hd95": 5.0},
            {"method": "Transfer", "net": "unet", "dice": 0.0, "fpsr": 1.0, "fnsr": 0.0, "hausdorff": math.inf,
             "hd95": math.inf}]
    (entry,) = summarise_rows(rows, ("method", "net"))
    assert entry["n"] == 2 and entry["dice"] == pytest.approx(40.0) and entry["fpsr"] == pytest.approx(55.0)
    assert entry["hausdorff"] == pytest.approx(10.0) and entry["hd_undefined"] == 1


@pytest.mark.parametrize("markdown", [False, True])
def test_printed_tables_count_the_frames_without_hd(markdown):
    row = {"method": "Transfer", "net": "unet", "dice": 0.8, "fpsr": 0.1, "fnsr": 0.1, "hausdorff": 10.0, "hd95": 5.0}
    empty = {**row, "dice": 0.0, "fpsr": 1.0, "fnsr": 0.0, "hausdorff": math.inf, "hd95": math.inf}
    text = format_tables({"A": summarise_rows([row, row, empty, empty], ("method", "net"))}, ProtocolSettings(),
                         markdown=markdown)
    header = next(line for line in text.splitlines() if "HD95 px" in line)
    values = next(line for line in text.splitlines() if "Transfer" in line)
    cells = [c.strip() for c in (values.strip("|").split("|") if markdown else values.split("  ")) if c.strip()]
    names = [c.strip() for c in (header.strip("|").split("|") if markdown else header.split("  ")) if c.strip()]
    assert cells[names.index("HD undefined")] == "2" and cells[names.index("n")] == "4"
    assert "larger of the two directed 95th percentiles" in text and "MONAI" in text


def test_manifest_loads_frames_and_names_a_mismatched_mask(tmp_path):
    frame = (np.random.default_rng(0).random((40, 60)) * 255).astype(np.uint8)
    mask = np.zeros((40, 60), np.uint8)
    mask[10:20, 10:30] = 255
    cv2.imwrite(str(tmp_path / "f1.png"), frame)
    cv2.imwrite(str(tmp_path / "m1.png"), mask)
    cv2.imwrite(str(tmp_path / "m_bad.png"), mask[:30])
    (tmp_path / "ok.csv").write_text("frame_id,image_path,mask_path,dataset,group,spacing_mm\n"
                                     "f1,f1.png,m1.png,B,PNET,0.12\n")
    (sample,) = load_fluoro_manifest(tmp_path / "ok.csv")
    assert sample.mask.sum() == 200 and sample.dataset == "B" and sample.group == "PNET"
    assert sample.spacing_mm == (0.12, 0.12)
    (tmp_path / "bad.csv").write_text("frame_id,image_path,mask_path,dataset\nf1,f1.png,m_bad.png,B\n")
    with pytest.raises(ValueError, match="m_bad.png"):
        load_fluoro_manifest(tmp_path / "bad.csv")
    (tmp_path / "cols.csv").write_text("frame_id,image_path\nf1,f1.png\n")
    with pytest.raises(ValueError, match="missing columns"):
        load_fluoro_manifest(tmp_path / "cols.csv")


def _toy_arrays(n: int = 6, size: int = 96) -> SegArrays:
    """Bright discs on noise: a net must learn this in a few epochs."""
    rng = np.random.default_rng(0)
    samples = []
    for i in range(n):
        yy, xx = np.mgrid[0:size, 0:size]
        cy, cx, r = rng.uniform(30, 66, 2).tolist() + [rng.uniform(10, 20)]
        mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        image = np.clip(60 + 120 * mask + rng.normal(0, 20, (size, size)), 0, 255).astype(np.uint8)
        samples.append(SegSample(f"toy-{i}", "B" if i < n - 2 else "C", image, mask, 8, (0.1, 0.1)))
    return prepare_seg_arrays(samples, "compact")


def test_training_lowers_the_loss_and_transfer_keeps_the_pretrained_encoder():
    data = _toy_arrays()
    settings = SegTrainSettings(arch="unet", epochs=6, lr=3e-3)
    outcome = train_seg(data, data.where("B"), settings)
    assert outcome.history[-1]["loss"] < outcome.history[0]["loss"]
    state = outcome.net.state_dict()
    tuned = train_seg(data, data.where("B"), SegTrainSettings(arch="unet", epochs=1, freeze_encoder=True),
                      init_state=state, init="toy")
    enc = tuned.net.encoder.state_dict()
    assert all(torch.equal(enc[k], state[f"core.encoder.{k}"]) for k in enc)
    with pytest.raises(ValueError, match="pretrained"):
        train_seg(data, data.where("B"), SegTrainSettings(arch="unet", epochs=1, freeze_encoder=True))


def test_imagenet_encoder_file_loads_with_a_grey_stem_and_a_wrong_file_is_named(tmp_path):
    from safetensors.torch import save_file

    from engine.train.fluoro_seg_encoders import init_from_imagenet

    settings = SegTrainSettings(arch="unetplusplus")
    encoder_name = settings.net_config()["encoder"]
    reference = FluoroSegNet(settings.net_config()).encoder.state_dict()
    rgb = {k: (v.repeat(1, 3, 1, 1) / 3 if v.ndim == 4 and v.shape[1] == 1 else v).clone()
           for k, v in reference.items()}
    rgb["fc.weight"] = torch.zeros(1000, 8)  # a classifier the loader must ignore
    path = tmp_path / f"{encoder_name}.safetensors"
    save_file({k: v.contiguous().float() for k, v in rgb.items() if v.is_floating_point()}, str(path))
    state = init_from_imagenet(settings, path)
    for key, value in reference.items():
        if value.is_floating_point():
            assert torch.allclose(state[f"core.encoder.{key}"], value, atol=1e-6), key
    wrong = tmp_path / "other.safetensors"
    save_file({"layer9.weight": torch.zeros(3, 3)}, str(wrong))
    with pytest.raises(ValueError, match="other.safetensors"):
        init_from_imagenet(settings, wrong)


def test_no_batch_of_one_so_deeplab_trains_on_any_fold_size():
    """49 and 85 frames (the phantom folds of A and B) leave one frame over at batch 4: BatchNorm after
    DeepLabv3+'s global pooling cannot train on it, so that frame waits for the next epoch."""
    from engine.train.fluoro_seg import batches

    data = _toy_arrays(n=7)
    settings = SegTrainSettings(arch="deeplabv3plus", epochs=1, batch_size=4)
    index = data.where("B")  # 5 frames: one batch of 4 and one left over
    sizes = [len(x) for x, _ in batches(data, index, settings, np.random.default_rng(0))]
    assert sizes == [4]
    assert [len(x) for x, _ in batches(data, index[:4], settings, np.random.default_rng(0))] == [4]
    assert [len(x) for x, _ in batches(data, index[:3], settings, np.random.default_rng(0))] == [3]
    train_seg(data, index, settings)  # raised "Expected more than 1 value per channel" before


@pytest.mark.gpu
def test_training_and_scoring_on_cuda_match_the_cpu_path():
    from engine.train.fluoro_seg import evaluate_net

    data = _toy_arrays()
    outcome = train_seg(data, data.where("B"), SegTrainSettings(arch="unet", epochs=2), device="cuda")
    assert next(outcome.net.parameters()).is_cuda
    on_gpu = evaluate_net(outcome.net, data, data.where("C"), method="x")
    on_cpu = evaluate_net(outcome.net.cpu(), data, data.where("C"), method="x")
    assert [r["dice"] for r in on_gpu] == pytest.approx([r["dice"] for r in on_cpu], abs=0.02)


def _protocol_keys(rows):
    return sorted((r["method"], r["net"], r["fold"], r["dataset"], r["frame_id"]) for r in rows)


@pytest.mark.slow
def test_protocol_in_worker_processes_gives_every_row_of_a_serial_run_and_saves_them_as_they_come(tmp_path):
    """Two worker processes: the same (method, net, fold, frame) rows as the serial run, DRLSE rows identical
    (no training involved), the log CSV holds every row, and --tables-from tabulates it like the run did."""
    from engine.train.fluoro_seg_eval import (
        ProtocolResult,
        ProtocolSettings,
        RowLog,
        protocol_tables,
        read_rows,
        run_protocol,
    )

    samples = _toy_arrays(n=8).samples
    for sample in samples[:3]:
        sample.dataset = "A"
    data = prepare_seg_arrays(samples, "compact")
    settings = ProtocolSettings(archs=("unet",), folds=2, targets=("A", "B"),
                                base=SegTrainSettings(epochs=1), seed=0)
    serial = run_protocol(data, settings)
    log = RowLog(tmp_path / "rows.csv")
    parallel = run_protocol(data, settings, jobs=2, on_rows=log)
    assert _protocol_keys(parallel.rows) == _protocol_keys(serial.rows)
    # every C frame: 2 folds x 2 methods (fine-tuned on B) + DRLSE once
    assert sum(r["dataset"] == "C" for r in parallel.rows) == 2 * 2 * 2 + 2
    drlse = [[r["dice"] for r in res.rows if r["method"] == "DRLSE"] for res in (serial, parallel)]
    assert drlse[0] == drlse[1]
    assert set(parallel.pretrained) == {"unet/A", "unet/B"}
    saved = read_rows(tmp_path / "rows.csv")
    assert _protocol_keys(saved) == _protocol_keys(parallel.rows)
    again = protocol_tables(ProtocolResult(saved, settings))
    direct = protocol_tables(parallel)
    assert again.keys() == direct.keys()
    for key in direct:
        assert [(e["method"], e["net"], e["n"], e["dice"]) for e in again[key]] == \
               [(e["method"], e["net"], e["n"], e["dice"]) for e in direct[key]]


def test_tables_from_names_a_missing_or_foreign_file(tmp_path):
    from engine.train.fluoro_seg_eval import read_rows

    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        read_rows(tmp_path / "nowhere.csv")
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="other.csv.*missing columns"):
        read_rows(tmp_path / "other.csv")


@pytest.mark.slow
def test_cli_train_evaluate_bench_and_predict_with_both_backends(tmp_path, monkeypatch, capsys):
    """Tiny phantom run of every command: train installs cards with the protocol tables, evaluate writes the
    paper's tables and per-image CSV, bench compares eager and ONNX, and both backends give the same mask."""
    from engine.cli import main
    from engine.metrics.segmentation import dice
    from engine.phantoms.fluoro_frames import make_frame
    from engine.predict.fluoro import FluoroSegPredictor

    models = tmp_path / "models"
    common = ["--epochs", "1", "--phantom-frames", "A=4,B=5,C=2", "--phantom-size", "128"]
    assert main(["train", "fluoro_seg", "--nets", "unet", "--folds", "2", "--targets", "B", *common,
                 "--models-dir", str(models), "--out", str(tmp_path / "tables")]) == 0
    readme = (models / "fluoro_seg_unet" / "README.md").read_text(encoding="utf-8")
    assert "## Evaluation tables" in readme and "Table 3 analogue" in readme and "DRLSE" in readme
    card = json.loads((models / "fluoro_seg_unet" / "config.json").read_text())
    assert card["training"]["regenerate"].startswith("oncolens train fluoro_seg")
    assert "dataset A" in card["training"]["pretrained"]
    capsys.readouterr()
    assert main(["evaluate", "fluoro_seg", "--nets", "unet,drlse", "--folds", "2", "--targets", "A,B", *common,
                 "--out", str(tmp_path / "eval")]) == 0
    printed = capsys.readouterr().out
    for title in ("Table 2 analogue", "Table 3 analogue", "Table 4 analogue", "Table 5 analogue"):
        assert title in printed
    rows = list(csv.DictReader(open(tmp_path / "eval" / "per_image_metrics.csv", encoding="utf-8")))
    assert {r["method"] for r in rows} == {"DRLSE", "End-to-end", "Transfer"}
    assert {r["dataset"] for r in rows} == {"A", "B", "C"}
    # every C frame read by each of the 2 fold models of both methods, and once by DRLSE
    assert sum(r["dataset"] == "C" for r in rows) == 2 * 2 * 2 + 2
    assert main(["evaluate", "fluoro_seg", "--folds", "2", "--targets", "A,B", "--epochs", "1",
                 "--tables-from", str(tmp_path / "eval" / "per_image_metrics.csv"), "--out", str(tmp_path / "again")]) == 0
    assert capsys.readouterr().out == printed  # the same tables from the saved rows, no training
    assert main(["bench", "seg", "--repeats", "3", "--models-dir", str(models)]) == 0
    bench = capsys.readouterr().out
    assert "UNet" in bench and "speed-up" in bench and "MASKS DIFFER" not in bench
    frame = make_frame(np.random.default_rng(4), "C", 150)  # not a multiple of 32
    nir = {"NIR": image_of("NIR", frame.image, 8)}
    eager = FluoroSegPredictor("unet", device="cpu", root=models).predict(nir)
    fast = FluoroSegPredictor("unet", device="cpu", backend="onnx", root=models).predict(nir)
    assert eager.masks["tumor"].shape == (150, 150)
    if eager.masks["tumor"].any() or fast.masks["tumor"].any():
        assert dice(eager.masks["tumor"], fast.masks["tumor"]) > 0.99
    assert np.abs(eager.heatmaps["tumor/NIR"] - fast.heatmaps["tumor/NIR"]).max() < 1e-3
    drlse = FluoroSegPredictor("drlse").predict({"NIR": image_of("NIR", frame.image, 8, spacing=(0.1, 0.1))})
    assert drlse.masks["tumor"].shape == (150, 150) and not drlse.heatmaps
    # The frame-level answer: the highest pixel probability, "tumor" exactly when the mask is not empty.
    assert eager.probabilities["tumor"] == pytest.approx(float(eager.heatmaps["tumor/NIR"].max()))
    for p in (eager, drlse):
        assert (p.probabilities["tumor"] >= p.thresholds["tumor"]) == bool(p.masks["tumor"].any())
        assert p.calls["tumor"] == ("tumor" if p.masks["tumor"].any() else "no tumor")


def test_card_summary_of_hd95_counts_the_frames_without_it():
    from engine.train.fluoro_seg_run import _bootstrap_mean

    summary = _bootstrap_mean([2.0, 4.0, math.inf, 6.0])
    assert summary["value"] == pytest.approx(4.0) and summary["n_undefined"] == 1


def test_cards_say_where_the_frozen_encoder_came_from():
    from engine.registry import list_models
    from engine.train.fluoro_seg_run import seg_description, transfer_source

    phantom = seg_description("unet", "compact", "end-to-end training on all of dataset A (61 frames)")
    assert "not ImageNet as in the paper" in phantom and "phantom dataset A" in phantom
    assert "--imagenet-encoder NET=FILE" in transfer_source("end-to-end training on all of dataset A (61 frames)")
    imagenet = seg_description("unet", "paper", "ImageNet encoder from resnet34.pth")
    assert "ImageNet encoder file, as in the paper" in imagenet and "not ImageNet" not in imagenet
    shipped = [c for c in list_models() if c.family == "fluoro_seg"]
    assert shipped
    for card in shipped:  # the demo nets' encoders came from phantom dataset A: the cards say so
        text = card.description + json.dumps(card.training)
        assert "as in the paper" not in card.description.replace("not ImageNet as in the paper", "")
        assert "not ImageNet" in card.description and "--imagenet-encoder" in card.training["transfer_source"]
        assert "our choice" in card.training["loss"] and "our choice" in card.training["schedule"]
        assert "transfer-learned as in the paper" not in text
