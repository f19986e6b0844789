"""The one Predictor contract: typed images in (arrays with their axes and metadata), a Prediction out.

Every predictor reads what it needs from the images' metadata (bit depth, spacing, units): callers pass
`{modality: ModalityImage}` and nothing kind-specific.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

from engine.data import ModalityImage, Prediction, model_id


class Predictor(ABC):
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

    def require(self, images: Mapping[str, ModalityImage]) -> dict[str, ModalityImage]:
        """The images this predictor reads; a KeyError naming the missing ones and what the case has."""
        missing = [m for m in self.modalities if m not in images]
        if missing:
            raise KeyError(f"{self.name} needs {' + '.join(self.modalities)} images; missing "
                           f"{', '.join(missing)} (the case has: {', '.join(images) or 'none'}).")
        return {m: images[m] for m in self.modalities}
