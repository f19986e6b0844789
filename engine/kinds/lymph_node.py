"""The lymph-node kind: one excised node imaged as white light (WLI), NIR-I fluorescence (FI) and the
pseudo-color overlay (PCI), pixel-aligned; one MFI-FFP net reads the modes present (tri-modal when all are).

Loose node images are recognised by their number (three) or by node-only words in their names; each file's
mode comes from its name, then its content (grey means FI), and the user confirms in the GUI.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.cases.admission import admit_case
from engine.cases.kinds import CaseKind, ModalityRole, TaskInfo, register_kind
from engine.cases.model import Case
from engine.data import AU, RGB, YX, YXC, PredictionSummary, model_id
from engine.io.images import ImageReadError, read_image

KIND = "lymph_node"
FAMILY = "mfi_ffp"
TASK = "metastatic"
WLI, FI, PCI = "WLI", "FI", "PCI"
NODE_MODALITIES = (WLI, FI, PCI)  # display order; the keys MFI-FFP's cards and predictor use
NODE_MODALITY_TITLES = {WLI: "White light (WLI)", FI: "NIR-I fluorescence (FI)", PCI: "Pseudo-color (PCI)"}
# Words in a file name that say which mode of a node it holds. Only the NODE_ONLY ones also say "this is a
# lymph node, not a glioma specimen" (wl, fl, nir, white, color already mean FL/WL for specimens).
_NODE_WORDS = {
    WLI: ("wli", "wl", "white", "whitelight", "bright", "brightfield", "bf"),
    FI: ("fi", "nir", "niri", "fluo", "fluor", "fluorescence", "fluorescent", "icg", "fl"),
    PCI: ("pci", "pseudo", "pseudocolor", "pseudocolour", "overlay", "merge", "merged", "color", "colour"),
}
_NODE_ONLY_WORDS = ("wli", "fi", "icg", "pci", "pseudo", "pseudocolor", "pseudocolour", "overlay", "merge", "merged")


def _name_words(path: str | Path) -> list[str]:
    """Letter runs of the file name: 'Node07_WLI-2.png' -> ['node', 'wli']."""
    return re.findall(r"[a-z]+", Path(path).stem.lower())


def _name_modalities(path: str | Path) -> set[str]:
    words = _name_words(path)
    return {m for m, keys in _NODE_WORDS.items() if any(w in keys for w in words)}


def _is_grey(image: np.ndarray) -> bool:
    """Grey, or RGB whose three channels are equal (grey saved as color)."""
    if image.ndim == 2:
        return True
    sample = image[::4, ::4]
    return bool(np.array_equal(sample[..., 0], sample[..., 1]) and np.array_equal(sample[..., 1], sample[..., 2]))


def guess_node_modality(path: str | Path, image: np.ndarray | None = None) -> str | None:
    """WLI, FI or PCI for one node image, or None when neither its name nor its content tells.

    Name first ('wli', 'white', 'bright' -> WLI; 'fi', 'nir', 'fluo', 'icg' -> FI; 'pci', 'pseudo', 'overlay',
    'merge', 'color' -> PCI; a pseudo-color overlay wins when a name holds words of several modes), then
    content: a grey image is FI. An RGB image without a telling name stays None (WLI and PCI are both RGB).
    """
    named = _name_modalities(path)
    if PCI in named:
        return PCI
    if len(named) == 1:
        return next(iter(named))
    if image is not None and _is_grey(image):
        return FI
    return None


def looks_like_node_images(paths: list[str | Path]) -> bool:
    """True for three image files (a specimen has at most two) or names with node-only words (wli, fi, pci…)."""
    return len(paths) == 3 or any(w in _NODE_ONLY_WORDS for p in paths for w in _name_words(p))


def node_mapping_from_names(paths: list[str | Path]) -> dict[str, Path] | None:
    """{modality: path} when every file's name alone names a different mode; None when any is unclear."""
    mapping: dict[str, Path] = {}
    for path in paths:
        modality = guess_node_modality(path)
        if modality is None or modality in mapping:
            return None
        mapping[modality] = Path(path)
    return mapping or None


@dataclass
class NodeFile:
    """One image offered as a node mode: what it is (size, grey or RGB) and the mode OncoLens guesses for it."""

    path: Path
    height: int
    width: int
    grey: bool
    bit_depth: int
    guess: str | None = None
    reason: str = ""  # why the guess, in words: "file name", "grey image", "the only RGB mode left"

    @property
    def description(self) -> str:
        return f"{self.width}×{self.height} {'grey' if self.grey else 'RGB'} {self.bit_depth}-bit"


def describe_node_files(paths: list[str | Path]) -> list[NodeFile]:
    """Read up to three images and guess each one's mode (name, then content, then elimination).

    Two files guessed as the same mode both stay unassigned, so that the user decides."""
    paths = [Path(p) for p in paths]
    if not 1 <= len(paths) <= len(NODE_MODALITIES):
        raise ImageReadError(
            f"A lymph node has at most {len(NODE_MODALITIES)} images (WLI, FI, PCI); {len(paths)} files were chosen. "
            "Pick one to three images of the same node."
        )
    files = []
    for path in paths:
        array, meta = read_image(path)
        modality, reason = guess_node_modality(path), "file name"
        if modality is None:
            modality = guess_node_modality(path, array)
            reason = "grey image" if modality else ""
        files.append(NodeFile(path, array.shape[0], array.shape[1], _is_grey(array), meta.bit_depth, modality, reason))
    for modality in NODE_MODALITIES:
        same = [f for f in files if f.guess == modality]
        if len(same) > 1:
            for f in same:
                f.guess, f.reason = None, f"several files look like {modality}"
    taken = {f.guess for f in files if f.guess}
    free_rgb = [m for m in (WLI, PCI) if m not in taken]
    open_rgb = [f for f in files if f.guess is None and not f.grey and not f.reason]
    if len(open_rgb) == 1 and len(free_rgb) == 1:
        open_rgb[0].guess, open_rgb[0].reason = free_rgb[0], f"the only RGB mode left ({free_rgb[0]})"
    return files


def node_assignment_problems(files: list[NodeFile], assignment: dict[Path, str | None]) -> list[str]:
    """What stops `assignment` ({file: mode or None for unused}) from making a node case; empty when it is fine."""
    problems = []
    used = {path: m for path, m in assignment.items() if m}
    if not used:
        problems.append("Assign at least one file to WLI, FI or PCI.")
    by_path = {f.path: f for f in files}
    for modality in NODE_MODALITIES:
        holders = [p.name for p, m in used.items() if m == modality]
        if len(holders) > 1:
            problems.append(f"{' and '.join(holders)} are both assigned to {modality}; each mode takes one image.")
    for path, modality in used.items():
        problem = _type_problem(path.name, modality, by_path[path].grey)
        if problem:
            problems.append(problem)
    sizes = {(by_path[p].width, by_path[p].height) for p in used}
    if len(sizes) > 1:
        problems.append(_size_problem({p.name: (by_path[p].width, by_path[p].height) for p in used}))
    return problems


def _type_problem(name: str, modality: str, grey: bool) -> str | None:
    if modality in (WLI, PCI) and grey:
        other = "white-light photo" if modality == WLI else "pseudo-color overlay"
        return (f"{name} is assigned to {modality} but it is a grey image; {modality} must be an RGB {other}. "
                "If it is the fluorescence image, assign it to FI.")
    if modality == FI and not grey:
        return (f"{name} is assigned to FI but it is a color image; FI (NIR-I fluorescence) must be grey. "
                "If it is the pseudo-color overlay, assign it to PCI; if it is the photo, to WLI.")
    return None


def _size_problem(sizes: dict[str, tuple[int, int]]) -> str:
    listing = ", ".join(f"{name} is {w}×{h}" for name, (w, h) in sizes.items())
    return (f"The node's images are not the same size ({listing}). WLI, FI and PCI must be pixel-aligned: "
            "export all of them from one acquisition at one resolution, or crop/resample them to one size first.")


def case_from_node_images(mapping: dict[str, str | Path], case_id: str | None = None) -> Case:
    """A lymph-node case from {'WLI' | 'FI' | 'PCI': image file}; a missing mode is allowed (the matching uni- or
    bi-modal model runs). Wrong types (a grey WLI, a color FI) and mismatched sizes are errors naming the files."""
    unknown = sorted(set(mapping) - set(NODE_MODALITIES))
    if unknown:
        raise ValueError(f"Unknown node mode(s) {', '.join(unknown)}; use {', '.join(NODE_MODALITIES)}.")
    if not mapping:
        raise ImageReadError("No node image given: assign at least one file to WLI, FI or PCI.")
    paths = {m: Path(p) for m, p in mapping.items()}
    seen: dict[Path, str] = {}
    for modality, path in paths.items():
        if path in seen:
            raise ImageReadError(f"{path.name} is assigned to both {seen[path]} and {modality}; each mode needs its "
                                 "own image.")
        seen[path] = modality
    case = Case(id=case_id or Case.new_id("node"), kind=KIND)
    for modality in NODE_MODALITIES:
        if modality not in paths:
            continue
        path = paths[modality]
        array, meta = read_image(path)
        problem = _type_problem(path.name, modality, _is_grey(array))
        if problem:
            raise ImageReadError(f"{path}: {problem}")
        if modality == FI and array.ndim == 3:
            array = np.ascontiguousarray(array[..., 0])  # grey saved as RGB: keep one channel
        meta.units = AU if modality == FI else RGB
        case.add_image(modality, array, meta)
    sizes = {paths[m].name: (img.array.shape[1], img.array.shape[0]) for m, img in case.images.items()}
    if len(set(sizes.values())) > 1:
        raise ImageReadError(_size_problem(sizes))
    case.notes = "Opened from " + ", ".join(f"{m}: {paths[m]}" for m in NODE_MODALITIES if m in paths)
    return admit_case(case, LYMPH_NODE)


def open_node_into_store(mapping: dict[str, str | Path], store) -> list[str]:
    """Build a node case from `mapping` (see case_from_node_images), save it as a bundle, add it to the store."""
    from engine.kinds.opening import save_or_find_case

    return [save_or_find_case(case_from_node_images(mapping), store)[0]]


class LymphNodeKind(CaseKind):
    name = KIND
    title = "Lymph node"
    roles = (ModalityRole(WLI, NODE_MODALITY_TITLES[WLI], (YXC,), RGB),
             ModalityRole(FI, NODE_MODALITY_TITLES[FI], (YX,), AU),
             ModalityRole(PCI, NODE_MODALITY_TITLES[PCI], (YXC,), RGB))
    tasks = (TaskInfo(TASK, "LNM", "metastatic vs benign", ("benign", "metastatic")),)

    def make_predictor(self, modalities: tuple[str, ...], method: str | None = None):
        from engine.predict.lymph_node import MFIFFPPredictor

        return MFIFFPPredictor(modalities)

    def primary_model(self) -> str:
        return model_id(FAMILY, "+".join(NODE_MODALITIES))

    def assess(self, images):
        """The standard checks, and a node against the cloth in the white-light image (as preprocessing finds it)."""
        from engine.metrics.image_quality import Finding
        from engine.preprocess.lymph_node import foreground_mask

        findings = super().assess(images)
        if WLI in images and not any(f.blocking for f in findings):
            share = float(foreground_mask(images[WLI].array).mean())
            if share < 0.005 or share > 0.98:
                findings.append(Finding(WLI, "no node found against the cloth" if share < 0.005 else
                                        "the node seems to fill the whole image; check the framing", share < 0.005))
        return findings

    def model_title(self, summary: PredictionSummary) -> tuple[str, str]:
        return "MFI-FFP", summary.variant

    def prediction_rank(self, summary: PredictionSummary) -> int:
        """The tri-modal result first, then bi-, then uni-modal ones."""
        return -len([m for m in summary.variant.split("+") if m])

    def cards_label(self) -> str:
        from engine.predict.lymph_node import card_name
        from engine.registry import ModelError, load_card

        try:
            card = load_card(card_name(NODE_MODALITIES))
        except ModelError:
            return f"{FAMILY} not installed"
        return f"{FAMILY} {card.weights['sha256'][:8]}"

    def overlay_panels(self, case: Case, predictions, frame: int | None = None) -> list:
        """Each mode with its branch's Grad-CAM (from the model with most modes), and the fusion-layer Grad-CAM
        on WLI (else PCI, else FI), as the node view shows them."""
        from engine.cases.export_views import OverlayPanel, default_overlay_panels

        ranked = sorted(predictions, key=self.prediction_rank)
        panels = default_overlay_panels(self, case, ranked[:1])
        base = next((m for m in (WLI, PCI, FI) if m in case.images), None)
        fusion = next((p.heatmaps.get(f"{TASK}/fusion") for p in ranked[:1]), None)
        if base is not None and fusion is not None:
            image = case.images[base]
            panels.append(OverlayPanel(f"{base}-fusion", f"Fusion-layer Grad-CAM on {base}", image.array,
                                       image.meta.spacing, fusion, self.heat_colormap, f"{ranked[0].model} fusion"))
        return panels

    def write_demo_cases(self, folder: Path) -> list[Path]:
        from engine.phantoms.lymph_node import write_node_demo_cases

        return write_node_demo_cases(folder)

    def claims_files(self, paths: Sequence[Path]) -> int:
        return 2 if looks_like_node_images(list(paths)) else 0

    def case_from_files(self, paths: Sequence[Path], modality: str | None = None) -> Case:
        if modality:
            if len(paths) != 1:
                raise ImageReadError(f"Only one file can be the node's {modality} image; {len(paths)} were given.")
            return case_from_node_images({modality: paths[0]})
        mapping = node_mapping_from_names(list(paths))
        if mapping is None:
            names = ", ".join(Path(p).name for p in paths)
            raise ImageReadError(
                f"{names}: these look like the images of one lymph node, but their names do not say which is the "
                "white-light (WLI), fluorescence (FI) and pseudo-color (PCI) image. Use File > Open node images… "
                "to assign them, or put wli / fi / pci in the file names.")
        return case_from_node_images(mapping)


LYMPH_NODE = register_kind(LymphNodeKind())
