"""The calibrated frame-level tumor score of a fluorescence segmentation net (fitted by
engine.train.fluoro_frame_score, kept in the net's card as `extra.frame_score`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

TOP_FRACTION = 0.01  # the top 1 % of pixel probabilities
AREA_FLOOR = 1e-4  # area fraction added before the log (an empty mask is 1e-4, not -infinity)
EPS = 1e-6
FRAME_THRESHOLD = 0.5  # the calibrated P(tumor in the frame) calls "tumor" from here


def frame_features(probability: np.ndarray, threshold: float) -> tuple[float, float, float]:
    """(highest pixel probability, mean of the top 1 % pixel probabilities, fraction of pixels at or above the
    threshold) of a probability map; none depends on the map's size."""
    flat = np.asarray(probability, dtype=np.float32).ravel()
    k = max(1, int(round(TOP_FRACTION * flat.size)))
    top = float(np.partition(flat, flat.size - k)[flat.size - k:].mean())
    return float(flat.max()), top, float((flat >= threshold).mean())


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


@dataclass(frozen=True)
class FrameScore:
    """logit P = intercept + weight_max * logit(max) + weight_top * logit(top-1 % mean)
    + weight_area * log10(area fraction + 1e-4)."""

    intercept: float
    weight_max: float
    weight_top: float
    weight_area: float

    @staticmethod
    def design(features) -> np.ndarray:
        """The three model inputs of each (max, top mean, area fraction) row."""
        features = np.atleast_2d(np.asarray(features, dtype=np.float64))
        return np.column_stack([_logit(features[:, 0]), _logit(features[:, 1]),
                                np.log10(features[:, 2] + AREA_FLOOR)])

    def probability_of(self, maximum: float, top: float, area_fraction: float) -> float:
        (x_max, x_top, x_area), = self.design([[maximum, top, area_fraction]])
        z = self.intercept + self.weight_max * x_max + self.weight_top * x_top + self.weight_area * x_area
        return 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0

    def probability(self, probability_map: np.ndarray, threshold: float) -> float:
        return self.probability_of(*frame_features(probability_map, threshold))

    @classmethod
    def from_card(cls, extra: dict[str, Any]) -> FrameScore | None:
        """The score kept in a card's `extra`, or None when the card has none (the max-pixel score is used)."""
        entry = extra.get("frame_score")
        if not entry:
            return None
        return cls(*(float(entry[k]) for k in ("intercept", "weight_max", "weight_top", "weight_area")))
