"""Synthetic intraoperative NIR fluorescence frames with tumor masks, in three device/organ "datasets".

A stand-in for the data of Hou, Zou and Wang (Surg Innov 2024), which is not shipped: ABFM (breast tumors
and lymphatics, a research camera), DTHP (pancreatic tumors, NOVADAQ video frames) and DTHL (liver with ICG
retention, the same device). The paper names what makes these frames hard for classical methods, and each
appears here: tumor borders blurred by tissue scattering and dimmer at the infiltrative margin, low
contrast, uneven excitation (vignetting, gradients), instrument noise (shot, read, fixed pattern, video
quantisation), specular glare, textured background with non-specific uptake, bright structures that are not
tumor (lymphatic channels and vessels; in the liver a whole segment that retains ICG) and small, dense
lesions next to large ones.

The truth mask is the drawn tumor outline (what an annotator would trace), not a threshold of the image, so
a global threshold or an edge-driven level set gets only part of it while a model that learns the shapes
and the margin fall-off can get much more. Everything is drawn from the generator passed in: same seed,
same frames. Speed: a 1024 x 1024 frame takes about 0.1-0.2 s, because smooth parts are drawn at a quarter
of the resolution and enlarged, and only vessels, glare and noise are drawn at full resolution.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from engine.cases.bundle import write_bundle
from engine.cases.model import Case, GroundTruth
from engine.data import ImageMeta

MODALITY = "NIR"
SOURCE = "phantom generator (synthetic)"


@dataclass(frozen=True)
class FluoroDatasetSpec:
    """How one device/organ combination looks. Pixel sizes (radius, blur, width) are in pixels of a
    1024-pixel frame and scale with the frame size; ranges are (low, high) drawn uniformly per frame."""

    key: str
    stands_for: str
    organ: str
    description: str
    bit_depth: int  # the camera's ADC depth; 12-bit data come in uint16
    spacing_mm: float  # at 1024 pixels across
    n_lesions: tuple[int, int]
    lesion_radius: tuple[float, float]  # drawn log-uniformly
    cluster_rate: float  # chance that the lesions of a frame sit close together (small dense lesions)
    tbr: tuple[float, float]  # tumor-to-local-background emission ratio
    edge_blur: tuple[float, float]  # scattering blur (Gaussian sigma) of the tumor emission
    margin_level: tuple[float, float]  # emission at the outline relative to the tumor core
    rim_rate: float  # chance that a lesion shows rim-type uptake (dark centre, bright rim)
    irregularity: tuple[float, float]
    texture: float  # SD of the background's relative texture
    uptake_regions: tuple[int, int]  # broad soft regions of non-specific uptake
    uptake_level: tuple[float, float]  # their added emission, relative to the background
    retention_rate: float  # chance of an ICG-retaining liver segment filling part of the frame
    retention_level: tuple[float, float]  # its added emission, relative to the background
    vessels: tuple[int, int]  # bright channels (lymphatics, vessels, bile ducts): not tumor
    vessel_width: tuple[float, float]
    vessel_gain: tuple[float, float]  # brightness relative to the brightest tumor
    glare: tuple[int, int]
    vignetting: tuple[float, float]  # fall-off of excitation from the beam centre to the corners
    electrons_full_scale: tuple[float, float]  # photo-electrons at full scale: sets the shot noise
    read_noise_e: tuple[float, float]
    black_level: tuple[float, float]  # fraction of full scale
    column_noise: float  # fixed-pattern column offsets, fraction of full scale
    video_blur: float  # softening by video compression (0: raw camera frames)


DATASETS: dict[str, FluoroDatasetSpec] = {
    "A": FluoroDatasetSpec(
        key="A", stands_for="ABFM", organ="breast",
        description="Breast tumors and lymphatics, research NIR camera (12-bit): small, dense lesions among "
                    "bright lymphatic channels on a dark background; noisy.",
        bit_depth=12, spacing_mm=0.10, n_lesions=(2, 8), lesion_radius=(12, 55), cluster_rate=0.6,
        tbr=(2.2, 4.0), edge_blur=(4, 9), margin_level=(0.35, 0.6), rim_rate=0.0, irregularity=(0.08, 0.2),
        texture=0.15, uptake_regions=(0, 1), uptake_level=(0.15, 0.45), retention_rate=0.0,
        retention_level=(0, 0), vessels=(2, 5), vessel_width=(3, 9), vessel_gain=(0.4, 1.1), glare=(0, 2),
        vignetting=(0.2, 0.4), electrons_full_scale=(1200, 3000), read_noise_e=(6, 14),
        black_level=(0.03, 0.08), column_noise=0.004, video_blur=0.0,
    ),
    "B": FluoroDatasetSpec(
        key="B", stands_for="DTHP", organ="pancreas",
        description="Pancreatic tumors (PNET, SPT), NOVADAQ video frames (8-bit): one or two large, fairly clear "
                    "tumors; bright non-specific uptake, glare and strong vignetting.",
        bit_depth=8, spacing_mm=0.12, n_lesions=(1, 2), lesion_radius=(110, 280), cluster_rate=0.0,
        tbr=(1.8, 3.0), edge_blur=(10, 22), margin_level=(0.25, 0.5), rim_rate=0.1, irregularity=(0.06, 0.16),
        texture=0.18, uptake_regions=(1, 3), uptake_level=(0.4, 1.0), retention_rate=0.0,
        retention_level=(0, 0), vessels=(0, 3), vessel_width=(6, 18), vessel_gain=(0.3, 0.8), glare=(2, 6),
        vignetting=(0.4, 0.7), electrons_full_scale=(2000, 6000), read_noise_e=(4, 10),
        black_level=(0.02, 0.05), column_noise=0.002, video_blur=0.8,
    ),
    "C": FluoroDatasetSpec(
        key="C", stands_for="DTHL", organ="liver",
        description="Liver with ICG retention, NOVADAQ video frames (8-bit): medium tumors at low contrast, often "
                    "rim-type, inside or beside a segment that retains ICG.",
        bit_depth=8, spacing_mm=0.15, n_lesions=(1, 3), lesion_radius=(55, 170), cluster_rate=0.0,
        tbr=(1.8, 2.8), edge_blur=(10, 20), margin_level=(0.35, 0.6), rim_rate=0.5, irregularity=(0.05, 0.14),
        texture=0.15, uptake_regions=(0, 1), uptake_level=(0.2, 0.5), retention_rate=0.75,
        retention_level=(0.25, 0.8), vessels=(0, 3), vessel_width=(4, 12), vessel_gain=(0.4, 0.9),
        glare=(0, 3), vignetting=(0.3, 0.55), electrons_full_scale=(1000, 3000), read_noise_e=(4, 10),
        black_level=(0.02, 0.05), column_noise=0.002, video_blur=0.8,
    ),
}


@dataclass
class FluoroFrame:
    """One grey NIR frame (uint16 for 12-bit data, uint8 for video) and its tumor mask."""

    image: np.ndarray
    mask: np.ndarray  # bool, True = tumor
    dataset: str
    frame_id: str
    spacing_mm: tuple[float, float]
    bit_depth: int
    info: dict = field(default_factory=dict)  # drawn settings, for diagnostics


# --------------------------------------------------------------------------------------------- helpers

_OUTLINE_SAMPLES = 512
_OUTLINE_THETA = np.linspace(-np.pi, np.pi, _OUTLINE_SAMPLES, endpoint=False)
_REFERENCE_SIZE = 1024.0


def _spec(dataset: str) -> FluoroDatasetSpec:
    try:
        return DATASETS[dataset]
    except KeyError:
        raise ValueError(f"Unknown fluorescence phantom dataset {dataset!r}; choose one of {sorted(DATASETS)}.") from None


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _count(rng: np.random.Generator, bounds: tuple[int, int]) -> int:
    return int(rng.integers(bounds[0], bounds[1] + 1))


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT) if sigma > 0.05 else img


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], cell: float) -> np.ndarray:
    """A zero-mean random field of about unit SD whose blobs are about `cell` pixels across."""
    h, w = shape
    gh, gw = max(2, int(round(h / cell)) + 2), max(2, int(round(w / cell)) + 2)
    coarse = rng.standard_normal((gh, gw)).astype(np.float32)
    # Cubic enlargement alone leaves a visible grid; a Gaussian of a third of a cell hides it.
    field = _blur(cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC), cell / 3.0)
    return field * np.float32(1.0 / max(float(field.std()), 1e-6))


def _enlarge(img: np.ndarray, size: int) -> np.ndarray:
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_CUBIC)


def _outline(rng: np.random.Generator, irregularity: float) -> np.ndarray:
    """Relative outline radius over a table of angles: 1 plus random harmonics, lobulated when irregular."""
    r = np.ones(_OUTLINE_SAMPLES)
    for k in range(2, 11):
        r += irregularity * 1.6 * rng.standard_normal() / k * np.cos(k * _OUTLINE_THETA + rng.uniform(0, 2 * np.pi))
    return np.maximum(r, 0.5).astype(np.float32)


@dataclass
class _Lesion:
    centre: tuple[float, float]  # (row, col) in full-resolution pixels
    radii: tuple[float, float]
    angle: float
    outline: np.ndarray
    amplitude: float  # emission added at the core
    blur: float  # full-resolution pixels
    margin: float  # emission at the outline relative to the core
    rim: bool

    def reach(self) -> float:
        return max(self.radii) * float(self.outline.max()) * 1.15

    def rel(self, rows: np.ndarray, cols: np.ndarray, wobble: np.ndarray) -> np.ndarray:
        """Relative radius (< 1 inside the outline) at the given full-resolution row and column coordinates."""
        y = rows[:, None] - np.float32(self.centre[0])
        x = cols[None, :] - np.float32(self.centre[1])
        c, s = np.float32(np.cos(self.angle)), np.float32(np.sin(self.angle))
        u = (c * x + s * y) / np.float32(self.radii[0])
        v = (c * y - s * x) / np.float32(self.radii[1])
        theta = np.arctan2(v, u)
        idx = ((theta + np.float32(np.pi)) * np.float32(_OUTLINE_SAMPLES / (2 * np.pi))).astype(np.intp)
        return np.sqrt(u * u + v * v) / self.outline.take(idx, mode="wrap") + wobble

    def profile(self, rel: np.ndarray) -> np.ndarray:
        """Emission inside the outline relative to the core: a plateau that falls to `margin` at the edge,
        or for rim-type uptake a dim centre inside a bright ring."""
        fall = np.clip((rel - np.float32(0.55)) / np.float32(0.45), 0.0, 1.0)
        body = np.float32(1.0) - np.float32(1.0 - self.margin) * fall * fall
        if self.rim:
            ring = np.exp(-(((rel - np.float32(0.8)) / np.float32(0.2)) ** 2))
            body = body * (np.float32(0.3) + np.float32(0.7) * ring)
        return body


def _window(centre: float, reach: float, limit: int) -> slice:
    return slice(max(0, int(centre - reach)), min(limit, int(centre + reach) + 2))


def _place_lesions(rng: np.random.Generator, spec: FluoroDatasetSpec, size: int) -> list[_Lesion]:
    k = size / _REFERENCE_SIZE
    n = _count(rng, spec.n_lesions)
    clustered = n > 1 and rng.random() < spec.cluster_rate
    hub = rng.uniform(0.25, 0.75, 2) * size
    lesions = []
    for _ in range(n):
        radius = float(np.exp(rng.uniform(*np.log(spec.lesion_radius)))) * k
        radii = (radius, radius * rng.uniform(0.6, 1.0))
        margin = min(0.5 * size, max(radius, 0.08 * size))
        if clustered:
            centre = np.clip(hub + rng.normal(0, 0.07 * size, 2), margin * 0.5, size - margin * 0.5)
        else:
            centre = rng.uniform(margin * 0.6, size - margin * 0.6, 2)
        lesions.append(_Lesion(
            centre=(float(centre[0]), float(centre[1])), radii=radii, angle=float(rng.uniform(0, np.pi)),
            outline=_outline(rng, _uniform(rng, spec.irregularity)), amplitude=1.0,
            blur=_uniform(rng, spec.edge_blur) * k, margin=_uniform(rng, spec.margin_level),
            rim=bool(rng.random() < spec.rim_rate and radius > 40 * k),
        ))
    return lesions


def _vessel_paths(rng: np.random.Generator, size: int, n: int) -> list[np.ndarray]:
    """Meandering channels: smooth random walks from an image side or a random point, some branching."""
    paths = []
    step = size / 45
    for _ in range(n):
        if rng.random() < 0.6:  # enter from a side of the frame
            side = rng.integers(4)
            t = rng.uniform(0.1, 0.9) * size
            start = [(0.0, t), (t, size - 1.0), (size - 1.0, t), (t, 0.0)][side]
            heading = [np.pi / 2, np.pi, -np.pi / 2, 0.0][side] + rng.normal(0, 0.4)
        else:
            start = tuple(rng.uniform(0.1, 0.9, 2) * size)
            heading = rng.uniform(0, 2 * np.pi)
        turn = rng.normal(0, 0.25, int(rng.integers(12, 45)))
        angles = heading + np.cumsum(turn)
        # heading is measured with x = col, y = row
        pts = np.cumsum(np.stack([np.sin(angles), np.cos(angles)], axis=1) * step, axis=0) + np.asarray(start)
        pts = np.vstack([start, pts])
        paths.append(pts)
        if rng.random() < 0.5 and len(pts) > 6:  # a side branch
            j = int(rng.integers(2, len(pts) - 3))
            a2 = angles[j] + rng.choice([-1, 1]) * rng.uniform(0.5, 1.2) + np.cumsum(rng.normal(0, 0.25, 15))
            branch = np.cumsum(np.stack([np.sin(a2), np.cos(a2)], axis=1) * step * 0.8, axis=0) + pts[j]
            paths.append(np.vstack([pts[j], branch]))
    return paths


def _draw_vessels(rng: np.random.Generator, spec: FluoroDatasetSpec, size: int, brightest: float,
                  ) -> np.ndarray:
    """Full-resolution emission of the non-tumor channels."""
    n = _count(rng, spec.vessels)
    canvas = np.zeros((size, size), np.uint8)
    if n == 0:
        return np.zeros((size, size), np.float32)
    k = size / _REFERENCE_SIZE
    for pts in _vessel_paths(rng, size, n):
        width = max(1, int(round(_uniform(rng, spec.vessel_width) * k)))
        level = int(rng.uniform(90, 255))
        poly = np.round(pts[:, ::-1] * 16).astype(np.int32).reshape(-1, 1, 2)  # (x, y), 4 fractional bits
        cv2.polylines(canvas, [poly], False, level, thickness=width, lineType=cv2.LINE_AA, shift=4)
    vessels = _blur(canvas.astype(np.float32) * np.float32(1.0 / 255.0), rng.uniform(1.0, 3.0) * k + 0.6)
    # Brightness varies along each channel (valves, depth, filling).
    low = size // 8
    along = np.clip(1.0 + 0.45 * _enlarge(_smooth_field(rng, (low, low), 4.0), size), 0.15, None)
    return vessels * along * np.float32(_uniform(rng, spec.vessel_gain) * brightest)


def _draw_glare(rng: np.random.Generator, spec: FluoroDatasetSpec, size: int) -> np.ndarray:
    """Specular reflections of the excitation light: small saturated cores with soft halos (0 to about 1)."""
    n = _count(rng, spec.glare)
    if n == 0:
        return np.zeros((size, size), np.float32)
    k = size / _REFERENCE_SIZE
    cores = np.zeros((size, size), np.uint8)
    for _ in range(n):
        centre = tuple(int(v) for v in rng.uniform(0.05, 0.95, 2) * size)
        axes = (max(1, int(rng.uniform(4, 26) * k)), max(1, int(rng.uniform(2, 9) * k)))
        cv2.ellipse(cores, centre, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1, cv2.LINE_AA)
    core = cores.astype(np.float32) * np.float32(1.0 / 255.0)
    return np.clip(1.4 * _blur(core, 1.2 * k) + 0.5 * _blur(core, 7.0 * k), 0, 1.2)


def _retention(rng: np.random.Generator, spec: FluoroDatasetSpec, low: int) -> np.ndarray:
    """A liver segment that keeps ICG: one side of a gently curved demarcation line, sharply bounded."""
    if rng.random() >= spec.retention_rate:
        return np.zeros((low, low), np.float32)
    y, x = np.mgrid[0:low, 0:low].astype(np.float32) / np.float32(low) - np.float32(0.5)
    a = rng.uniform(0, 2 * np.pi)
    across = np.cos(a) * x + np.sin(a) * y
    along = -np.sin(a) * x + np.cos(a) * y
    d = across - rng.uniform(-0.3, 0.3) + rng.uniform(-0.6, 0.6) * along * along
    d += 0.015 * _smooth_field(rng, (low, low), low / 6)
    width = rng.uniform(0.004, 0.012)
    return (0.5 + 0.5 * np.tanh(d / width)).astype(np.float32) * np.float32(_uniform(rng, spec.retention_level))


def _uptake(rng: np.random.Generator, spec: FluoroDatasetSpec, low: int) -> np.ndarray:
    """Broad, soft, elongated regions of non-specific uptake (normal parenchyma, bowel, fat holding dye).

    Their brightness fades over a large fraction of their size, unlike the scattering-blurred edge of a tumor."""
    out = np.zeros((low, low), np.float32)
    y, x = np.mgrid[0:low, 0:low].astype(np.float32)
    for _ in range(_count(rng, spec.uptake_regions)):
        cy, cx = rng.uniform(0, low, 2)
        a = rng.uniform(0, np.pi)
        length = rng.uniform(0.25, 0.5) * low
        width = length * rng.uniform(0.3, 0.7)
        u = (np.cos(a) * (x - cx) + np.sin(a) * (y - cy)) / length
        v = (np.cos(a) * (y - cy) - np.sin(a) * (x - cx)) / width
        out += np.exp(-(u * u + v * v)).astype(np.float32) * np.float32(_uniform(rng, spec.uptake_level))
    return out


def _illumination(rng: np.random.Generator, spec: FluoroDatasetSpec, low: int) -> np.ndarray:
    """Excitation reaching the tissue: off-centre radial fall-off, a tilt and slow surface shading."""
    y, x = np.mgrid[0:low, 0:low].astype(np.float32) / np.float32(low)
    cy, cx = rng.uniform(0.3, 0.7, 2)
    r2 = ((y - cy) ** 2 + (x - cx) ** 2) / 0.5
    tilt = rng.normal(0, 0.12, 2)
    illum = 1.0 - _uniform(rng, spec.vignetting) * r2 + tilt[0] * (y - 0.5) + tilt[1] * (x - 0.5)
    illum *= 1.0 + 0.08 * _smooth_field(rng, (low, low), low / 3)
    return np.clip(illum, 0.15, None).astype(np.float32)


@functools.cache
def _fixed_pattern(dataset: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One device's column offsets (unit SD) and pixel gain map: the same in every frame of a dataset."""
    rng = np.random.default_rng([20240, ord(dataset), size])
    columns = rng.standard_normal(size).astype(np.float32)
    gain = (1.0 + 0.01 * rng.standard_normal((size, size))).astype(np.float32)
    return columns, gain


# --------------------------------------------------------------------------------------------- public


def make_frame(rng: np.random.Generator, dataset: str = "A", size: int = 1024,
               frame_id: str | None = None, tumor_free: bool = False) -> FluoroFrame:
    """One synthetic NIR fluorescence frame of `dataset` ("A", "B" or "C"), size x size pixels. `tumor_free`
    draws the same tissue, vessels, uptake and glare without lesions (e.g. a resection bed with no residual
    tumor, for reader studies that ask whether a frame shows tumor); its mask is empty."""
    spec = _spec(dataset)
    if size < 64:
        raise ValueError(f"Fluorescence phantom frames must be at least 64 pixels across, got {size}.")
    k = size / _REFERENCE_SIZE
    low = max(64, size // 4)
    scale = low / size  # low-resolution pixels per full-resolution pixel

    # Tissue background (relative emission about 1), non-specific uptake and, in liver, the retaining segment.
    background = 1.0 + spec.texture * (0.7 * _smooth_field(rng, (low, low), low / 5)
                                       + 0.5 * _smooth_field(rng, (low, low), low / 20))
    background = np.clip(background, 0.3, None) + _uptake(rng, spec, low)
    retention = _retention(rng, spec, low)
    background = background + retention

    # Tumors: the mask is the drawn outline at full resolution; the emission is drawn at low resolution from the
    # same outline, then blurred by scattering.
    lesions = [] if tumor_free else _place_lesions(rng, spec, size)
    wobble_low = 0.04 * _smooth_field(rng, (low, low), max(3.0, low / 24))
    wobble = _enlarge(wobble_low, size)
    mask = np.zeros((size, size), bool)
    tumor_low = np.zeros((low, low), np.float32)
    heterogeneity = 1.0 + 0.18 * _smooth_field(rng, (low, low), max(3.0, low / 16))
    full_rows = np.arange(size, dtype=np.float32)
    low_coords = (np.arange(low, dtype=np.float32) + np.float32(0.5)) / np.float32(scale) - np.float32(0.5)
    tbr = _uniform(rng, spec.tbr)
    for lesion in lesions:
        reach = lesion.reach()
        rs, cs = _window(lesion.centre[0], reach, size), _window(lesion.centre[1], reach, size)
        rel = lesion.rel(full_rows[rs], full_rows[cs], wobble[rs, cs])
        mask[rs, cs] |= rel < 1.0
        # Low-resolution emission of this lesion in a window padded for the blur.
        pad = reach + 3 * lesion.blur
        rl = _window(lesion.centre[0] * scale, pad * scale, low)
        cl = _window(lesion.centre[1] * scale, pad * scale, low)
        rel_low = lesion.rel(low_coords[rl], low_coords[cl], wobble_low[rl, cl])
        inside = np.clip((1.0 - rel_low) * np.float32(min(lesion.radii) * scale) + 0.5, 0.0, 1.0)
        local_bg = float(background[min(low - 1, int(lesion.centre[0] * scale)),
                                    min(low - 1, int(lesion.centre[1] * scale))])
        lesion.amplitude = (max(1.35, tbr * float(np.exp(rng.normal(0, 0.1)))) - 1.0) * local_bg
        emission = lesion.profile(rel_low) * inside * heterogeneity[rl, cl] * np.float32(lesion.amplitude)
        tumor_low[rl, cl] += _blur(emission.astype(np.float32), lesion.blur * scale)

    illum_low = _illumination(rng, spec, low)
    scene = _enlarge(illum_low * (background + tumor_low), size)
    illum = _enlarge(illum_low, size)
    # Vessels are drawn relative to the brightest tumor (a tumor-free frame: a typical one for its contrast).
    brightest = max((les.amplitude for les in lesions), default=(tbr - 1.0) * float(background.mean()))
    fine = 1.0 + 0.06 * _blur(rng.standard_normal((size, size), np.float32), 1.2 * k + 0.3)
    scene = scene * fine + illum * _draw_vessels(rng, spec, size, brightest)

    # Camera: auto-exposure puts the bright end of the scene at a drawn fraction of full scale; then shot and
    # read noise, fixed-pattern noise, black level, glare (saturating), video softening and quantisation.
    full_scale = float(2**spec.bit_depth - 1)
    level = float(np.percentile(scene[::8, ::8], 99.5))
    counts = scene * np.float32(rng.uniform(0.45, 0.75) * full_scale / max(level, 1e-6))
    columns, pixel_gain = _fixed_pattern(spec.key, size)
    counts *= pixel_gain
    dn_per_e = full_scale / _uniform(rng, spec.electrons_full_scale)
    read = _uniform(rng, spec.read_noise_e) * dn_per_e
    sigma = np.sqrt(counts * np.float32(dn_per_e) + np.float32(read * read))
    counts += sigma * rng.standard_normal((size, size), np.float32)
    counts += np.float32(_uniform(rng, spec.black_level) * full_scale)
    counts += columns[None, :] * np.float32(spec.column_noise * full_scale)
    counts += _draw_glare(rng, spec, size) * np.float32(full_scale)
    if spec.video_blur:
        counts = _blur(counts, spec.video_blur * k)
    dtype = np.uint8 if spec.bit_depth <= 8 else np.uint16
    image = np.clip(counts + 0.5, 0, full_scale).astype(dtype)

    spacing = spec.spacing_mm / k
    info = {
        "stands_for": spec.stands_for, "organ": spec.organ, "n_lesions": len(lesions), "tbr": round(tbr, 3),
        "rim_lesions": sum(les.rim for les in lesions), "tumor_fraction": round(float(mask.mean()), 5),
        "retention_level": round(float(np.max(retention)), 3),  # the ICG-retaining segment's added emission
    }
    return FluoroFrame(
        image=image, mask=mask, dataset=spec.key,
        frame_id=frame_id or f"fluoro-{spec.key}-{int(rng.integers(0, 10**6)):06d}",
        spacing_mm=(spacing, spacing), bit_depth=spec.bit_depth, info=info,
    )


def make_fluoro_dataset(dataset: str, n: int, seed: int = 0, size: int = 1024) -> list[FluoroFrame]:
    """`n` frames of one dataset; frame i depends only on (seed, dataset, i), so prefixes are stable."""
    spec = _spec(dataset)
    return [
        make_frame(np.random.default_rng([seed, ord(spec.key), i]), spec.key, size,
                   frame_id=f"fluoro-{spec.key}-s{seed}-{i + 1:04d}")
        for i in range(n)
    ]


def frame_to_case(frame: FluoroFrame, case_id: str | None = None) -> Case:
    """Wrap a frame as a 'fluoro_frame' Case: one NIR image (with spacing), the tumor mask as truth and the
    frame-level label tumor = 1 when the mask is not empty."""
    spec = _spec(frame.dataset)
    case = Case(id=case_id or frame.frame_id, kind="fluoro_frame",
                notes=f"Synthetic NIR fluorescence frame, phantom dataset {spec.key} "
                      f"(stands in for {spec.stands_for}, {spec.organ}).")
    meta = ImageMeta(bit_depth=frame.bit_depth, units="counts", spacing=tuple(frame.spacing_mm), source={"generator": SOURCE},
                     extra={"phantom_dataset": spec.key, "stands_for": spec.stands_for, "organ": spec.organ})
    case.add_image(MODALITY, frame.image, meta)
    case.truth = GroundTruth(labels={"tumor": int(frame.mask.any())}, masks={"tumor": frame.mask}, source=SOURCE)
    return case


def write_fluoro_demo_cases(out_dir: str | Path, seed: int = 2024, count: int = 6, size: int = 1024) -> list[Path]:
    """Write `count` demo bundles (demo-fluoro-01, ...) cycling through datasets A, B, C; return their folders."""
    out_dir = Path(out_dir)
    keys = sorted(DATASETS)
    paths = []
    for i in range(count):
        key = keys[i % len(keys)]
        case_id = f"demo-fluoro-{i + 1:02d}"
        frame = make_frame(np.random.default_rng([seed, i]), key, size, frame_id=case_id)
        paths.append(write_bundle(frame_to_case(frame, case_id), out_dir / case_id))
    return paths
