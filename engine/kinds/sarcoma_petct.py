"""The soft-tissue-sarcoma PET-CT kind: one FDG PET-CT study (PET in SUV, CT in HU, volumes of one frame of
reference); CHMFL answers "distant metastasis?" and segments the tumour.

Loose sources it opens: a DICOM folder, a DICOMDIR, a zip of DICOM files or a single .dcm of the study (the PET
and CT series are picked automatically when that is unambiguous), or a NIfTI pair whose names say which is PET
(`pet`, `suv`, `pt`) and which is CT (`ct`); the NIfTI PET must already be in SUV.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
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


def case_from_dicom(path: str | Path, case_id: str | None = None, entered: Mapping[str, float] | None = None) -> Case:
    """A PET-CT case from the study in a DICOM folder, DICOMDIR, zip or file (PET converted to SUVbw). `entered`:
    the weight (kg) and / or dose (Bq) a user typed because the PET header lacks them."""
    from engine.io.dicom import read_petct

    images, warnings = read_petct(path, entered=entered)
    notes = f"Opened from DICOM {path}"
    if entered:
        notes += "; SUV inputs entered by the user: " + ", ".join(f"{k}={v:g}" for k, v in sorted(entered.items()))
    return case_from_volumes(images, case_id, notes, warnings)


def open_dicom_into_store(path: str | Path, store, entered: Mapping[str, float] | None = None) -> list[str]:
    """The PET-CT study in `path` as a new case in the store (the GUI's path after asking for a missing weight or
    dose); returns its id in a list, as `engine.kinds.opening.open_into_store` does."""
    from engine.kinds.opening import save_new_case

    return [save_new_case(case_from_dicom(path, entered=entered), store)]


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


def tumour_slice(case: Case, predictions: Sequence) -> int:
    """The PET axial slice through the centre of the predicted tumour (else the true one, else the middle)."""
    import numpy as np

    pet = case.image(PET)
    masks = [p.masks["tumor"] for p in predictions if "tumor" in p.masks]
    if case.truth is not None and "tumor" in case.truth.masks:
        masks.append(case.truth.masks["tumor"])
    for mask in masks:
        mask = np.asarray(mask) != 0
        if mask.shape == pet.array.shape and mask.any():
            return int(round(float(np.argwhere(mask)[:, 0].mean())))
    return pet.array.shape[0] // 2


def petct_axial_panels(kind: CaseKind, case: Case, predictions: Sequence, z: int | None = None) -> list:
    import numpy as np

    from engine.cases.export_views import OverlayPanel, heat_for, plane_spacing
    from engine.seg.contours import mask_to_contours

    pet, ct = case.image(PET), case.images.get(CT)
    z = tumour_slice(case, predictions) if z is None else int(np.clip(z, 0, pet.array.shape[0] - 1))
    layers: dict[str, list] = {}
    pred = next((p for p in predictions if "tumor" in p.masks), None)
    if pred is not None and np.asarray(pred.masks["tumor"]).shape == pet.array.shape:
        layers["prediction"] = [c.points for c in mask_to_contours(np.asarray(pred.masks["tumor"][z]) != 0)]
    if case.truth is not None and np.asarray(case.truth.masks.get("tumor", np.zeros(0))).shape == pet.array.shape:
        layers["truth"] = [c.points for c in mask_to_contours(np.asarray(case.truth.masks["tumor"][z]) != 0)]
    heat, heat_title = heat_for(predictions, kind, "fusion")
    panels = [OverlayPanel(f"PET-axial-z{z}", f"PET (SUV), axial slice {z}", pet.array[z], plane_spacing(pet),
                           None if heat is None else heat[z], kind.heat_colormap, heat_title, layers)]
    if ct is not None:
        # the CT slice nearest the PET slice's centre, the outlines carried over in millimetres
        pet_affine, ct_affine = pet.affine(), ct.affine()
        to_ct = np.linalg.inv(ct_affine) @ pet_affine
        centre = to_ct @ np.array([z, (pet.array.shape[1] - 1) / 2, (pet.array.shape[2] - 1) / 2, 1.0])
        k = int(np.clip(round(float(centre[0])), 0, ct.array.shape[0] - 1))
        ct_layers = {}
        for name, loops in layers.items():
            moved = []
            for pts in loops:
                homog = np.column_stack([np.full(len(pts), z), pts, np.ones(len(pts))])
                moved.append((homog @ to_ct.T)[:, 1:3])
            ct_layers[name] = moved
        panels.append(OverlayPanel(f"CT-axial-z{k}", f"CT (HU), axial slice {k}", ct.array[k], plane_spacing(ct),
                                   contours=ct_layers, levels=(-160.0, 240.0)))
    return panels


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

    def overlay_panels(self, case: Case, predictions, frame: int | None = None) -> list:
        """The axial slice through the tumour's centre (`frame` picks another PET slice): PET with the CHMFL
        Grad-CAM, and the CT slice at the same height; both with the predicted (and true) tumour outline."""
        return petct_axial_panels(self, case, predictions, frame)

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
