"""FL-CNN cascade (Shen et al. 2021): CNN1 tumor vs non-tumor; if tumor, CNN2 grade and CNN3 Ki-67.

One cascade per modality: FL (NIR-II fluorescence) or WL (white light). Each net has its own card.
"""

from __future__ import annotations

import json
import time

import numpy as np
import torch

from engine.cases.model import FL, WL
from engine.device import describe_device, select_device
from engine.explain.gradcam import gradcam_maps
from engine.predict.base import Prediction, Predictor
from engine.preprocess.specimen import preprocess_specimen
from engine.registry import ModelCard, create_model

TASKS = ("tumor", "grade", "ki67")
GATED_TASKS = ("grade", "ki67")  # only meaningful when CNN1 calls tumor


def card_name(modality: str, task: str) -> str:
    return f"fl_cnn_{modality.lower()}_{task}"


class GliomaCascadePredictor(Predictor):
    """Runs the three FL-CNN (or WL-CNN) nets of one modality as the paper's cascade."""

    def __init__(self, modality: str = FL, device: str | torch.device | None = None,
                 run_all: bool = False) -> None:
        if modality not in (FL, WL):
            raise ValueError(f"FL-CNN cascade takes modality FL or WL, not {modality!r}.")
        self.modality = modality
        self.modalities = (modality,)
        self.name = f"fl_cnn[{modality}]"
        self.run_all = run_all  # evaluation: score grade/Ki-67 even when CNN1 says non-tumor
        self.device = select_device(device if isinstance(device, str) else None) if not isinstance(
            device, torch.device) else device
        self.nets: dict[str, torch.nn.Module] = {}
        self.cards: dict[str, ModelCard] = {}
        for task in TASKS:
            net, card = create_model(card_name(modality, task), device=self.device)
            self.nets[task], self.cards[task] = net, card

    def weight_hashes(self) -> dict[str, str]:
        return {card.name: card.weights["sha256"] for card in self.cards.values()}

    def _inputs(self, image: np.ndarray, bit_depth: int | None) -> dict[str, tuple]:
        """Preprocess once per distinct set of card constants (the three cards normally agree)."""
        cache: dict[str, tuple] = {}
        out = {}
        for task, card in self.cards.items():
            key = json.dumps(card.preprocessing, sort_keys=True)
            if key not in cache:
                chw, geometry = preprocess_specimen(image, card.preprocessing, bit_depth, where=f"{self.modality} image")
                cache[key] = (torch.from_numpy(chw)[None].to(self.device), geometry)
            out[task] = cache[key]
        return out

    def predict(self, images: dict[str, np.ndarray], *, explain: bool = True,
                bit_depth: int | None = None) -> Prediction:
        if self.modality not in images:
            raise KeyError(f"{self.name} needs a {self.modality} image; the case has: {', '.join(images) or 'none'}.")
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        inputs = self._inputs(images[self.modality], bit_depth)
        timings["preprocess"] = (time.perf_counter() - t0) * 1e3
        pred = Prediction(model=self.name, weights_sha256=self.weight_hashes(), device=describe_device(self.device))
        for task in TASKS:
            card = self.cards[task]
            pred.thresholds[task] = float(card.thresholds["operating"])
            if task in GATED_TASKS and not self.run_all and pred.calls.get("tumor") != card_positive(self.cards["tumor"]):
                pred.calls[task] = "not assessed (non-tumor call)"
                continue
            x, geometry = inputs[task]
            t = time.perf_counter()
            with torch.inference_mode():
                prob = float(torch.sigmoid(self.nets[task](x)).item())
            timings[task] = (time.perf_counter() - t) * 1e3
            pred.probabilities[task] = prob
            pred.calls[task] = card.labels[1] if prob >= pred.thresholds[task] else card.labels[0]
            if explain:
                t = time.perf_counter()
                cam = gradcam_maps(self.nets[task], x, card.gradcam_layers)[0]
                pred.heatmaps[f"{task}/{self.modality}"] = np.clip(geometry.to_original(cam), 0, 1)
                timings[f"gradcam_{task}"] = (time.perf_counter() - t) * 1e3
        timings["total"] = (time.perf_counter() - t0) * 1e3
        pred.timings_ms = timings
        return pred


def card_positive(card: ModelCard) -> str:
    return card.labels[1]
