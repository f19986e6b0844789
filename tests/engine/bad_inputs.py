"""A corpus of bad inputs, made at test time (small files, no fixtures): images, bundles, node images, frames,
model cards and study commands. Each item builds its input in a folder and says what must happen: a clear
error (exit code 2, one line naming the input) or a flagged prediction (every call "input not assessable").
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

ERROR, FLAGGED = "error", "flagged"


@dataclass(frozen=True)
class BadInput:
    name: str
    group: str
    outcome: str  # ERROR or FLAGGED
    build: Callable[[Path], list[str]]  # makes the input under a folder, returns the `oncolens` argv
    mention: str = ""  # what the error line must contain (default: the last path argument's file name)


def _png(path: Path, array: np.ndarray) -> Path:
    out = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 and array.shape[2] == 3 else array
    assert cv2.imwrite(str(path), out)
    return path


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _specimen_fl(size: int = 160) -> np.ndarray:
    """A plausible FL specimen image (bright blob on a dark tray) so that only the defect under test differs."""
    yy, xx = np.mgrid[0:size, 0:size]
    blob = np.exp(-((yy - size / 2) ** 2 + (xx - size / 2) ** 2) / (2 * (size / 6) ** 2))
    return (200 + 20000 * blob + _rng().normal(0, 30, (size, size))).clip(0, 65535).astype(np.uint16)


def _bomb_png(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height grey pixels; the data is a few bytes (never decoded)."""
    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def _apng(path: Path, frames: int = 3) -> Path:
    from PIL import Image

    images = [Image.fromarray(np.full((64, 64), 40 * i, np.uint8)) for i in range(frames)]
    images[0].save(path, save_all=True, append_images=images[1:], format="PNG")
    return path


def _tiff_pages(path: Path, pages: int = 3) -> Path:
    from PIL import Image

    images = [Image.fromarray(_specimen_fl(64)) for _ in range(pages)]
    images[0].save(path, save_all=True, append_images=images[1:], format="TIFF")
    return path


def _npy(path: Path, array: np.ndarray, allow_pickle: bool = False) -> Path:
    np.save(path, array, allow_pickle=allow_pickle)
    return path


def _raw(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def image_items() -> list[BadInput]:
    """Loose image files given to `oncolens predict`."""
    items: list[BadInput] = []

    def add(name: str, outcome: str, build: Callable[[Path], Path]) -> None:
        items.append(BadInput(name, "image", outcome, lambda d, b=build: ["predict", str(b(d))]))

    add("empty file", ERROR, lambda d: _raw(d / "empty_fl.png", b""))
    for suffix in (".png", ".tif", ".jpg", ".bmp"):
        add(f"text under {suffix}", ERROR, lambda d, s=suffix: _raw(d / f"notes_fl{s}", b"hello, this is not an image\n" * 20))
    good = cv2.imencode(".png", _specimen_fl(96))[1].tobytes()
    add("truncated PNG", ERROR, lambda d: _raw(d / "cut_fl.png", good[: len(good) // 3]))
    jpeg = cv2.imencode(".jpg", np.full((96, 96, 3), 120, np.uint8))[1].tobytes()
    add("truncated JPEG", ERROR, lambda d: _raw(d / "cut_wl.jpg", jpeg[:200]))
    add("PNG header of 100000 x 100000 (bomb)", ERROR, lambda d: _bomb_png(d / "bomb_fl.png", 100_000, 100_000))
    add("PNG header of 9000 x 9000 (81 MP)", ERROR, lambda d: _bomb_png(d / "big_fl.png", 9000, 9000))
    add("PNG header of 1 x 40000", ERROR, lambda d: _bomb_png(d / "thin_fl.png", 1, 40000))
    add("animated PNG", ERROR, lambda d: _apng(d / "anim_fl.png"))
    add("multi-page TIFF", ERROR, lambda d: _tiff_pages(d / "stack_fl.tif"))
    rgba = np.dstack([np.full((96, 96, 3), 100, np.uint8), _rng().integers(0, 255, (96, 96), dtype=np.uint8)])
    add("RGBA with transparency", ERROR, lambda d: _raw(d / "glass_wl.png", cv2.imencode(".png", rgba)[1].tobytes()))
    add("4 x 4 image", ERROR, lambda d: _png(d / "tiny_fl.png", np.full((4, 4), 9, np.uint8)))
    add("3 x 500 image", ERROR, lambda d: _png(d / "strip_fl.png", np.full((3, 500), 9, np.uint8)))
    add("8 x 8 noise frame", FLAGGED, lambda d: _png(d / "noise8_fl.png", _rng().integers(0, 255, (8, 8), dtype=np.uint8)))
    add("16 x 16 noise frame", FLAGGED, lambda d: _png(d / "noise16_fl.png", _rng(1).integers(0, 255, (16, 16), np.uint8)))
    add("all-zero FL", FLAGGED, lambda d: _png(d / "blank_fl.png", np.zeros((256, 256), np.uint16)))
    add("all-max FL", FLAGGED, lambda d: _png(d / "max_fl.png", np.full((256, 256), 65535, np.uint16)))
    add("constant grey FL", FLAGGED, lambda d: _png(d / "grey_fl.png", np.full((200, 300), 1234, np.uint16)))
    add("dark noise FL (blank fluorescence)", FLAGGED,
        lambda d: _png(d / "dark_fl.png", _rng(2).poisson(80, (256, 256)).astype(np.uint16)))
    add("uniform noise FL", FLAGGED, lambda d: _png(d / "snow_fl.png", _rng(3).integers(0, 65535, (256, 256), np.uint16)))
    add("saturated FL", FLAGGED, lambda d: _png(d / "sat_fl.png", np.where(_specimen_fl(160) > 3000, 65535,
                                                                            _specimen_fl(160)).astype(np.uint16)))
    add("all-black WL", FLAGGED, lambda d: _png(d / "black_wl.png", np.zeros((160, 160, 3), np.uint8)))
    add("noise WL", FLAGGED, lambda d: _png(d / "noise_wl.png", _rng(4).integers(0, 255, (160, 160, 3), np.uint8)))
    add("colour image named FL", ERROR, lambda d: _png(d / "photo_fl.png", _rng(5).integers(0, 255, (96, 96, 3), np.uint8)))
    add("grey image named WL", ERROR, lambda d: _png(d / "grey_wl.png", _specimen_fl(96)))
    add("unsupported .gif", ERROR, lambda d: _raw(d / "scan_fl.gif", b"GIF89a" + b"\x00" * 40))
    add("bool .npy", ERROR, lambda d: _npy(d / "mask_fl.npy", np.ones((64, 64), bool)))
    add("complex .npy", ERROR, lambda d: _npy(d / "kspace_fl.npy", np.ones((64, 64), np.complex64)))
    add("object .npy (pickle)", ERROR, lambda d: _npy(d / "obj_fl.npy", np.array([{"a": 1}] * 64, object), True))
    add("NaN .npy", ERROR, lambda d: _npy(d / "nan_fl.npy", np.full((64, 64), np.nan, np.float32)))
    add("inf .npy", ERROR, lambda d: _npy(d / "inf_fl.npy", np.full((64, 64), np.inf, np.float32)))
    add("1-D .npy", ERROR, lambda d: _npy(d / "line_fl.npy", np.arange(100, dtype=np.uint16)))
    add("4-D .npy", ERROR, lambda d: _npy(d / "hyper_fl.npy", np.zeros((2, 2, 64, 64), np.uint16)))
    add("empty .npy", ERROR, lambda d: _npy(d / "none_fl.npy", np.zeros((0, 64), np.uint16)))
    add("3-slice volume .npy as a still", ERROR, lambda d: _npy(d / "vol_fl.npy", np.zeros((3, 64, 64), np.float32)))
    add("negative int32 .npy FL", ERROR, lambda d: _npy(d / "neg_fl.npy", (_specimen_fl(96).astype(np.int32) - 30000)))
    add("huge int64 .npy FL", ERROR, lambda d: _npy(d / "wide_fl.npy", _specimen_fl(96).astype(np.int64) * 100000))
    add("float FL outside 0-1, fractional", ERROR, lambda d: _npy(d / "float_fl.npy", _specimen_fl(96) / 7.3))
    add("negative float FL", ERROR, lambda d: _npy(d / "negf_fl.npy", (_specimen_fl(96) / 65535.0 - 0.5).astype(np.float32)))
    add("not found", ERROR, lambda d: d / "missing_fl.png")
    add("a folder without case.json", ERROR, lambda d: (d / "folder_fl").mkdir() or d / "folder_fl")
    add(".npy with a broken header", ERROR, lambda d: _raw(d / "head_fl.npy", b"\x93NUMPY\x01\x00" + b"x" * 30))
    return items


# -- bundles -------------------------------------------------------------------------------------------


def _good_bundle(d: Path, case_id: str = "corpus-01", kind: str = "glioma_specimen", images=None, truth=None) -> Path:
    from engine.cases.bundle import write_bundle
    from engine.cases.model import Case, GroundTruth
    from engine.data import ImageMeta

    case = Case(id=case_id, kind=kind)
    for code, (array, bit_depth, axes) in (images or {"FL": (_specimen_fl(96), 16, "")}).items():
        case.add_image(code, array, ImageMeta(bit_depth, "counts" if array.ndim == 2 else "RGB"), axes)
    case.truth = truth if truth is not None else GroundTruth({"tumor": 1}, {})
    return write_bundle(case, d / case_id)


def _edited(d: Path, edit: Callable[[dict, Path], None], **bundle) -> list[str]:
    folder = _good_bundle(d, **bundle)
    doc = json.loads((folder / "case.json").read_text())
    edit(doc, folder)
    (folder / "case.json").write_text(json.dumps(doc))
    return ["predict", str(folder)]


def _set(*keys_and_value):
    *keys, value = keys_and_value

    def edit(doc: dict, _folder: Path) -> None:
        node = doc
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    return edit


def _link_out(doc: dict, folder: Path) -> None:
    outside = folder.parent / "outside.png"
    _png(outside, _specimen_fl(96))
    (folder / "image_FL.png").unlink()
    (folder / "image_FL.png").symlink_to(outside)


def _file_is_dir(doc: dict, folder: Path) -> None:
    (folder / "image_FL.png").unlink()
    (folder / "image_FL.png").mkdir()


def _garbage_file(doc: dict, folder: Path) -> None:
    (folder / "image_FL.png").write_bytes(b"\x89PNG garbage" * 10)


def _bad_mask(doc: dict, folder: Path) -> None:
    np.save(folder / "truth_tumor.npy", np.ones((10, 10), np.uint8))
    doc["truth"]["masks"] = {"tumor": "truth_tumor.npy"}


def _float_mask(doc: dict, folder: Path) -> None:
    np.save(folder / "truth_tumor.npy", np.full((96, 96), 0.5, np.float32))
    doc["truth"]["masks"] = {"tumor": "truth_tumor.npy"}


def _wide_fl(doc: dict, folder: Path) -> None:
    doc["images"]["FL"]["meta"]["bit_depth"] = 8  # the PNG holds 16-bit values up to ~20000


def _replaced(d: Path, text: str) -> list[str]:
    folder = _good_bundle(d)
    (folder / "case.json").write_text(text)
    return ["predict", str(folder)]


def bundle_items() -> list[BadInput]:
    items: list[BadInput] = []

    def add(name: str, edit, mention: str = "case.json", **bundle) -> None:
        items.append(BadInput(name, "bundle", ERROR, lambda d, e=edit, b=bundle: _edited(d, e, **b), mention))

    def add_text(name: str, text: str, mention: str = "case.json") -> None:
        items.append(BadInput(name, "bundle", ERROR, lambda d, t=text: _replaced(d, t), mention))

    add_text("case.json not JSON", "{oops")
    add_text("case.json a JSON array", "[1, 2, 3]")
    add_text("case.json empty", "")
    add_text("case.json deeply nested", "[" * 5000 + "]" * 5000)
    add_text("case.json of another program", json.dumps({"format": "dicom-sr", "version": 1}))
    add("bundle from a newer OncoLens", _set("version", 99), "newer")
    add("version not a number", _set("version", "two"), "version")
    add("id missing", lambda doc, f: doc.pop("id"), "id")
    add("id climbing out (../../etc)", _set("id", "../../etc"), "id")
    add("id with a slash", _set("id", "a/b"), "id")
    add("id of 200 characters", _set("id", "x" * 200), "id")
    add("hidden id", _set("id", ".hidden"), "id")
    add("id with spaces and quotes", _set("id", "case 'one'"), "id")
    add("kind with punctuation", _set("kind", "Glioma Specimen!"), "kind")
    add("unknown kind", _set("kind", "unknown_kind"), "unknown_kind")
    add("images a list", _set("images", [1, 2]), "images")
    add("image path ../../x.png", _set("images", "FL", "file", "../../x.png"), "images.FL.file")
    add("image path /etc/passwd", _set("images", "FL", "file", "/etc/passwd"), "images.FL.file")
    add("image path in a sub folder", _set("images", "FL", "file", "sub/image_FL.png"), "images.FL.file")
    add("image a link out of the bundle", _link_out, "outside the bundle folder")
    add("image file missing", lambda doc, f: (f / "image_FL.png").unlink(), "image_FL.png")
    add("image file is a folder", _file_is_dir, "image_FL.png")
    add("image file is garbage", _garbage_file, "image_FL.png")
    add("bit depth 0", _set("images", "FL", "meta", "bit_depth", 0), "bit_depth")
    add("bit depth a word", _set("images", "FL", "meta", "bit_depth", "sixteen"), "bit_depth")
    add("bit depth 10**30", _set("images", "FL", "meta", "bit_depth", 10 ** 30), "bit_depth")
    add("8-bit declared, 16-bit values", _wide_fl, "8-bit")
    add("negative spacing", _set("images", "FL", "meta", "spacing", [-1.0, 1.0]), "spacing")
    add("spacing for one axis", _set("images", "FL", "meta", "spacing", [0.1]), "spacing")
    add("spacing not numbers", _set("images", "FL", "meta", "spacing", ["a", "b"]), "spacing")
    add("direction not orthonormal", _set("images", "FL", "meta", "direction", [1, 0, 0, 2]), "direction")
    add("axes XYZ", _set("images", "FL", "axes", "XYZ"), "axes")
    add("axes ZYX on a plane", _set("images", "FL", "axes", "ZYX"), "ZYX")
    add("a PET image in a glioma case", lambda doc, f: doc["images"].__setitem__("PET", dict(doc["images"]["FL"])),
        "PET")
    add("grey WL in a glioma case", lambda doc, f: doc["images"].__setitem__("WL", doc["images"].pop("FL")), "WL")
    add("truth label 2", _set("truth", "labels", {"tumor": 2}), "truth")
    add("truth mask of another size", _bad_mask, "truth mask")
    add("truth mask of fractions", _float_mask, "truth mask")
    add("truth mask file missing", _set("truth", "masks", {"tumor": "truth_tumor.png"}), "truth_tumor.png")
    add("prediction tasks a list", lambda doc, f: doc["predictions"].append(
        {"summary_version": 2, "family": "fl_cnn", "tasks": [1, 2], "masks": {}, "heatmaps": {}, "contours": {}}),
        "predictions.0")
    add("prediction contour points of 3 numbers", lambda doc, f: doc["predictions"].append(
        {"model": "x", "masks": {}, "heatmaps": {}, "contours": {"tumor": [[[1, 2, 3]]]}}), "contours")
    add("prediction mask path escaping", lambda doc, f: doc["predictions"].append(
        {"model": "x", "masks": {"tumor": "../../x.npy"}, "heatmaps": {}, "contours": {}}), "masks")
    add("read without a reader", lambda doc, f: doc["reads"].append({"question": "q", "answer": "a"}), "reads")
    add("unknown top-level field", _set("evil", {"run": "rm -rf /"}), "evil")
    add("patient id of 5000 characters", _set("patient_id", "P" * 5000), "patient_id")
    return items


# -- lymph-node images -------------------------------------------------------------------------------


def _node(size: int = 96, grey: bool = False, seed: int = 0) -> np.ndarray:
    rng = _rng(seed)
    cloth = np.full((size, size, 3), (30, 90, 160), np.float32)
    yy, xx = np.mgrid[0:size, 0:size]
    node = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (size / 4) ** 2
    cloth[node] = (170, 120, 110)
    image = np.clip(cloth + rng.normal(0, 6, cloth.shape), 0, 255).astype(np.uint8)
    return image.mean(axis=2).astype(np.uint8) if grey else image


def node_items() -> list[BadInput]:
    items: list[BadInput] = []

    def add(name: str, outcome: str, files: dict[str, np.ndarray | bytes], mention: str = "") -> None:
        def build(d: Path, files=files) -> list[str]:
            paths = []
            for file_name, content in files.items():
                path = d / file_name
                _raw(path, content) if isinstance(content, bytes) else _png(path, content)
                paths.append(str(path))
            return ["predict", *paths]
        items.append(BadInput(name, "node", outcome, build, mention))

    add("node images of three sizes", ERROR, {"n_wli.png": _node(96), "n_fi.png": _node(80, True),
                                              "n_pci.png": _node(64)}, "not the same size")
    add("grey WLI", ERROR, {"n_wli.png": _node(96, True), "n_fi.png": _node(96, True), "n_pci.png": _node(96)},
        "n_wli.png")
    add("colour FI", ERROR, {"n_wli.png": _node(96), "n_fi.png": _node(96, seed=3), "n_pci.png": _node(96)}, "n_fi.png")
    add("two FI files", ERROR, {"n_fi.png": _node(96, True), "n_icg.png": _node(96, True), "n_pci.png": _node(96)},
        "names do not say")
    add("three unnamed node images", ERROR, {"a.png": _node(96), "b.png": _node(96, True), "c.png": _node(96)},
        "names do not say")
    add("four node images", ERROR, {"n_wli.png": _node(96), "n_fi.png": _node(96, True), "n_pci.png": _node(96),
                                    "n_overlay.png": _node(96)}, "names do not say")
    rgba = cv2.imencode(".png", np.dstack([_node(96), _rng().integers(0, 255, (96, 96), dtype=np.uint8)]))[1].tobytes()
    add("transparent PCI", ERROR, {"n_wli.png": _node(96), "n_fi.png": _node(96, True), "n_pci.png": rgba},
        "n_pci.png")
    add("black FI", FLAGGED, {"n_wli.png": _node(96), "n_fi.png": np.zeros((96, 96), np.uint8), "n_pci.png": _node(96)})
    add("noise WLI", FLAGGED, {"n_wli.png": _rng(7).integers(0, 255, (96, 96, 3), np.uint8),
                               "n_fi.png": _node(96, True), "n_pci.png": _node(96)})
    add("cloth without a node", FLAGGED, {"n_wli.png": np.full((96, 96, 3), (30, 90, 160), np.uint8),
                                          "n_fi.png": _node(96, True), "n_pci.png": _node(96)})
    add("tiny node images", FLAGGED, {"n_wli.png": _node(24), "n_fi.png": _node(24, True), "n_pci.png": _node(24)})
    add("a node file that is text", ERROR, {"n_wli.png": b"not a png", "n_fi.png": _node(96, True),
                                            "n_pci.png": _node(96)}, "n_wli.png")
    return items


# -- fluorescence frames (bundles of the fluoro_frame kind) -----------------------------------------------


def _frame(size: int = 160, bit_depth: int = 12) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    glow = np.exp(-((yy - size * 0.4) ** 2 + (xx - size * 0.6) ** 2) / (2 * (size / 8) ** 2))
    top = 2 ** bit_depth - 1
    return np.clip(top * (0.1 + 0.7 * glow) + _rng(9).normal(0, top * 0.01, (size, size)), 0, top).astype(np.uint16)


def _frame_bundle(d: Path, array: np.ndarray, bit_depth: int = 12, axes: str = "", mask=None) -> list[str]:
    from engine.cases.model import GroundTruth

    truth = GroundTruth({"tumor": 1}, {} if mask is None else {"tumor": mask})
    folder = _good_bundle(d, "corpus-frame", "fluoro_frame", {"NIR": (array, bit_depth, axes)}, truth)
    return ["predict", str(folder)]


def frame_items() -> list[BadInput]:
    items: list[BadInput] = []

    def add(name: str, outcome: str, build: Callable[[Path], list[str]], mention: str = "corpus-frame") -> None:
        items.append(BadInput(name, "frame", outcome, build, mention))

    add("colour frame", ERROR, lambda d: _frame_bundle(d, _rng(1).integers(0, 255, (160, 160, 3), np.uint8), 8),
        "must be grey")
    add("12-bit frame holding 16-bit values", ERROR,
        lambda d: _frame_bundle(d, (_frame().astype(np.uint32) * 16).clip(0, 65535).astype(np.uint16), 12), "12-bit")
    add("16-bit declared on 8-bit data", ERROR, lambda d: _frame_bundle(d, (_frame() // 16).astype(np.uint8), 16),
        "16-bit")
    add("a volume where a frame belongs", ERROR,
        lambda d: _frame_bundle(d, np.stack([_frame()] * 3).astype(np.float32) / 4095, 32, "ZYX"), "ZYX")
    add("frame of fractional counts", ERROR, lambda d: _frame_bundle(d, _frame().astype(np.float32) * 1.37, 32),
        "neither a 0-1 scale")
    add("truth mask of another size", ERROR, lambda d: _frame_bundle(d, _frame(), mask=np.ones((20, 20), np.uint8)),
        "truth mask")
    add("32 x 32 frame", FLAGGED, lambda d: _frame_bundle(d, _frame(32)))
    add("blank frame", FLAGGED, lambda d: _frame_bundle(d, np.zeros((160, 160), np.uint16)))
    add("noise frame", FLAGGED, lambda d: _frame_bundle(d, _rng(2).integers(0, 4095, (160, 160)).astype(np.uint16)))
    add("saturated frame", FLAGGED, lambda d: _frame_bundle(d, np.full((160, 160), 4095, np.uint16)))
    return items


# -- model cards -------------------------------------------------------------------------------------


SHIPPED_NODE_CARD = "mfi_ffp_wli_fi_pci"


def _card_root(d: Path, edit: Callable[[dict, Path], None]) -> Path:
    import shutil

    from engine.paths import models_dir

    root = d / "models"
    shutil.copytree(models_dir() / SHIPPED_NODE_CARD, root / SHIPPED_NODE_CARD,
                    ignore=shutil.ignore_patterns("ablation"))
    path = root / SHIPPED_NODE_CARD / "config.json"
    raw = json.loads(path.read_text())
    edit(raw, root / SHIPPED_NODE_CARD)
    path.write_text(json.dumps(raw) if raw is not None else "")
    return root


def card_items() -> list[BadInput]:
    items: list[BadInput] = []

    def add(name: str, edit, mention: str = SHIPPED_NODE_CARD, command: str = "models") -> None:
        def build(d: Path, edit=edit, command=command) -> list[str]:
            root = _card_root(d, edit)
            return (["models", "--models-dir", str(root)] if command == "models" else
                    ["bench", "mfi_ffp", "--repeats", "1", "--models-dir", str(root)])
        items.append(BadInput(name, "card", ERROR, build, mention))

    def setter(*keys_and_value):
        return lambda raw, folder: _set(*keys_and_value)(raw, folder)

    items.append(BadInput("card not JSON", "card", ERROR,
                          lambda d: ["models", "--models-dir", str(_text_card(d, "{bad json"))], SHIPPED_NODE_CARD))
    items.append(BadInput("card a JSON list", "card", ERROR,
                          lambda d: ["models", "--models-dir", str(_text_card(d, "[]"))], SHIPPED_NODE_CARD))
    add("card field missing", lambda raw, f: raw.pop("labels"), "labels")
    add("card with an unknown field", setter("backdoor", True), "backdoor")
    add("threshold NaN", setter("thresholds", {"metastatic": {"value": float("nan"), "rule": "x"}}), "thresholds")
    add("threshold 1.5", setter("thresholds", {"metastatic": {"value": 1.5, "rule": "x"}}), "thresholds")
    add("threshold -0.1", setter("thresholds", {"metastatic": {"value": -0.1, "rule": "x"}}), "thresholds")
    add("threshold a word", setter("thresholds", {"metastatic": {"value": "high", "rule": "x"}}), "malformed")
    add("no thresholds", setter("thresholds", {}), "thresholds")
    add("one label", setter("labels", ["metastatic"]), "labels")
    add("blank labels", setter("labels", ["", " "]), "labels")
    add("input size 0", setter("input", {"modalities": ["WLI"], "channels": 3, "size": [0, 0]}), "input.size")
    add("input size 100000", setter("input", {"modalities": ["WLI"], "channels": 3, "size": [100000, 100000]}),
        "input.size")
    add("input without modalities", setter("input", {"modalities": [], "channels": 3, "size": [80, 80]}),
        "input.modalities")
    add("weights path escaping", setter("weights", {"file": "../../../etc/passwd", "sha256": "0"}), "weights.file")
    add("weights path absolute", setter("weights", {"file": "/etc/passwd", "sha256": "0"}), "weights.file")
    add("card from a newer OncoLens", setter("card_version", 99), "newer")
    add("card naming another model", setter("name", "mfi_ffp_other"), "names itself")
    add("weights file missing", lambda raw, f: (f / f"{SHIPPED_NODE_CARD}.safetensors").unlink(), "missing",
        command="bench")
    add("weights tampered", lambda raw, f: _flip_byte(f / f"{SHIPPED_NODE_CARD}.safetensors"), "does not match",
        command="bench")
    add("weights a pickle", lambda raw, f: raw["weights"].__setitem__("file", "model.pt"), "safetensors",
        command="bench")
    add("weights of another net", lambda raw, f: raw.__setitem__("config", {**raw["config"], "fusion": "concat"}),
        SHIPPED_NODE_CARD, command="bench")
    add("weights corrupted, hash updated", _corrupt_and_rehash, "safetensors", command="bench")
    return items


def _text_card(d: Path, content: str) -> Path:
    root = _card_root(d, lambda raw, f: None)
    (root / SHIPPED_NODE_CARD / "config.json").write_text(content)
    return root


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))


def _corrupt_and_rehash(raw: dict, folder: Path) -> None:
    import hashlib

    path = folder / f"{SHIPPED_NODE_CARD}.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not a header}" + b"\x00" * 64)
    raw["weights"]["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()


# -- command-line outputs and study commands ----------------------------------------------------------------


def cli_items() -> list[BadInput]:
    items: list[BadInput] = []

    def add(name: str, build: Callable[[Path], list[str]], mention: str) -> None:
        items.append(BadInput(name, "cli", ERROR, build, mention))

    def demo(d: Path) -> str:
        return str(_good_bundle(d))

    add("predict --out r.txt", lambda d: ["predict", demo(d), "--out", str(d / "r.txt")], "r.txt")
    add("predict --out into a missing folder", lambda d: ["predict", demo(d), "--out", str(d / "no" / "r.json")],
        "does not exist")
    add("predict --out is a folder", lambda d: ["predict", demo(d), "--out", str(d)], "is a folder")
    add("predict --save-bundles onto a file",
        lambda d: ["predict", demo(d), "--save-bundles", str(_raw(d / "f.txt", b"x"))], "f.txt")
    add("predict --modality unknown", lambda d: ["predict", str(_png(d / "x.png", _specimen_fl(96))), "--modality",
                                                 "XRAY"], "XRAY")
    add("evaluate --out onto a file", lambda d: ["evaluate", "fl_cnn", "--out", str(_raw(d / "g.txt", b"x"))],
        "g.txt")
    add("bench --out r.txt", lambda d: ["bench", "mfi_ffp", "--out", str(d / "r.txt")], "r.txt")
    add("models from a folder without cards", lambda d: ["models", "--models-dir", str(d / "nothing")], "nothing")
    return items


def study_items() -> list[BadInput]:
    """Study commands against a small store made by the runner (`--db` is filled in by it: {db})."""
    items: list[BadInput] = []

    def add(name: str, args: list[str], mention: str) -> None:
        items.append(BadInput(name, "study", ERROR, lambda d, a=args: ["study", "--db", "{db}", *a], mention))

    add("report of an unknown study", ["report", "no-such-study"], "no-such-study")
    add("progress of an unknown study", ["progress", "no-such-study"], "no-such-study")
    add("export of an unknown study", ["export-reads", "no-such-study", "--out", "{dir}/r.csv"], "no-such-study")
    add("export to r.txt", ["export-reads", "s1", "--out", "{dir}/r.txt"], "r.txt")
    add("create with unknown cases", ["create", "s2", "--label", "tumor", "--cases", "ghost-1", "ghost-2",
                                      "--modalities", "FL"], "ghost-1")
    add("create of an unknown kind", ["create", "s3", "--label", "tumor", "--kind", "glioma", "--modalities", "FL"],
        "glioma")
    add("create without cases", ["create", "s4", "--label", "tumor", "--modalities", "FL"], "at least one case")
    add("create with a modality the cases lack", ["create", "s5", "--label", "tumor", "--kind", "glioma_specimen",
                                                  "--modalities", "PET"], "PET")
    add("create with a label no prediction has", ["create", "s6", "--label", "metastatic", "--kind",
                                                  "glioma_specimen", "--modalities", "FL"], "metastatic")
    add("create an existing study", ["create", "s1", "--label", "tumor", "--kind", "glioma_specimen",
                                     "--modalities", "FL"], "s1")
    add("negative washout", ["create", "s7", "--label", "tumor", "--kind", "glioma_specimen", "--modalities", "FL",
                             "--washout-days", "-3"], "washout")
    add("a study id of 300 characters", ["create", "s" * 300, "--label", "tumor", "--kind", "glioma_specimen",
                                         "--modalities", "FL"], "study id")
    add("report into a file", ["report", "s1", "--out", "{dir}/pin.txt"], "pin.txt")
    return items


def all_items() -> list[BadInput]:
    return image_items() + bundle_items() + node_items() + frame_items() + card_items() + cli_items() + study_items()


__all__ = ["ERROR", "FLAGGED", "BadInput", "all_items"]
