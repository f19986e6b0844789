"""Tumor segmentation of one NIR fluorescence frame: a trained net (card `fluoro_seg_<arch>`) or DRLSE.

The result is a tumor mask at the frame's own resolution, its sub-pixel contours, the tumor
probability map (heatmap 'tumor/NIR'), the area in pixels (and mm^2 when the spacing is known) and
the number of regions. With a truth mask the caller scores it with engine.metrics.segmentation.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

import engine.nets.fluoro_seg  # noqa: F401  (registers the fluoro_seg family)
from engine.data import ModalityImage, Prediction
from engine.device import describe_device, select_device
from engine.fastpath import FastPath, backend_choice
from engine.predict.base import Predictor
from engine.predict.frame_score import FRAME_THRESHOLD, FrameScore
from engine.preprocess.fluoro import FrameGeometry, prepare_frame
from engine.registry import ModelCard, ModelError, create_model, list_models
from engine.seg.contours import mask_to_contours, net_area, region_count

FAMILY = "fluoro_seg"
MODALITY = "NIR"
STRUCTURE = "tumor"
DRLSE = "drlse"
MULTIPLE = 32


def card_name(arch: str) -> str:
    return f"fluoro_seg_{arch}"


def installed_methods(root: Path | str | None = None) -> list[str]:
    """Archs with an installed card (in the paper's table order), then 'drlse' (always available)."""
    from engine.nets.fluoro_seg import ARCHS

    names = {c.name for c in list_models(root) if c.family == FAMILY}
    return [a for a in ARCHS if card_name(a) in names] + [DRLSE]


def method_label(method: str) -> str:
    from engine.nets.fluoro_seg import ARCH_NAMES

    return "DRLSE (level set)" if method == DRLSE else ARCH_NAMES.get(method, method)


def _pad(x: np.ndarray) -> np.ndarray:
    h, w = x.shape
    return np.pad(x, ((0, (-h) % MULTIPLE), (0, (-w) % MULTIPLE)), mode="edge")


class FluoroSegPredictor(Predictor):
    """One segmentation method on NIR frames. The net runs through engine.fastpath (`backend`: None follows the
    setting, normally auto: ONNX Runtime on the CPU, an fp16 CUDA graph on CUDA, checked against eager)."""

    family = FAMILY
    modalities = (MODALITY,)

    def __init__(self, method: str = "unetplusplus", device: str | torch.device | None = None,
                 backend: str | None = None, root: Path | str | None = None,
                 net: tuple[torch.nn.Module, ModelCard] | None = None) -> None:
        """`net` = (module, card) runs a net already in memory (training evaluates through here)."""
        self.method = method
        self.variant = method
        self.card: ModelCard | None = None
        self.net = None
        self.fast: FastPath | None = None
        self.device = device if isinstance(device, torch.device) else select_device(device)
        # a net handed in (training, evaluation) runs eager unless a backend is named
        backend = "eager" if backend is None and net is not None else backend_choice(backend)
        if method == DRLSE:
            return
        try:
            self.net, self.card = net if net is not None else create_model(card_name(method), device=self.device,
                                                                            root=root)
            self.net.to(self.device).eval()
        except ModelError as exc:
            raise ModelError(f"No segmentation model '{method}' is installed ({exc}). Train it with "
                             "`oncolens train fluoro_seg` or pick DRLSE.") from exc
        # the core sees frames already padded to a multiple of 32, of any size
        self.fast = FastPath(self.net.core, self.card, torch.zeros(1, 1, 64, 64), device=self.device,
                             backend=backend, dynamic_hw=True)

    @property
    def backend(self) -> str:
        return "eager" if self.fast is None else self.fast.backend

    def weight_hashes(self) -> dict[str, str]:
        return {} if self.card is None else {self.card.name: self.card.weights.get("sha256", "")}

    @property
    def frame_score(self) -> FrameScore | None:
        """The card's calibrated frame-level score (None for DRLSE and cards fitted before it existed)."""
        return None if self.card is None else FrameScore.from_card(self.card.extra)

    @property
    def threshold(self) -> float:
        """The card's pixel threshold; DRLSE's mask is binary, so 0.5 splits it."""
        return 0.5 if self.card is None else self.card.threshold(STRUCTURE)

    def work_probabilities(self, image: np.ndarray, bit_depth: int | None = None
                           ) -> tuple[np.ndarray, FrameGeometry, dict]:
        """Tumor probability at the net's work scale, the geometry back to the frame, and timings (ms)."""
        assert self.card is not None
        t0 = time.perf_counter()
        x, geometry = prepare_frame(image, self.card.preprocessing, bit_depth)
        h, w = x.shape
        padded = _pad(x)[None, None]
        t1 = time.perf_counter()
        logits = self.fast(padded)[0, 0, :h, :w]
        t2 = time.perf_counter()
        work = (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
        return work, geometry, {"preprocess": (t1 - t0) * 1e3, "inference": (t2 - t1) * 1e3}

    def probabilities(self, image: np.ndarray, bit_depth: int | None = None) -> tuple[np.ndarray, dict]:
        """Tumor probability at the frame's resolution, and timings (ms)."""
        work, geometry, timings = self.work_probabilities(image, bit_depth)
        t = time.perf_counter()
        prob = geometry.to_frame(work)
        timings["postprocess"] = (time.perf_counter() - t) * 1e3
        return prob, timings

    def predict(self, images: Mapping[str, ModalityImage], *, explain: bool = True) -> Prediction:
        frame = self.require(images)[MODALITY]
        image, spacing = frame.array, frame.meta.spacing
        t0 = time.perf_counter()
        if self.card is None:
            from engine.seg.drlse import drlse_segment

            result = drlse_segment(image)
            mask, prob, timings = result.mask, None, {"inference": (time.perf_counter() - t0) * 1e3}
            work = None
        else:
            work, geometry, timings = self.work_probabilities(image, frame.meta.bit_depth)
            t = time.perf_counter()
            prob = geometry.to_frame(work)
            mask = prob >= self.threshold
            timings["postprocess"] = (time.perf_counter() - t) * 1e3
        t = time.perf_counter()
        # Sub-pixel outlines: traced on the net's work-scale map and refined onto its bilinear surface, in the
        # frame's pixels (within about a pixel of tracing the full-size map, a fraction of the time); DRLSE's
        # mask is traced as it is.
        contours = (mask_to_contours(mask, spacing=spacing) if work is None else
                    mask_to_contours(work, spacing=spacing, threshold=self.threshold, frame_shape=mask.shape))
        timings["contours"] = (time.perf_counter() - t) * 1e3
        timings["total"] = (time.perf_counter() - t0) * 1e3
        pred = self.new_prediction(describe_device(self.device) + ("" if self.fast is None else
                                                                   f", {self.fast.label}"))
        pred.masks[STRUCTURE] = mask
        pred.contours[STRUCTURE] = [c.points for c in contours]
        pred.timings_ms = timings
        if prob is not None and explain:
            pred.heatmaps[f"{STRUCTURE}/{MODALITY}"] = prob.astype(np.float32)
        # Frame-level answer to "is there tumor in this frame?": the card's calibrated score of the probability map
        # (engine.predict.frame_score) against 0.5; without one, the highest pixel probability (0/1 for DRLSE,
        # which has no probabilities) against the pixel threshold, "tumor" exactly when the mask is not empty.
        score = self.frame_score
        if score is not None and work is not None:
            frame_probability, frame_threshold = score.probability(work, self.threshold), FRAME_THRESHOLD
            positive = frame_probability >= frame_threshold
        else:
            frame_probability = float(mask.any()) if prob is None else float(prob.max())
            frame_threshold, positive = self.threshold, bool(mask.any())
        pred.set_result(STRUCTURE, STRUCTURE if positive else f"no {STRUCTURE}", frame_probability, frame_threshold)
        pixels = int(mask.sum())
        regions = region_count(mask)
        pred.measures.update(area_px=pixels, regions=regions)
        pred.notes.append(f"area {pixels} px, {regions} region(s)")
        if spacing:
            area_mm2 = net_area(contours, mm=True)
            pred.measures["area_mm2"] = area_mm2
            pred.notes.append(f"area {area_mm2:.2f} mm^2 (contours)")
        return pred
