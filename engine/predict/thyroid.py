"""DGFNet predictor: P(central LNM) and P(lateral LNM) of one thyroid nodule from its US image and CT slice.

Two models run (the paper trains one per site: central on ResNet34 encoders, lateral on ResNet18), each on the
nodule crops cut around the boxes stored with the images (ImageMeta.extra['roi']). One nodule is seen alone:
the DGF nodal branch gets a batch of one (A^N = [1]), so a result never depends on other patients; the cards
report how far this is from the paper's batch-of-30 evaluation.

Outputs per case: both tasks against their cards' thresholds; the central model's nodule masks and boundaries
('US/nodule', 'US/boundary', 'CT/nodule', 'CT/edges') on the original image grids; with `explain`, per site and
modality integrated-gradients maps ('<task>/<US|CT>': |attribution| scaled to [0, 1]; '<task>/<US|CT>.signed':
0.5 + 0.5 * attribution / max|attribution|, above 0.5 pushes towards LNM) and Grad-CAM of the last encoder stage
('<task>/<US|CT>.gradcam'); measures '<task>.share_US' / '.share_CT' (each modality's share of the total
attribution), '<task>.ig_sum_US' / '.ig_sum_CT' and '<task>.ig_completeness_error'.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

import engine.nets.dgfnet  # noqa: F401  (registers the dgfnet family)
from engine.data import HU, ModalityImage, Prediction
from engine.device import describe_device, select_device
from engine.explain.attribution import IGResult, gradcam_layer, integrated_gradients
from engine.io.us_ct import UsCtReadError, us_grey
from engine.predict.base import Predictor
from engine.preprocess.us_ct import CT, US, Crop, ct_crop_unit, image_roi, to_input, us_crop_unit
from engine.registry import ModelCard, create_model, is_installed

FAMILY = "dgfnet"
SITES = ("central_lnm", "lateral_lnm")
SITE_TITLES = {"central_lnm": "Central LNM", "lateral_lnm": "Lateral LNM"}
MAP_NAMES = {"US/mask": "US/nodule", "US/boundary": "US/boundary", "CT/mask": "CT/nodule", "CT/edges": "CT/edges"}


def card_name(site: str) -> str:
    return f"dgfnet_{site.split('_')[0]}"


@dataclass
class NoduleInputs:
    """One nodule ready for a card: the two net inputs (3, S, S), the crops they came from, warnings."""

    us: np.ndarray
    ct: np.ndarray
    us_crop: Crop
    ct_crop: Crop
    us_shape: tuple[int, int]
    ct_shape: tuple[int, int]
    overlay_pixels: int


def checked_images(images: Mapping[str, ModalityImage]) -> tuple[np.ndarray, np.ndarray]:
    """The US as uint8 grey and the CT in HU, or an error naming the image and the fix."""
    us, ct = images[US], images[CT]
    where_us = f"US image {us.meta.file_name or ''}".strip()
    where_ct = f"CT image {ct.meta.file_name or ''}".strip()
    if us.axes not in ("YX", "YXC"):
        raise UsCtReadError(f"{where_us}: expected one ultrasound frame (YX or YXC), got axes {us.axes}.")
    if us.meta.units == HU:
        raise UsCtReadError(f"{where_us}: this image is in HU, i.e. a CT; put the ultrasound capture in the US slot.")
    grey = us_grey(us.array, where_us)
    if ct.axes != "YX":
        raise UsCtReadError(f"{where_ct}: expected one CT slice (YX), got axes {ct.axes}; choose the slice first.")
    if ct.meta.units != HU:
        raise UsCtReadError(f"{where_ct}: the CT is not in Hounsfield units (units {ct.meta.units!r}); read it from "
                            "DICOM with its rescale tags, or give the slice in HU.")
    return grey, ct.array


def nodule_inputs(images: Mapping[str, ModalityImage], constants: Mapping) -> NoduleInputs:
    grey, hu = checked_images(images)
    us_meta, ct_meta = images[US].meta, images[CT].meta
    us_box = image_roi(us_meta.extra, f"US image {us_meta.file_name or ''}".strip(), grey.shape)
    ct_box = image_roi(ct_meta.extra, f"CT image {ct_meta.file_name or ''}".strip(), hu.shape)
    region = us_meta.extra.get("us_region")
    bounds = None if region is None else (region["x0"], region["y0"], region["x1"], region["y1"])
    us_unit, us_crop, overlay = us_crop_unit(grey, us_box, constants, bounds)
    ct_unit, _, ct_crop = ct_crop_unit(hu, ct_box, constants)
    return NoduleInputs(to_input(us_unit, constants), to_input(ct_unit, constants), us_crop, ct_crop, grey.shape,
                        hu.shape, overlay)


class LogitOnly(torch.nn.Module):
    """(us, ct) -> (B,) LNM logit of a DGFNet (what IG and Grad-CAM differentiate)."""

    def __init__(self, net) -> None:
        super().__init__()
        self.net = net

    def forward(self, us: torch.Tensor, ct: torch.Tensor) -> torch.Tensor:
        return self.net(us, ct)


class DGFNetPredictor(Predictor):
    """Both sites' DGFNet models on one nodule's US + CT; IG and Grad-CAM per site and modality."""

    family = FAMILY
    modalities = (US, CT)

    def __init__(self, device: str | torch.device | None = None, backend: str = "torch",
                 root: Path | str | None = None, nets: Mapping[str, tuple[torch.nn.Module, ModelCard]] | None = None,
                 sites: Sequence[str] = SITES) -> None:
        """`nets` = {site: (module, card)} runs nets already in memory (training evaluates through here)."""
        self.device = device if isinstance(device, torch.device) else select_device(device)
        self.nets = dict(nets) if nets is not None else {s: create_model(card_name(s), root=root) for s in sites}
        self.sites = tuple(s for s in SITES if s in self.nets)
        self.variant = "+".join(s.split("_")[0] for s in self.sites)
        for net, _card in self.nets.values():
            net.to(self.device).eval()
            net.set_nodule_context("single")
        self.backend = backend
        self._onnx = {}
        if backend == "onnx":
            from engine.fastpath import OnnxRunner
            from engine.nets.dgfnet import ExportWrapper

            for site, (net, card) in self.nets.items():
                sizes = card.preprocessing["size"]
                example = (torch.zeros(1, 3, sizes[US], sizes[US]), torch.zeros(1, 3, sizes[CT], sizes[CT]))
                self._onnx[site] = OnnxRunner.for_model(ExportWrapper(net), card, example)
        elif backend != "torch":
            raise ValueError(f"Unknown backend {backend!r}: use 'torch' or 'onnx'.")

    @property
    def cards(self) -> dict[str, ModelCard]:
        return {site: card for site, (_net, card) in self.nets.items()}

    def weight_hashes(self) -> dict[str, str]:
        return {card.name: card.weights.get("sha256", "") for _net, card in self.nets.values()}

    def inputs_for(self, images: Mapping[str, ModalityImage], site: str) -> NoduleInputs:
        return nodule_inputs(self.require(images), self.cards[site].preprocessing)

    def run(self, site: str, x: NoduleInputs) -> tuple[float, dict[str, np.ndarray]]:
        """(logit, {map name: (S, S) probability}) of one nodule for one site, single-nodule context."""
        if site in self._onnx:
            outputs = self._onnx[site].run_all(x.us[None], x.ct[None])
            keys = sorted(MAP_NAMES)
            return float(outputs[0][0]), {k: 1 / (1 + np.exp(-o[0, 0])) for k, o in zip(keys, outputs[1:], strict=True)}
        net = self.nets[site][0]
        with torch.inference_mode():
            logit, maps = net.forward_all(torch.from_numpy(x.us)[None].to(self.device),
                                          torch.from_numpy(x.ct)[None].to(self.device))
        return float(logit[0]), {k: torch.sigmoid(v)[0, 0].float().cpu().numpy() for k, v in maps.items()}

    def score(self, images: Mapping[str, ModalityImage], site: str) -> float:
        """P(LNM at `site`) of one nodule without explanations (evaluation scores through here)."""
        logit, _ = self.run(site, self.inputs_for(images, site))
        return float(1 / (1 + np.exp(-logit)))

    def baseline(self, site: str, x: NoduleInputs) -> tuple[torch.Tensor, torch.Tensor]:
        """The card's IG baseline: constant-intensity US and CT crops at the grey levels the card stores."""
        card = self.cards[site]
        spec = card.extra.get("ig_baseline", {})
        constants = card.preprocessing
        us = to_input(np.full(x.us.shape[1:], float(spec.get("us_value", 0.0)), np.float32), constants)
        ct = to_input(np.full(x.ct.shape[1:], float(spec.get("ct_value", 0.0)), np.float32), constants)
        return torch.from_numpy(us)[None].to(self.device), torch.from_numpy(ct)[None].to(self.device)

    def explain(self, site: str, x: NoduleInputs) -> tuple[IGResult, dict[str, np.ndarray]]:
        """IG (with the card's baseline, 50 Gauss-Legendre steps) and Grad-CAM per modality of one site."""
        net, card = self.nets[site]
        forward = LogitOnly(net)
        inputs = (torch.from_numpy(x.us)[None].to(self.device), torch.from_numpy(x.ct)[None].to(self.device))
        ig = integrated_gradients(forward, inputs, self.baseline(site, x),
                                  int(card.extra.get("ig_baseline", {}).get("n_steps", 50)))
        cams = {m: gradcam_layer(forward, tuple(t.clone() for t in inputs), net, layer, getattr(x, m.lower()).shape[1:])
                for m, layer in card.gradcam_layers.items()}
        return ig, cams

    def predict(self, images: Mapping[str, ModalityImage], *, explain: bool = True) -> Prediction:
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        pred = self.new_prediction(describe_device(self.device))
        if self._onnx:
            pred.notes.append("ONNX Runtime (integrated gradients and Grad-CAM run in PyTorch)")
        prepared = {}
        for site in self.sites:
            key = json.dumps(self.cards[site].preprocessing, sort_keys=True)
            prepared.setdefault(key, self.inputs_for(images, site))
            prepared[site] = prepared[key]
        timings["preprocess"] = (time.perf_counter() - t0) * 1e3
        first = prepared[self.sites[0]]
        if first.overlay_pixels:
            pred.notes.append(f"{first.overlay_pixels} burned-in overlay pixels inside the ultrasound area were "
                              "inpainted before cropping")
        t = time.perf_counter()
        for i, site in enumerate(self.sites):
            x, card = prepared[site], self.cards[site]
            logit, maps = self.run(site, x)
            p = float(1 / (1 + np.exp(-logit)))
            threshold = card.threshold(site)
            pred.set_result(site, card.labels[1] if p >= threshold else card.labels[0], p, threshold)
            if i == 0:  # the masks of the first (central) model
                for key, name in MAP_NAMES.items():
                    crop, shape = (x.us_crop, x.us_shape) if key.startswith(US) else (x.ct_crop, x.ct_shape)
                    pred.masks[name] = crop.to_original(maps[key], shape) >= 0.5
        timings["inference"] = (time.perf_counter() - t) * 1e3
        if explain:
            t = time.perf_counter()
            for site in self.sites:
                self._add_explanations(pred, site, prepared[site])
            timings["explain"] = (time.perf_counter() - t) * 1e3
        timings["total"] = (time.perf_counter() - t0) * 1e3
        pred.timings_ms = timings
        return pred

    def _add_explanations(self, pred: Prediction, site: str, x: NoduleInputs) -> None:
        ig, cams = self.explain(site, x)
        for m, attribution, share, total in zip((US, CT), ig.maps, ig.shares(), ig.sums, strict=True):
            crop, shape = (x.us_crop, x.us_shape) if m == US else (x.ct_crop, x.ct_shape)
            smooth = cv2.GaussianBlur(attribution, (0, 0), max(1.0, attribution.shape[0] / 64))
            peak = float(np.abs(smooth).max()) or 1.0
            pred.heatmaps[f"{site}/{m}"] = np.clip(crop.to_original(np.abs(smooth) / peak, shape), 0, 1)
            signed = crop.to_original(smooth / peak, shape)
            pred.heatmaps[f"{site}/{m}.signed"] = np.clip(0.5 + 0.5 * signed, 0, 1)
            pred.heatmaps[f"{site}/{m}.gradcam"] = np.clip(crop.to_original(cams[m], shape), 0, 1)
            pred.measures[f"{site}.share_{m}"] = share
            pred.measures[f"{site}.ig_sum_{m}"] = total
        pred.measures[f"{site}.ig_completeness_error"] = ig.completeness_error
        pred.measures[f"{site}.ig_logit_minus_baseline"] = ig.delta


def installed_sites(root: Path | str | None = None) -> list[str]:
    """The sites whose DGFNet card is installed."""
    return [site for site in SITES if is_installed(card_name(site), root)]
