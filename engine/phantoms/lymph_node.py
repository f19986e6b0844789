"""Synthetic excised lymph nodes in three pixel-aligned modes: white light, NIR-I fluorescence and pseudo-color.

A stand-in for the MFI-FFP data (Zhu et al., IEEE TMI 2024), none of which is public. Each node of a colorectal
cancer resection lies on a blue-green placement cloth and is imaged as WLI (RGB photo), FI (grey ICG intensity)
and PCI (the fluorescence drawn in color over the white-light view, cloth kept). Label: metastatic (1) or benign
(0), about 1 in 11, with positives clustered a little within patients.

Phantom assumption, chosen so that each mode holds evidence of its own, as the paper's ablation implies: every
node draws three independent latent scores s_W, s_F, s_P = cue_strength * label + N(0, 1), and each score drives
a sign that only one mode shows.
- WLI (s_W): metastatic nodes look paler and greyish-white with firm, bosselated patches; benign nodes are smooth
  and pink-tan.
- FI (s_F): tumor displaces the lymphoid tissue that takes up ICG, leaving dark cold defects and uneven uptake;
  benign nodes take it up evenly.
- PCI (s_P): the device draws its overlay from its own long-exposure fluorescence channel. That channel saturates
  inside the node, so the overlay there is flat (hiding the FI defects) and opaque enough to hide most of the WLI
  surface; it also shows faint tracer spill outside the capsule (streaks along afferent lymphatics, a halo) that
  lies below the FI noise floor, so the phantom leaves it out of FI. The spill varies with the label-free part
  of s_P only: nothing outside the node carries the label (a background-only crop scores AUC about 0.5;
  engine.train.node_leakage measures it).
A reader who fuses all three modes therefore beats any pair, and any pair beats a single mode. Node size, shape,
outline, placement, tracer dose, gain, noise, lighting, glare, fat remnants and the cloth are label-free nuisances.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from scipy.special import ndtri

from engine.cases.bundle import write_bundle
from engine.cases.model import Case, GroundTruth
from engine.data import ImageMeta

MODALITIES = ("WLI", "FI", "PCI")
CUE_KEYS = {"WLI": "s_W", "FI": "s_F", "PCI": "s_P"}  # which latent score each mode shows

# Shift of each latent score between benign and metastatic nodes, in SD units. An ideal reader of one score
# reaches AUC Phi(d / sqrt 2), about 0.84 at 1.4; of two, Phi(d), 0.92; of all three, Phi(d * sqrt 1.5), 0.96.
CUE_STRENGTH = 1.4
POSITIVE_RATE = 1 / 11  # 87 metastatic of 996 nodes in the paper's training data
PATIENT_CLUSTERING = 1.2  # first Beta parameter of the per-patient metastasis propensity (smaller: more clustered)
WLI_PALENESS = 0.45  # how far the node surface turns from pink-tan to pale grey-white at full WLI cue
OVERLAY_OPACITY = 0.9  # pseudo-color opacity where the long-exposure signal is high
SOURCE = "phantom generator"


@dataclass
class NodeRecord:
    """One excised node: its label, three aligned images, the node mask and the latent cue scores."""

    node_id: str
    patient_id: str
    label: int  # 1 metastatic, 0 benign
    images: dict[str, np.ndarray]  # WLI (H, W, 3) uint8 RGB, FI (H, W) uint8, PCI (H, W, 3) uint8 RGB
    mask: np.ndarray  # (H, W) bool, the node
    cues: dict[str, float] = field(default_factory=dict)  # s_W, s_F, s_P; for tests and diagnostics only


# --------------------------------------------------------------------------------------------- helpers
# Colour images are built channel-first, (3, H, W), so that per-pixel maps broadcast over channels quickly.

_NOISE_TABLE = 512
_OUTLINE_SAMPLES = 360
_OUTLINE_THETA = np.linspace(-np.pi, np.pi, _OUTLINE_SAMPLES, endpoint=False)


@functools.cache
def _noise_table() -> np.ndarray:
    """A fixed block of unit normals; images read random windows of it (drawing fresh normals is the slow part)."""
    return np.random.default_rng(996).standard_normal((4, _NOISE_TABLE, _NOISE_TABLE), np.float32)


def _sensor_noise(rng: np.random.Generator, size: int, planes: int = 0) -> np.ndarray:
    """Unit-SD noise, (size, size) when planes is 0, else (planes, size, size)."""
    shape = (planes, size, size) if planes else (size, size)
    if size > _NOISE_TABLE:
        return rng.standard_normal(shape, np.float32)
    y, x = (int(rng.integers(0, _NOISE_TABLE - size + 1)) for _ in range(2))
    c = int(rng.integers(0, 5 - max(planes, 1)))
    return _noise_table()[c:c + max(planes, 1), y:y + size, x:x + size].reshape(shape)


def _sigmoid(x):
    return 0.5 + 0.5 * np.tanh(0.5 * x)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def _noise_fields(rng: np.random.Generator, shape: tuple[int, int], cell: float, n: int) -> np.ndarray:
    """n smooth random fields (H, W, n) of about unit SD whose blobs are about `cell` pixels across."""
    h, w = shape
    gh, gw = (max(2, int(round(side / cell)) + 2) for side in (h, w))
    coarse = rng.standard_normal((gh, gw, n)).astype(np.float32) * np.float32(1.18)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC).reshape(h, w, n)


def _amount(score: float, cue_strength: float) -> float:
    """How strongly a cue shows (0 to 1), rising monotonically with its latent score."""
    return float(_sigmoid(1.5 * (score - 0.5 * cue_strength)))


def _patches(fields: np.ndarray, cover: float, sharpness: float = 6.0) -> np.ndarray:
    """Soft blobs where a unit-SD field is in its upper tail, covering about `cover` of the area."""
    threshold = np.float32(ndtri(1.0 - np.clip(cover, 1e-3, 0.999)))
    return _sigmoid((fields - threshold) * np.float32(sharpness))


def _rgb(values) -> np.ndarray:
    return np.asarray(values, np.float32).reshape(3, 1, 1)


def _to_uint8(img: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    """Quantise a float image to uint8 after adding sensor noise of SD `noise` grey levels; reuses `img`.

    A channel-first (3, H, W) image comes back as (H, W, 3) RGB."""
    if noise:
        img += np.float32(noise) * _sensor_noise(rng, img.shape[-1], img.shape[0] if img.ndim == 3 else 0)
    img += np.float32(0.5)
    out = np.clip(img, 0, 255, out=img).astype(np.uint8)
    return cv2.merge(list(out)) if out.ndim == 3 else out


@dataclass
class _Geometry:
    """Where the node lies; shared by all three modes so that they stay pixel-aligned."""

    mask: np.ndarray  # bool
    soft: np.ndarray  # float32 in [0, 1], anti-aliased outline
    dome: np.ndarray  # float32 height, 0 at the outline and 1 at the centre (a flattened ellipsoid)
    rim: np.ndarray  # float32, 1 at the capsule falling to 0 at the centre (subcapsular region)
    outside: np.ndarray  # float32 distance in pixels to the node, 0 inside
    box: tuple[slice, ...]  # rows and columns holding the node with a margin; node-only work stays in it
    centre: tuple[float, float]
    radii: tuple[float, float]


def _node_geometry(rng: np.random.Generator, size: int) -> _Geometry:
    """A rotated, elongated ellipse with a wavy outline (random harmonics), somewhere near the centre."""
    ra = size * rng.uniform(0.10, 0.28)
    rb = ra * rng.uniform(0.45, 0.95)
    wobble = np.ones(_OUTLINE_SAMPLES)
    irregularity = rng.uniform(0.015, 0.09)
    for k in range(2, 8):
        wobble += irregularity * rng.standard_normal() / k**0.8 * np.cos(k * _OUTLINE_THETA + rng.uniform(0, 6.3))
    wobble = np.maximum(wobble, 0.6).astype(np.float32)
    # Leave room for tracer spill around the node.
    room = max(0.0, 0.5 * size - ra * float(wobble.max()) - 0.12 * size)
    cy, cx = 0.5 * size + rng.uniform(-room, room, 2)
    angle = rng.uniform(0, np.pi)
    reach = ra * float(wobble.max()) + 9
    box = tuple(slice(max(0, int(c - reach)), min(size, int(c + reach) + 2)) for c in (cy, cx))
    y = (np.arange(box[0].start, box[0].stop, dtype=np.float32) - np.float32(cy))[:, None]
    x = (np.arange(box[1].start, box[1].stop, dtype=np.float32) - np.float32(cx))[None, :]
    c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    u = (c * x + s * y) / np.float32(ra)
    v = (c * y - s * x) / np.float32(rb)
    theta = np.arctan2(v, u)
    index = ((theta + np.float32(np.pi)) * np.float32(_OUTLINE_SAMPLES / (2 * np.pi))).astype(np.intp)
    rel = np.sqrt(u * u + v * v) / wobble.take(index, mode="wrap")  # < 1 inside the outline
    # Everything but the distance map is zero outside the box.
    mask = np.zeros((size, size), bool)
    soft, dome, rim = (np.zeros((size, size), np.float32) for _ in range(3))
    mask[box] = rel < 1.0
    soft[box] = np.clip((1.0 - rel) * np.float32(rb) + 0.5, 0.0, 1.0)
    dome[box] = np.sqrt(np.clip(1.0 - rel * rel, 0.0, 1.0))
    rim[box] = np.clip(rel, 0.0, 1.0) ** 3 * mask[box]
    outside = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 3)
    return _Geometry(mask, soft, dome, rim, outside, box, (float(cy), float(cx)), (float(ra), float(rb)))


def _ramp(rng: np.random.Generator, size: int, strength: float) -> np.ndarray:
    """Uneven illumination: a random linear gradient times a radial falloff, about 1 on average."""
    gy, gx = rng.normal(0.0, strength, 2)
    axis = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    falloff = np.float32(rng.uniform(0.04, 0.2))
    radius2 = axis[:, None] ** 2 + axis[None, :] ** 2
    return (1.0 + np.float32(gy) * axis[:, None] + np.float32(gx) * axis[None, :]) * (1.0 - falloff * radius2 / 2)


# --------------------------------------------------------------------------------------------- white light

_CLOTH_BLUE = _rgb([42, 88, 148])
_CLOTH_TEAL = _rgb([34, 118, 118])
_NODE_PINK = _rgb([206, 130, 118])
_NODE_TAN = _rgb([194, 150, 114])
_PALE = _rgb([206, 198, 190])  # greyish-white of a node replaced by tumor
_FIRM = _rgb([228, 222, 212])  # firm whitish tumor deposit
_FAT = _rgb([232, 204, 118])  # yellow perinodal fat left on the node


def _cloth_shading(rng: np.random.Generator, size: int) -> np.ndarray:
    """Brightness of the placement cloth (about 1): a fine weave and a few folds (a ridge, a shadow beside it)."""
    axis = np.arange(size, dtype=np.float32)
    # Weave: sin(k u) * sin(k v) along slightly tilted threads (u, v). Each factor is the sine of a sum of a
    # row term and a column term, so it splits into outer products of 1-D vectors (fast).
    tilt, k = rng.uniform(-0.3, 0.3), 2 * np.pi / rng.uniform(2.6, 4.2)
    kc, ks = np.float32(k * np.cos(tilt)) * axis, np.float32(k * np.sin(tilt)) * axis
    sin_u = np.outer(np.cos(ks), np.sin(kc)) + np.outer(np.sin(ks), np.cos(kc))  # u = x cos t + y sin t
    sin_v = np.outer(np.sin(kc), np.cos(ks)) - np.outer(np.cos(kc), np.sin(ks))  # v = y cos t - x sin t
    shade = 1.0 + np.float32(0.06) * sin_u * sin_v + np.float32(0.03) * _sensor_noise(rng, size)
    for _ in range(rng.integers(0, 3)):
        phi, width, offset = rng.uniform(0, np.pi), rng.uniform(4, 12), rng.uniform(0.1, 0.9) * size
        d = np.add.outer(np.float32(np.sin(phi) / width) * axis, np.float32(np.cos(phi) / width) * axis)
        d -= np.float32(offset / width)
        shade *= 1.0 + np.float32(rng.uniform(0.08, 0.2)) * np.exp(-d * d) - np.float32(0.15) * np.exp(-(d - 1.3) ** 2)
    return shade


def _node_surface(rng: np.random.Generator, geo: _Geometry, amount: float, lamp: np.ndarray) -> np.ndarray:
    """Lit node surface (3, h, w) inside geo.box: paler, whiter and more bosselated the larger `amount`."""
    dome, rim = geo.dome[geo.box], geo.rim[geo.box]
    rb = geo.radii[1]
    base = _NODE_PINK + np.float32(rng.uniform(0, 1)) * (_NODE_TAN - _NODE_PINK)
    base = base * _rgb(np.exp(rng.normal(0, 0.05, 3)))
    base = base + np.float32(WLI_PALENESS * amount) * (_PALE - base)
    f = _noise_fields(rng, dome.shape, 0.45 * rb, 3)
    fine = _noise_fields(rng, dome.shape, 2.5, 1)[..., 0]
    firm = _patches(f[..., 0], 0.02 + 0.5 * amount) * np.float32(0.35 + 0.55 * amount)
    fat = _patches(f[..., 1] + np.float32(1.2) * rim - np.float32(0.7), rng.uniform(0.0, 0.25))
    tissue = base * (1.0 + np.float32(0.025) * fine)
    tissue += firm * (_FIRM - tissue)
    tissue += (np.float32(0.85) * fat) * (_FAT - tissue)

    # Shape: a flattened dome, gently lobulated, with raised bosses where the firm patches are; Lambert
    # shading plus glare where the wet surface mirrors the lamp.
    height = np.float32(0.55 * rb) * dome * (
        1.0 + np.float32(0.05) * f[..., 2] + np.float32(0.12) * firm + np.float32(0.004) * fine)
    gy = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3) * np.float32(0.125)
    gx = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3) * np.float32(0.125)
    norm = np.sqrt(gx * gx + gy * gy + 1.0)
    diffuse = np.clip((lamp[2] - gx * lamp[0] - gy * lamp[1]) / norm, 0.0, 1.0)
    half = lamp + np.array([0, 0, 1], np.float32)
    half /= np.linalg.norm(half)
    facing = np.clip((half[2] - gx * half[0] - gy * half[1]) / norm, 0.0, 1.0)
    glare = np.float32(255 * rng.uniform(0.25, 0.8)) * facing ** np.float32(rng.uniform(30, 90))
    return tissue * (np.float32(0.45) + np.float32(0.6) * diffuse) + glare


def _white_light(rng: np.random.Generator, geo: _Geometry, amount: float) -> np.ndarray:
    """WLI photo (3, H, W) float: the node on the cloth under a lamp, with its shadow."""
    size = geo.mask.shape[0]
    light = _ramp(rng, size, 0.15)
    lamp = np.array([rng.normal(0, 0.45), rng.normal(0, 0.45), 1.0], np.float32)
    lamp /= np.linalg.norm(lamp)
    camera = _rgb(np.exp(rng.normal(0, 0.04, 3) + rng.normal(0, 0.08)))  # white balance and exposure
    node = _node_surface(rng, geo, amount, lamp) * light[geo.box]
    shift = np.float32([[1, 0, -5 * lamp[0]], [0, 1, -5 * lamp[1]]])
    shadow = _blur(cv2.warpAffine(geo.soft, shift, (size, size)), 3.0)
    cloth = _CLOTH_BLUE + np.float32(rng.uniform(0, 1)) * (_CLOTH_TEAL - _CLOTH_BLUE)
    cloth = cloth * _rgb(np.exp(rng.normal(0, 0.08, 3)))
    img = (_cloth_shading(rng, size) * (1.0 - np.float32(0.4) * shadow) * light) * cloth
    inside = img[:, geo.box[0], geo.box[1]]
    inside += geo.soft[geo.box] * (node - inside)
    img *= camera
    return img


# --------------------------------------------------------------------------------------------- fluorescence


def _uptake(rng: np.random.Generator, geo: _Geometry, amount: float) -> np.ndarray:
    """ICG in the node (about 1 where uptake is normal): cold defects and unevenness grow with `amount`."""
    soft, rim = geo.soft[geo.box], geo.rim[geo.box]
    f = _noise_fields(rng, soft.shape, 0.4 * geo.radii[1], 2)
    fine = _noise_fields(rng, soft.shape, 3.0, 1)[..., 0]
    # Deposits start under the capsule (the subcapsular sinus), so defects favour the rim.
    defects = _patches(f[..., 0] + np.float32(0.8) * rim - np.float32(0.3), 0.02 + 0.4 * amount, 5.0)
    depth = np.float32(rng.uniform(0.5, 0.75))
    uneven = 1.0 + np.float32(0.04 + 0.16 * amount) * f[..., 1] + np.float32(0.05) * fine
    tracer = np.zeros_like(geo.soft)
    tracer[geo.box] = soft * uneven * (1.0 - depth * defects)
    return _blur(tracer, 1.2)  # light scatters in tissue


def _fluorescence_image(rng: np.random.Generator, tracer: np.ndarray) -> np.ndarray:
    """FI frame (float grey): tracer x dose x gain x vignetting + cloth background + detector noise."""
    size = tracer.shape[0]
    level = np.float32(255 * rng.uniform(0.38, 0.9))
    background = np.float32(rng.uniform(4, 18))
    signal = level * tracer * _ramp(rng, size, 0.08) + background
    sigma = np.sqrt(np.float32(rng.uniform(1.5, 4.0)) ** 2 + np.float32(0.05) * signal)
    return signal + sigma * _sensor_noise(rng, size)


# --------------------------------------------------------------------------------------------- pseudo-color


def _spill(rng: np.random.Generator, geo: _Geometry, amount: float) -> np.ndarray:
    """Faint tracer outside the node: streaks along afferent lymphatics and a halo at the capsule."""
    size = geo.mask.shape[0]
    halo_width = np.float32(2.0 + 9.0 * amount)
    halo = np.float32(0.012 + 0.05 * amount) * np.exp(-geo.outside / halo_width)
    streaks = np.zeros((size, size), np.float32)
    edge = np.argwhere(geo.mask & ~cv2.erode(geo.mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool))
    steps = 12
    for _ in range(1 + rng.binomial(4, amount)):
        start = edge[rng.integers(len(edge))].astype(float)
        heading = np.arctan2(start[0] - geo.centre[0], start[1] - geo.centre[1]) + rng.normal(0, 0.4)
        turns = heading + np.cumsum(rng.normal(0, 0.25, steps))  # a lymphatic wanders as it leaves the node
        step = (0.35 + 1.0 * amount) * geo.radii[0] * rng.uniform(0.7, 1.3) / steps
        path = start + np.cumsum(step * np.column_stack([np.sin(turns), np.cos(turns)]), axis=0)
        points = [tuple(p) for p in np.rint(np.vstack([start, path])[:, ::-1]).astype(int).tolist()]
        strength = (0.02 + 0.08 * amount) * rng.uniform(0.6, 1.4)
        for i in range(steps):  # fading with distance from the capsule
            cv2.line(streaks, points[i], points[i + 1], strength * (1 - i / steps), 2)
    return (halo + _blur(streaks, 1.0)) * ~geo.mask


def _jet_table(top: float) -> np.ndarray:
    """(3, 256) jet-like colours over the part of the scale a fluorescence display uses: cyan to red at `top`."""
    t = np.linspace(0.35, top, 256, dtype=np.float32)[None, :]
    return np.clip(1.5 - np.abs(4 * t - np.array([[3], [2], [1]], np.float32)), 0, 1) * np.float32(255)


def _pseudo_color(rng: np.random.Generator, white: np.ndarray, tracer: np.ndarray, spill: np.ndarray) -> np.ndarray:
    """PCI (3, H, W) float: the long-exposure fluorescence, thresholded and color-mapped over the device's video.

    Under the overlay lies the device's own colour video (softer, with its own white balance and exposure), and
    the display tone of the overlay varies a little between captures."""
    size = tracer.shape[0]
    gain = rng.uniform(5, 9)  # saturates the node even inside its cold defects
    signal = np.float32(gain) * (_blur(tracer, 1.5) + spill)
    # A stray drop of tracer on the cloth now and then, whatever the label.
    if rng.random() < 0.25:
        drop = np.zeros((size, size), np.float32)
        cv2.circle(drop, (int(rng.integers(size)), int(rng.integers(size))), int(rng.integers(2, 6)), 1.0, -1)
        signal += np.float32(rng.uniform(0.2, 0.8)) * _blur(drop, 1.5)
    signal += np.float32(0.015) * _sensor_noise(rng, size)
    floor = rng.uniform(0.06, 0.12)
    v = np.clip((signal - np.float32(floor)) * np.float32(1 / (1 - floor)), 0, 1)
    colours = _jet_table(rng.uniform(0.8, 0.9))
    gains = np.exp(rng.normal(0, 0.08, 3))
    video = np.stack([_blur(plane, 1.2) * np.float32(g) for plane, g in zip(white, gains)])
    # Blend only where there is overlay (the node, the spill, stray drops): most of the frame is bare cloth.
    rows, cols = np.flatnonzero(v.any(1)), np.flatnonzero(v.any(0))
    if rows.size:
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        alpha = np.float32(OVERLAY_OPACITY) * np.minimum(v[box] * np.float32(2), 1)
        under = video[:, box[0], box[1]]
        under += alpha * (colours[:, (v[box] * np.float32(255)).astype(np.uint8)] - under)
    video += _rgb(rng.uniform(0, 16, 3))  # veiling glare of the display capture
    return video


# --------------------------------------------------------------------------------------------- public


def make_node(
    rng: np.random.Generator,
    label: int,
    size: int = 224,
    cue_strength: float = CUE_STRENGTH,
    *,
    node_id: str = "node",
    patient_id: str = "P000",
) -> NodeRecord:
    """One node with the given label (1 metastatic), imaged in WLI, FI and PCI at size x size pixels."""
    if label not in (0, 1):
        raise ValueError(f"label must be 0 (benign) or 1 (metastatic), got {label!r}.")
    if size < 64:
        raise ValueError(f"Node images must be at least 64x64 pixels, got {size}.")
    cues = {key: float(cue_strength * label + rng.standard_normal()) for key in CUE_KEYS.values()}
    geo = _node_geometry(rng, size)
    # From here on the label acts only through the three cue scores.
    white = _white_light(rng, geo, _amount(cues["s_W"], cue_strength))
    tracer = _uptake(rng, geo, _amount(cues["s_F"], cue_strength))
    # The spill lies outside the node, on the cloth: it must not carry the label (a model would learn the
    # background beside the node, and a crop without the node would still score; issue 18). It takes the
    # label-free part of s_P, so the random stream, and every other pixel, stay as they were.
    spill = _spill(rng, geo, _amount(cues["s_P"] - cue_strength * label, cue_strength))
    pseudo = _pseudo_color(rng, white, tracer, spill)
    images = {
        "WLI": _to_uint8(white, rng, 1.5),
        "FI": _to_uint8(_fluorescence_image(rng, tracer), rng, 0.0),
        "PCI": _to_uint8(pseudo, rng, 1.5),
    }
    return NodeRecord(node_id=node_id, patient_id=patient_id, label=int(label), images=images, mask=geo.mask,
                      cues=cues)


def make_node_dataset(
    n_patients: int = 60,
    nodes_per_patient: int = 30,
    seed: int = 2024,
    size: int = 224,
    positive_rate: float = POSITIVE_RATE,
    cue_strength: float = CUE_STRENGTH,
) -> list[NodeRecord]:
    """Nodes of several patients, about `nodes_per_patient` each (it varies); same seed, same data.

    Each patient has a metastasis propensity drawn around `positive_rate`, so positives cluster a little.
    """
    if not 0.0 < positive_rate < 1.0:
        raise ValueError(f"positive_rate must be between 0 and 1, got {positive_rate}.")
    concentration = PATIENT_CLUSTERING * (1.0 - positive_rate) / positive_rate
    records: list[NodeRecord] = []
    for p in range(n_patients):
        rng = np.random.default_rng([seed, p])
        patient_id = f"P{p + 1:03d}"
        propensity = rng.beta(PATIENT_CLUSTERING, concentration)
        count = max(1, round(nodes_per_patient * rng.uniform(0.6, 1.4)))
        for n in range(count):
            label = int(rng.random() < propensity)
            records.append(make_node(rng, label, size, cue_strength, node_id=f"{patient_id}-N{n + 1:03d}",
                                     patient_id=patient_id))
    return records


def node_to_case(record: NodeRecord) -> Case:
    """Wrap a node as a 'lymph_node' Case with WLI, FI and PCI images and its label and mask as truth."""
    case = Case(id=record.node_id, kind="lymph_node", patient_id=record.patient_id,
                notes="Synthetic node from the OncoLens lymph-node phantom generator.")
    source = {"generator": SOURCE, "node": record.node_id}
    for modality in MODALITIES:
        units = "a.u." if modality == "FI" else "RGB"
        case.add_image(modality, record.images[modality], ImageMeta(bit_depth=8, units=units, source=source))
    case.truth = GroundTruth(labels={"metastatic": record.label}, masks={"node": record.mask}, source=SOURCE)
    return case


def write_node_demo_cases(out_dir: Path, seed: int = 11, count: int = 6) -> list[Path]:
    """Write `count` demo bundles (demo-node-01, ...) under `out_dir`; every third one is metastatic.

    Each demo node is the most class-typical of a few draws, so the demo shows clear examples.
    """
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        label = int(i % 3 == 1)
        case_id = f"demo-node-{i + 1:02d}"
        candidates = [make_node(rng, label, node_id=case_id, patient_id=f"DEMO{i + 1:02d}") for _ in range(4)]
        record = min(candidates, key=lambda r: sum((s - CUE_STRENGTH * r.label) ** 2 for s in r.cues.values()))
        paths.append(write_bundle(node_to_case(record), out_dir / case_id))
    return paths
