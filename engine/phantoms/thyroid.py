"""Synthetic thyroid nodules imaged by ultrasound (US screen captures) and CT (HU slices), with cervical
lymph-node metastasis labels at the central and the lateral site (the DGFNet phantom).

What drives the labels (specs/dgfnet.md section 7):
- a patient-level nodal burden: s_central ~ N(0, 1) and s_lateral = 0.7 s_central + 0.71 N(0, 1); the
  central site is positive when s_central > 0.33 (about 37 %), the lateral when s_lateral > 0.6 (about 27 %, more than the
  spec's 16 % so that the under-sampled lateral set is large enough to learn from on the CPU);
- a US cue inside the nodule and at its margin (micro-calcifications, an irregular margin, taller-than-wide),
  tied mostly to the central burden, shown at a low threshold: present in most positives and in many benign
  mimics (sensitive, not specific);
- a CT cue at the nodule-tissue interface (capsule breach with extrathyroidal extension, contact with the
  trachea), tied more to the lateral burden, shown at a higher threshold (specific);
- independent noise on the two cues, so fusing them beats either; nodule-dependent reliability that is
  visible in the images: the CT cue fades for small nodules (partial volume), the US cue for large ones
  (field-of-view cut-off, shadowing) and in heavily speckled captures;
- label-independent distractors outside the nodule (specular reflectors in the US parenchyma, calcified
  cartilage and vessels in CT), so a classifier that learns where the nodule is has an easier time.

Every nodule has 2 US views and 3 CT slices; one of each has the clearly largest nodule area (the paper's
evaluation pairing). US captures carry burned-in text, a depth scale and calibration marks outside the image
area (and sometimes a label inside it); CT is int16 HU.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

US_SHAPE = (240, 320)  # capture (rows, cols)
US_REGION = (26, 34, 230, 294)  # y0, x0, y1, x1 of the ultrasound image area inside the capture
US_SPACING_MM = 0.25
CT_SHAPE = (160, 160)
CT_SPACING_MM = 0.7
CENTRAL, LATERAL = "central_lnm", "lateral_lnm"
SITES = (CENTRAL, LATERAL)
CENTRAL_CUT, LATERAL_CUT = 0.33, 0.6


@dataclass
class ThyroidNodule:
    """One nodule: its US views and CT slices with nodule masks, labels per site, and the latent attributes."""

    nodule_id: str
    patient_id: str
    labels: dict[str, int]
    us: list[np.ndarray]  # uint8 (H, W) captures
    us_masks: list[np.ndarray]
    ct: list[np.ndarray]  # int16 HU (H, W)
    ct_masks: list[np.ndarray]
    attributes: dict = field(default_factory=dict)

    @property
    def us_boxes(self) -> list[tuple[int, int, int, int]]:
        return [mask_box(m) for m in self.us_masks]

    @property
    def ct_boxes(self) -> list[tuple[int, int, int, int]]:
        return [mask_box(m) for m in self.ct_masks]

    def largest(self, modality: str) -> int:
        """Index of the view with the largest nodule area (the paper's evaluation pairing)."""
        masks = self.us_masks if modality == "US" else self.ct_masks
        return int(np.argmax([m.sum() for m in masks]))


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of a mask's pixels, x1/y1 exclusive."""
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


# ----------------------------------------------------------------------------------------------------
# Latent patients and nodules


def _patient_latents(rng: np.random.Generator) -> tuple[float, float]:
    s_c = float(rng.normal())
    return s_c, float(0.7 * s_c + 0.71 * rng.normal())


def _nodule_latents(rng: np.random.Generator, s_c: float, s_l: float) -> dict:
    """Cue strengths, sizes and reliability of one nodule from its patient's burden."""
    us_score = 0.85 * s_c + 0.2 * s_l + rng.normal(0, 0.75)
    ct_score = 0.45 * s_c + 0.7 * s_l + rng.normal(0, 0.6)
    diameter = float(np.clip(np.exp(rng.normal(np.log(15) + 0.04 * s_c, 0.45)), 5, 55))
    return {
        "us_score": us_score, "ct_score": ct_score,
        "us_cue": bool(us_score > -0.1), "ct_cue": bool(ct_score > 0.55),
        "diameter_mm": diameter,
        "aspect": float(rng.uniform(0.65, 0.95)),
        "echo": float(rng.uniform(0.22, 0.42)),
        "speckle_heavy": bool(rng.random() < 0.2),
        "location": str(rng.choice(["left", "right", "isthmus"], p=[0.45, 0.45, 0.1])),
        "gain": float(rng.uniform(0.8, 1.2)),
    }


def _cue_visibility(lat: dict) -> tuple[float, float]:
    """How strongly each cue is drawn: the CT cue fades below 10 mm, the US cue above 38 mm and in heavy speckle."""
    us = float(np.clip(0.35 + 0.35 * lat["us_score"], 0.25, 1.0)) if lat["us_cue"] else 0.0
    ct = float(np.clip(0.45 + 0.3 * lat["ct_score"], 0.3, 1.0)) if lat["ct_cue"] else 0.0
    if lat["diameter_mm"] < 10:
        ct *= 0.35
    if lat["diameter_mm"] > 38:
        us *= 0.35
    if lat["speckle_heavy"]:
        us *= 0.6
    return us, ct


# ----------------------------------------------------------------------------------------------------
# Shapes


def _blob(shape: tuple[int, int], cy: float, cx: float, ry: float, rx: float, irregular: float,
          rng: np.random.Generator, angle: float = 0.0) -> np.ndarray:
    """Boolean ellipse whose radius is perturbed by a few random radial Fourier terms (margin irregularity)."""
    yy, xx = np.mgrid[:shape[0], :shape[1]].astype(np.float32)
    dy, dx = yy - cy, xx - cx
    c, s = np.cos(angle), np.sin(angle)
    u, v = (dx * c + dy * s) / max(rx, 1), (-dx * s + dy * c) / max(ry, 1)
    theta = np.arctan2(v, u)
    radius = np.ones_like(theta)
    for k in (3, 5, 7, 11):
        radius += irregular * rng.uniform(0.2, 1.0) / k ** 0.5 * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    return (u * u + v * v) <= radius * radius


def _disc(shape, cy, cx, r) -> np.ndarray:
    yy, xx = np.ogrid[:shape[0], :shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


# ----------------------------------------------------------------------------------------------------
# Ultrasound


def _speckle(shape, rng: np.random.Generator, heavy: bool) -> np.ndarray:
    """Multiplicative Rayleigh speckle with a short correlation length (mean 1)."""
    sigma = 1.6 if heavy else 0.9
    field_ = rng.rayleigh(1.0, shape).astype(np.float32)
    field_ = cv2.GaussianBlur(field_, (0, 0), sigma)
    return field_ / field_.mean()


def burn_in_text(capture: np.ndarray, rng: np.random.Generator, inside: bool = False) -> None:
    """Burned-in annotations as real scanners write them: a header line, a depth scale with ticks, calibration
    crosses outside the image area and (when `inside`) a body-marker label in the image's corner."""
    y0, x0, y1, x1 = US_REGION
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(capture, f"THY {'L' if rng.random() < 0.5 else 'R'} 12MHz G{int(rng.integers(40, 70))}", (6, 16),
                font, 0.42, 255, 1, cv2.LINE_AA)
    cv2.putText(capture, f"2024-0{int(rng.integers(1, 9))}-1{int(rng.integers(0, 9))}", (x1 - 78, 16), font, 0.36,
                230, 1, cv2.LINE_AA)
    for i, depth in enumerate(range(y0, y1, 40)):
        cv2.line(capture, (x1 + 4, depth), (x1 + 10, depth), 255, 1)
        cv2.putText(capture, str(i), (x1 + 12, depth + 4), font, 0.3, 255, 1, cv2.LINE_AA)
    for cx in (x0 - 14, x1 + 14):
        cy = int(rng.integers(y0 + 20, y1 - 20))
        cv2.line(capture, (cx - 4, cy), (cx + 4, cy), 255, 1)
        cv2.line(capture, (cx, cy - 4), (cx, cy + 4), 255, 1)
    if inside:
        cv2.putText(capture, "TRANS", (x0 + 6, y1 - 8), font, 0.38, 255, 1, cv2.LINE_AA)


def render_us(lat: dict, visibility: float, view: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One US screen capture (uint8) of the nodule and its mask. `view` 0 is the larger (transverse) section."""
    y0, x0, y1, x1 = US_REGION
    h, w = y1 - y0, x1 - x0
    scale = 1.0 if view == 0 else rng.uniform(0.62, 0.75)  # the second view cuts the nodule smaller
    d_px = lat["diameter_mm"] / US_SPACING_MM * scale
    aspect = lat["aspect"] * (1.0 if view == 0 else rng.uniform(0.85, 1.1))
    tall = lat["us_cue"] and visibility > 0 and rng.random() < 0.6
    if tall:  # taller than wide
        aspect = float(np.clip(1.15 + 0.25 * visibility, 1.05, 1.5))
    rx = d_px / 2 / np.sqrt(aspect)
    ry = d_px / 2 * np.sqrt(aspect)
    cy = float(np.clip(h * 0.5 + rng.uniform(-15, 15), 25, h - 25))
    cx = float(w * 0.5 + rng.uniform(-40, 40))
    echo = np.full((h, w), 0.32, np.float32)  # strap muscles / soft tissue
    gland = _blob((h, w), h * 0.5, w * 0.5, h * 0.42, w * 0.55, 0.05, rng)
    echo[gland] = 0.55
    irregular = 0.03 + (0.22 * visibility if lat["us_cue"] else 0.0)
    nodule = _blob((h, w), cy, cx, ry, rx, irregular, rng, angle=rng.uniform(-0.2, 0.2))
    echo[nodule] = lat["echo"]
    texture = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 3)
    echo[nodule] += 0.06 * texture[nodule]
    # label-independent specular reflectors in the parenchyma (distractors outside the nodule)
    for _ in range(int(rng.integers(2, 6))):
        py, px = int(rng.integers(10, h - 10)), int(rng.integers(10, w - 10))
        if not nodule[max(0, py - 8):py + 8, max(0, px - 8):px + 8].any():
            cv2.line(echo, (px - 5, py), (px + 5, py + int(rng.integers(-2, 3))), 0.95, 2)
    # micro-calcifications: bright foci inside the nodule, each with a short shadow
    if lat["us_cue"] and visibility > 0:
        ys, xs = np.nonzero(cv2.erode(nodule.astype(np.uint8), np.ones((7, 7), np.uint8)))
        for _ in range(int(round(2 + 7 * visibility))) if len(ys) else ():
            k = int(rng.integers(len(ys)))
            cv2.circle(echo, (int(xs[k]), int(ys[k])), int(rng.integers(1, 3)), 0.98, -1)
            echo[ys[k] + 3:ys[k] + 14, max(0, xs[k] - 1):xs[k] + 2] *= 0.55
    # posterior acoustic shadowing behind large or calcified nodules
    rows = np.nonzero(nodule.any(axis=1))[0]
    if len(rows) and (lat["diameter_mm"] > 30 or (lat["us_cue"] and rng.random() < 0.5)):
        cols = np.nonzero(nodule.any(axis=0))[0]
        shadow = np.ones((h, w), np.float32)
        shadow[rows[-1]:, cols[0] + 3:cols[-1] - 2] = 0.55
        echo *= cv2.GaussianBlur(shadow, (0, 0), 3)
    depth = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    tgc = lat["gain"] * (1.1 - 0.35 * depth) * (1 + 0.15 * np.sin(6 * depth + rng.uniform(0, 6)))
    amplitude = echo * _speckle((h, w), rng, lat["speckle_heavy"]) * tgc
    image = np.clip(200 * np.log1p(3 * amplitude) / np.log1p(3 * 1.3), 0, 240)
    capture = np.zeros(US_SHAPE, np.uint8)
    capture[y0:y1, x0:x1] = image.astype(np.uint8)
    burn_in_text(capture, rng, inside=rng.random() < 0.4)
    mask = np.zeros(US_SHAPE, bool)
    mask[y0:y1, x0:x1] = nodule
    return capture, mask


# ----------------------------------------------------------------------------------------------------
# CT


def render_ct(lat: dict, visibility: float, section: float, rng: np.random.Generator
              ) -> tuple[np.ndarray, np.ndarray]:
    """One CT slice (int16 HU) through the nodule at relative height `section` (0 = its centre) and its mask."""
    h, w = CT_SHAPE
    hu = np.full((h, w), -1000.0, np.float32)
    body = _blob((h, w), h * 0.52, w * 0.5, h * 0.46, w * 0.47, 0.02, rng)
    hu[body] = -90.0  # subcutaneous fat
    hu[_blob((h, w), h * 0.55, w * 0.5, h * 0.36, w * 0.38, 0.03, rng)] = 35.0  # neck soft tissue
    ty, tx = h * 0.5, w * 0.5 + rng.uniform(-3, 3)
    ring = _disc((h, w), ty, tx, 14)
    cartilage = 130.0 + (rng.uniform(200, 500) if rng.random() < 0.4 else 0.0)  # sometimes calcified (distractor)
    hu[ring] = cartilage
    hu[_disc((h, w), ty, tx, 11)] = -950.0  # trachea
    side = str(lat["location"])
    radius = lat["diameter_mm"] / CT_SPACING_MM / 2 * np.sqrt(max(0.05, 1 - section ** 2))
    lobe_ry, lobe_rx = 30.0, 19.0
    gland_hu = rng.uniform(100, 140)
    centres = {"left": (ty - 2, tx - 32), "right": (ty - 2, tx + 32), "isthmus": (ty - 19, tx)}
    home = centres[side]
    if visibility > 0:  # extrathyroidal extension: part of the nodule lies outside the capsule (fat, trachea)
        sign = -1.0 if side == "left" else 1.0
        if side == "isthmus":
            direction = np.array([-1.0, rng.uniform(-0.5, 0.5)])
        elif rng.random() < 0.4:
            direction = np.array([rng.uniform(-0.2, 0.2), -sign])  # towards the trachea
        else:
            direction = np.array([rng.uniform(-0.8, 0.3), sign])  # lateral / anterior, into fat and muscle
        direction /= np.linalg.norm(direction)
        reach = lobe_rx if side != "isthmus" else 6.0
        protrusion = (0.3 + 0.45 * visibility) * 2 * radius
        cy, cx = home[0] + direction[0] * (reach - radius + protrusion), home[1] + direction[1] * (reach - radius + protrusion)
    else:
        cy, cx = home[0] + rng.uniform(-3, 3), home[1] + rng.uniform(-2, 2)
    for name, (ly, lx) in centres.items():
        ry, rx = (lobe_ry, lobe_rx) if name != "isthmus" else (6.0, 22.0)
        lobe = _blob((h, w), ly, lx, ry, rx, 0.04, rng)
        if name == side and visibility == 0:  # a benign nodule expands its lobe; the capsule stays intact
            lobe |= _disc((h, w), cy, cx, radius + 3)
        lobe &= ~_disc((h, w), ty, tx, 15)
        edge = lobe & ~cv2.erode(lobe.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        hu[lobe] = gland_hu  # enhancing gland
        hu[edge] = 160.0  # capsule line
    for sign in (-1, 1):
        hu[_disc((h, w), ty + 4, tx + sign * 60, 7)] = rng.uniform(220, 300)  # carotid
        hu[_disc((h, w), ty - 4, tx + sign * 70, 6)] = rng.uniform(150, 200)  # jugular
        hu[_blob((h, w), ty - 34, tx + sign * 24, 4, 18, 0.02, rng)] = 50.0  # strap muscle
    irregular = 0.06 + 0.2 * visibility  # an invading margin is spiculated
    nodule = _blob((h, w), cy, cx, radius, radius * rng.uniform(0.85, 1.1), irregular, rng)
    nodule &= body
    hu[nodule] = rng.uniform(45, 75)  # hypo-attenuating against the enhancing gland
    if rng.random() < 0.3:  # coarse calcification (label-independent)
        ys, xs = np.nonzero(nodule)
        if len(ys):
            k = int(rng.integers(len(ys)))
            hu[_disc((h, w), ys[k], xs[k], 1.5) & nodule] = rng.uniform(350, 700)
    blur = 0.8 + (1.2 if lat["diameter_mm"] < 10 else 0.4) * rng.random()  # partial volume
    hu = cv2.GaussianBlur(hu, (0, 0), blur)
    hu += rng.normal(0, rng.uniform(10, 18), hu.shape).astype(np.float32)
    return np.clip(hu, -1024, 3000).astype(np.int16), nodule


# ----------------------------------------------------------------------------------------------------
# Datasets


def make_nodule(nodule_id: str, patient_id: str, s_c: float, s_l: float, rng: np.random.Generator
                ) -> ThyroidNodule:
    lat = _nodule_latents(rng, s_c, s_l)
    us_vis, ct_vis = _cue_visibility(lat)
    us, us_masks = zip(*(render_us(lat, us_vis, v, rng) for v in range(2)), strict=True)
    sections = (0.0, rng.uniform(0.5, 0.65), -rng.uniform(0.5, 0.65))
    ct, ct_masks = zip(*(render_ct(lat, ct_vis, z, rng) for z in sections), strict=True)
    labels = {CENTRAL: int(s_c > CENTRAL_CUT), LATERAL: int(s_l > LATERAL_CUT)}
    attributes = {**lat, "us_visibility": us_vis, "ct_visibility": ct_vis, "s_central": s_c, "s_lateral": s_l}
    return ThyroidNodule(nodule_id, patient_id, labels, list(us), list(us_masks), list(ct), list(ct_masks), attributes)


def make_thyroid_dataset(n_patients: int = 400, seed: int = 2025, second_nodule: float = 0.13
                         ) -> list[ThyroidNodule]:
    """Nodules of `n_patients` patients (about 13 % with two nodules sharing the patient's labels)."""
    rng = np.random.default_rng(seed)
    out = []
    for p in range(n_patients):
        s_c, s_l = _patient_latents(rng)
        for k in range(2 if rng.random() < second_nodule else 1):
            out.append(make_nodule(f"T{p:04d}-{k + 1}", f"T{p:04d}", s_c, s_l, rng))
    return out
