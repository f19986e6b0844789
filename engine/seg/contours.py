"""Masks and probability maps to sub-pixel contours, and back; contour export to JSON and CSV.

How contours are found: marching squares on the iso-level between pixel centres. A binary mask (bool or
integer, non-zero = foreground) is contoured at 0.5 of its 0/1 values, so its contours run through the
midpoints between neighbouring foreground and background pixel centres; a float probability map is
contoured at `threshold` with linear interpolation along the grid, so its points lie on that level to
rounding error. The field is padded with background first, so every contour is closed.

Topology comes from the same pass: each contour is traced with the foreground on one side, so the sign of
its enclosed area tells an outer boundary from a hole, and each hole's parent is the smallest outer boundary
around it. At a saddle (two diagonal foreground pixels) the pixels are joined when the mean of the four
corners reaches the level, which makes the foreground 8-connected, as in `cv2.findContours` and
`region_count`. cv2.findContours itself is not used: its chains run through boundary pixel centres and would
need matching to the sub-pixel loops without telling anything the orientation does not. (scikit-image's
`find_contours` does the same interpolation but is not a dependency of OncoLens.)

Coordinates are (row, col) in pixels with pixel centres at integers; `points` do not repeat the first point.
`contours_to_mask` fills pixel centres inside the contours by the even-odd rule, so outer boundaries and
holes rasterise together and mask -> contours -> mask gives back a binary mask exactly (and a thresholded
probability map too, the saddle rule aside).

Outside the image counts as background (value 0), so a region touching the border is closed half a pixel
beyond it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engine.exports import csv_writer, open_csv

CONTOURS_FORMAT = "oncolens-contours"
CONTOURS_VERSION = 1

# Cell corners: TL = 1, TR = 2, BR = 4, BL = 8 (set when the corner is at or above the level).
# Cell sides: T, R, B, L. Each segment runs from one side to another with the foreground on its left on screen.
_SEGMENTS: dict[int, tuple[tuple[str, str], ...]] = {
    1: (("L", "T"),), 2: (("T", "R"),), 4: (("R", "B"),), 8: (("B", "L"),),
    3: (("L", "R"),), 6: (("T", "B"),), 12: (("R", "L"),), 9: (("B", "T"),),
    14: (("T", "L"),), 13: (("R", "T"),), 11: (("B", "R"),), 7: (("L", "B"),),
}
_SADDLE_JOINED = {5: (("R", "T"), ("L", "B")), 10: (("T", "L"), ("B", "R"))}
_SADDLE_SPLIT = {5: (("L", "T"), ("R", "B")), 10: (("T", "R"), ("B", "L"))}


@dataclass(frozen=True)
class Contour:
    """One closed contour. area_px is the area it encloses (holes of an outer contour not subtracted)."""

    points: np.ndarray  # (N, 2) float (row, col) pixels, first point not repeated
    is_hole: bool
    area_px: float
    perimeter_px: float
    parent: int | None = None  # for a hole: index of the outer contour around it in the same list
    area_mm2: float | None = None
    perimeter_mm: float | None = None
    spacing: tuple[float, float] | None = None  # (row, col) mm per pixel

    @property
    def points_mm(self) -> np.ndarray | None:
        return None if self.spacing is None else self.points * np.asarray(self.spacing)

    def to_dict(self, index: int) -> dict:
        return {
            "id": index,
            "is_hole": self.is_hole,
            "parent": self.parent,
            "area_px": round(self.area_px, 4),
            "perimeter_px": round(self.perimeter_px, 4),
            "area_mm2": None if self.area_mm2 is None else round(self.area_mm2, 6),
            "perimeter_mm": None if self.perimeter_mm is None else round(self.perimeter_mm, 6),
            "points": np.round(self.points, 4).tolist(),
        }


# --------------------------------------------------------------------------------------------- helpers


def _check_spacing(spacing) -> tuple[float, float] | None:
    if spacing is None:
        return None
    s = tuple(float(v) for v in spacing)
    if len(s) != 2 or not all(math.isfinite(v) and v > 0 for v in s):
        raise ValueError(f"spacing must be two positive (row, col) sizes in mm, got {spacing!r}.")
    return s


def _field(mask, threshold: float) -> tuple[np.ndarray, float]:
    """The float field to contour and its level: 0/1 at 0.5 for masks, the map itself at `threshold`."""
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"Expected a 2-D mask or probability map, got shape {arr.shape}.")
    if arr.dtype == bool or np.issubdtype(arr.dtype, np.integer):
        return (arr != 0).astype(np.float32), 0.5
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"Expected a bool/integer mask or a float probability map, got dtype {arr.dtype}.")
    if not np.isfinite(arr).all():
        raise ValueError("The probability map holds NaN or infinite values.")
    return arr.astype(np.float32, copy=False) if arr.dtype != np.float64 else arr, float(threshold)


def binarise(mask, threshold: float = 0.5) -> np.ndarray:
    """Foreground of a mask (non-zero) or of a probability map (value >= threshold) as bool."""
    f, level = _field(mask, threshold)
    return f >= level


def _signed_area(points: np.ndarray) -> float:
    """Shoelace area in (row, col); positive for the orientation this module gives outer contours."""
    r, c = points[:, 0], points[:, 1]
    return 0.5 * float(np.dot(np.roll(c, -1), r) - np.dot(c, np.roll(r, -1)))


def _perimeter(points: np.ndarray, spacing=(1.0, 1.0)) -> float:
    d = (np.roll(points, -1, axis=0) - points) * np.asarray(spacing)
    return float(np.hypot(d[:, 0], d[:, 1]).sum())


def _inside(point: np.ndarray, polygon: np.ndarray) -> bool:
    """Even-odd test of one (row, col) point against a closed polygon."""
    r, c = point
    r0, c0 = polygon[:, 0], polygon[:, 1]
    r1, c1 = np.roll(r0, -1), np.roll(c0, -1)
    spans = (r0 <= r) != (r1 <= r)
    with np.errstate(divide="ignore", invalid="ignore"):
        cross = c0 + (r - r0) * (c1 - c0) / (r1 - r0)
    return bool(np.count_nonzero(spans & (cross > c)) % 2)


def _loops(f: np.ndarray, level: float) -> list[np.ndarray]:
    """Closed iso-level loops of f (already padded with background), as (N, 2) arrays in padded coordinates.

    Marching squares, sparse: the whole grid is touched only by 8-bit masks; edge crossings are interpolated
    (in float64) for the cells the level passes through, so a 64-megapixel map costs masks, not gigabytes."""
    h, w = f.shape
    up = f >= level
    n_h = h * (w - 1)  # horizontal grid edges (r, c)-(r, c+1) get ids r*(w-1)+c; vertical ones n_h + r*w + c
    case = up[:-1, :-1].astype(np.uint8)
    case |= up[:-1, 1:].view(np.uint8) << 1
    case |= up[1:, 1:].view(np.uint8) << 2
    case |= up[1:, :-1].view(np.uint8) << 3
    cr, cc = np.nonzero((case != 0) & (case != 15))
    cases = case[cr, cc]
    del case, up
    corners = [f[cr, cc], f[cr, cc + 1], f[cr + 1, cc + 1], f[cr + 1, cc]]
    centre_up = sum(c.astype(np.float64) for c in corners) * 0.25 >= level
    side_ids = {
        "T": cr * (w - 1) + cc,
        "B": (cr + 1) * (w - 1) + cc,
        "L": n_h + cr * w + cc,
        "R": n_h + cr * w + cc + 1,
    }
    starts, ends = [], []

    def add(selected: np.ndarray, segments) -> None:
        for a, b in segments:
            starts.append(side_ids[a][selected])
            ends.append(side_ids[b][selected])

    for code, segments in _SEGMENTS.items():
        add(cases == code, segments)
    for code in (5, 10):
        add((cases == code) & centre_up, _SADDLE_JOINED[code])
        add((cases == code) & ~centre_up, _SADDLE_SPLIT[code])
    if not starts:
        return []
    start_ids, end_ids = np.concatenate(starts), np.concatenate(ends)
    edges = np.unique(start_ids)
    points = dict(zip(edges.tolist(), _edge_points(f, level, edges, n_h, w)))
    nxt = dict(zip(start_ids.tolist(), end_ids.tolist()))

    loops = []
    while nxt:
        first, edge = next(iter(nxt.items()))
        chain = [first]
        del nxt[first]
        while edge != first:
            chain.append(edge)
            edge = nxt.pop(edge)
        loops.append(np.array([points[e] for e in chain], dtype=np.float64))
    return loops


def _bilinear(f: np.ndarray, points: np.ndarray, r0: np.ndarray, c0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Value and gradient (d/drow, d/dcol) at (N, 2) points of the bilinear patch of cell (r0, c0) of f."""
    fr, fc = points[:, 0] - r0, points[:, 1] - c0
    f00, f01 = f[r0, c0].astype(np.float64), f[r0, c0 + 1].astype(np.float64)
    f10, f11 = f[r0 + 1, c0].astype(np.float64), f[r0 + 1, c0 + 1].astype(np.float64)
    value = f00 * (1 - fr) * (1 - fc) + f01 * (1 - fr) * fc + f10 * fr * (1 - fc) + f11 * fr * fc
    grad = np.stack([(1 - fc) * (f10 - f00) + fc * (f11 - f01), (1 - fr) * (f01 - f00) + fr * (f11 - f10)], axis=1)
    return value, grad


def _refined(f: np.ndarray, level: float, loop: np.ndarray, splits: int = 4, steps: int = 3) -> np.ndarray:
    """The loop with `splits - 1` points added between each two of its vertices, moved onto the iso-line of the
    bilinear patch of the cell the chord crosses (Newton steps along the gradient, kept inside that cell):
    marching squares' straight chords cut across the curve inside a cell, which shows once a coarse map is
    scaled up. Points in the cells next to the padding stay on the chord (`_to_frame` handles the frame edge)."""
    h, w = f.shape
    nxt = np.roll(loop, -1, axis=0)
    centre = (loop + nxt) / 2.0  # inside the cell the chord crosses
    r0 = np.clip(np.floor(centre[:, 0]).astype(np.int64), 0, h - 2)
    c0 = np.clip(np.floor(centre[:, 1]).astype(np.int64), 0, w - 2)
    inner = (r0 >= 1) & (r0 <= h - 3) & (c0 >= 1) & (c0 <= w - 3)
    parts = [loop]
    for k in range(1, splits):
        point = loop + (nxt - loop) * (k / splits)
        for _ in range(steps):
            value, grad = _bilinear(f, point, r0, c0)
            norm2 = (grad ** 2).sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                step = np.where(norm2[:, None] > 1e-12, ((value - level) / norm2)[:, None] * grad, 0.0)
            point = point - step * inner[:, None]
            point[:, 0] = np.clip(point[:, 0], r0, r0 + 1)
            point[:, 1] = np.clip(point[:, 1], c0, c0 + 1)
        parts.append(point)
    return np.stack(parts, axis=1).reshape(-1, 2)


def _to_frame(loop: np.ndarray, work_shape: tuple[int, int], frame_shape: tuple[int, int]) -> np.ndarray:
    """Padded work-map coordinates -> padded frame coordinates. Inside the map, pixel centres map as cv2.resize
    maps them; between the map's edge and its padding the resized map holds the edge value up to the frame's
    own edge, so a crossing there keeps its distance from the frame's edge."""
    out = np.empty_like(loop)
    for axis in (0, 1):
        u, n, big = loop[:, axis] - 1.0, work_shape[axis], frame_shape[axis]
        inside = (u + 0.5) * (big / n) - 0.5
        out[:, axis] = np.where(u < 0, u, np.where(u > n - 1, u - (n - 1) + (big - 1), inside)) + 1.0
    return out


def _edge_points(f: np.ndarray, level: float, edges: np.ndarray, n_h: int, w: int) -> np.ndarray:
    """(row, col) of the level's crossing on each grid edge id (linear interpolation in float64)."""
    horizontal = edges < n_h
    out = np.empty((len(edges), 2), np.float64)
    r, c = np.divmod(edges[horizontal], w - 1)
    a, b = f[r, c].astype(np.float64), f[r, c + 1].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[horizontal] = np.stack([r.astype(np.float64), c + (level - a) / (b - a)], axis=1)
    r, c = np.divmod(edges[~horizontal] - n_h, w)
    a, b = f[r, c].astype(np.float64), f[r + 1, c].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out[~horizontal] = np.stack([r + (level - a) / (b - a), c.astype(np.float64)], axis=1)
    return out


# --------------------------------------------------------------------------------------------- public


def mask_to_contours(mask, spacing=None, threshold: float = 0.5, frame_shape: tuple[int, int] | None = None
                     ) -> list[Contour]:
    """All closed contours of a mask (non-zero = foreground) or a probability map (level `threshold`).

    Outer contours come largest first, each followed by its holes; a hole's `parent` is the index of its outer
    contour. With `spacing` (row, col mm of the frame's pixels) the contours also carry areas and perimeters in mm.

    `frame_shape`: the map is a smaller (work-scale) version of a frame of this size, which the frame's own map
    would be a bilinear resize of (cv2's pixel-centre convention). The contours are traced on the small map,
    refined onto the bilinear surface between its grid lines, and returned in the frame's pixels: within a
    fraction of a pixel of tracing the resized map, at a fraction of the cost."""
    spacing = _check_spacing(spacing)
    f, level = _field(mask, threshold)
    pad = min(float(f.min()), 0.0)  # background around the image: 0 for masks and probability maps
    if pad >= level:
        pad = level - 1.0
    padded = np.pad(f, 1, constant_values=pad)
    loops = _loops(padded, level)
    if frame_shape is not None and tuple(frame_shape) != f.shape:
        loops = [_to_frame(_refined(padded, level, loop), f.shape, frame_shape) for loop in loops]
    outers, holes = [], []
    for loop in loops:
        pts = loop - 1.0  # undo the padding
        signed = _signed_area(pts)
        (outers if signed > 0 else holes).append((abs(signed), pts))
    outers.sort(key=lambda item: -item[0])
    holes.sort(key=lambda item: -item[0])

    # Each hole belongs to the smallest outer contour that encloses it.
    owner: list[list[tuple[float, np.ndarray]]] = [[] for _ in outers]
    for hole in holes:
        around = [i for i, (_, pts) in enumerate(outers) if _inside(hole[1][0], pts)]
        if around:
            owner[min(around, key=lambda i: outers[i][0])].append(hole)

    def build(area: float, pts: np.ndarray, is_hole: bool, parent: int | None) -> Contour:
        return Contour(
            points=pts, is_hole=is_hole, area_px=area, perimeter_px=_perimeter(pts), parent=parent,
            area_mm2=None if spacing is None else area * spacing[0] * spacing[1],
            perimeter_mm=None if spacing is None else _perimeter(pts, spacing), spacing=spacing,
        )

    out: list[Contour] = []
    for (area, pts), own in zip(outers, owner):
        parent = len(out)
        out.append(build(area, pts, False, None))
        out.extend(build(a, p, True, parent) for a, p in own)
    return out


def contours_to_mask(contours, shape: tuple[int, int]) -> np.ndarray:
    """Rasterise contours (Contour objects or (N, 2) (row, col) arrays) by the even-odd rule.

    A pixel is foreground when its centre lies inside an odd number of contours, so holes stay open. (A centre
    exactly on a line counts as inside on left and right edges and follows a half-open rule on top and bottom
    ones; contours of binary masks never pass through pixel centres.)"""
    h, w = (int(v) for v in shape)
    polygons = [np.asarray(c.points if isinstance(c, Contour) else c, dtype=np.float64) for c in contours]
    polygons = [p for p in polygons if len(p) >= 3]
    if not polygons:
        return np.zeros((h, w), bool)
    p0 = np.concatenate(polygons)
    p1 = np.concatenate([np.roll(p, -1, axis=0) for p in polygons])
    r0, c0, r1, c1 = p0[:, 0], p0[:, 1], p1[:, 0], p1[:, 1]
    lo, hi = np.minimum(r0, r1), np.maximum(r0, r1)
    # Each edge crosses the pixel-centre rows r with lo <= r < hi (half-open, so shared vertices count once).
    first = np.clip(np.ceil(lo), 0, h).astype(np.int64)
    last = np.clip(np.ceil(hi), 0, h).astype(np.int64)
    counts = np.maximum(last - first, 0)
    edge = np.repeat(np.arange(len(p0)), counts)
    row = np.repeat(first, counts) + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
    x = c0[edge] + (row - r0[edge]) * (c1[edge] - c0[edge]) / (r1[edge] - r0[edge])
    order = np.lexsort((x, row))
    row, x = row[order], x[order]
    start_row, end_row = row[0::2], row[1::2]
    if not np.array_equal(start_row, end_row):
        raise ValueError("Contours are not closed polygons: a row is crossed an odd number of times.")
    # Fill centres from ceil(x_in) to floor(x_out) with a running sum over a difference image.
    begin = np.clip(np.ceil(x[0::2] - 1e-9), 0, w).astype(np.int64)
    end = np.clip(np.floor(x[1::2] + 1e-9) + 1, 0, w).astype(np.int64)
    keep = end > begin
    diff = np.zeros((h, w + 1), np.int32)
    np.add.at(diff, (start_row[keep], begin[keep]), 1)
    np.add.at(diff, (start_row[keep], end[keep]), -1)
    return np.cumsum(diff, axis=1)[:, :w] % 2 == 1


def region_count(mask, threshold: float = 0.5) -> int:
    """Number of 8-connected foreground regions of a mask or thresholded probability map."""
    fg = binarise(mask, threshold)
    if not fg.any():
        return 0
    n, _ = cv2.connectedComponents(fg.astype(np.uint8), connectivity=8)
    return int(n - 1)


def net_area(contours: list[Contour], mm: bool = False) -> float:
    """Area enclosed by outer contours minus their holes, in pixels (or mm^2 when mm and spacing known)."""
    total = 0.0
    for c in contours:
        area = c.area_mm2 if mm else c.area_px
        if area is None:
            raise ValueError("Areas in mm need contours made with a spacing.")
        total += -area if c.is_hole else area
    return total


def _spacing_of(contours: list[Contour], spacing) -> tuple[float, float] | None:
    if spacing is not None:
        return _check_spacing(spacing)
    return next((c.spacing for c in contours if c.spacing is not None), None)


def export_contours_json(contours: list[Contour], path, *, shape: tuple[int, int] | None = None,
                         spacing=None, extra: dict | None = None) -> Path:
    """Write contours with their areas, perimeters, hole flags and parents to a JSON file; returns its path."""
    path = Path(path)
    spacing = _spacing_of(contours, spacing)
    doc = {
        "format": CONTOURS_FORMAT,
        "version": CONTOURS_VERSION,
        "coordinates": "(row, col) pixels, pixel centres at integers",
        "shape": None if shape is None else [int(v) for v in shape],
        "spacing_mm": None if spacing is None else list(spacing),
        "contours": [c.to_dict(i) for i, c in enumerate(contours)],
        **(extra or {}),
    }
    path.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    return path


def read_contours_json(path) -> tuple[list[Contour], tuple[int, int] | None]:
    """Contours and image shape from a file written by `export_contours_json`."""
    path = Path(path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    if doc.get("format") != CONTOURS_FORMAT:
        raise ValueError(f"{path}: not an OncoLens contour file (format is {doc.get('format')!r}).")
    spacing = _check_spacing(doc.get("spacing_mm"))
    contours = [
        Contour(points=np.asarray(c["points"], dtype=np.float64).reshape(-1, 2), is_hole=bool(c["is_hole"]),
                area_px=float(c["area_px"]), perimeter_px=float(c["perimeter_px"]), parent=c.get("parent"),
                area_mm2=c.get("area_mm2"), perimeter_mm=c.get("perimeter_mm"), spacing=spacing)
        for c in doc["contours"]
    ]
    shape = doc.get("shape")
    return contours, None if shape is None else (int(shape[0]), int(shape[1]))


def export_contours_csv(contours: list[Contour], path, *, spacing=None) -> Path:
    """One row per contour point: contour_id, point_index, row, col (+ row_mm, col_mm with spacing), is_hole."""
    path = Path(path)
    spacing = _spacing_of(contours, spacing)
    header = ["contour_id", "point_index", "row", "col"]
    if spacing is not None:
        header += ["row_mm", "col_mm"]
    header.append("is_hole")
    with open_csv(path) as fh:
        writer = csv_writer(fh)
        writer.writerow(header)
        for cid, contour in enumerate(contours):
            for k, (r, c) in enumerate(contour.points):
                row = [cid, k, f"{r:.4f}", f"{c:.4f}"]
                if spacing is not None:
                    row += [f"{r * spacing[0]:.5f}", f"{c * spacing[1]:.5f}"]
                row.append(int(contour.is_hole))
                writer.writerow(row)
    return path
