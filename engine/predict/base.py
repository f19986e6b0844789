"""The Predictor interface: arrays in, a typed Prediction out (plain arrays, no Qt, no torch tensors)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from engine.cases.model import utc_now


@dataclass
class Prediction:
    """What a predictor returns. Keys of the dicts are label names (probabilities, thresholds, calls),
    structure names (masks, contours) or '<label>/<modality>' (heatmaps, values in [0, 1], image-sized)."""

    model: str
    weights_sha256: dict[str, str]
    probabilities: dict[str, float] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    calls: dict[str, str] = field(default_factory=dict)
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    contours: dict[str, list[np.ndarray]] = field(default_factory=dict)
    heatmaps: dict[str, np.ndarray] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)
    device: str = "cpu"
    created: str = field(default_factory=utc_now)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        """JSON-ready scalars (no arrays): what `oncolens predict` writes and the store keeps."""
        return {
            "model": self.model,
            "weights_sha256": self.weights_sha256,
            "probabilities": {k: round(float(v), 6) for k, v in self.probabilities.items()},
            "thresholds": {k: round(float(v), 6) for k, v in self.thresholds.items()},
            "calls": dict(self.calls),
            "timings_ms": {k: round(float(v), 2) for k, v in self.timings_ms.items()},
            "device": self.device,
            "created": self.created,
            "notes": list(self.notes),
            "masks": sorted(self.masks),
            "heatmaps": sorted(self.heatmaps),
        }


class Predictor(ABC):
    """One task's inference: reads its model card(s), preprocesses, runs on the chosen device."""

    name: str
    modalities: tuple[str, ...]

    @abstractmethod
    def predict(self, images: dict[str, np.ndarray], *, explain: bool = True) -> Prediction:
        """Run on one case's images (keyed by modality). explain=True adds heatmaps."""

    def weights_fingerprint(self) -> str:
        """Short hash for the status bar (first 12 hex of each weights file joined)."""
        return "+".join(h[:8] for h in self.weight_hashes().values())

    @abstractmethod
    def weight_hashes(self) -> dict[str, str]:
        """sha256 of every weights file this predictor uses, keyed by model name."""
