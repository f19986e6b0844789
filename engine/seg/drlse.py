"""Edge-based Distance-Regularised Level Set Evolution (DRLSE; Li, Xu, Gui, Fox, IEEE TIP 2010).

The traditional baseline of Hou, Zou and Wang (Surg Innov 2024) for tumor segmentation in NIR fluorescence
frames. The level set function phi is negative inside the segmented region and evolves by

    d phi / dt = mu * div(d_p(|grad phi|) grad phi)          distance regularisation (double-well potential)
               + lambda * delta_eps(phi) * div(g grad phi / |grad phi|)   weighted length: pulls onto edges
               + alpha * g * delta_eps(phi)                  weighted area: alpha > 0 shrinks, alpha < 0 grows

with the edge indicator g = 1 / (1 + |grad(G_sigma * I)|^2) and the smoothed Dirac
delta_eps(x) = (1 + cos(pi x / eps)) / (2 eps) for |x| <= eps, else 0. The double-well potential keeps
|grad phi| near 1 close to the contour and near 0 far from it, so no re-initialisation is needed; the scheme is
stable while timestep * mu < 1/4 (the default mu = 0.2 / timestep).

Defaults for fluorescence frames (bright tumor on a darker background). The frame is rescaled to 0-255 grey
levels (0.5th to 99.5th percentile), the scale for which Li et al. chose their parameter values, and reduced
by area averaging so that its longer side is at most `max_side` pixels; the evolution runs there and phi is
resized back (bilinear), so a 1024 x 1024 frame costs about as much as a 256 x 256 one. Without an `init`, the
start region is the Otsu threshold of the smoothed frame grown by `init_margin` pixels, i.e. a contour just
outside every bright structure; the positive `alpha` then shrinks it until the edge term holds it where the
brightness falls steeply. Weak (blurred) edges hold it only partly, so on such frames the result depends on
`iterations`, as with the original method. Give a mask or a box enclosing the tumor to start elsewhere, or
grow a seed placed inside the tumor with a negative alpha (about -3 on noisy frames).

Stopping: every `check_every` steps the pixels that changed side are counted; after `patience` checks in a
row with fewer than `tol` x the contour length, the evolution has converged. Otherwise it runs `iterations`
steps (converged=False). Then `refine_iterations` steps with alpha = 0 settle the contour on the edge.

A constant frame (or one with NaN/inf) has no edges to follow and raises ValueError; a contour that shrinks
away entirely gives an empty mask.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields

import cv2
import numpy as np


@dataclass(frozen=True)
class DRLSEParams:
    """Evolution parameters; distances (sigma, epsilon, init_margin) are in working-resolution pixels."""

    timestep: float = 5.0
    mu: float | None = None  # distance-regularisation weight; None means 0.2 / timestep
    lambda_: float = 5.0  # weighted length term
    alpha: float = 1.5  # weighted area term: > 0 shrinks the contour, < 0 expands it
    epsilon: float = 1.5  # width of the smoothed Dirac delta
    sigma: float = 1.5  # Gaussian smoothing before the edge indicator
    iterations: int = 400  # most evolution steps (the final refinement steps come on top)
    refine_iterations: int = 10  # last steps with alpha = 0, to settle the contour on the edge
    check_every: int = 10  # steps between convergence checks
    tol: float = 0.05  # a check passes when fewer than tol x contour length pixels changed side since the last
    patience: int = 3  # converged after this many passing checks in a row
    max_side: int | None = 256  # downsample so that the longer side is at most this (None: full resolution)
    init_margin: int = 2  # grow the automatic Otsu start region by this many pixels
    c0: float = 2.0  # |phi| of the binary step the evolution starts from

    @property
    def mu_value(self) -> float:
        return 0.2 / self.timestep if self.mu is None else self.mu

    def __post_init__(self):
        if self.timestep <= 0 or self.epsilon <= 0 or self.sigma < 0:
            raise ValueError("DRLSE needs timestep > 0, epsilon > 0 and sigma >= 0.")
        if self.timestep * self.mu_value >= 0.25:
            raise ValueError(
                f"timestep * mu = {self.timestep * self.mu_value:.3g} makes the evolution unstable; keep it below 0.25 "
                "(leave mu unset for 0.2 / timestep)."
            )
        if self.iterations < 0 or self.refine_iterations < 0 or self.check_every < 1 or self.patience < 1:
            raise ValueError("iterations and refine_iterations must be >= 0, check_every and patience >= 1.")
        if self.max_side is not None and self.max_side < 16:
            raise ValueError(f"max_side must be at least 16 pixels (or None), got {self.max_side}.")

    @classmethod
    def from_kwargs(cls, **params) -> DRLSEParams:
        """Build from keyword arguments; 'lambda' is accepted as a spelling of lambda_."""
        if "lambda" in params:
            params["lambda_"] = params.pop("lambda")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"Unknown DRLSE parameter(s) {unknown}; valid: {sorted(known)}.")
        return cls(**params)


@dataclass
class DRLSEResult:
    """mask: bool at the frame's resolution; phi: the final level set (negative inside), resized likewise;
    iterations: steps taken, refinement included; params: the parameters used, with mu resolved."""

    mask: np.ndarray
    phi: np.ndarray
    iterations: int
    converged: bool
    seconds: float
    params: dict
    work_shape: tuple[int, int]


# --------------------------------------------------------------------------------------------- helpers


def _grey_frame(frame) -> np.ndarray:
    arr = np.asarray(frame)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise ValueError(f"DRLSE needs one grey frame (H, W); got shape {arr.shape}. Convert colour frames to grey.")
    if min(arr.shape) < 8:
        raise ValueError(f"Frame of shape {arr.shape} is too small for DRLSE (at least 8 x 8 pixels).")
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        raise ValueError("Frame holds NaN or infinite values; DRLSE needs finite intensities.")
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        raise ValueError(f"Frame is constant (every pixel = {lo:g}): there is no edge for DRLSE to follow.")
    return arr


def _to_grey_levels(arr: np.ndarray) -> np.ndarray:
    """Rescale to 0-255 between robust percentiles (hot pixels and glare must not set the scale)."""
    lo, hi = np.percentile(arr, [0.5, 99.5])
    if hi <= lo:
        lo, hi = float(arr.min()), float(arr.max())
    out = (arr - np.float32(lo)) * np.float32(255.0 / (hi - lo))
    return np.clip(out, 0.0, 255.0, out=out)


def _work_shape(shape: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    h, w = shape
    if max_side is None or max(h, w) <= max_side:
        return h, w
    f = max_side / max(h, w)
    return max(8, round(h * f)), max(8, round(w * f))


def _resize(img: np.ndarray, shape: tuple[int, int], shrink: bool) -> np.ndarray:
    if img.shape == shape:
        return img
    interp = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(img, (shape[1], shape[0]), interpolation=interp)


def _smooth(img: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(img, (0, 0), sigma, borderType=cv2.BORDER_REFLECT) if sigma > 0 else img


def _otsu_region(smoothed: np.ndarray) -> np.ndarray:
    grey8 = np.clip(smoothed + 0.5, 0, 255).astype(np.uint8)
    _, binary = cv2.threshold(grey8, 0, 1, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    return binary.astype(bool)


def _initial_region(init, shape: tuple[int, int], work: tuple[int, int], smoothed: np.ndarray,
                    margin: int) -> np.ndarray:
    """The start region at working resolution, from None (Otsu), a mask of the frame's shape, or a box."""
    if init is None:
        region = _otsu_region(smoothed)
        if margin > 0:
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
            region = cv2.dilate(region.astype(np.uint8), kernel).astype(bool)
        return region
    if isinstance(init, tuple | list) and len(init) == 4 and np.ndim(init) == 1:
        r0, c0, r1, c1 = (float(v) for v in init)
        if not (0 <= r0 < r1 <= shape[0] and 0 <= c0 < c1 <= shape[1]):
            raise ValueError(f"init box {tuple(init)} must be (row0, col0, row1, col1) inside the {shape} frame.")
        fy, fx = work[0] / shape[0], work[1] / shape[1]
        region = np.zeros(work, bool)
        region[int(r0 * fy):max(int(r0 * fy) + 1, round(r1 * fy)),
               int(c0 * fx):max(int(c0 * fx) + 1, round(c1 * fx))] = True
        return region
    mask = np.asarray(init)
    if mask.shape != shape:
        raise ValueError(
            f"init mask has shape {mask.shape} but the frame is {shape}; pass a mask of the frame's shape, "
            "a (row0, col0, row1, col1) box, or None for the automatic Otsu start."
        )
    if not mask.any():
        raise ValueError("init mask is empty: mark the region to start from (or pass None for the Otsu start).")
    return _resize(mask.astype(np.float32), work, shrink=True) > 0.5


def _neumann(phi: np.ndarray) -> None:
    """Mirror the level set about the image border (zero normal derivative), in place."""
    phi[0, :], phi[-1, :] = phi[2, :], phi[-3, :]
    phi[:, 0], phi[:, -1] = phi[:, 2], phi[:, -3]


_DX = np.array([[-0.5, 0.0, 0.5]], np.float32)  # central difference along columns
_DY = np.ascontiguousarray(_DX.T)


def _ddx(f: np.ndarray) -> np.ndarray:
    return cv2.filter2D(f, cv2.CV_32F, _DX, borderType=cv2.BORDER_REPLICATE)


def _ddy(f: np.ndarray) -> np.ndarray:
    return cv2.filter2D(f, cv2.CV_32F, _DY, borderType=cv2.BORDER_REPLICATE)


def _div(fx: np.ndarray, fy: np.ndarray) -> np.ndarray:
    return _ddx(fx) + _ddy(fy)


def _dirac(phi: np.ndarray, eps: float) -> np.ndarray:
    out = (np.float32(1.0) + np.cos(phi * np.float32(np.pi / eps))) * np.float32(0.5 / eps)
    out[np.abs(phi) > eps] = 0.0
    return out


def _distance_regulariser(phi: np.ndarray, px: np.ndarray, py: np.ndarray, s: np.ndarray) -> np.ndarray:
    """div(d_p(s) grad phi) for the double-well potential, as div((d_p - 1) grad phi) + Laplacian(phi).

    d_p(s) = sin(2 pi s) / (2 pi s) for s <= 1 and 1 - 1/s above; the split puts the bulk of the term on the
    compact 5-point Laplacian, which avoids the checkerboard modes of nested central differences."""
    x = np.float32(2.0 * np.pi) * s
    well = np.sin(x) / np.maximum(x, np.float32(1e-6)) - np.float32(1.0)
    well[x < 1e-6] = 0.0  # the limit of sin(x) / x - 1 at 0
    excess = np.where(s <= 1.0, well, np.float32(-1.0) / np.maximum(s, np.float32(1.0)))
    lap = cv2.Laplacian(phi, cv2.CV_32F, ksize=1, borderType=cv2.BORDER_REPLICATE)
    return _div(excess * px, excess * py) + lap


def _edge_indicator_of_smoothed(smoothed: np.ndarray) -> np.ndarray:
    gx, gy = _ddx(smoothed), _ddy(smoothed)
    return (1.0 / (1.0 + gx * gx + gy * gy)).astype(np.float32)


def _contour_length(inside: np.ndarray) -> int:
    """Length of the zero level in pixel edges: neighbouring pixel pairs on opposite sides."""
    return int(np.count_nonzero(inside[1:, :] != inside[:-1, :]) + np.count_nonzero(inside[:, 1:] != inside[:, :-1]))


def _evolve(phi: np.ndarray, g: np.ndarray, p: DRLSEParams, alpha: float, steps: int, check: bool
            ) -> tuple[int, bool]:
    """Run up to `steps` updates of phi in place; returns (steps taken, converged)."""
    gx, gy = _ddx(g), _ddy(g)
    dt, mu, lam, eps = (np.float32(v) for v in (p.timestep, p.mu_value, p.lambda_, p.epsilon))
    alpha = np.float32(alpha)
    inside = phi < 0
    passed = 0
    for step in range(1, steps + 1):
        _neumann(phi)
        px, py = _ddx(phi), _ddy(phi)
        s = np.sqrt(px * px + py * py)
        inv = np.float32(1.0) / (s + np.float32(1e-10))
        nx, ny = px * inv, py * inv
        delta = _dirac(phi, float(eps))
        edge_term = delta * (gx * nx + gy * ny + g * _div(nx, ny))
        phi += dt * (mu * _distance_regulariser(phi, px, py, s) + lam * edge_term + alpha * g * delta)
        if check and step % p.check_every == 0:
            now = phi < 0
            changed = int(np.count_nonzero(now != inside))
            length = _contour_length(now)
            inside = now
            if length == 0:  # the contour has vanished (or fills the frame): nothing left to move
                return step, True
            passed = passed + 1 if changed <= p.tol * length else 0
            if passed >= p.patience:
                return step, True
    return steps, False


# --------------------------------------------------------------------------------------------- public


def edge_indicator(grey: np.ndarray, sigma: float) -> np.ndarray:
    """g = 1 / (1 + |grad(G_sigma * I)|^2): near 1 in flat regions, near 0 on strong edges."""
    return _edge_indicator_of_smoothed(_smooth(np.asarray(grey, np.float32), sigma))


def drlse_segment(frame, init=None, **params) -> DRLSEResult:
    """Segment the bright region(s) of a grey frame (uint8, uint16 or float) by edge-based DRLSE.

    `init`: None for the automatic Otsu start, a bool mask of the frame's shape, or a box
    (row0, col0, row1, col1) in frame pixels. `params`: fields of `DRLSEParams`."""
    t0 = time.perf_counter()
    p = DRLSEParams.from_kwargs(**params)
    arr = _grey_frame(frame)
    shape = arr.shape
    work = _work_shape(shape, p.max_side)
    grey = _to_grey_levels(_resize(arr, work, shrink=True))
    smoothed = _smooth(grey, p.sigma)
    g = _edge_indicator_of_smoothed(smoothed)

    region = _initial_region(init, shape, work, smoothed, p.init_margin)
    if region.all():  # no contour to evolve: start from a region one pixel inside the border
        region[[0, -1], :] = False
        region[:, [0, -1]] = False
    phi = np.where(region, -p.c0, p.c0).astype(np.float32)

    steps, converged = _evolve(phi, g, p, p.alpha, p.iterations, check=True)
    if p.refine_iterations and (phi < 0).any():
        more, _ = _evolve(phi, g, p, 0.0, p.refine_iterations, check=False)
        steps += more
    _neumann(phi)
    full_phi = _resize(phi, shape, shrink=False)
    return DRLSEResult(
        mask=full_phi < 0,
        phi=full_phi,
        iterations=steps,
        converged=converged,
        seconds=time.perf_counter() - t0,
        params={**asdict(p), "mu": p.mu_value},
        work_shape=work,
    )
