"""The shipped CHMFL card: weights, what was trained on, the protocol's pooled metrics, the ablation table, and
every choice the paper leaves open (said as a choice, never as "as in the paper")."""

from __future__ import annotations

from pathlib import Path

from engine.nets.chmfl import COMPACT_CONFIG, PAPER_CONFIG, build_chmfl, count_parameters
from engine.registry import ModelCard, save_weights, write_card
from engine.train.chmfl import CHMFLTrainSettings, provisional_card

OPEN_CHOICES = {
    "isotropic spacing": "paper box 112 x 112 x 144 voxels for a 112 x 112 x 144 mm box implies 1 mm (derived); "
                         "compact: 3.5 mm, box 32^3 = 112 mm cube (cranio-caudal shortened from 144 to 112 mm so four "
                         "halvings divide it)",
    "box centre": "GTV centroid for training (paper setting); at inference the image's roi_center_mm (the phantom "
                  "writes the GTV centroid, a user may click) else the PET SUVpeak location (our choice)",
    "interpolation": "linear for PET (clipped at 0) and CT, nearest for masks (our choice)",
    "intensity": "CT clipped to [-1000, 1000] HU, PET to [0, 20] SUV, each z-scored over the box (our choice; the "
                 "paper names 'standardisation and contrast enhancement' without values; the Foracchia contrast "
                 "normalisation is not applied)",
    "encoder weights": "separate PET and CT encoders (not stated in the paper)",
    "encoder depth": "one conv per level as Table SI lists (no V-Net residual convs in the encoder)",
    "head pooling": "global max pool of every fused level, 2 x (16+32+64+128+256) = 992 values at paper size "
                    "(APL output size not stated)",
    "FC widths": "paper configuration 992 -> 512 -> 128 -> 2; compact 248 -> 64 -> 32 -> 2 (not stated)",
    "decoder": "V-Net up blocks (transposed conv, concat of the fused level, residual stack n = 2, 2, 1, 1 of 5^3 "
               "convs) and a 5^3 + 1^3 output transition (reconstructed from Table SI); compact: 3^3 convs, n = 1, "
               "three up blocks ending at half resolution, tumour logits upsampled trilinearly",
    "segmentation loss": "voxel mean of the cross-entropy (the paper writes a sum)",
    "optimiser": "paper: Adam 1e-4, batch 1, about 200 epochs, no schedule stated; compact demo: Adam 1e-3, batch 4, 20 epochs, "
                 "flips, see training",
    "threshold": "P(DM) >= 0.5, the argmax of the softmax (no threshold stated)",
    "folds": "6 folds stratified by label, fixed seed (stratification not stated)",
    "metrics": "pooled out-of-fold predictions (the paper's tables fit pooled 24/24 counts); bootstrap 95% CIs "
               "over patients are an OncoLens addition",
    "Grad-CAM": "the paper shows feature-map heat maps, not Grad-CAM; OncoLens offers 3-D Grad-CAM of the DM logit "
                "at the fused level named in gradcam_layers (paper size: F5; compact: F4, since F5 is 2^3 there)",
}
ERRATA = [
    "MOR + 3D CNNs row: Spe 0.780 and F1 0.750 cannot coexist with Acc 0.729, Sen 0.750, Pre 0.720 on 24/24 cases.",
    "3DMCL row: Spe 0.797 is not a multiple of 1/24.",
    "Eq. (1) writes a voxel sum for the segmentation term and calls the weight both w and w_i.",
]


def save_chmfl_card(net, base: CHMFLTrainSettings, rows: list, diffs: list[dict], title: str, files: list[Path],
                    data_description: dict, command: str, root: Path | None, seconds: float) -> ModelCard:
    from engine.train.chmfl_run import format_orderings, format_table

    card = provisional_card(base, root=root)
    chmfl = next(r for r in rows if r.name == "CHMFL")
    card.training = {
        "data": data_description,
        **base.describe(),
        "shipped_weights": "one net trained on every patient after the cross-validation (the metrics below are the "
                           "cross-validation's out-of-fold predictions)",
        "parameters": count_parameters(net),
        "parameters_paper_configuration": count_parameters(build_chmfl(PAPER_CONFIG)),
        "compact_configuration": {k: v for k, v in COMPACT_CONFIG.items() if PAPER_CONFIG.get(k) != v},
        "train_seconds_total": round(seconds, 1),
        "threads": "1 CPU thread per process",
        "regenerate": command,
    }
    evaluation = chmfl.evaluation
    card.evaluation = {
        "description": (f"{base.folds}-fold cross-validation on {evaluation.n} phantom patients (stratified), pooled "
                        "out-of-fold P(DM) at the 0.5 threshold, scored through the predictor the app runs. "
                        f"{evaluation.ci_description()} Tumour Dice on the box: "
                        f"{chmfl.dice if chmfl.dice is not None else float('nan'):.3f}."),
        **evaluation.to_dict(),
        "threshold_rule": "fixed 0.5 (argmax)",
        "paper_headline": "CHMFL, 6-fold CV on 48 TCIA STS patients: Acc 0.854, Sen 0.875, Spe 0.833, Pre 0.840, "
                          "F1 0.857, AUC 0.873 (no CI)",
        "ablation": {"title": title, "rows": [r.to_dict() for r in rows], "orderings": diffs,
                     "markdown": format_table(rows, markdown=True) + "\n\nPaired bootstrap over patients of the AUC "
                                 "differences the paper's ordering claims:\n\n" + format_orderings(diffs, True),
                     "folder": "ablation", "files": sorted(p.name for p in files)},
    }
    card.extra = {"open_choices": OPEN_CHOICES, "paper_errata": ERRATA,
                  "phantom": "engine/phantoms/petct.py: the label lives in fine PET texture (strong) and a CT "
                             "infiltrative margin (weaker); tumour SUVmax, SUVmean and volume carry none of it"}
    save_weights(net, card, dtype="float16")
    write_card(card)
    return card
