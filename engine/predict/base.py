"""The one Predictor contract: typed images in (arrays with their axes and metadata), a Prediction out.

Every predictor reads what it needs from the images' metadata (bit depth, spacing, units): callers pass
`{modality: ModalityImage}` and nothing kind-specific.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

from engine.data import ModalityImage, Prediction, PredictionSummary, model_id

EXPLAIN_CLASSES = ("predicted", "positive", "negative")  # which class a heatmap shows the evidence for
EXPLAINED_CLASS = "gradcam_class/"  # measures[EXPLAINED_CLASS + heatmap key] = class index (1 positive, 0 negative)


def heatmap_class(prediction: Prediction | PredictionSummary, key: str) -> int | None:
    """The class (1 positive, 0 negative; index into the card's labels) whose evidence heatmap `key` shows; None
    when the prediction does not say (e.g. saved before predictors recorded it, when maps showed class 1)."""
    value = prediction.measures.get(EXPLAINED_CLASS + key)
    return None if value is None else int(value)


class ExplainClassChoice:
    """Which class Grad-CAM maps explain: 'predicted' (the call, default), 'positive' or 'negative'. Predictors
    without class heatmaps (segmentation) ignore it; the service passes it on to its predictors."""

    _explain_class: str = "predicted"

    @property
    def explain_class(self) -> str:
        return self._explain_class

    @explain_class.setter
    def explain_class(self, value: str) -> None:
        if value not in EXPLAIN_CLASSES:
            raise ValueError(f"explain_class must be one of {', '.join(EXPLAIN_CLASSES)}, got {value!r}.")
        self._explain_class = value


class Predictor(ExplainClassChoice, ABC):
    """One model's inference: reads its card(s), preprocesses, runs on the chosen device.

    `family` and `variant` name what runs (they become the Prediction's); `modalities` are the images it
    reads, all of which `predict` must be given."""

    family: str
    variant: str = ""
    modalities: tuple[str, ...]

    @property
    def name(self) -> str:
        return model_id(self.family, self.variant)

    @abstractmethod
    def predict(self, images: Mapping[str, ModalityImage], *, explain: bool = True) -> Prediction:
        """Run on one case's images (keyed by modality). explain=True adds heatmaps."""

    @abstractmethod
    def weight_hashes(self) -> dict[str, str]:
        """sha256 of every weights file this predictor uses, keyed by model card name."""

    def weights_fingerprint(self) -> str:
        """Short hash for the status bar (first 8 hex of each weights file joined)."""
        return "+".join(h[:8] for h in self.weight_hashes().values())

    def new_prediction(self, device: str = "") -> Prediction:
        """An empty Prediction stamped with this predictor's family, variant and weights."""
        return Prediction(family=self.family, variant=self.variant, weights_sha256=self.weight_hashes(),
                          device=device)

    def explained_class(self, called_positive: bool) -> int:
        """The class index a heatmap explains under `explain_class`: the call's by default."""
        if self.explain_class == "predicted":
            return int(called_positive)
        return int(self.explain_class == "positive")

    def record_heatmap(self, prediction: Prediction, key: str, heatmap, class_index: int) -> None:
        """Store a heatmap and the class it explains (`heatmap_class` reads it back)."""
        prediction.heatmaps[key] = heatmap
        prediction.measures[EXPLAINED_CLASS + key] = float(class_index)

    def note_heatmap_classes(self, prediction: Prediction, labels: dict[str, str]) -> None:
        """One note saying which class each heatmap ({key: class label}) shows the evidence for, and why."""
        if labels:
            why = "the call" if self.explain_class == "predicted" else f"the {self.explain_class} class, as asked"
            shown = ", ".join(f"{key}: {label}" for key, label in labels.items())
            prediction.notes.append(f"Grad-CAM shows the evidence for {why} ({shown}).")

    def require(self, images: Mapping[str, ModalityImage]) -> dict[str, ModalityImage]:
        """The images this predictor reads; a KeyError naming the missing ones and what the case has."""
        missing = [m for m in self.modalities if m not in images]
        if missing:
            raise KeyError(f"{self.name} needs {' + '.join(self.modalities)} images; missing "
                           f"{', '.join(missing)} (the case has: {', '.join(images) or 'none'}).")
        return {m: images[m] for m in self.modalities}
