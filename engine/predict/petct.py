"""CHMFL predictor: P(distant metastasis) of a soft-tissue sarcoma from PET (SUV) and CT (HU) volumes, with the
constrained decoder's tumour segmentation, the 3-D Grad-CAM of the classification head and the PET tumour
measures of the segmented volume.

Outputs: task `distant_metastasis`; masks `tumor` (on the PET volume's grid) and `tumor_box` (on the net's input
box); heatmap `distant_metastasis/fusion` (Grad-CAM of the card's layer, on the PET grid, 0 outside the box);
measures SUVmax, SUVpeak, SUVmean, MTV (ml), TLG of the segmented tumour and the box centre (mm).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

import engine.nets.chmfl  # noqa: F401  (registers the chmfl family)
from engine.data import ModalityImage, Prediction
from engine.device import describe_device, select_device
from engine.explain.gradcam import gradcam_maps
from engine.io.volumes import Grid, resample
from engine.metrics.pet import pet_measures
from engine.predict.base import Predictor
from engine.preprocess.petct import PET, BoxInput, preprocess_petct
from engine.registry import ModelCard, create_model

FAMILY = "chmfl"
TASK = "distant_metastasis"
PRIMARY_CARD = "chmfl_pet_ct"
GRADCAM_KEY = "fusion"


class CHMFLPredictor(Predictor):
    """Runs one CHMFL card (PET + CT, or a single-modality / 2-D variant) on a case's volumes."""

    family = FAMILY

    def __init__(self, card_name: str = PRIMARY_CARD, device: str | torch.device | None = None,
                 backend: str = "torch", root: Path | str | None = None,
                 net: tuple[torch.nn.Module, ModelCard] | None = None) -> None:
        """`net` = (module, card) runs a net already in memory (training evaluates through here)."""
        self.device = device if isinstance(device, torch.device) else select_device(device)
        self.net, self.card = net if net is not None else create_model(card_name, root=root)
        self.net.to(self.device).eval()
        self.modalities = tuple(self.card.input.modalities)
        self.variant = "+".join(self.modalities) + ("" if self.dims == 3 else " 2-D")
        self.backend = backend
        self._onnx = None
        if backend == "onnx":
            from engine.fastpath import OnnxRunner
            from engine.nets.chmfl import CHMFLWithSegmentation

            example = torch.zeros(1, len(self.modalities), *self.box_shape)
            self._onnx = OnnxRunner.for_model(CHMFLWithSegmentation(self.net), self.card, example)
        elif backend != "torch":
            raise ValueError(f"Unknown backend {backend!r}: use 'torch' or 'onnx'.")

    @property
    def dims(self) -> int:
        return int(self.card.config.get("dims", 3))

    @property
    def box_shape(self) -> tuple[int, ...]:
        shape = tuple(int(s) for s in self.card.preprocessing["box_voxels_zyx"])
        return shape if self.dims == 3 else shape[1:]

    def weight_hashes(self) -> dict[str, str]:
        return {self.card.name: self.card.weights.get("sha256", "")}

    def preprocess(self, images: Mapping[str, ModalityImage]) -> BoxInput:
        return preprocess_petct(images, self.modalities, self.card.preprocessing, self.dims)

    def run_net(self, x: np.ndarray) -> tuple[float, np.ndarray | None]:
        """(P(DM), tumour probability on the box or None) for one preprocessed input."""
        if self._onnx is not None:
            session = self._onnx.session
            logits, seg = session.run(None, {self._onnx.input_name: np.ascontiguousarray(x[None], np.float32)})
            logits, seg = torch.from_numpy(logits), torch.from_numpy(seg)
        else:
            with torch.inference_mode():
                logits = self.net(torch.from_numpy(x)[None].to(self.device)).float().cpu()
                seg = self.net.last_segmentation
                seg = None if seg is None else seg.float().cpu()
        p = float(torch.softmax(logits, dim=1)[0, 1])
        tumour = None if seg is None else torch.softmax(seg, dim=1)[0, 1].numpy()
        return p, tumour

    def score(self, images: Mapping[str, ModalityImage]) -> float:
        """P(DM) without masks or explanations (training and evaluation score through here)."""
        return self.run_net(self.preprocess(images).array)[0]

    def predict(self, images: Mapping[str, ModalityImage], *, explain: bool = True) -> Prediction:
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        box = self.preprocess(images)
        timings["preprocess"] = (time.perf_counter() - t0) * 1e3
        t = time.perf_counter()
        p, tumour = self.run_net(box.array)
        timings["inference"] = (time.perf_counter() - t) * 1e3
        threshold = self.card.threshold(TASK)
        pred = self.new_prediction(describe_device(self.device))
        pred.set_result(TASK, self.card.labels[1] if p >= threshold else self.card.labels[0], p, threshold)
        pred.notes.append(f"box centre from {box.centre_rule}")
        if self._onnx is not None:
            pred.notes.append("ONNX Runtime")
        for axis, value in zip("zyx", box.centre):
            pred.measures[f"box_centre_{axis}_mm"] = value
        pet = images.get(PET)
        pet_grid = Grid.of(pet) if pet is not None else None
        if tumour is not None and self.dims == 3:
            box_mask = (tumour >= 0.5).astype(np.uint8)
            pred.masks["tumor_box"] = box_mask
            if pet_grid is not None:
                mask = resample(box_mask, box.grid, pet_grid, order=0, cval=0)
                pred.masks["tumor"] = mask
                pred.measures.update(pet_measures(pet.array, mask, pet_grid.spacing))
        if explain and self.dims == 3:
            t = time.perf_counter()
            layer = self.card.gradcam_layers[GRADCAM_KEY]
            x = torch.from_numpy(box.array)[None].to(self.device)
            cam = gradcam_maps(self.net, x, [layer])[0]
            target = pet_grid or box.grid
            pred.heatmaps[f"{TASK}/{GRADCAM_KEY}"] = np.clip(resample(cam, box.grid, target, order=1, cval=0.0), 0, 1)
            timings["gradcam"] = (time.perf_counter() - t) * 1e3
        timings["total"] = (time.perf_counter() - t0) * 1e3
        pred.timings_ms = timings
        return pred
