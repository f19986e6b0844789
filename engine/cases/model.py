"""The Case: typed images per modality, optional truth, the predictions and reads attached to it."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.data import ImageMeta, ModalityImage, Prediction, utc_now

# Modality codes of the glioma specimens (the other kinds name theirs in their own modules).
FL = "FL"  # NIR-II fluorescence
WL = "WL"  # white light


@dataclass
class GroundTruth:
    """Reference standard: labels (e.g. {'tumor': 1, 'grade': 0}) and masks per structure."""

    labels: dict[str, int | None] = field(default_factory=dict)
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = ""  # e.g. "pathology", "phantom generator"


@dataclass
class Read:
    """One reader's answer to one question on one case (kept in bundles; reader studies use the store)."""

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
    predictions: list[Prediction] = field(default_factory=list)
    reads: list[Read] = field(default_factory=list)
    patient_id: str | None = None
    name: str = ""  # a name the user gave the case (e.g. "left neck node 3"); the id stays the key
    created: str = field(default_factory=utc_now)
    notes: str = ""
    attachments: dict[str, Path] = field(default_factory=dict)  # other files of the case (a recording's per-frame
    # records), kept in its bundle folder

    @staticmethod
    def new_id(prefix: str = "case") -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    def image(self, modality: str) -> ModalityImage:
        try:
            return self.images[modality]
        except KeyError:
            have = ", ".join(sorted(self.images)) or "none"
            raise KeyError(f"Case {self.id} has no {modality} image (it has: {have}).") from None

    def add_image(self, modality: str, array: np.ndarray, meta: ImageMeta, axes: str = "") -> ModalityImage:
        """Attach an image; `axes` may be left out only for planes (YX grey, YXC colour)."""
        image = ModalityImage(modality, array, meta, axes)
        self.images[modality] = image
        return image


def content_sha256(case: Case) -> str:
    """SHA-256 over the case's kind and images (modality, axes, dtype, shape, pixels; in modality order), not over
    file bytes: the same images opened again give the same hash whatever their file names or encoding."""
    digest = hashlib.sha256(f"{case.kind}|".encode())
    for modality in sorted(case.images):
        array = case.images[modality].array
        digest.update(f"{modality}|{case.images[modality].axes}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(memoryview(np.ascontiguousarray(array)).cast("B"))
    return digest.hexdigest()
