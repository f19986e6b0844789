"""Where training and evaluation data come from: the phantom generator of a family, or a hospital's manifest."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class PhantomOrManifest:
    """`source` is "phantom" (the family's synthetic generator: patients x per_patient items, seed) or the path
    of a CSV manifest. Families subclass it with their defaults and the key their cards record `per_patient`
    under."""

    source: str = "phantom"
    patients: int = 30
    per_patient: int = 30
    seed: int = 0
    PER_PATIENT_KEY: ClassVar[str] = "per_patient"

    @classmethod
    def of_card(cls, card) -> PhantomOrManifest:
        """The phantom a card was trained on (evaluation regenerates it); a manifest card needs --data."""
        desc = card.training["data"]
        if desc.get("kind") != "phantom":
            raise ValueError(f"{card.name} was trained on a manifest; pass --data <manifest.csv>.")
        return cls("phantom", desc["n_patients"], desc[cls.PER_PATIENT_KEY], desc["seed"])

    def describe(self, generator: str, what: str) -> dict:
        """The card's `training.data` entry for a phantom run."""
        return {"kind": "phantom", "generator": generator, "n_patients": self.patients,
                self.PER_PATIENT_KEY: self.per_patient, "seed": self.seed,
                "note": f"synthetic phantom {what}, not patient data; demo weights only"}
