"""Synthetic FDG PET-CT of a limb with a soft-tissue sarcoma: a stand-in for the TCIA STS collection (CHMFL).

Anatomy (CT in HU, PET in SUV): air; a limb of skin, subcutaneous fat, muscle and a long bone (cortex and marrow)
extruded along z; a tumour ellipsoid in muscle, random size and elongation, with a necrotic core in about half of
them. PET adds physiological uptake, hot spots outside the tumour that have nothing to do with the label (vessels,
nodes, muscle), partial-volume blur at PET resolution and count noise; CT adds noise.

Label (distant metastasis, balanced) design, after the CHMFL notes' phantom section. Two latent scores,
s_PET = PET_CUE * y + N(0, 1) and s_CT = CT_CUE * y + N(0, 1), independent given y:
- PET (stronger, fine-scale, volumetric): the share of fine 4-5 mm hot foci in the viable tumour's uptake pattern
  (against a smooth coarse gradient) grows with s_PET. The foci lie in a slab at a random height of the tumour,
  so its central axial slice often holds only part of the evidence.
  The tumour's SUVmean and SUVmax are drawn independently of the label and imposed after the texture is built,
  so neither (nor the tumour volume) tells the label.
- CT (weaker, coarse): an infiltrative hypodense margin (oedema) of lobulated outline around the tumour, whose
  thickness grows with s_CT. PET does not show it, so fusing the two modalities beats either alone.
Ideal readers of one score reach about Phi(cue / sqrt 2): 0.92 for PET (cue 2.0), 0.80 for CT (cue 1.2).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from engine.data import HU, SUV, ZYX, ModalityImage
from engine.io.volumes import Grid

PET_CUE, CT_CUE = 2.0, 1.2
PET_FWHM_MM = 5.0  # scanner resolution: the texture must survive it
CT_GRID = Grid((44, 80, 80), (3.27, 2.0, 2.0), (-70.3, -79.0, -79.0))
PET_GRID = Grid((44, 40, 40), (3.27, 4.0, 4.0), (-70.3, -78.0, -78.0))
HALF_LIFE_S = 6586.2  # F-18
SOURCE = "phantom generator"


@dataclass
class Tumour:
    """Ellipsoid axis-aligned in (z, y, x): centre (mm), radii (mm), optional necrotic core as a radius fraction."""

    centre: np.ndarray
    radii: np.ndarray
    necrosis: float = 0.0

    def inside(self, points: np.ndarray, scale: float = 1.0) -> np.ndarray:
        r = (points - self.centre) / (self.radii * scale)
        return (r ** 2).sum(-1) <= 1.0

    def mask_on(self, grid: Grid) -> np.ndarray:
        return self.inside(grid.physical_coordinates())

    @property
    def volume_ml(self) -> float:
        return float(4 / 3 * np.pi * np.prod(self.radii)) / 1000


@dataclass
class PetCtPatient:
    patient_id: str
    label: int  # 1 = distant metastasis
    pet: ModalityImage  # SUV, ZYX
    ct: ModalityImage  # HU, ZYX
    tumour: Tumour
    weight_kg: float
    dose_bq: float
    cues: dict[str, float] = field(default_factory=dict)  # latent scores and derived values, for tests only

    def truth_mask(self, grid: Grid | None = None) -> np.ndarray:
        """The tumour (GTV, including any necrosis) on `grid` (default: the PET grid), uint8."""
        return self.tumour.mask_on(grid or Grid.of(self.pet)).astype(np.uint8)


def _foci(points: np.ndarray, centres: np.ndarray, sigma: float) -> np.ndarray:
    out = np.zeros(points.shape[:-1], np.float32)
    for c in centres:
        out += np.exp(-((points - c) ** 2).sum(-1) / (2 * sigma ** 2)).astype(np.float32)
    return out


def _tumour_texture(rng: np.random.Generator, fine: np.ndarray, tumour: Tumour, viable: np.ndarray,
                    s_pet: float) -> tuple[np.ndarray, float]:
    """The viable tumour's uptake pattern in [0, 1] (max 1 inside): a coarse gradient plus fine 4-5 mm foci whose
    share grows with s_PET. The foci sit in a slab of the tumour along z at a random height, so the tumour's
    central axial slice often misses part of them."""
    fine_weight = float(1 / (1 + np.exp(-1.6 * (s_pet - PET_CUE / 2))))
    inside = fine[viable]
    coarse_centres = inside[rng.integers(0, len(inside), size=2)]
    coarse = np.zeros(viable.shape, np.float32)
    coarse[viable] = _foci(inside, coarse_centres, 0.6 * float(tumour.radii.mean()))
    n_foci = int(rng.integers(25, 40))
    z_mid = tumour.centre[0] + rng.uniform(-0.7, 0.7) * tumour.radii[0]
    slab = np.abs(inside[:, 0] - z_mid) <= 0.3 * tumour.radii[0]
    pool = inside[slab] if slab.sum() > 10 else inside
    foci = np.zeros(viable.shape, np.float32)
    foci[viable] = _foci(inside, pool[rng.integers(0, len(pool), size=n_foci)], 1.8)
    foci /= max(float(foci[viable].max()), 1e-6)
    coarse /= max(float(coarse[viable].max()), 1e-6)
    texture = ndimage.gaussian_filter(((1 - fine_weight) * coarse + fine_weight * foci) * viable,
                                      _sigma_vox(PET_FWHM_MM, CT_GRID.spacing))
    return texture / max(float(texture[viable].max()), 1e-6), fine_weight


def _sigma_vox(fwhm_mm: float, spacing: tuple[float, ...]) -> tuple[float, ...]:
    return tuple(fwhm_mm / 2.3548 / s for s in spacing)


def _limb(rng: np.random.Generator, points: np.ndarray) -> dict[str, np.ndarray]:
    """Tissue masks of one limb on `points` (z, y, x mm): outer contour, fat, bone cortex and marrow."""
    ry, rx = rng.uniform(62, 72), rng.uniform(60, 72)
    yy, xx = points[..., 1], points[..., 2]
    taper = 1 + 0.04 * points[..., 0] / 70  # the limb narrows a little along z
    outer = (yy / (ry * taper)) ** 2 + (xx / (rx * taper)) ** 2 <= 1
    fat_depth = rng.uniform(5, 11)
    muscle = (yy / (ry * taper - fat_depth)) ** 2 + (xx / (rx * taper - fat_depth)) ** 2 <= 1
    angle = rng.uniform(0, 2 * np.pi)
    by, bx = 0.35 * ry * np.sin(angle), 0.35 * rx * np.cos(angle)
    rb = np.hypot(yy - by, xx - bx)
    r_out = rng.uniform(11, 14)
    return {"outer": outer, "muscle": muscle, "cortex": (rb <= r_out) & (rb > r_out - 4), "marrow": rb <= r_out - 4,
            "bone_centre": np.array([0.0, by, bx]), "bone_radius": np.array(r_out)}


def _place_tumour(rng: np.random.Generator, limb: dict) -> Tumour:
    """An ellipsoid in muscle, away from the bone, fully inside the central 112 mm of the volume."""
    radii = np.array([rng.uniform(14, 30), rng.uniform(11, 22), rng.uniform(11, 22)])
    bone = limb["bone_centre"]
    for _ in range(100):
        angle = rng.uniform(0, 2 * np.pi)
        dist = rng.uniform(18, 34)
        centre = np.array([rng.uniform(-8, 8), dist * np.sin(angle), dist * np.cos(angle)])
        gap = np.hypot(*(centre[1:] - bone[1:])) - float(limb["bone_radius"]) - radii[1:].max()
        if gap > 3 and np.hypot(*centre[1:]) + radii[1:].max() < 50:
            break
    return Tumour(centre, radii, float(rng.uniform(0.3, 0.55)) if rng.random() < 0.5 else 0.0)


def make_patient(rng: np.random.Generator, label: int, patient_id: str) -> PetCtPatient:
    """One phantom patient (PET and CT volumes on their own grids, same frame of reference)."""
    s_pet = PET_CUE * label + rng.standard_normal()
    s_ct = CT_CUE * label + rng.standard_normal()
    fine = CT_GRID.physical_coordinates()
    limb = _limb(rng, fine)
    tumour = _place_tumour(rng, limb)
    gtv = tumour.inside(fine)
    necrotic = tumour.inside(fine, tumour.necrosis) if tumour.necrosis else np.zeros_like(gtv)
    viable = gtv & ~necrotic

    # CT: tissues, the tumour a little hypodense to muscle, and the label's infiltrative margin
    muscle_hu = rng.uniform(38, 50)
    ct = np.full(CT_GRID.shape, -1000.0, np.float32)
    ct[limb["outer"]] = -95 + rng.normal(0, 5)
    ct[limb["muscle"]] = muscle_hu
    ct[limb["marrow"]] = rng.uniform(-60, 20)
    ct[limb["cortex"]] = rng.uniform(900, 1300)
    margin_mm = float(np.clip(3.0 + 2.6 * s_ct, 0.0, 14.0))
    if margin_mm > 0.5:
        rel = (fine - tumour.centre) / tumour.radii
        theta, phi = np.arctan2(rel[..., 1], rel[..., 2]), np.arctan2(rel[..., 0], np.hypot(rel[..., 1], rel[..., 2]))
        k1, k2 = rng.integers(3, 6, size=2)
        lobes = 1 + 0.45 * np.sin(k1 * theta + rng.uniform(0, 6.3)) * np.cos(k2 * phi + rng.uniform(0, 6.3))
        scale = 1 + margin_mm * lobes / tumour.radii.mean()
        halo = tumour.inside(fine, 1.0) | ((((fine - tumour.centre) / (tumour.radii * scale[..., None])) ** 2).sum(-1)
                                          <= 1)
        ct[halo & ~gtv & limb["muscle"]] = muscle_hu - rng.uniform(22, 30)
    ct[viable] = muscle_hu - rng.uniform(8, 15)
    ct[necrotic] = rng.uniform(5, 15)
    ct = ndimage.gaussian_filter(ct, (0.4, 0.6, 0.6)) + rng.normal(0, 9, CT_GRID.shape).astype(np.float32)

    # PET: physiological uptake, the tumour texture (the label's foci), distractor hot spots
    act = np.zeros(CT_GRID.shape, np.float32)
    act[limb["outer"]] = rng.uniform(0.25, 0.4)
    act[limb["muscle"]] = rng.uniform(0.55, 0.9)
    act[limb["marrow"]] = rng.uniform(0.8, 1.3)
    act[limb["cortex"]] = 0.35
    texture, fine_weight = _tumour_texture(rng, fine, tumour, viable, s_pet)
    suv_mean, peak_ratio = rng.uniform(2.5, 5.0), rng.uniform(1.8, 2.6)
    mean_t = float(texture[viable].mean())
    contrast = (peak_ratio - 1) * suv_mean / max(1 - mean_t, 0.2)
    base = max(suv_mean * peak_ratio - contrast, 0.25 * suv_mean)
    act[viable] = base + contrast * texture[viable]
    act[necrotic] = rng.uniform(0.3, 0.6)
    spots = rng.integers(0, 3)  # physiological hot spots (nodes, vessels, muscle), label-free
    muscle_pts = fine[limb["muscle"] & ~tumour.inside(fine, 1.3)]
    spot_centres = muscle_pts[rng.integers(0, len(muscle_pts), size=spots)]
    for c in spot_centres:
        amp = rng.uniform(1.0, 4.0)
        act += amp * np.exp(-((fine - c) ** 2).sum(-1) / (2 * rng.uniform(3.5, 5.5) ** 2)).astype(np.float32)
    act = ndimage.gaussian_filter(act, _sigma_vox(2.5, CT_GRID.spacing))  # partial-volume blur at the edges
    pet = act.reshape(PET_GRID.shape[0], PET_GRID.shape[1], 2, PET_GRID.shape[2], 2).mean(axis=(2, 4))
    counts_per_suv = rng.uniform(25, 45)  # Poisson-like: variance proportional to the activity
    pet = rng.poisson(np.clip(pet, 0, None) * counts_per_suv).astype(np.float32) / counts_per_suv
    pet = ndimage.gaussian_filter(pet, 0.5)  # reconstruction smoothing

    weight = float(rng.uniform(55, 105))
    dose = float(rng.uniform(250e6, 420e6))
    source = {"generator": "engine.phantoms.petct", "patient": patient_id}
    pet_image = ModalityImage("PET", pet.astype(np.float32), PET_GRID.meta(32, SUV, source=dict(source)), ZYX)
    ct_image = ModalityImage("CT", np.round(ct).astype(np.float32), CT_GRID.meta(16, HU, source=dict(source)), ZYX)
    pet_image.meta.extra["roi_center_mm"] = [round(float(v), 3) for v in tumour.centre]
    cues = {"s_pet": float(s_pet), "s_ct": float(s_ct), "fine_weight": fine_weight, "margin_mm": margin_mm,
            "distractors": int(spots), "volume_ml": tumour.volume_ml}
    return PetCtPatient(patient_id, int(label), pet_image, ct_image, tumour, weight, dose, cues)


def make_petct_dataset(n_patients: int = 120, seed: int = 0) -> list[PetCtPatient]:
    """Balanced phantom patients P000, P001, ... (odd index = distant metastasis)."""
    rng = np.random.default_rng(seed)
    return [make_patient(rng, i % 2, f"P{i:03d}") for i in range(n_patients)]


def patient_to_case(patient: PetCtPatient, case_id: str):
    """A sarcoma PET-CT case with the truth label and the tumour mask on the PET grid (CT stored as int16 HU)."""
    from engine.cases.model import Case, GroundTruth

    case = Case(id=case_id, kind="sarcoma_petct", patient_id=patient.patient_id)
    case.add_image("PET", patient.pet.array, patient.pet.meta, ZYX)
    ct = patient.ct
    ct_meta = Grid.of(ct).meta(16, HU, source=dict(ct.meta.source))
    case.add_image("CT", np.clip(np.round(ct.array), -32768, 32767).astype(np.int16), ct_meta, ZYX)
    case.truth = GroundTruth({"distant_metastasis": patient.label}, {"tumor": patient.truth_mask()}, SOURCE)
    case.notes = "Synthetic PET-CT phantom (engine.phantoms.petct), not patient data."
    return case


def write_petct_demo_cases(folder, seed: int = 31, count: int = 2) -> list:
    """Demo bundles demo-petct-01.. (alternately without and with distant metastasis) in `folder`, and the DICOM
    study of one more phantom patient (RLE-compressed, so the demo exercises a compressed transfer syntax too) in
    `folder`/../demo_dicom/petct-demo-01 (PT and CT series)."""
    from pathlib import Path

    import pydicom
    from pydicom.uid import RLELossless

    from engine.cases.bundle import write_bundle

    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        case_id = f"demo-petct-{i + 1:02d}"
        patient = make_patient(rng, i % 2, f"DEMO-PETCT-{i + 1:02d}")
        paths.append(write_bundle(patient_to_case(patient, case_id), Path(folder) / case_id))
    dicom_folder = Path(folder).parent / "demo_dicom" / "petct-demo-01"
    files = write_petct_dicom(make_patient(rng, 1, "DEMO-PETCT-DICOM-01"), dicom_folder)
    for path in files["PT"] + files["CT"]:
        ds = pydicom.dcmread(path)
        ds.compress(RLELossless)
        ds.save_as(path)
    return paths


def write_petct_dicom(patient: PetCtPatient, folder) -> dict:
    """The patient's PET (with the SUV tags: Units BQML, decay START, dose, weight) and CT (rescale slope and
    intercept) as two DICOM series of one study in `folder`/PT and `folder`/CT; returns {modality: files}."""
    from pathlib import Path

    from engine.io.dicom_write import new_acquisition, write_series

    acq = new_acquisition(patient.patient_id, weight_kg=round(patient.weight_kg, 1), dose_bq=round(patient.dose_bq, -4))
    folder = Path(folder)
    return {"PT": write_series(patient.pet, folder / "PT", acq, "PT", "PET AC phantom", 2),
            "CT": write_series(patient.ct, folder / "CT", acq, "CT", "CT phantom", 1)}
