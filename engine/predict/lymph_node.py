"""MFI-FFP predictor: P(metastatic) for one lymph node from whichever of WLI / FI / PCI it has.

The installed card whose modalities are exactly those present is used (tri-modal when all three
exist; a bi- or uni-modal MFI-FFP variant otherwise). Grad-CAM comes from the layers the card names
(`gradcam_layers`: each branch's last feature layer, heatmap 'metastatic/<modality>' on that modality's
image, and the fusion layer, heatmap 'metastatic/fusion', drawn on WLI as in the paper's Fig. 5). The maps
explain the class called at the card's threshold unless `explain_class` asks for another; the prediction
records which (`engine.predict.base.heatmap_class`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

import engine.nets.mfi_ffp  # noqa: F401  (registers the mfi_ffp family)
from engine.data import ModalityImage, Prediction
from engine.device import describe_device, select_device
from engine.explain.gradcam import gradcam_maps
from engine.fastpath import FastPath, backend_choice
from engine.predict.base import Predictor
from engine.preprocess.lymph_node import (
    NODE_MODALITIES,
    SquareBox,
    check_node_images,
    heatmap_taper,
    preprocess_node,
)
from engine.registry import ModelCard, ModelError, create_model, load_card

FAMILY = "mfi_ffp"
TASK = "metastatic"


def card_name(modalities: Sequence[str]) -> str:
    ordered = [m for m in NODE_MODALITIES if m in modalities]
    return "mfi_ffp_" + "_".join(m.lower() for m in ordered)


def variant_name(modalities: Sequence[str]) -> str:
    """'WLI+FI+PCI' for the tri-modal net; the modes a bi- or uni-modal variant reads otherwise."""
    return "+".join(m for m in NODE_MODALITIES if m in modalities)


def installed_variant(present: Sequence[str], root: Path | str | None = None) -> list[str]:
    """The modalities of the installed card that fits the images present (exact set), or a clear error."""
    wanted = [m for m in NODE_MODALITIES if m in present]
    if not wanted:
        raise ValueError(f"MFI-FFP needs at least one of {', '.join(NODE_MODALITIES)}; the case has "
                         f"{', '.join(present) or 'no image'}.")
    try:
        load_card(card_name(wanted), root)
    except ModelError as exc:
        raise ModelError(f"No MFI-FFP model is installed for {' + '.join(wanted)} ({exc})") from exc
    return wanted


class MFIFFPPredictor(Predictor):
    """Runs one MFI-FFP card on the node images it needs; heatmaps per branch and at the fusion layer."""

    family = FAMILY

    def __init__(self, modalities: Sequence[str] = NODE_MODALITIES, device: str | torch.device | None = None,
                 backend: str | None = None, root: Path | str | None = None,
                 net: tuple[torch.nn.Module, ModelCard] | None = None, explain_class: str = "predicted") -> None:
        """`net` = (module, card) runs a net already in memory (training evaluates through here; eager unless
        `backend` is named). `backend` None follows the setting (engine.fastpath); Grad-CAM always runs eager.
        `explain_class` (predicted, positive or negative) is the class the Grad-CAM maps explain."""
        self.explain_class = explain_class
        self.modalities = tuple(m for m in NODE_MODALITIES if m in modalities)
        self.variant = variant_name(self.modalities)
        self.device = device if isinstance(device, torch.device) else select_device(device)
        self.net, self.card = net if net is not None else create_model(card_name(self.modalities), root=root)
        self.net.to(self.device).eval()
        backend = "eager" if backend is None and net is not None else backend_choice(backend)
        self.fast = FastPath(self.net, self.card, self._example(), device=self.device, backend=backend)

    @property
    def backend(self) -> str:
        return self.fast.backend

    def _example(self) -> torch.Tensor:
        size = int(self.card.input.size[0])
        return torch.zeros(1, 3 * len(self.modalities), size, size)

    @property
    def cards(self) -> dict[str, ModelCard]:
        return {TASK: self.card}

    def weight_hashes(self) -> dict[str, str]:
        return {self.card.name: self.card.weights.get("sha256", "")}

    def probability(self, chw: np.ndarray) -> float:
        """P(metastatic) of one preprocessed input (3M, S, S)."""
        logits = torch.from_numpy(self.fast(chw[None]))
        return float(torch.softmax(logits, dim=1)[0, 1])

    def preprocess(self, images: Mapping[str, ModalityImage]) -> tuple[np.ndarray, SquareBox]:
        """The net input (3M, S, S) for one node and the box it was cut from, per the card."""
        given = self.require(images)
        arrays = {m: img.array for m, img in given.items()}
        check_node_images(arrays, self.modalities)
        return preprocess_node(arrays, self.modalities, self.card.preprocessing,
                               {m: img.meta.bit_depth for m, img in given.items()})

    def score(self, images: Mapping[str, ModalityImage]) -> float:
        """P(metastatic) of one node without explanations (training and evaluation score through here)."""
        return self.probability(self.preprocess(images)[0])

    def predict(self, images: Mapping[str, ModalityImage], *, explain: bool = True) -> Prediction:
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        chw, geometry = self.preprocess(images)
        timings["preprocess"] = (time.perf_counter() - t0) * 1e3
        t = time.perf_counter()
        prob = self.probability(chw)
        timings["inference"] = (time.perf_counter() - t) * 1e3
        threshold = self.card.threshold(TASK)
        pred = self.new_prediction(f"{describe_device(self.device)}, {self.fast.label}")
        pred.set_result(TASK, self.card.labels[1] if prob >= threshold else self.card.labels[0], prob, threshold)
        if explain:
            t = time.perf_counter()
            x = torch.from_numpy(chw)[None].to(self.device)
            fade = heatmap_taper(self.card.preprocessing)  # a node crop: maps fade out at its border (card)
            taper = geometry.taper(fade) if fade > 0 else 1.0
            index = self.explained_class(prob >= threshold)
            for key, layer in self.card.gradcam_layers.items():  # the card names the layers, one per heatmap
                cam = gradcam_maps(self.net, x, [layer], index)[0]
                self.record_heatmap(pred, f"{TASK}/{key}", np.clip(geometry.to_original(cam) * taper, 0, 1), index)
            self.note_heatmap_classes(pred, {f"{TASK}/{key}": self.card.labels[index]
                                             for key in self.card.gradcam_layers})
            timings["gradcam"] = (time.perf_counter() - t) * 1e3
        timings["total"] = (time.perf_counter() - t0) * 1e3
        pred.timings_ms = timings
        return pred
