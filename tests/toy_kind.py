"""A toy case kind, written the way a new family is added: this one module and its `register_kind` line.

One grey modality ("TOY"), one task ("bright": is the image's mean above mid-grey?), a predictor with no
net, readers may outline. The service, `oncolens predict`, the case browser, the results panel and reader
studies handle it with no other edit (tests/engine/test_toy_kind.py and tests/app/test_toy_kind_gui.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from engine.cases.bundle import write_bundle
from engine.cases.kinds import CaseKind, ModalityRole, TaskInfo, register_kind
from engine.cases.model import Case, GroundTruth
from engine.data import AU, YX, ImageMeta, ModalityImage, Prediction, PredictionSummary, model_id
from engine.predict.base import Predictor

KIND, MODALITY, TASK = "toy_kind", "TOY", "bright"


class BrightnessPredictor(Predictor):
    """P(bright) = mean intensity as a fraction of full scale; the mask is the bright half of the pixels."""

    family, variant, modalities = "toy_brightness", "v1", (MODALITY,)

    def weight_hashes(self) -> dict[str, str]:
        return {"toy_brightness_v1": "0" * 64}

    def predict(self, images: Mapping[str, ModalityImage], *, explain: bool = True) -> Prediction:
        image = self.require(images)[MODALITY]
        unit = image.array.astype(np.float32) / (2 ** image.meta.bit_depth - 1)
        pred = self.new_prediction("no device")
        p = float(unit.mean())
        pred.set_result(TASK, "bright" if p >= 0.5 else "dark", p, 0.5)
        pred.masks["bright"] = unit >= np.median(unit)
        if explain:
            pred.heatmaps[f"{TASK}/{MODALITY}"] = unit
        pred.timings_ms["total"] = 0.1
        return pred


class ToyKind(CaseKind):
    name, title = KIND, "Toy images"
    roles = (ModalityRole(MODALITY, "Toy grey image", (YX,), AU),)
    tasks = (TaskInfo(TASK, "Brightness", "bright vs dark", ("dark", "bright")),)
    outline = True

    def make_predictor(self, modalities: tuple[str, ...], method: str | None = None) -> Predictor:
        return BrightnessPredictor()

    def primary_model(self) -> str:
        return model_id(BrightnessPredictor.family, BrightnessPredictor.variant)

    def model_title(self, summary: PredictionSummary) -> tuple[str, str]:
        return "Brightness", summary.variant


def write_toy_case(folder: Path, case_id: str, level: int, seed: int = 0) -> Path:
    """A toy case bundle: an 8-bit image around `level`, truth 'bright' when level >= 128."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:96, 0:96]
    blob = 40 * np.exp(-((yy - 48) ** 2 + (xx - 48) ** 2) / (2 * 20.0 ** 2))  # some structure, not noise only
    array = np.clip(level - 20 + blob + rng.normal(0, 4, (96, 96)), 0, 255).astype(np.uint8)
    case = Case(id=case_id, kind=KIND, patient_id=f"T-{case_id}")
    case.add_image(MODALITY, array, ImageMeta(8, AU))
    mask = np.zeros((96, 96), np.uint8)
    mask[24:72, 24:72] = 1
    case.truth = GroundTruth({TASK: int(level >= 128)}, {"bright": mask}, "toy generator")
    return write_bundle(case, folder / case_id)


TOY = register_kind(ToyKind())
