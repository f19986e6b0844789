"""FL-CNN cascade (Shen et al. 2021): CNN1 tumor vs non-tumor; if tumor, CNN2 grade and CNN3 Ki-67.

One cascade per modality: FL (NIR-II fluorescence) or WL (white light). Each net has its own card, whose
operating threshold, labels, preprocessing and Grad-CAM layer the predictor uses. Each map explains the class
the task called (a non-tumor call shows the evidence for non-tumor) unless `explain_class` asks for another;
the prediction records which (`engine.predict.base.heatmap_class`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

import engine.nets.fl_cnn  # noqa: F401  (registers the fl_cnn family)
from engine.cases.model import FL, WL
from engine.data import ModalityImage, Prediction
from engine.device import describe_device, select_device
from engine.explain.gradcam import gradcam_maps
from engine.fastpath import FastPath, backend_choice
from engine.predict.base import Predictor
from engine.preprocess.specimen import preprocess_specimen
from engine.registry import ModelCard, create_model

FAMILY = "fl_cnn"
TASKS = ("tumor", "grade", "ki67")
GATED_TASKS = ("grade", "ki67")  # only meaningful when CNN1 calls tumor


def card_name(modality: str, task: str) -> str:
    return f"fl_cnn_{modality.lower()}_{task}"


class GliomaCascadePredictor(Predictor):
    """Runs the three FL-CNN (or WL-CNN) nets of one modality as the paper's cascade."""

    family = FAMILY

    def __init__(self, modality: str = FL, device: str | torch.device | None = None, run_all: bool = False,
                 root: Path | str | None = None, tasks: tuple[str, ...] = TASKS,
                 nets: Mapping[str, tuple[torch.nn.Module, ModelCard]] | None = None,
                 backend: str | None = None, explain_class: str = "predicted") -> None:
        """`nets` ({task: (net, card)}) runs nets already in memory (training evaluates through here; eager unless
        `backend` is named); otherwise each task's card is loaded from `root` (default: the shipped models).
        `backend` None follows the setting (engine.fastpath); Grad-CAM always runs eager. `explain_class`
        (predicted, positive or negative) is the class each task's Grad-CAM map explains."""
        self.explain_class = explain_class
        if modality not in (FL, WL):
            raise ValueError(f"FL-CNN cascade takes modality FL or WL, not {modality!r}.")
        self.modality = modality
        self.variant = modality
        self.modalities = (modality,)
        self.run_all = run_all  # evaluation: score grade/Ki-67 even when CNN1 says non-tumor
        self.device = device if isinstance(device, torch.device) else select_device(device)
        self.nets: dict[str, torch.nn.Module] = {}
        self.cards: dict[str, ModelCard] = {}
        self.fast: dict[str, FastPath] = {}
        backend = "eager" if backend is None and nets is not None else backend_choice(backend)
        for task in tasks:
            net, card = nets[task] if nets is not None else create_model(card_name(modality, task), root=root)
            self.nets[task], self.cards[task] = net.to(self.device).eval(), card
            size = int(card.input.size[0])
            self.fast[task] = FastPath(self.nets[task], card, torch.zeros(1, 3, size, size), device=self.device,
                                       backend=backend)

    @property
    def backend(self) -> str:
        return next(iter(self.fast.values())).backend if self.fast else "eager"

    @property
    def path_label(self) -> str:
        labels = dict.fromkeys(f.label for f in self.fast.values())
        return " / ".join(labels)

    def weight_hashes(self) -> dict[str, str]:
        return {card.name: card.weights.get("sha256", "") for card in self.cards.values()}

    def _inputs(self, image: ModalityImage) -> dict[str, tuple]:
        """Preprocess once per distinct set of card constants (the three cards normally agree)."""
        cache: dict[str, tuple] = {}
        out = {}
        for task, card in self.cards.items():
            key = json.dumps(card.preprocessing, sort_keys=True)
            if key not in cache:
                chw, geometry = preprocess_specimen(image.array, card.preprocessing, image.meta.bit_depth,
                                                    where=f"{self.modality} image")
                cache[key] = (chw[None], geometry)
            out[task] = cache[key]
        return out

    def task_probability(self, task: str, x: np.ndarray) -> float:
        """P(positive) of one task's net on one preprocessed input (1, 3, S, S)."""
        return float(1.0 / (1.0 + np.exp(-float(self.fast[task](x).reshape(-1)[0]))))

    def probability(self, task: str, image: ModalityImage) -> float:
        """P(positive) of one task's net on one image, ungated (training and evaluation score through here)."""
        x, _geometry = self._inputs(image)[task]
        return self.task_probability(task, x)

    def predict(self, images: Mapping[str, ModalityImage], *, explain: bool = True) -> Prediction:
        image = self.require(images)[self.modality]
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        inputs = self._inputs(image)
        timings["preprocess"] = (time.perf_counter() - t0) * 1e3
        pred = self.new_prediction(f"{describe_device(self.device)}, {self.path_label}")
        tumor_card = self.cards.get("tumor")
        explained: dict[str, str] = {}
        for task, card in self.cards.items():
            threshold = card.threshold(task)
            gated = task in GATED_TASKS and tumor_card is not None and not self.run_all
            if gated and pred.tasks["tumor"].call != tumor_card.positive_label:
                pred.set_result(task, "not assessed (non-tumor call)", threshold=threshold)
                continue
            x, geometry = inputs[task]
            t = time.perf_counter()
            prob = self.task_probability(task, x)
            timings[task] = (time.perf_counter() - t) * 1e3
            pred.set_result(task, card.labels[1] if prob >= threshold else card.labels[0], prob, threshold)
            if explain:
                t = time.perf_counter()
                layer = card.gradcam_layers[self.modality]
                index = self.explained_class(prob >= threshold)
                cam = gradcam_maps(self.nets[task], torch.from_numpy(x).to(self.device), [layer], index)[0]
                key = f"{task}/{self.modality}"
                self.record_heatmap(pred, key, np.clip(geometry.to_original(cam), 0, 1), index)
                explained[key] = card.labels[index]
                timings[f"gradcam_{task}"] = (time.perf_counter() - t) * 1e3
        self.note_heatmap_classes(pred, explained)
        timings["total"] = (time.perf_counter() - t0) * 1e3
        pred.timings_ms = timings
        return pred
