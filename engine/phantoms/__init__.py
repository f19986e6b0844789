"""Synthetic data generators for every modality: tests, demo cases and training of the demo weights."""

from engine.phantoms.glioma import (
    GliomaSpecimen,
    PatientEffects,
    make_glioma_dataset,
    make_specimen,
    specimen_to_case,
    write_glioma_demo_cases,
)

__all__ = [
    "GliomaSpecimen",
    "PatientEffects",
    "make_glioma_dataset",
    "make_specimen",
    "specimen_to_case",
    "write_glioma_demo_cases",
]
