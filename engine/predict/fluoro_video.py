"""Segmentation of a recorded NIR clip, frame by frame, with the method of the fluorescence frames.

The live view records the overlays it computed while filming (engine.live.recording); this predictor is
what "predict again" runs on a stored clip: every frame (every k-th of a long clip, at most `max_frames`)
through the same FluoroSegPredictor, contours kept per frame ('tumor/f<index>'). The clip-level answer is
the highest frame probability; the measures say how many frames show tumor and how large it is.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from engine.data import ImageMeta, ModalityImage, Prediction
from engine.device import describe_device
from engine.predict.base import Predictor
from engine.predict.fluoro import FAMILY, MODALITY, STRUCTURE, FluoroSegPredictor

MAX_FRAMES = 300
DRLSE_MAX_FRAMES = 20  # the level set takes seconds a frame


def frame_key(index: int) -> str:
    """The contour key of one frame of a clip."""
    return f"{STRUCTURE}/f{index:05d}"


def frame_of_key(key: str) -> int | None:
    prefix = f"{STRUCTURE}/f"
    return int(key[len(prefix):]) if key.startswith(prefix) and key[len(prefix):].isdigit() else None


class FluoroVideoPredictor(Predictor):
    family = FAMILY
    modalities = (MODALITY,)

    def __init__(self, method: str = "unetplusplus", device: str | torch.device | None = None,
                 backend: str | None = None, root: Path | str | None = None, max_frames: int = MAX_FRAMES) -> None:
        self.frames = FluoroSegPredictor(method, device=device, backend=backend, root=root)
        self.method = self.variant = method
        self.max_frames = DRLSE_MAX_FRAMES if self.frames.card is None else max_frames

    def weight_hashes(self) -> dict[str, str]:
        return self.frames.weight_hashes()

    def predict(self, images: Mapping[str, ModalityImage], *, explain: bool = True) -> Prediction:
        clip = self.require(images)[MODALITY]
        if clip.axes != "TYX":
            raise ValueError(f"{MODALITY} clip: expected frames (TYX), got axes {clip.axes}.")
        t0 = time.perf_counter()
        count = clip.array.shape[0]
        step = max(1, int(np.ceil(count / self.max_frames)))
        meta = ImageMeta(clip.meta.bit_depth, clip.meta.units, clip.meta.spacing)
        probabilities, areas = [], []
        fast = self.frames.fast
        pred = self.new_prediction(describe_device(self.frames.device) + ("" if fast is None else f", {fast.label}"))
        threshold = self.frames.threshold
        for index in range(0, count, step):
            frame = ModalityImage(MODALITY, np.asarray(clip.array[index]), meta, "YX")
            result = self.frames.predict({MODALITY: frame}, explain=False)
            probabilities.append(result.tasks[STRUCTURE].probability)
            areas.append(float(result.measures.get("area_px", 0)))
            pred.contours[frame_key(index)] = result.contours[STRUCTURE]
        probabilities = np.asarray(probabilities, dtype=float)
        tumor_frames = int((probabilities >= threshold).sum())
        best = float(probabilities.max()) if probabilities.size else 0.0
        pred.set_result(STRUCTURE, STRUCTURE if tumor_frames else f"no {STRUCTURE}", best, threshold)
        pred.measures.update(frames=count, frames_analysed=len(probabilities), frame_step=step,
                             frames_with_tumor=tumor_frames,
                             tumor_frame_fraction=round(tumor_frames / max(1, len(probabilities)), 4),
                             max_area_px=max(areas, default=0.0),
                             mean_area_px=round(float(np.mean(areas)) if areas else 0.0, 2))
        pred.notes.append(f"{len(probabilities)} of {count} frames analysed (every {step}); tumor in {tumor_frames}")
        pred.timings_ms = {"total": (time.perf_counter() - t0) * 1e3,
                           "per_frame": (time.perf_counter() - t0) * 1e3 / max(1, len(probabilities))}
        return pred
