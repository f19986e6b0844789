"""Turning what a user opens (image files, case bundles, folders of bundles) into cases.

Loose images become a new case saved as a bundle in the user data folder, so that everything opened
appears in the case browser: one or two images make a glioma specimen (FL and/or WL); three images, or
images whose names say WLI / FI / PCI, make an excised lymph node (the MFI-FFP modes, pixel-aligned).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.cases.bundle import is_bundle, read_bundle, write_bundle
from engine.cases.model import FL, WL, Case
from engine.io.images import IMAGE_SUFFIXES, ImageReadError, read_image
from engine.paths import user_data_dir

LOOSE_IMAGE_KIND = "glioma_specimen"
NODE_KIND = "lymph_node"
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
_FL_WORDS = ("fl", "nir", "nirii", "fluo", "fluorescence")
_WL_WORDS = ("wl", "white", "whitelight", "rgb", "color", "colour")


def guess_modality(path: str | Path, array: np.ndarray) -> str:
    """FL or WL for a specimen image: a word in the file name decides, else grey means FL and RGB means WL."""
    words = [w for w in re.split(r"[^a-z0-9]+", Path(path).stem.lower()) if w]
    if any(w in _WL_WORDS or w.startswith("white") for w in words):
        return WL
    if any(w in _FL_WORDS or w.startswith("nir") for w in words):
        return FL
    return WL if array.ndim == 3 else FL


def case_from_images(paths: list[Path], case_id: str | None = None, modality: str | None = None) -> Case:
    """One specimen case from one FL and/or one WL image file; errors name the file and the fix.

    `modality` forces FL or WL for every file instead of guessing from names and content."""
    case = Case(id=case_id or Case.new_id("specimen"), kind=LOOSE_IMAGE_KIND)
    origin: dict[str, Path] = {}
    for path in paths:
        array, meta = read_image(path)
        path = Path(path)
        modality_of_file = modality or guess_modality(path, array)
        if modality_of_file == FL and array.ndim == 3:
            raise ImageReadError(
                f"{path}: named as a fluorescence (FL) image but it is RGB; FL must be a grey 8/16-bit image."
            )
        if modality_of_file == WL and array.ndim == 2:
            raise ImageReadError(
                f"{path}: named as a white-light (WL) image but it is grey; WL must be an RGB image."
            )
        if modality_of_file in origin:
            raise ImageReadError(
                f"{path} and {origin[modality_of_file]} both look like {modality_of_file} images. Open one FL (grey) and one "
                "WL (RGB) image of the same specimen, or put 'fl' / 'wl' in their file names."
            )
        origin[modality_of_file] = path
        meta.units = "counts" if modality_of_file == FL else "RGB"
        case.add_image(modality_of_file, array, meta)
    if FL in case.images and WL in case.images:
        fl_shape, wl_shape = case.images[FL].array.shape[:2], case.images[WL].array.shape[:2]
        if fl_shape != wl_shape:
            raise ImageReadError(
                f"{origin[FL].name} is {fl_shape[1]}x{fl_shape[0]} but {origin[WL].name} is "
                f"{wl_shape[1]}x{wl_shape[0]}: a specimen's FL and WL images must be aligned (same size). "
                "Open them one at a time as separate cases."
            )
    case.notes = "Opened from " + ", ".join(str(p) for p in paths)
    return case


@dataclass
class OpenRequest:
    """What a list of dropped or chosen paths holds, sorted by how each is opened."""

    bundles: list[Path] = field(default_factory=list)
    bundle_folders: list[Path] = field(default_factory=list)  # folders holding bundles one level down
    images: list[Path] = field(default_factory=list)


def sort_paths(paths: list[str | Path]) -> OpenRequest:
    """Classify paths; anything OncoLens cannot open is an error naming it and what would work."""
    request = OpenRequest()
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise ImageReadError(f"{path}: file or folder not found.")
        if path.is_dir():
            if is_bundle(path):
                request.bundles.append(path)
            elif any(is_bundle(child) for child in path.iterdir() if child.is_dir()):
                request.bundle_folders.append(path)
            else:
                raise ImageReadError(
                    f"{path}: folder is neither a case bundle (no case.json) nor a folder of case bundles."
                )
        elif path.name == "case.json":
            request.bundles.append(path.parent)
        elif path.suffix.lower() in IMAGE_SUFFIXES:
            request.images.append(path)
        else:
            raise ImageReadError(
                f"{path}: cannot open '{path.suffix or path.name}' files. "
                f"Open images ({', '.join(IMAGE_SUFFIXES)}) or a case bundle folder."
            )
    return request


def open_into_store(paths: list[str | Path], store) -> list[str]:
    """Add what `paths` holds to the store; return the ids of the cases opened (first is shown).

    Images are read and checked before anything is written, so a bad file adds nothing.
    """
    request = sort_paths(paths)
    new_case = case_from_loose_images(request.images) if request.images else None
    bundle_cases = [(read_bundle(folder), folder) for folder in request.bundles]
    opened: list[str] = []
    if new_case is not None:
        folder = write_bundle(new_case, user_data_dir() / "cases" / new_case.id)
        store.add_case(new_case, folder, actor="oncolens-gui")
        opened.append(new_case.id)
    for case, folder in bundle_cases:
        store.add_case(case, folder, actor="oncolens-gui")
        opened.append(case.id)
    for folder in request.bundle_folders:
        opened.extend(store.import_bundles(folder, actor="oncolens-gui"))
    return opened


def load_case_source(path: str | Path) -> Case:
    """One bundle folder (or its case.json) or one image file -> Case, without touching the store."""
    request = sort_paths([path])
    if request.bundles:
        return read_bundle(request.bundles[0])
    if request.images:
        return case_from_loose_images(request.images)
    raise ImageReadError(f"{path}: a folder of several bundles; open one bundle or image at a time here.")


def case_from_loose_images(paths: list[Path]) -> Case:
    """A lymph-node case when the files look like node images (their names must then say which is which),
    else a glioma specimen case."""
    if not looks_like_node_images(paths):
        return case_from_images(paths)
    mapping = node_mapping_from_names(paths)
    if mapping is None:
        names = ", ".join(Path(p).name for p in paths)
        raise ImageReadError(
            f"{names}: these look like the images of one lymph node, but their names do not say which is the "
            "white-light (WLI), fluorescence (FI) and pseudo-color (PCI) image. Use File > Open node images… "
            "to assign them, or put wli / fi / pci in the file names."
        )
    return case_from_node_images(mapping)


# -- lymph nodes: WLI, FI, PCI ----------------------------------------------------------------------


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
    case = Case(id=case_id or Case.new_id("node"), kind=NODE_KIND)
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
        meta.units = "a.u." if modality == FI else "RGB"
        case.add_image(modality, array, meta)
    sizes = {paths[m].name: (img.array.shape[1], img.array.shape[0]) for m, img in case.images.items()}
    if len(set(sizes.values())) > 1:
        raise ImageReadError(_size_problem(sizes))
    case.notes = "Opened from " + ", ".join(f"{m}: {paths[m]}" for m in NODE_MODALITIES if m in paths)
    return case


def open_node_into_store(mapping: dict[str, str | Path], store) -> list[str]:
    """Build a node case from `mapping` (see case_from_node_images), save it as a bundle, add it to the store."""
    case = case_from_node_images(mapping)
    folder = write_bundle(case, user_data_dir() / "cases" / case.id)
    store.add_case(case, folder, actor="oncolens-gui")
    return [case.id]
