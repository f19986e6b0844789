"""Synthetic excised glioma specimens: aligned NIR-II fluorescence (16-bit counts) and white-light RGB.

A stand-in for the FL-CNN data (Shen et al., EJNMMI 2021), of which none is public. Every label acts on
a latent score drawn from overlapping class-conditional normals, so even a perfect reader of the images
stays below AUC 1. The nuisances the paper names (ambient light, white noise, camera gain and exposure,
varied specimen size and shape) are drawn per patient and per image, so that no absolute pixel value
separates tumor from non-tumor: only contrast against the tray and texture inside the specimen do.
As in the paper, FL carries tumor and grade best (ICG clusters, ring enhancement around necrosis) and
WL carries Ki-67 best (red punctate micro-vessels).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from engine.cases.bundle import write_bundle
from engine.cases.model import FL, WL, Case, GroundTruth
from engine.data import ImageMeta

# Label balance: about 70 % tumor as in the paper; GBM made more common than its 11 % so a small demo
# model sees enough of them. Ki-67 depends on grade (GBM proliferates more), about 40 % high overall.
TUMOR_RATE = 0.70
GBM_RATE = 0.30
KI67_HIGH_RATE = {0: 0.32, 1: 0.60}  # P(Ki-67 >= 10 % | grade)

# Separation (in SD units) of the latent score between the classes of each label. A reader who knew
# the score would reach AUC Phi(d / sqrt(2)): about 0.94 for tumor (about 0.97 when the grade and
# Ki-67 signs, more common in tumors, are used as well), 0.88 for grade and 0.78 for Ki-67.
LATENT_SEPARATION = {"tumor": 2.25, "grade": 1.65, "ki67": 1.1}

# Normal brain: less necrosis and proliferation than even lower-grade, Ki-67-low tumor.
NON_TUMOR_LATENT_MEAN = {"grade": -0.5, "ki67": -0.3}

SPACING_MM = (0.1, 0.1)
FULL_SCALE = 65535
SOURCE = "phantom generator (synthetic)"


@dataclass(frozen=True)
class PatientEffects:
    """What stays the same for one patient's session: camera settings, room light, white balance."""

    patient_id: str
    gain: float  # camera gain x exposure time: counts per unit of fluorescence (multiplies everything)
    ambient: float  # stray room light reaching the NIR-II camera, in fluorescence units before gain
    dark_offset: float  # camera black level (counts)
    noise_sigma: float  # read noise (counts)
    hot_pixel_rate: float  # mean number of hot pixels per frame (InGaAs sensors have many)
    tint: tuple[float, float, float]  # white-light camera white balance, multipliers for R, G, B
    tumor_rate: float  # probability that a specimen of this patient is tumor

    @classmethod
    def draw(cls, rng: np.random.Generator, patient_id: str) -> PatientEffects:
        tint = np.exp(rng.normal(0.0, 0.05, 3))
        return cls(
            patient_id=patient_id,
            gain=float(np.exp(rng.uniform(np.log(1.5), np.log(30.0)))),
            ambient=float(np.exp(rng.uniform(np.log(45.0), np.log(220.0)))),
            dark_offset=float(rng.uniform(60.0, 240.0)),
            noise_sigma=float(rng.uniform(6.0, 40.0)),
            hot_pixel_rate=float(rng.uniform(1.0, 10.0)),
            tint=(float(tint[0]), float(tint[1]), float(tint[2])),
            tumor_rate=float(np.clip(rng.beta(4.0, 1.7), 0.35, 0.93)),
        )


@dataclass
class GliomaSpecimen:
    """One excised specimen imaged twice on the same tray: FL (uint16 counts) and WL (uint8 RGB), aligned."""

    specimen_id: str
    patient_id: str
    fl: np.ndarray
    wl: np.ndarray
    tumor: int
    grade: int | None  # 0 lower grade (II-III), 1 GBM (IV); None for non-tumor
    ki67: int | None  # 0 below 10 %, 1 at or above 10 %; None for non-tumor
    mask: np.ndarray
    latent: dict[str, float] = field(default_factory=dict)  # drawn scores behind the evidence, for debugging

    @property
    def labels(self) -> dict[str, int | None]:
        return {"tumor": self.tumor, "grade": self.grade, "ki67": self.ki67}


# --------------------------------------------------------------------------------------------- helpers

_NOISE_TABLE_SIZE = 448
_OUTLINE_LUT = 512
_LUT_THETA = np.linspace(-np.pi, np.pi, _OUTLINE_LUT, endpoint=False)
_FIELD_SD = 0.85  # SD of a bicubic-upsampled unit normal grid; dividing by it restores unit SD


def _sigmoid(x):
    return 0.5 + 0.5 * np.tanh(0.5 * x)


@functools.cache
def _noise_table() -> np.ndarray:
    """Fixed Gaussian noise planes; each image reads a random window (fresh normals are the slow part)."""
    return np.random.default_rng(20210).standard_normal((3, _NOISE_TABLE_SIZE, _NOISE_TABLE_SIZE), np.float32)


def _white_noise(rng: np.random.Generator, h: int, w: int, planes: int = 1) -> np.ndarray:
    """Unit-SD Gaussian noise, (h, w) for one plane or (planes, h, w)."""
    if max(h, w) > _NOISE_TABLE_SIZE:
        noise = rng.standard_normal((planes, h, w), np.float32)
    else:
        y0 = int(rng.integers(0, _NOISE_TABLE_SIZE - h + 1))
        x0 = int(rng.integers(0, _NOISE_TABLE_SIZE - w + 1))
        c0 = int(rng.integers(0, 4 - planes))
        noise = _noise_table()[c0:c0 + planes, y0:y0 + h, x0:x0 + w]
    return noise[0] if planes == 1 else noise


def _smooth_fields(rng: np.random.Generator, h: int, w: int, cell: float, n: int) -> np.ndarray:
    """n independent zero-mean, unit-SD random fields (h, w, n) whose blobs are about `cell` pixels across."""
    gh, gw = max(2, int(round(h / cell)) + 2), max(2, int(round(w / cell)) + 2)
    coarse = rng.standard_normal((gh, gw, n), np.float32) * np.float32(1.0 / _FIELD_SD)
    fields = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    return fields.reshape(h, w, n)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def _dots(rng: np.random.Generator, where: np.ndarray, density: float, sigma: float) -> np.ndarray:
    """Small blurred dots of peak height about 1, about `density` per pixel of `where` (a bool mask)."""
    h, w = where.shape
    out = np.zeros((h, w), np.float32)
    n = rng.poisson(density * h * w)
    if n:
        idx = rng.integers(0, h * w, n)
        out.flat[idx] = rng.uniform(0.5, 1.5, n)
        out = _blur(out, sigma) * np.float32(2.0 * np.pi * sigma * sigma)
    return out * where


def _polar(h: int, w: int, centre, radii, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Elliptic radius (1 on the ellipse) and angle of every pixel about a rotated ellipse."""
    y = (np.arange(h, dtype=np.float32) - np.float32(centre[0]))[:, None]
    x = (np.arange(w, dtype=np.float32) - np.float32(centre[1]))[None, :]
    c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    u = (c * x + s * y) * np.float32(1.0 / radii[0])
    v = (c * y - s * x) * np.float32(1.0 / radii[1])
    return np.sqrt(u * u + v * v), np.arctan2(v, u)


def _outline(rng: np.random.Generator, irregularity: float, harmonics: int) -> np.ndarray:
    """Outline radius over a table of angles: 1 plus random harmonics (smooth and irregular)."""
    r = np.ones(_OUTLINE_LUT)
    for k in range(2, harmonics + 1):
        amp = 1.4 * irregularity * rng.standard_normal() / k**1.1
        r += amp * np.cos(k * _LUT_THETA + rng.uniform(0, 2 * np.pi))
    return np.maximum(r, 0.45).astype(np.float32)


def _at_angle(outline: np.ndarray, theta: np.ndarray) -> np.ndarray:
    idx = ((theta + np.float32(np.pi)) * np.float32(_OUTLINE_LUT / (2 * np.pi))).astype(np.intp)
    return outline.take(idx, mode="wrap")


@dataclass
class _Geometry:
    mask: np.ndarray  # bool
    soft: np.ndarray  # float32 in [0, 1], anti-aliased outline
    depth: np.ndarray  # float32, 0 at the outline rising to 1 at the centre (for shading)
    centre: tuple[float, float]
    radii: tuple[float, float]
    angle: float


def _specimen_geometry(rng: np.random.Generator, h: int, w: int, irregularity: float) -> _Geometry:
    """A tissue piece: a rotated ellipse with a radially perturbed outline, placed at random on the tray."""
    short = min(h, w)
    outline = _outline(rng, irregularity, 7 if irregularity < 0.12 else 10)
    ra = rng.uniform(0.24, 0.42) * short
    rb = ra * rng.uniform(0.55, 1.0)
    # Shrink if the piece would not fit, then place it anywhere it fits with a margin of 3 pixels.
    fit = min(1.0, (0.5 * short - 4) / (ra * float(outline.max())))
    ra, rb = ra * fit, rb * fit
    reach = ra * float(outline.max()) + 3
    cy = rng.uniform(reach, h - reach) if h > 2 * reach else h / 2
    cx = rng.uniform(reach, w - reach) if w > 2 * reach else w / 2
    angle = rng.uniform(0, np.pi)
    rho, theta = _polar(h, w, (cy, cx), (ra, rb), angle)
    rel = rho / _at_angle(outline, theta)  # < 1 inside the outline
    soft = np.clip((1.0 - rel) * np.float32(ra / 1.2) + 0.5, 0.0, 1.0)  # about one pixel of anti-aliasing
    depth = np.clip(1.0 - rel, 0.0, 1.0)
    return _Geometry(rel < 1.0, soft, depth, (cy, cx), (ra, rb), angle)


_CoreRim = tuple[np.ndarray, np.ndarray] | None  # necrotic core and enhancing rim weights (GBM signs)


def _core_region(
    rng: np.random.Generator, geo: _Geometry, wobble: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """A necrotic core inside the specimen and the enhancing rim around it (weights in [0, 1]).

    `wobble` (a smooth unit-SD field) makes the core outline and the rim thickness uneven."""
    h, w = geo.mask.shape
    ra, rb = geo.radii
    scale = rng.uniform(0.35, 0.6)
    radii = (ra * scale, rb * scale * rng.uniform(0.8, 1.2))
    off, phi = rng.uniform(0, 0.35) * min(ra, rb), rng.uniform(0, 2 * np.pi)
    centre = (geo.centre[0] + off * np.sin(phi), geo.centre[1] + off * np.cos(phi))
    rho, theta = _polar(h, w, centre, radii, geo.angle + rng.uniform(-0.5, 0.5))
    rel = rho / _at_angle(_outline(rng, 0.2, 6), theta) + np.float32(0.1) * wobble
    core = _sigmoid((1.0 - rel) * np.float32(1 / 0.07)) * geo.soft
    width = np.float32(1 / 0.24) / (1.0 + np.float32(0.25) * wobble)
    rim = np.exp(-(((rel - np.float32(1.18)) * width) ** 2)) * geo.soft
    return core, rim


# --------------------------------------------------------------------------------------------- latent


def _latent_means(tumor: int, grade: int | None, ki67: int | None) -> dict[str, float]:
    """Class means of the latent scores. Non-tumor tissue gets grade and proliferation scores too, a little
    below those of lower-grade, Ki-67-low tumor, so that no sign in the images exists only in tumors."""
    if not tumor:
        return {"tumor": 0.0, **NON_TUMOR_LATENT_MEAN}
    return {"tumor": LATENT_SEPARATION["tumor"], "grade": LATENT_SEPARATION["grade"] * grade,
            "ki67": LATENT_SEPARATION["ki67"] * ki67}


def _draw_latent(rng: np.random.Generator, tumor: int, grade: int | None, ki67: int | None) -> dict:
    """Class-conditional scores, unit SD around the class means: the classes overlap."""
    return {name: float(rng.normal(mean, 1.0)) for name, mean in _latent_means(tumor, grade, ki67).items()}


def _necrosis(z: dict[str, float]) -> float:
    """How much necrotic core with ring enhancement a piece shows (0 none, 1 full)."""
    return float(np.clip((z["grade"] - 0.3) / 1.6, 0.0, 1.0))


# --------------------------------------------------------------------------------------------- images


@dataclass
class _Fields:
    """Random textures shared by the FL and WL renderings of one specimen (same tissue, same tray)."""

    texture: np.ndarray
    clusters: np.ndarray
    lumps: np.ndarray
    vessels: np.ndarray
    vessel_gate: np.ndarray
    fine: np.ndarray
    glare: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, h: int, w: int) -> _Fields:
        mid = _smooth_fields(rng, h, w, rng.uniform(9, 14), 5)
        small = _smooth_fields(rng, h, w, 2.5, 2)
        return cls(*(mid[..., i] for i in range(5)), small[..., 0], small[..., 1])


def _fluorescence(rng, geo: _Geometry, core_rim: _CoreRim, f: _Fields, z: dict[str, float]) -> np.ndarray:
    """ICG fluorescence of the specimen in camera-independent units (0 on the tray)."""
    # Uptake grows with the tumor score; non-tumor tissue takes up little and evenly.
    uptake = np.float32(90.0 * np.exp(0.55 * z["tumor"] + 0.3 * rng.standard_normal()))
    heterogeneity = float(_sigmoid(1.8 * (z["tumor"] - 1.2)))
    tissue = 1.0 + 0.12 * f.texture + 0.06 * f.fine
    # Irregular bright clusters: the upper tail of a smooth random field.
    clusters = np.clip(f.clusters - np.float32(rng.uniform(0.5, 1.1)), 0, None)
    clusters *= np.float32(4.5 * heterogeneity * rng.uniform(0.7, 1.3) / (clusters.max() + 1e-6))
    signal = tissue + clusters
    if core_rim is not None:
        # GBM: the necrotic core goes dark, the rim around it enhances (ring enhancement).
        necrosis = _necrosis(z)
        core, rim = core_rim
        signal = signal * (1.0 - np.float32(0.88 * necrosis) * core + np.float32(3.0 * necrosis) * rim)
    # Proliferation shows as fine punctate speckle, a noisier sign of Ki-67 here than in white light.
    speckle = 0.005 * np.exp(0.9 * (z["ki67"] + rng.normal(0.0, 0.8)))
    signal += np.float32(0.6) * _dots(rng, geo.mask, speckle, 0.8)
    return np.clip(signal, 0, None) * (uptake * geo.soft)


def _camera_counts(rng, patient: PatientEffects, fluor: np.ndarray) -> np.ndarray:
    """NIR-II camera: gain x (fluorescence + uneven ambient light) + black level + noise + hot pixels."""
    h, w = fluor.shape
    scale = np.float32(patient.gain * np.exp(rng.normal(0.0, 0.25)))  # gain x this frame's exposure
    ambient = patient.ambient * np.exp(rng.normal(0.0, 0.3))
    gy, gx = rng.normal(0.0, 0.2, 2) * ambient
    ramp = (np.float32(ambient + 8.0)  # 8: faint tray autofluorescence
            + np.linspace(-gy / 2, gy / 2, h, dtype=np.float32)[:, None]
            + np.linspace(-gx / 2, gx / 2, w, dtype=np.float32)[None, :])
    photons = scale * (fluor + ramp)
    # Read noise plus shot noise (2 counts per photo-electron).
    sigma = np.sqrt(np.float32(patient.noise_sigma**2) + np.float32(2.0) * photons)
    counts = np.float32(patient.dark_offset) + photons + sigma * _white_noise(rng, h, w)
    n_hot = rng.poisson(patient.hot_pixel_rate)
    if n_hot:
        hot = FULL_SCALE * np.exp(rng.uniform(np.log(0.05), 0.0, n_hot))  # 5 % of full scale up to saturation
        counts.flat[rng.integers(0, h * w, n_hot)] = hot
    return np.clip(counts + 0.5, 0, FULL_SCALE).astype(np.uint16)


# Colours as (3, 1, 1) so that they broadcast over (H, W) maps; WL is built channel-first for speed.
_TRAY_RGB = np.array([22, 58, 62], np.float32)[:, None, None]  # dark blue-green drape
_TISSUE_RGB = np.array([212, 152, 142], np.float32)[:, None, None]  # pink-beige cortex
_NECROSIS_RGB = np.array([150, 130, 95], np.float32)[:, None, None]  # yellow-grey necrotic tissue
_BLOOD_RGB = np.array([110, 18, 22], np.float32)[:, None, None]
_REDDEN = np.array([0.0, -0.55, -0.5], np.float32)[:, None, None]  # less green and blue: redder


def _colour_jitter(rng: np.random.Generator, sd: float) -> np.ndarray:
    return np.exp(rng.normal(0, sd, 3)).astype(np.float32)[:, None, None]


def _white_light(
    rng, patient: PatientEffects, geo: _Geometry, core_rim: _CoreRim, f: _Fields, z: dict
) -> np.ndarray:
    """White-light photo: pink-beige tissue with shading, vessels, blood and glare on a blue-green tray."""
    h, w = geo.mask.shape
    # Lamp falloff across the tray and the specimen alike.
    ly, lx = rng.normal(0.0, 0.15, 2)
    light = (1.0 + np.linspace(-ly, ly, h, dtype=np.float32)[:, None]
             + np.linspace(-lx, lx, w, dtype=np.float32)[None, :])

    # Tumor tissue looks greyer, duller and more granular, with more vessels, than normal cortex; white
    # light sees the tumor score through extra noise, so it is the weaker modality for this label.
    tumorous = float(_sigmoid(1.5 * (z["tumor"] + rng.normal(0.0, 1.0) - 1.0)))
    base = _TISSUE_RGB * _colour_jitter(rng, 0.06) * np.float32(1.0 - 0.06 * tumorous)
    grey = np.float32(0.2 * tumorous + rng.uniform(0, 0.08))
    base = (1 - grey) * base + grey * base.mean()
    shade = (np.float32(0.78) + np.float32(0.22) * np.sqrt(geo.depth) + np.float32(0.09) * f.lumps) * light
    granular = 1.0 + np.float32(0.04 + 0.05 * tumorous) * f.fine
    vascularity = 0.25 + 0.5 * tumorous + 0.45 * _sigmoid(1.2 * (z["ki67"] - 0.6))
    vessels = np.exp(-((f.vessels * np.float32(1 / 0.11)) ** 2)) * (f.vessel_gate > 0.2)
    redness = np.float32(0.45 * vascularity) * vessels
    # Proliferation: reddish punctate micro-vessels and a slightly redder tissue, clearer than in FL.
    dots = _dots(rng, geo.mask, 0.004 * np.exp(1.1 * z["ki67"]), 1.0)
    redness += np.float32(0.6) * np.clip(dots, 0, 1.5) + np.float32(0.12 * _sigmoid(1.5 * (z["ki67"] - 0.55)))
    tissue = base * (shade * granular) * (1.0 + _REDDEN * redness)
    if core_rim is not None:
        k = np.float32(0.35 * _necrosis(z)) * core_rim[0]
        tissue += k * (_NECROSIS_RGB * shade - tissue)

    # Blood spots: a few dark-red patches.
    n_blood = rng.poisson(1.2)
    if n_blood:
        ys, xs = np.nonzero(geo.mask)
        spots = np.zeros((h, w), np.float32)
        pick = rng.integers(0, len(ys), n_blood)
        spots[ys[pick], xs[pick]] = 1.0
        spots = _blur(spots, rng.uniform(1.5, 3.5))
        spots *= np.float32(1.6 / (spots.max() + 1e-6))
        spots = np.clip(spots + np.float32(0.3) * f.fine * (spots > 0.05) - 0.3, 0, 1)  # ragged edges
        tissue += spots * (_BLOOD_RGB * shade - tissue)

    # Glare: wet tissue reflects the lamp where the surface faces it.
    glare = (f.glare + np.float32(0.8) * f.lumps - np.float32(2.4)) * np.float32(2.5) * geo.depth
    glare = np.clip(glare, 0, 1)
    tissue += np.float32(255.0) * glare

    # Compose on the tray; the tissue edge casts a thin shadow. Then white balance, exposure, sensor noise.
    tray_shade = light * (1.0 + np.float32(0.05) * f.glare) * (1.0 - np.float32(0.45) * _blur(geo.soft, 2.0))
    tray = (_TRAY_RGB * _colour_jitter(rng, 0.12)) * tray_shade
    img = tray + geo.soft * (tissue - tray)
    img *= np.asarray(patient.tint, np.float32)[:, None, None] * np.float32(np.exp(rng.normal(0, 0.1)))
    img += np.float32(2.5) * _white_noise(rng, h, w, 3)
    img = np.clip(img + np.float32(0.5), 0, 255).astype(np.uint8)
    return cv2.merge([img[0], img[1], img[2]])


# --------------------------------------------------------------------------------------------- public


def make_specimen(
    rng: np.random.Generator,
    *,
    patient: PatientEffects,
    tumor: int,
    grade: int | None,
    ki67: int | None,
    size: tuple[int, int] | None = None,
    specimen_id: str | None = None,
    size_range: tuple[int, int] = (96, 160),
) -> GliomaSpecimen:
    """One specimen with the given labels. `size` is (H, W); when None, H and W are drawn from size_range."""
    if tumor not in (0, 1):
        raise ValueError(f"tumor must be 0 or 1, got {tumor!r}.")
    if tumor == 0 and (grade is not None or ki67 is not None):
        raise ValueError("A non-tumor specimen has no grade or Ki-67: pass grade=None, ki67=None.")
    if tumor == 1 and (grade not in (0, 1) or ki67 not in (0, 1)):
        raise ValueError(f"A tumor specimen needs grade and ki67 of 0 or 1, got {grade=}, {ki67=}.")
    if size is None:
        lo, hi = size_range
        size = (int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1)))
    h, w = size
    if min(h, w) < 32:
        raise ValueError(f"Specimen images must be at least 32x32 pixels, got {h}x{w}.")

    z = _draw_latent(rng, tumor, grade, ki67)
    # GBM outlines are more irregular (infiltrative, fragmented resection pieces).
    irregularity = 0.07 + 0.05 * rng.random() + 0.07 * _sigmoid(1.5 * (z["grade"] - 0.8))
    geo = _specimen_geometry(rng, h, w, irregularity)
    fields = _Fields.draw(rng, h, w)
    core_rim = _core_region(rng, geo, fields.texture) if _necrosis(z) > 0 else None
    # From here on the labels act only through the latent scores z.
    fl = _camera_counts(rng, patient, _fluorescence(rng, geo, core_rim, fields, z))
    wl = _white_light(rng, patient, geo, core_rim, fields, z)
    return GliomaSpecimen(
        specimen_id=specimen_id or f"{patient.patient_id}-S{int(rng.integers(0, 10**6)):06d}",
        patient_id=patient.patient_id,
        fl=fl,
        wl=wl,
        tumor=int(tumor),
        grade=None if not tumor else int(grade),
        ki67=None if not tumor else int(ki67),
        mask=geo.mask,
        latent={**z, "irregularity": float(irregularity)},
    )


Labels = tuple[int, int | None, int | None]  # (tumor, grade, ki67)


def draw_labels(rng: np.random.Generator, tumor_rate: float = TUMOR_RATE) -> Labels:
    """(tumor, grade, ki67) for one specimen at the module's class balance."""
    if rng.random() >= tumor_rate:
        return 0, None, None
    grade = int(rng.random() < GBM_RATE)
    return 1, grade, int(rng.random() < KI67_HIGH_RATE[grade])


def make_glioma_dataset(
    n_patients: int = 24,
    specimens_per_patient: int = 40,
    seed: int = 0,
    size_range: tuple[int, int] = (96, 160),
) -> list[GliomaSpecimen]:
    """Specimens of several patients, each with its own camera settings and room light; same seed, same data.

    Every patient with two or more specimens has both tumor and non-tumor pieces, as in a real resection.
    """
    specimens: list[GliomaSpecimen] = []
    for p in range(n_patients):
        rng = np.random.default_rng([seed, p])
        patient = PatientEffects.draw(rng, f"P{p + 1:03d}")
        labels = [draw_labels(rng, patient.tumor_rate) for _ in range(specimens_per_patient)]
        if specimens_per_patient >= 2 and len({t for t, _, _ in labels}) == 1:
            i = int(rng.integers(0, specimens_per_patient))
            labels[i] = (0, None, None) if labels[i][0] else draw_labels(rng, 1.0)
        for s, (tumor, grade, ki67) in enumerate(labels):
            specimens.append(make_specimen(
                rng, patient=patient, tumor=tumor, grade=grade, ki67=ki67,
                specimen_id=f"{patient.patient_id}-S{s + 1:03d}", size_range=size_range,
            ))
    return specimens


def specimen_to_case(spec: GliomaSpecimen, case_id: str | None = None) -> Case:
    """Wrap a specimen as a 'glioma_specimen' Case with FL (16-bit counts) and WL (8-bit RGB) images."""
    case = Case(id=case_id or spec.specimen_id, kind="glioma_specimen", patient_id=spec.patient_id,
                notes="Synthetic specimen from the OncoLens glioma phantom generator.")
    case.add_image(FL, spec.fl, ImageMeta(bit_depth=16, units="counts", spacing=SPACING_MM, source={"generator": SOURCE}))
    case.add_image(WL, spec.wl, ImageMeta(bit_depth=8, units="RGB", spacing=SPACING_MM, source={"generator": SOURCE}))
    case.truth = GroundTruth(labels=spec.labels, source=SOURCE)
    return case


# Demo set: two non-tumor, two lower-grade and two GBM specimens with both Ki-67 levels.
_DEMO_LABELS = ((0, None, None), (0, None, None), (1, 0, 0), (1, 0, 1), (1, 1, 1), (1, 1, 0))


def write_glioma_demo_cases(folder: str | Path, n: int = 6, seed: int = 2021) -> list[Path]:
    """Write `n` demo bundles (demo-glioma-01, ...) under `folder`; return their folders.

    Each demo specimen is the most class-typical of a few draws, so the demo shows clear examples.
    """
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        tumor, grade, ki67 = _DEMO_LABELS[i % len(_DEMO_LABELS)]
        patient = PatientEffects.draw(rng, f"DEMO{i + 1:02d}")
        case_id = f"demo-glioma-{i + 1:02d}"
        candidates = [
            make_specimen(rng, patient=patient, tumor=tumor, grade=grade, ki67=ki67, specimen_id=case_id)
            for _ in range(4)
        ]
        spec = min(candidates, key=_atypicality)
        paths.append(write_bundle(specimen_to_case(spec, case_id), folder / case_id))
    return paths


def _atypicality(spec: GliomaSpecimen) -> float:
    """Distance of the latent scores from their class means (small = a textbook example)."""
    means = _latent_means(spec.tumor, spec.grade, spec.ki67)
    return float(sum((spec.latent[name] - mean) ** 2 for name, mean in means.items()))
