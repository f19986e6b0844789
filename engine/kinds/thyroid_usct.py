"""The thyroid US + CT kind: one thyroid nodule seen on an ultrasound capture and a CT slice, each with a box
around the nodule (ImageMeta.extra['roi']); DGFNet answers central and lateral cervical lymph-node metastasis.

One predictor runs both sites' models (DGFNetPredictor), so a case gets one prediction with the two tasks; a
reader study asks about one task label, so a study per site is made over the same cases (`central_lnm`,
`lateral_lnm`). Loose files open as a pair: the names say which is which (us / ultrasound / sono / echo,
ct), else the content does (DICOM modality, HU data = CT, an 8-bit picture = US).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from engine.cases.kinds import CaseKind, ModalityRole, TaskInfo, register_kind
from engine.cases.model import Case, GroundTruth
from engine.data import AU, HU, YX, YXC, PredictionSummary, model_id
from engine.io.us_ct import UsCtReadError, is_dicom_path, read_ct, read_us
from engine.preprocess.us_ct import CT, US, Box, store_roi

KIND = "thyroid_usct"
FAMILY = "dgfnet"
CENTRAL, LATERAL = "central_lnm", "lateral_lnm"
_US_WORDS = ("us", "ultrasound", "sono", "echo", "bmode", "usg")
_CT_WORDS = ("ct", "cect", "cta")


def _words(path: Path) -> list[str]:
    return re.findall(r"[a-z]+", path.stem.lower()) + re.findall(r"[a-z]+", path.name.lower() if path.is_dir() else "")


def _named(path: Path) -> str | None:
    words = _words(path)
    us, ct = any(w in _US_WORDS for w in words), any(w in _CT_WORDS for w in words)
    return US if us and not ct else CT if ct and not us else None


def _dicom_modality(path: Path) -> str | None:
    if not is_dicom_path(path):
        return None
    import pydicom

    first = next((p for p in sorted(path.iterdir()) if p.is_file()), None) if path.is_dir() else path
    try:
        modality = str(pydicom.dcmread(str(first), stop_before_pixels=True).get("Modality", ""))
    except Exception:  # an unreadable file is reported when it is read for real
        return None
    return US if modality in ("US", "IVUS") else CT if modality == "CT" else modality or None


def assign_us_ct(paths: Sequence[Path]) -> dict[str, Path]:
    """{'US': path, 'CT': path} from two paths (names first, then DICOM modality; a DICOM CT or .npy is CT)."""
    paths = [Path(p) for p in paths]
    if len(paths) != 2:
        raise UsCtReadError(f"A thyroid US + CT case takes two inputs (the ultrasound image and the CT slice or "
                            f"series); {len(paths)} were given.")
    guesses = [_named(p) or _dicom_modality(p) or (CT if p.suffix.lower() == ".npy" or p.is_dir() else None)
               for p in paths]
    if guesses.count(None) == 1:
        guesses[guesses.index(None)] = CT if US in guesses else US
    if sorted(g or "" for g in guesses) != [CT, US]:
        names = ", ".join(p.name for p in paths)
        raise UsCtReadError(f"{names}: cannot tell which is the ultrasound and which the CT. Put 'us' and 'ct' in the "
                            "file names, or give DICOM files with their modality.")
    return dict(zip(guesses, paths, strict=True))


def case_from_us_ct(us_path: str | Path, ct_path: str | Path, *, us_frame: int | None = None,
                    ct_slice: int | None = None, us_box=None, ct_box=None, case_id: str | None = None) -> Case:
    """A thyroid case from a US file and a CT file or series folder, with optional nodule boxes."""
    us, us_meta = read_us(us_path, us_frame)
    ct, ct_meta = read_ct(ct_path, ct_slice)
    us_meta.units, ct_meta.units = AU, HU
    case = Case(id=case_id or Case.new_id("thyroid"), kind=KIND)
    case.add_image(US, us, us_meta)
    case.add_image(CT, ct, ct_meta)
    for modality, box in ((US, us_box), (CT, ct_box)):
        if box is not None and str(box).strip():
            set_roi(case, modality, box)
    case.notes = f"Opened from US: {us_path}, CT: {ct_path}"
    return case


def set_roi(case: Case, modality: str, box) -> Box:
    """Store a nodule box with one of the case's images (checked against that image)."""
    return store_roi(case.image(modality), box)


def cases_from_roi_csv(path: str | Path) -> list[Case]:
    """Cases from a CSV with `nodule_id,us_path,ct_path,us_box,ct_box` (optional `us_frame`, `ct_slice`); boxes
    are `x0 y0 x1 y1` in pixels; paths relative to the CSV."""
    from engine.io.tables import read_csv_table

    path = Path(path)
    cases = []
    for line, row in enumerate(read_csv_table(path, ("nodule_id", "us_path", "ct_path", "us_box", "ct_box"),
                                              what="ROI table"), start=2):
        frame, slice_ = (row.get("us_frame") or "").strip(), (row.get("ct_slice") or "").strip()
        try:
            cases.append(case_from_us_ct(path.parent / row["us_path"], path.parent / row["ct_path"],
                                         us_frame=int(frame) if frame else None,
                                         ct_slice=int(slice_) if slice_ else None,
                                         us_box=row["us_box"].replace(" ", ","), ct_box=row["ct_box"].replace(" ", ","),
                                         case_id=row["nodule_id"]))
        except ValueError as exc:
            raise type(exc)(f"{path}:{line}: {exc}") from exc
    return cases


class ThyroidUsCtKind(CaseKind):
    name = KIND
    title = "Thyroid nodule (US + CT)"
    roles = (ModalityRole(US, "Ultrasound (US)", (YX, YXC), AU), ModalityRole(CT, "CT slice (HU)", (YX,), HU))
    tasks = (TaskInfo(CENTRAL, "Central LNM", "metastatic central cervical lymph nodes", ("no LNM", "LNM")),
             TaskInfo(LATERAL, "Lateral LNM", "metastatic lateral cervical lymph nodes", ("no LNM", "LNM")))

    def make_predictor(self, modalities: tuple[str, ...], method: str | None = None):
        from engine.predict.thyroid import DGFNetPredictor

        if set(modalities) != {US, CT}:
            raise UsCtReadError(f"DGFNet needs both the US image and the CT slice of the nodule; the case has "
                                f"{', '.join(modalities)}.")
        return DGFNetPredictor()

    def predictor_groups(self, case: Case) -> list[tuple[str, ...]]:
        missing = [m for m in (US, CT) if m not in case.images]
        if missing:
            raise UsCtReadError(f"Case {case.id} lacks its {' and '.join(missing)} image; DGFNet reads US + CT.")
        return [(US, CT)]

    def primary_model(self) -> str:
        return model_id(FAMILY, "central+lateral")

    def model_title(self, summary: PredictionSummary) -> tuple[str, str]:
        return "DGFNet", summary.variant

    def cards_label(self) -> str:
        from engine.predict.thyroid import SITES, card_name
        from engine.registry import ModelError, load_card

        parts = []
        for site in SITES:
            try:
                parts.append(load_card(card_name(site)).weights["sha256"][:8])
            except ModelError:
                parts.append("not installed")
        return f"{FAMILY} " + "+".join(parts)

    def write_demo_cases(self, folder: Path) -> list[Path]:
        return write_thyroid_demo_cases(folder)

    def claims_files(self, paths: Sequence[Path]) -> int:
        if len(paths) != 2:
            return 0
        try:
            assign_us_ct(paths)
        except UsCtReadError:
            return 0
        return 3

    def case_from_files(self, paths: Sequence[Path], modality: str | None = None) -> Case:
        if modality:
            raise UsCtReadError(f"A thyroid case needs both images; open the US and the CT together (not only "
                                f"{modality}).")
        mapping = assign_us_ct(paths)
        return case_from_us_ct(mapping[US], mapping[CT])


def write_thyroid_demo_cases(folder: Path, n: int = 6, seed: int = 7) -> list[Path]:
    """Phantom nodules as bundles: the largest-area US capture and CT slice, their boxes, labels and masks.
    A third are positive at both sites, one case central only, the rest negative (each class twice per site
    for n >= 6, so a reader study per site can be analysed on the demo cases alone)."""
    from engine.cases.bundle import write_bundle
    from engine.data import ImageMeta
    from engine.phantoms.thyroid import CT_SPACING_MM, US_SPACING_MM, make_thyroid_dataset

    out = []
    nodules = make_thyroid_dataset(60, seed)
    both = [x for x in nodules if x.labels[CENTRAL] and x.labels[LATERAL]]
    central_only = [x for x in nodules if x.labels[CENTRAL] and not x.labels[LATERAL]]
    negative = [x for x in nodules if not x.labels[CENTRAL] and not x.labels[LATERAL]]
    k = max(1, n // 3)
    chosen = both[:k] + central_only[:1] + negative[:n - k - 1]
    for i, nodule in enumerate(chosen, start=1):
        k_us, k_ct = nodule.largest(US), nodule.largest(CT)
        case = Case(id=f"demo-thyroid-{i:02d}", kind=KIND, patient_id=f"DEMO-TH{i:02d}",
                    notes="Synthetic nodule from the OncoLens thyroid US + CT phantom generator.")
        case.add_image(US, nodule.us[k_us], ImageMeta(8, AU, (US_SPACING_MM,) * 2, source={"file": f"{case.id}_us.png"}))
        case.add_image(CT, nodule.ct[k_ct], ImageMeta(16, HU, (CT_SPACING_MM,) * 2, source={"file": f"{case.id}_ct"}))
        set_roi(case, US, nodule.us_boxes[k_us])
        set_roi(case, CT, nodule.ct_boxes[k_ct])
        case.truth = GroundTruth(dict(nodule.labels), {"nodule_US": nodule.us_masks[k_us].astype(np.uint8),
                                                       "nodule_CT": nodule.ct_masks[k_ct].astype(np.uint8)},
                                 "phantom generator")
        out.append(write_bundle(case, folder / case.id))
    return out


def write_roi_csv(path: Path, rows: list[dict]) -> Path:
    """Write a ROI table (the layout `cases_from_roi_csv` and `oncolens predict --rois` read)."""
    columns = ["nodule_id", "us_path", "ct_path", "us_box", "ct_box", "us_frame", "ct_slice"]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in columns})
    return path


THYROID_USCT = register_kind(ThyroidUsCtKind())
