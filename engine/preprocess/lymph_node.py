"""Model input for MFI-FFP: three aligned node images -> one (3M, S, S) tensor, driven by the card.

WLI gets automatic background removal (the paper removed the placement cloth by hand in Photoshop);
PCI keeps its background, as in the paper, so the node edge and the overlay around it survive.
FI is grey: it is scaled to [0, 1] and replicated to three channels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engine.io.images import ImageReadError, validate_image_array
from engine.preprocess.common import grey_to_rgb, normalise_channels, to_float_unit

NODE_MODALITIES = ("WLI", "FI", "PCI")
BOX_ORDER = ("PCI", "WLI", "FI")
LEGACY_BOX_ORDER = ("WLI", "FI", "PCI")  # cards without a box_order entry


CROP_MODES = ("node", "none")  # a node-centred square, or the whole image (the paper's resize)
HEATMAP_TAPER = 0.12  # share of the crop's side over which heatmaps fade out at its border (crop 'node' only)


def preprocessing_constants(input_size: int, crop_scale: float = 1.5, crop: str = "node") -> dict:
    """What the card records; the predictor and the training loop both read these.

    crop 'none' is the paper's preprocessing: the whole image "adjusted to 224 x 224" (zero-padded to square
    first, so a non-square image is not distorted; the paper's images' aspect ratio is not stated). crop 'node'
    is ours: a square of crop_scale x the node's extent around the node, which keeps the node's detail at a
    small input size but removes the node's absolute size from what the net sees."""
    if crop not in CROP_MODES:
        raise ValueError(f"crop must be one of {', '.join(CROP_MODES)}, got {crop!r}.")
    common = {
        "kind": "lymph_node_trimodal",
        "input_size": input_size,
        "crop": crop,
        "wli_background": "auto",
        "wli_background_method": ("distance in Lab from the cloth colour (median of a border strip of "
                                  "`border_fraction`), Otsu threshold, largest component, holes filled"),
        "border_fraction": 0.06,
        "pci_background": "kept",
        "fi": "grey scaled by bit depth, replicated to RGB",
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
    }
    if crop == "none":
        return {**common, "crop_method": ("whole image, zero-padded to square and resized to input_size (the "
                                          "paper's preprocessing); Grad-CAM maps cover the whole image")}
    return {
        **common,
        "crop_scale": crop_scale,
        "box_order": list(BOX_ORDER),
        "crop_method": ("square centred on the foreground of the first of box_order the model reads (PCI shows the "
                        "node and the tracer around it, WLI the node, FI its glow), side = crop_scale x that "
                        "foreground's larger extent, zero-padded past the image edge; one box for all modalities "
                        "(our choice: the paper resizes the whole image)"),
        "heatmap_taper": HEATMAP_TAPER,
        "heatmap_taper_method": ("Grad-CAM maps exist only inside the crop (the net saw nothing else) and are 0 "
                                 "outside it; inside, they are multiplied by a raised cosine that falls from 1 to 0 "
                                 "over the outer heatmap_taper of the crop's side, so the crop's edge is not drawn "
                                 "as a hard line. Evidence in that band is shown attenuated."),
    }


def heatmap_taper(constants: dict) -> float:
    """The fade-out band of a card's heatmaps at the crop border (0: none). Crop cards made before the card
    recorded it used 0.12."""
    if constants.get("crop") != "node":
        return 0.0
    return float(constants.get("heatmap_taper", HEATMAP_TAPER))


MASK_WORK_SIDE = 2048  # larger images are masked at this size and the mask scaled back (memory)


def foreground_mask(rgb: np.ndarray, border_fraction: float = 0.06) -> np.ndarray:
    """Node-vs-cloth mask of a white-light image whose border shows the placement cloth.

    The cloth colour is the median Lab colour of a border strip; each pixel's distance from it is
    smoothed and thresholded with Otsu; the largest connected component with holes filled is kept.
    An image larger than MASK_WORK_SIDE a side is masked on an area-averaged copy (a node spans hundreds of
    pixels, so nothing is lost) and the mask is scaled back; smaller images are masked as they are."""
    h, w = rgb.shape[:2]
    if max(h, w) > MASK_WORK_SIDE:
        scale = MASK_WORK_SIDE / max(h, w)
        small = cv2.resize(np.ascontiguousarray(rgb), (max(1, round(w * scale)), max(1, round(h * scale))),
                           interpolation=cv2.INTER_AREA)
        mask = foreground_mask(small, border_fraction).astype(np.uint8)
        return cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    unit8 = rgb if rgb.dtype == np.uint8 else np.clip(to_float_unit(rgb) * 255, 0, 255).astype(np.uint8)
    lab = cv2.cvtColor(np.ascontiguousarray(unit8), cv2.COLOR_RGB2LAB).astype(np.float32)
    h, w = lab.shape[:2]
    b = max(1, int(round(border_fraction * min(h, w))))
    border = np.concatenate([lab[:b].reshape(-1, 3), lab[-b:].reshape(-1, 3), lab[:, :b].reshape(-1, 3),
                             lab[:, -b:].reshape(-1, 3)])
    cloth = np.median(border, axis=0)
    # Chroma differences matter more than lightness: folds and lighting change L*, not the cloth's hue.
    dist = np.sqrt(0.25 * (lab[..., 0] - cloth[0]) ** 2 + ((lab[..., 1:] - cloth[1:]) ** 2).sum(-1))
    dist = cv2.GaussianBlur(dist, (0, 0), max(1.0, min(h, w) / 150))
    scaled = np.clip(dist / max(float(dist.max()), 1e-6) * 255, 0, 255).astype(np.uint8)
    _, binary = cv2.threshold(scaled, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if n <= 1:
        return np.ones((h, w), bool)  # nothing separates from the cloth: keep the whole image
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    mask = (labels == largest).astype(np.uint8)
    flood = mask.copy()
    cv2.floodFill(flood, np.zeros((h + 2, w + 2), np.uint8), (0, 0), 1)  # fill holes: outside reached from a corner
    if mask[0, 0]:
        return mask.astype(bool)
    return (mask | (1 - flood)).astype(bool)


def check_node_images(images: dict[str, np.ndarray], modalities: list[str] | tuple[str, ...]) -> tuple[int, int]:
    """Every needed modality present, valid and of one size; returns (H, W). Errors name what to fix."""
    missing = [m for m in modalities if m not in images]
    if missing:
        raise ImageReadError(f"The model needs {', '.join(modalities)} images; missing: {', '.join(missing)}.")
    sizes = {m: validate_image_array(np.asarray(images[m]), f"{m} image").shape[:2] for m in modalities}
    if len(set(sizes.values())) > 1:
        listing = ", ".join(f"{m} {h}x{w}" for m, (h, w) in sizes.items())
        raise ImageReadError(f"The node's images are not aligned: sizes differ ({listing}). The three modes must "
                             "come from one acquisition at one resolution.")
    return next(iter(sizes.values()))


@dataclass(frozen=True)
class SquareBox:
    """A square in original pixel coordinates (top/left may be negative: zero padding) that became the input."""

    height: int  # original image size
    width: int
    top: int
    left: int
    side: int
    input_size: int

    def to_original(self, array: np.ndarray) -> np.ndarray:
        """Map an (S, S) map in model-input space onto the original (H, W) grid; outside the box is 0."""
        square = cv2.resize(array.astype(np.float32), (self.side, self.side), interpolation=cv2.INTER_LINEAR)
        out = np.zeros((self.height, self.width), np.float32)
        y0, x0 = max(self.top, 0), max(self.left, 0)
        y1, x1 = min(self.top + self.side, self.height), min(self.left + self.side, self.width)
        if y1 > y0 and x1 > x0:
            out[y0:y1, x0:x1] = square[y0 - self.top:y1 - self.top, x0 - self.left:x1 - self.left]
        return out

    def taper(self, fraction: float = HEATMAP_TAPER) -> np.ndarray:
        """(H, W) weights: 1 inside the box, falling smoothly (raised cosine) to 0 over its outer `fraction`
        and 0 outside it. Heatmaps are multiplied by it so the crop's border is not drawn as a hard edge."""
        n = self.input_size
        ramp = np.clip(np.minimum(np.arange(n), np.arange(n)[::-1]) / max(1.0, fraction * n), 0.0, 1.0)
        ramp = 0.5 - 0.5 * np.cos(np.pi * ramp)
        return self.to_original(np.outer(ramp, ramp).astype(np.float32))

    def cut(self, image: np.ndarray) -> np.ndarray:
        """The box's pixels of an (H, W[, C]) image, zero where the box leaves the image."""
        out = np.zeros((self.side, self.side) + image.shape[2:], image.dtype)
        y0, x0 = max(self.top, 0), max(self.left, 0)
        y1, x1 = min(self.top + self.side, self.height), min(self.left + self.side, self.width)
        if y1 > y0 and x1 > x0:
            out[y0 - self.top:y1 - self.top, x0 - self.left:x1 - self.left] = image[y0:y1, x0:x1]
        return out


def box_source(modalities, order=None) -> str:
    """Which image finds the node for the crop: the first of `order` (the card's box_order) the model reads.

    The default puts PCI first: its overlay shows the node and the tracer that spilled around it, and a
    box found on WLI (the node alone) cut off that spill, the PCI branch's evidence (phantom ablation: the
    WLI+PCI model fell from AUC 0.70 to 0.55). Cards made before box_order existed used WLI, FI, PCI."""
    return next(m for m in (order or LEGACY_BOX_ORDER) if m in modalities)


def node_box(images: dict[str, np.ndarray], modalities, constants: dict, shape: tuple[int, int]) -> SquareBox:
    """The square the net sees: the whole image padded to square, or (crop 'node') a node-centred crop
    found on the `box_source` of `modalities`."""
    h, w = shape
    size = int(constants["input_size"])
    if constants.get("crop") != "node":
        side = max(h, w)
        return SquareBox(h, w, -((side - h) // 2), -((side - w) // 2), side, size)
    source = box_source(modalities, constants.get("box_order"))
    if source == "WLI":
        mask = foreground_mask(np.asarray(images["WLI"]), float(constants.get("border_fraction", 0.06)))
    elif source == "FI":
        grey = np.asarray(images["FI"]).astype(np.float32)
        grey = cv2.GaussianBlur(grey if grey.ndim == 2 else grey.mean(axis=2), (0, 0), max(1.0, min(h, w) / 100))
        scaled = np.clip((grey - grey.min()) / max(float(np.ptp(grey)), 1e-6) * 255, 0, 255).astype(np.uint8)
        mask = cv2.threshold(scaled, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[1] > 0
    else:
        mask = foreground_mask(np.asarray(images["PCI"]), float(constants.get("border_fraction", 0.06)))
    ys, xs = np.nonzero(mask)
    if len(ys) == 0 or mask.all():
        side = max(h, w)
        return SquareBox(h, w, -((side - h) // 2), -((side - w) // 2), side, size)
    extent = max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1)
    side = max(8, int(round(float(constants.get("crop_scale", 2.0)) * extent)))
    cy, cx = (ys.min() + ys.max() + 1) / 2.0, (xs.min() + xs.max() + 1) / 2.0
    return SquareBox(h, w, int(round(cy - side / 2)), int(round(cx - side / 2)), side, size)


def unit_image(modality: str, image: np.ndarray, constants: dict, bit_depth: int | None = None,
               box: SquareBox | None = None) -> np.ndarray:
    """[0, 1] float RGB image of one modality as the net sees it before resizing; with `box`, only the box's
    pixels (cut before the conversion to floats, which gives the same values for a fraction of the memory)."""
    image = np.asarray(image)
    cut = box.cut if box is not None else (lambda a: a)
    if modality == "WLI":
        if image.ndim != 3:
            raise ImageReadError("WLI image: a white-light image must be RGB, got a grey image.")
        if constants.get("wli_background") == "auto":
            mask = foreground_mask(image, float(constants.get("border_fraction", 0.06)))  # on the whole image
            return to_float_unit(cut(image)) * cut(mask)[..., None]
        return to_float_unit(cut(image), bit_depth)
    if modality == "FI":
        grey = image if image.ndim == 2 else image.mean(axis=2).astype(image.dtype)
        return grey_to_rgb(to_float_unit(cut(grey), bit_depth))
    if modality == "PCI":
        if image.ndim != 3:
            raise ImageReadError("PCI image: a pseudo-color image must be RGB, got a grey image.")
        return to_float_unit(cut(image), bit_depth)
    raise ValueError(f"Unknown node modality {modality!r}; expected one of {NODE_MODALITIES}.")


def node_units(images: dict[str, np.ndarray], modalities: list[str] | tuple[str, ...], constants: dict,
               bit_depths: dict[str, int] | None = None, box_modalities=None) -> tuple[np.ndarray, SquareBox]:
    """(S, S, 3M) float32 [0, 1]: the modalities cut with one shared box and resized, stacked along channels.

    The box is found as a model reading `box_modalities` (default: `modalities`) would find it."""
    shape = check_node_images(images, modalities)
    box = node_box(images, box_modalities or modalities, constants, shape)
    size = box.input_size
    parts = []
    for m in modalities:
        unit = unit_image(m, images[m], constants, (bit_depths or {}).get(m), box)
        interp = cv2.INTER_AREA if box.side > size else cv2.INTER_LINEAR
        parts.append(cv2.resize(unit, (size, size), interpolation=interp))
    return np.concatenate(parts, axis=2).astype(np.float32), box


def standardise(units: np.ndarray, constants: dict) -> np.ndarray:
    """(S, S, 3M) [0, 1] -> (3M, S, S) standardised with the card's per-channel mean/std."""
    m = units.shape[2] // 3
    return normalise_channels(units, list(constants["mean"]) * m, list(constants["std"]) * m)


def preprocess_node(images: dict[str, np.ndarray], modalities: list[str] | tuple[str, ...], constants: dict,
                    bit_depths: dict[str, int] | None = None) -> tuple[np.ndarray, SquareBox]:
    units, geometry = node_units(images, modalities, constants, bit_depths)
    return standardise(units, constants), geometry
