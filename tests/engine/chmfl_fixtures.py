"""A CHMFL card with untrained compact weights in a temporary models folder, so that predictor, kind, CLI and
export tests run without the shipped weights (and fast)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.data import ZYX, ModalityImage
from engine.registry import build_net, save_weights, write_card
from engine.train.chmfl import CHMFLTrainSettings, provisional_card


def install_tiny_card(root: Path, seed: int = 0, **overrides) -> Path:
    import torch

    import engine.nets.chmfl  # noqa: F401

    settings = CHMFLTrainSettings(**overrides)
    card = provisional_card(settings, root=root)
    torch.manual_seed(seed)
    net = build_net("chmfl", card.config).eval()
    card.training = {"data": {"kind": "phantom", "n_patients": 4, "volumes_per_patient": 1, "seed": 3},
                     "regenerate": "oncolens train chmfl (test card, untrained)"}
    card.evaluation = {"description": "untrained test card"}
    save_weights(net, card)
    write_card(card)
    return root


def phantom_images(seed: int = 0, label: int = 1):
    from engine.phantoms.petct import make_patient

    patient = make_patient(np.random.default_rng(seed), label, f"T{seed}")
    return patient, {"PET": patient.pet, "CT": patient.ct}


def without_centre(image: ModalityImage) -> ModalityImage:
    meta = image.meta
    extra = {k: v for k, v in meta.extra.items() if k != "roi_center_mm"}
    from engine.data import ImageMeta

    return ModalityImage(image.modality, image.array, ImageMeta(meta.bit_depth, meta.units, meta.spacing,
                                                                origin=meta.origin, direction=meta.direction,
                                                                source=dict(meta.source), extra=extra), ZYX)
