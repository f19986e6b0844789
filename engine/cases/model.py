"""The typed Case model: images per modality with metadata, optional truth, predictions and reads."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

# Modality codes used across the engine and the model cards.
FL = "FL"  # NIR-II fluorescence (glioma specimens)
WL = "WL"  # white light (glioma specimens)
MODALITY_NAMES = {
    FL: "NIR-II fluorescence",
    WL: "White light",
    "WLI": "White light (node)",
    "FI": "NIR-I fluorescence (node)",
    "PCI": "Pseudo-color (node)",
    "NIR": "NIR fluorescence frame",
    "PET": "PET (SUV)",
    "CT": "CT (HU)",
    "US": "Ultrasound",
}

CASE_KINDS = ("glioma_specimen", "lymph_node", "fluoro_frame", "sarcoma_petct", "thyroid_usct")


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class ImageMeta:
    """What an array means: bit depth of the source, units of the values, pixel spacing (mm)."""

    bit_depth: int
    units: str = "a.u."
    spacing: tuple[float, ...] | None = None
    source: str | None = None  # original file name, for provenance
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "bit_depth": self.bit_depth,
            "units": self.units,
            "spacing": list(self.spacing) if self.spacing is not None else None,
            "source": self.source,
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ImageMeta:
        spacing = d.get("spacing")
        return cls(
            bit_depth=int(d["bit_depth"]),
            units=d.get("units", "a.u."),
            spacing=tuple(float(s) for s in spacing) if spacing is not None else None,
            source=d.get("source"),
            extra=dict(d.get("extra") or {}),
        )


@dataclass
class ModalityImage:
    modality: str
    array: np.ndarray
    meta: ImageMeta

    @property
    def is_rgb(self) -> bool:
        return self.array.ndim == 3 and self.array.shape[-1] == 3


@dataclass
class GroundTruth:
    """Reference standard: labels (e.g. {'tumor': 1, 'grade': 0}) and masks per structure."""

    labels: dict[str, int | None] = field(default_factory=dict)
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = ""  # e.g. "pathology", "phantom generator"


@dataclass
class Read:
    """One reader's answer to one question on one case (reader studies build on this)."""

    reader_id: str
    question: str
    answer: str
    confidence: float | None = None
    comment: str = ""
    created: str = field(default_factory=utc_now)


@dataclass
class Case:
    id: str
    kind: str
    images: dict[str, ModalityImage] = field(default_factory=dict)
    truth: GroundTruth | None = None
    predictions: list = field(default_factory=list)  # list[engine.predict.base.Prediction]
    reads: list[Read] = field(default_factory=list)
    patient_id: str | None = None
    created: str = field(default_factory=utc_now)
    notes: str = ""

    @staticmethod
    def new_id(prefix: str = "case") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    def image(self, modality: str) -> ModalityImage:
        try:
            return self.images[modality]
        except KeyError:
            have = ", ".join(sorted(self.images)) or "none"
            raise KeyError(f"Case {self.id} has no {modality} image (it has: {have}).") from None

    def add_image(self, modality: str, array: np.ndarray, meta: ImageMeta) -> None:
        self.images[modality] = ModalityImage(modality, array, meta)
