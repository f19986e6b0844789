"""The soft-tissue-sarcoma PET-CT kind: one FDG PET-CT study (PET in SUV, CT in HU, volumes of one frame of
reference); CHMFL answers "distant metastasis?" and segments the tumour.

Loose sources it opens: a DICOM folder, a DICOMDIR, a zip of DICOM files or a single .dcm of the study (the PET
and CT series are picked automatically when that is unambiguous), or a NIfTI pair whose names say which is PET
(`pet`, `suv`, `pt`) and which is CT (`ct`); the NIfTI PET must already be in SUV.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from engine.cases.kinds import CaseKind, KindError, ModalityRole, TaskInfo, register_kind
from engine.cases.model import Case
from engine.data import HU, SUV, ZYX, PredictionSummary, model_id

KIND = "sarcoma_petct"
FAMILY = "chmfl"
TASK = "distant_metastasis"
PET, CT = "PET", "CT"
DICOM_SUFFIXES = (".dcm", ".zip")
_PET_WORDS, _CT_WORDS = ("pet", "suv", "pt", "fdg"), ("ct",)


def _words(path: Path) -> list[str]:
    return re.findall(r"[a-z]+", path.name.lower())


def nifti_roles(paths: Sequence[Path]) -> dict[str, Path] | None:
    """{PET: file, CT: file} for two NIfTI files whose names tell PET from CT, else None."""
    from engine.io.nifti import is_nifti

    if len(paths) != 2 or not all(is_nifti(p) for p in paths):
        return None
    roles: dict[str, Path] = {}
    for path in paths:
        words = _words(path)
        is_pet = any(w in _PET_WORDS for w in words)
        is_ct = any(w in _CT_WORDS for w in words)
        if is_pet == is_ct:
            return None
        roles[PET if is_pet else CT] = Path(path)
    return roles if len(roles) == 2 else None


def looks_like_dicom_source(path: Path) -> bool:
    """A folder holding DICOM files (or a DICOMDIR), a DICOMDIR, a zip or a .dcm file."""
    path = Path(path)
    if path.is_dir():
        if (path / "DICOMDIR").is_file():
            return True
        for child in list(path.rglob("*"))[:200]:
            if child.is_file() and (child.suffix.lower() in DICOM_SUFFIXES or _has_preamble(child)):
                return True
        return False
    return path.name.upper() == "DICOMDIR" or path.suffix.lower() in DICOM_SUFFIXES


def _has_preamble(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(132)[128:132] == b"DICM"
    except OSError:
        return False


def case_from_volumes(images: dict, case_id: str | None = None, notes: str = "", warnings: Sequence[str] = ()) -> Case:
    case = Case(id=case_id or Case.new_id("petct"), kind=KIND)
    for code in (PET, CT):
        image = images[code]
        case.add_image(code, image.array, image.meta, ZYX)
    patient = images[PET].meta.source.get("patient_id")
    case.patient_id = patient or None
    case.notes = "\n".join([notes, *warnings]).strip()
    return case


def case_from_dicom(path: str | Path, case_id: str | None = None) -> Case:
    """A PET-CT case from the study in a DICOM folder, DICOMDIR, zip or file (PET converted to SUVbw)."""
    from engine.io.dicom import read_petct

    images, warnings = read_petct(path)
    return case_from_volumes(images, case_id, f"Opened from DICOM {path}", warnings)


def case_from_nifti(pet: str | Path, ct: str | Path, case_id: str | None = None) -> Case:
    """A PET-CT case from a NIfTI PET (already SUV) and CT (HU)."""
    from engine.io.nifti import read_nifti

    images = {PET: read_nifti(pet, PET, SUV), CT: read_nifti(ct, CT, HU)}
    return case_from_volumes(images, case_id, f"Opened from NIfTI PET {pet}, CT {ct}")


def export_petct(case: Case, predictions: Sequence, folder: str | Path) -> list[Path]:
    """The tumour mask of each CHMFL prediction as NIfTI (PET grid) and, when the PET came from DICOM, as DICOM SEG
    referencing it; the measures of every prediction as one CSV row."""
    from engine.io.seg_export import ExportError, write_dicom_seg, write_mask_nifti, write_measures_csv

    folder = Path(folder)
    pet = case.image(PET)
    written, rows = [], []
    for pred in predictions:
        if "tumor" not in pred.masks:
            continue
        stem = f"{case.id}_{pred.family}"
        written.append(write_mask_nifti(pred.masks["tumor"], pet, folder / f"{stem}_tumor.nii.gz"))
        if pet.meta.source.get("files"):
            written.append(write_dicom_seg(pred.masks["tumor"], pet, folder / f"{stem}_tumor_seg.dcm"))
        result = pred.tasks.get(TASK)
        rows.append({"case_id": case.id, "patient_id": case.patient_id or "", "model": pred.model,
                     "p_distant_metastasis": None if result is None else result.probability,
                     "call": None if result is None else result.call, **pred.measures})
    if not rows:
        raise ExportError(f"Case {case.id}: no prediction with a tumour mask to export; run CHMFL first.")
    written.append(write_measures_csv(rows, folder / f"{case.id}_measures.csv"))
    return written


class SarcomaPetCtKind(CaseKind):
    name = KIND
    title = "Sarcoma PET-CT"
    roles = (ModalityRole(PET, "PET (SUV)", (ZYX,), SUV), ModalityRole(CT, "CT (HU)", (ZYX,), HU))
    tasks = (TaskInfo(TASK, "Distant metastasis", "will the sarcoma metastasise?",
                      ("no distant metastasis", "distant metastasis")),)

    def predictor_groups(self, case: Case) -> list[tuple[str, ...]]:
        missing = [c for c in (PET, CT) if c not in case.images]
        if missing:
            raise KindError(f"Case {case.id}: CHMFL reads PET and CT of one study; {' and '.join(missing)} is missing.")
        return [(PET, CT)]

    def assess(self, images) -> list:
        """The standard checks on the central slice of each volume, with PET's small matrices allowed (a PET
        slice is often 96 x 96 or smaller), and a PET without any uptake refused."""
        from engine.metrics.image_quality import Finding, standard_findings

        findings = [f for image in images.values() for f in standard_findings(image, min_side=16)]
        pet = images.get(PET)
        if pet is not None and float(pet.array.max()) < 0.5:
            findings.append(Finding(PET, f"no uptake: SUVmax of the whole volume is {float(pet.array.max()):.2f}; "
                                         "check the SUV conversion (oncolens dicom info)", True))
        return findings

    def make_predictor(self, modalities: tuple[str, ...], method: str | None = None):
        from engine.predict.petct import CHMFLPredictor

        return CHMFLPredictor()

    def primary_model(self) -> str:
        return model_id(FAMILY, f"{PET}+{CT}")

    def model_title(self, summary: PredictionSummary) -> tuple[str, str]:
        return "CHMFL", summary.variant

    def label_names(self, task: str) -> tuple[str, str]:
        from engine.predict.petct import PRIMARY_CARD
        from engine.registry import ModelError, load_card

        try:
            labels = load_card(PRIMARY_CARD).labels
            return labels[0], labels[1]
        except ModelError:
            return super().label_names(task)

    def cards_label(self) -> str:
        from engine.predict.petct import PRIMARY_CARD
        from engine.registry import ModelError, load_card

        try:
            card = load_card(PRIMARY_CARD)
        except ModelError:
            return f"{FAMILY} not installed"
        return f"{FAMILY} {card.weights['sha256'][:8]}"

    def write_demo_cases(self, folder: Path) -> list[Path]:
        from engine.phantoms.petct import write_petct_demo_cases

        return write_petct_demo_cases(folder)

    def export_results(self, case: Case, predictions: Sequence, folder: Path) -> list[Path]:
        return export_petct(case, predictions, folder)

    def opens_path(self, path: Path) -> bool:
        from engine.io.nifti import is_nifti

        return is_nifti(path) or looks_like_dicom_source(Path(path))

    def claims_files(self, paths: Sequence[Path]) -> int:
        paths = [Path(p) for p in paths]
        if nifti_roles(paths) is not None:
            return 3
        if len(paths) == 1 and looks_like_dicom_source(paths[0]):
            return 3
        return 0

    def case_from_files(self, paths: Sequence[Path], modality: str | None = None) -> Case:
        paths = [Path(p) for p in paths]
        roles = nifti_roles(paths)
        if roles is not None:
            return case_from_nifti(roles[PET], roles[CT])
        if len(paths) == 1 and looks_like_dicom_source(paths[0]):
            return case_from_dicom(paths[0])
        names = ", ".join(p.name for p in paths)
        raise KindError(f"{names}: a PET-CT case opens from one DICOM folder, DICOMDIR or zip, or from two NIfTI files "
                        "named so that one says pet/suv and the other ct.")


SARCOMA_PETCT = register_kind(SarcomaPetCtKind())
