"""Specimen datasets for FL-CNN: a hospital's CSV manifest, or the phantom generator."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.cases.model import FL, WL
from engine.io.images import read_image

MANIFEST_COLUMNS = ("specimen_id", "patient_id", "fl_path", "wl_path", "tumor", "grade", "ki67")
TASK_LABELS = {
    "tumor": ["non-tumor", "tumor"],
    "grade": ["lower grade (WHO II-III)", "GBM (WHO IV)"],
    "ki67": ["Ki-67 < 10%", "Ki-67 >= 10%"],
}


@dataclass
class SpecimenRecord:
    specimen_id: str
    patient_id: str
    images: dict[str, np.ndarray]
    bit_depths: dict[str, int]
    labels: dict[str, int | None] = field(default_factory=dict)


def _label(value: str, column: str, where: str) -> int | None:
    value = (value or "").strip()
    if value in ("", "NA", "na", "None"):
        return None
    if value not in ("0", "1"):
        raise ValueError(f"{where}: column '{column}' must be 0, 1 or empty, got {value!r}.")
    return int(value)


def load_manifest(path: str | Path, modalities: tuple[str, ...] = (FL, WL)) -> list[SpecimenRecord]:
    """Read a CSV with columns specimen_id, patient_id, fl_path, wl_path, tumor, grade, ki67.

    Image paths are relative to the CSV's folder. grade/ki67 are empty for non-tumor specimens."""
    from engine.io.tables import read_csv_table

    path = Path(path)
    records = []
    for row_no, row in enumerate(read_csv_table(path, MANIFEST_COLUMNS), start=2):
        where = f"{path}:{row_no}"
        images, depths = {}, {}
        for modality, column in ((FL, "fl_path"), (WL, "wl_path")):
            if modality in modalities and row[column].strip():
                array, meta = read_image(path.parent / row[column].strip())
                images[modality], depths[modality] = array, meta.bit_depth
        labels = {task: _label(row[task], task, where) for task in TASK_LABELS}
        if labels["tumor"] is None:
            raise ValueError(f"{where}: every specimen needs a tumor label (0 or 1).")
        records.append(SpecimenRecord(row["specimen_id"], row["patient_id"], images, depths, labels))
    return records


def phantom_records(n_patients: int, specimens_per_patient: int, seed: int) -> list[SpecimenRecord]:
    """Synthetic specimens from engine.phantoms (labels known by construction)."""
    from engine.phantoms.glioma import make_glioma_dataset

    specimens = make_glioma_dataset(n_patients=n_patients, specimens_per_patient=specimens_per_patient, seed=seed)
    return [
        SpecimenRecord(s.specimen_id, s.patient_id, {FL: s.fl, WL: s.wl}, {FL: 16, WL: 8},
                       {"tumor": s.tumor, "grade": s.grade, "ki67": s.ki67})
        for s in specimens
    ]


def task_records(records: list[SpecimenRecord], task: str, modality: str) -> list[SpecimenRecord]:
    """The specimens a task trains on: all for tumor; tumor specimens with a label for grade/Ki-67."""
    if task not in TASK_LABELS:
        raise ValueError(f"Unknown FL-CNN task {task!r}; use one of {', '.join(TASK_LABELS)}.")
    return [r for r in records if r.labels.get(task) is not None and modality in r.images]
