"""Opening loose images and bundles: modality guessing, specimen and lymph-node cases, clear errors naming the file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.cases.bundle import write_bundle
from engine.cases.loading import sort_paths
from engine.cases.model import FL, WL
from engine.io.images import ImageReadError
from engine.kinds.glioma import case_from_images, guess_modality
from engine.kinds.lymph_node import (
    FI,
    NODE_MODALITIES,
    PCI,
    WLI,
    case_from_node_images,
    describe_node_files,
    guess_node_modality,
    looks_like_node_images,
    node_assignment_problems,
    node_mapping_from_names,
    open_node_into_store,
)
from engine.kinds.opening import load_case_source, open_into_store
from engine.phantoms.glioma import PatientEffects, make_specimen, specimen_to_case
from engine.phantoms.lymph_node import make_node, node_to_case
from engine.store import Store

GREY16 = np.zeros((32, 40), np.uint16)
RGB8 = np.zeros((32, 40, 3), np.uint8)


@pytest.mark.parametrize("name, array, expected", [
    ("specimen.png", GREY16, FL),
    ("specimen.png", RGB8, WL),
    ("tray3_WL.png", GREY16, WL),
    ("white_light_01.tif", GREY16, WL),
    ("case7-fl.tif", RGB8, FL),
    ("NIR-II_capture.png", RGB8, FL),
    ("flow_chart.png", RGB8, WL),  # 'fl' only counts as a word of its own
])
def test_guess_modality(name, array, expected):
    assert guess_modality(Path(name), array) == expected


def write_png(path: Path, array: np.ndarray) -> Path:
    cv2.imwrite(str(path), cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 else array)
    return path


def test_case_from_one_fl_and_one_wl_image(tmp_path):
    fl = write_png(tmp_path / "a.png", np.full((32, 40), 1000, np.uint16))
    wl = write_png(tmp_path / "b.png", np.full((32, 40, 3), 90, np.uint8))
    case = case_from_images([fl, wl])
    assert case.kind == "glioma_specimen"
    assert case.images[FL].meta.bit_depth == 16 and case.images[WL].meta.bit_depth == 8
    assert case.images[FL].meta.file_name == "a.png"


def test_two_images_of_the_same_modality_are_refused(tmp_path):
    a = write_png(tmp_path / "a.png", GREY16)
    b = write_png(tmp_path / "b.png", GREY16)
    with pytest.raises(ImageReadError, match="both look like FL"):
        case_from_images([a, b])


def test_misaligned_fl_and_wl_are_refused(tmp_path):
    fl = write_png(tmp_path / "spec_fl.png", GREY16)
    wl = write_png(tmp_path / "spec_wl.png", np.zeros((30, 40, 3), np.uint8))
    with pytest.raises(ImageReadError, match="same size"):
        case_from_images([fl, wl])


def test_unknown_file_type_is_named(tmp_path):
    notes = tmp_path / "notes.docx"
    notes.write_text("x")
    with pytest.raises(ImageReadError, match="notes.docx"):
        sort_paths([notes])


def test_bad_image_adds_nothing_to_the_store(tmp_path):
    good = write_png(tmp_path / "good_fl.png", GREY16)
    bad = tmp_path / "bad_wl.png"
    bad.write_bytes(b"not an image")
    with Store() as store:
        with pytest.raises(ImageReadError, match="bad_wl.png"):
            open_into_store([good, bad], store)
        assert store.list_cases() == []


def test_bundle_and_folder_of_bundles_go_to_the_store(tmp_path):
    rng = np.random.default_rng(5)
    patient = PatientEffects.draw(rng, "P1")
    for i in range(2):
        spec = make_specimen(rng, patient=patient, tumor=0, grade=None, ki67=None, size=(40, 40))
        write_bundle(specimen_to_case(spec, f"bundle-{i}"), tmp_path / "many" / f"bundle-{i}")
    spec = make_specimen(rng, patient=patient, tumor=0, grade=None, ki67=None, size=(40, 40))
    single = write_bundle(specimen_to_case(spec, "single"), tmp_path / "single")
    with Store() as store:
        opened = open_into_store([single, tmp_path / "many"], store)
        assert opened == ["single", "bundle-0", "bundle-1"]
        assert sorted(s.id for s in store.list_cases()) == ["bundle-0", "bundle-1", "single"]


# -- lymph nodes: WLI, FI, PCI ----------------------------------------------------------------------

GREY8 = np.zeros((32, 40), np.uint8)
COLOR8 = np.dstack([np.full((32, 40), v, np.uint8) for v in (200, 120, 90)])


@pytest.mark.parametrize("name, image, expected", [
    ("node07_WLI.png", None, WLI),
    ("N3-white-light.tif", None, WLI),
    ("brightfield_2.png", None, WLI),
    ("node07wl.png", None, WLI),  # digits separate words
    ("nodewl.png", None, None),  # 'nodewl' is no word of its own
    ("node07_FI.png", None, FI),
    ("ICG_node.tif", None, FI),
    ("nir1_capture.png", None, FI),
    ("fluorescence.png", None, FI),
    ("node07_PCI.png", None, PCI),
    ("pseudo-color.png", None, PCI),
    ("wl_fi_overlay.png", None, PCI),  # an overlay of both is the pseudo-color image
    ("merged.jpg", None, PCI),
    ("white_fluo.png", None, None),  # two modes named, nothing else to go on
    ("white_fluo.png", GREY8, FI),
    ("scan.png", GREY8, FI),  # content: grey is fluorescence
    ("scan.png", np.repeat(GREY8[..., None], 3, axis=2), FI),  # grey saved as RGB
    ("scan.png", COLOR8, None),  # WLI and PCI are both RGB
])
def test_guess_node_modality(name, image, expected):
    assert guess_node_modality(Path(name), image) == expected


def test_which_images_look_like_a_node():
    assert looks_like_node_images([Path("a.png"), Path("b.png"), Path("c.png")])
    assert looks_like_node_images([Path("x_wli.png")])
    assert not looks_like_node_images([Path("spec_nir.png"), Path("spec_white.png")])  # a glioma specimen
    assert node_mapping_from_names([Path("n_fi.png"), Path("n_wli.png")]) == {FI: Path("n_fi.png"),
                                                                            WLI: Path("n_wli.png")}
    assert node_mapping_from_names([Path("n_fi.png"), Path("n_icg.png")]) is None  # two FI
    assert node_mapping_from_names([Path("n_fi.png"), Path("n.png")]) is None


def write_node(folder: Path, names=("n_wli.png", "n_fi.png", "n_pci.png"), size: int = 64, seed: int = 2) -> list[Path]:
    record = make_node(np.random.default_rng(seed), 1, size=size)
    folder.mkdir(parents=True, exist_ok=True)
    return [write_png(folder / name, record.images[m]) for m, name in zip(NODE_MODALITIES, names, strict=True)]


def test_case_from_three_node_images(tmp_path):
    wli, fi, pci = write_node(tmp_path)
    case = case_from_node_images({WLI: wli, FI: fi, PCI: pci})
    assert case.kind == "lymph_node" and list(case.images) == [WLI, FI, PCI]
    assert case.images[FI].array.ndim == 2 and case.images[WLI].array.shape == (64, 64, 3)
    assert {m: img.meta.file_name for m, img in case.images.items()} == {WLI: "n_wli.png", FI: "n_fi.png", PCI: "n_pci.png"}
    assert case.images[FI].meta.bit_depth == 8 and case.images[PCI].meta.units == "RGB"


def test_a_missing_node_mode_is_allowed(tmp_path):
    wli, fi, _pci = write_node(tmp_path)
    case = case_from_node_images({WLI: wli, FI: fi})
    assert set(case.images) == {WLI, FI}


def test_grey_fi_saved_as_rgb_is_kept_grey(tmp_path):
    grey = write_png(tmp_path / "fi.png", np.repeat(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)[..., None] % 255,
                                                   3, axis=2).astype(np.uint8))
    case = case_from_node_images({FI: grey})
    assert case.images[FI].array.shape == (64, 64)


@pytest.mark.parametrize("modality, index, message", [
    (WLI, 1, "n_fi.png is assigned to WLI but it is a grey image"),
    (PCI, 1, "n_fi.png is assigned to PCI but it is a grey image"),
    (FI, 2, "n_pci.png is assigned to FI but it is a color image"),
])
def test_wrong_image_type_for_a_node_mode_is_refused(tmp_path, modality, index, message):
    paths = write_node(tmp_path)
    with pytest.raises(ImageReadError, match=message):
        case_from_node_images({modality: paths[index]})


def test_mismatched_node_sizes_name_the_files_and_the_fix(tmp_path):
    wli, _fi, pci = write_node(tmp_path)
    small = write_png(tmp_path / "small_fi.png", np.zeros((48, 56), np.uint8))
    with pytest.raises(ImageReadError) as info:
        case_from_node_images({WLI: wli, FI: small, PCI: pci})
    text = str(info.value)
    assert "n_wli.png is 64×64" in text and "small_fi.png is 56×48" in text
    assert "pixel-aligned" in text and "same size" in text


def test_bad_node_mappings_are_refused(tmp_path):
    wli, fi, _pci = write_node(tmp_path)
    with pytest.raises(ValueError, match="Unknown node mode"):
        case_from_node_images({"NIR": fi})
    with pytest.raises(ImageReadError, match="assigned to both"):
        case_from_node_images({WLI: wli, PCI: wli})
    with pytest.raises(ImageReadError, match="No node image"):
        case_from_node_images({})


def test_describe_node_files_guesses_by_name_content_and_elimination(tmp_path):
    photo, scan, overlay = write_node(tmp_path, names=("photo.png", "scan.png", "n3_pci.png"))
    files = describe_node_files([photo, scan, overlay])
    assert [(f.guess, f.reason) for f in files] == [
        (WLI, "the only RGB mode left (WLI)"), (FI, "grey image"), (PCI, "file name")]
    assert files[1].grey and files[0].description == "64×64 RGB 8-bit"
    assert node_assignment_problems(files, {f.path: f.guess for f in files}) == []


def test_describe_node_files_leaves_clashes_and_unclear_rgb_to_the_user(tmp_path):
    a, b, c = write_node(tmp_path, names=("a.png", "b.png", "c.png"))
    assert [f.guess for f in describe_node_files([a, b, c])] == [None, FI, None]
    x, y, _ = write_node(tmp_path / "two", names=("x_wli.png", "y_fi.png", "z.png"))
    clash = tmp_path / "two" / "x_white.png"
    clash.write_bytes(x.read_bytes())
    files = describe_node_files([x, clash, y])
    assert [f.guess for f in files] == [None, None, FI]
    assert files[0].reason == "several files look like WLI"
    with pytest.raises(ImageReadError, match="at most 3 images"):
        describe_node_files([a, b, c, x])


def test_node_assignment_problems(tmp_path):
    wli, fi, pci = write_node(tmp_path)
    small = write_png(tmp_path / "small_pci.png", np.zeros((48, 48, 3), np.uint8))
    files = describe_node_files([wli, fi, small])
    problems = node_assignment_problems(files, {wli: FI, fi: FI, small: PCI})
    assert any("both assigned to FI" in p for p in problems)
    assert any("n_wli.png is assigned to FI but it is a color image" in p for p in problems)
    assert any("small_pci.png is 48×48" in p for p in problems)
    assert node_assignment_problems(files, {wli: None, fi: None, small: None}) == [
        "Assign at least one file to WLI, FI or PCI."]


def test_open_into_store_makes_a_node_case_from_clearly_named_images(tmp_path):
    paths = write_node(tmp_path)
    with Store() as store:
        (case_id,) = open_into_store(paths, store)
        case = store.load_case(case_id)
        assert case.kind == "lymph_node" and set(case.images) == set(NODE_MODALITIES)
        unclear = write_node(tmp_path / "unclear", names=("a.png", "b.png", "c.png"))
        with pytest.raises(ImageReadError, match="Open node images"):
            open_into_store(unclear, store)
        (node_id,) = open_node_into_store({WLI: unclear[0], FI: unclear[1]}, store)
        assert set(store.load_case(node_id).images) == {WLI, FI}
        assert len(store.list_cases(kind="lymph_node")) == 2


def test_node_bundle_opens_like_any_bundle(tmp_path):
    record = make_node(np.random.default_rng(3), 1, size=64, node_id="node-b1")
    folder = write_bundle(node_to_case(record), tmp_path / "node-b1")
    case = load_case_source(folder)
    assert case.kind == "lymph_node" and case.truth.labels == {"metastatic": 1}
    assert load_case_source(folder / "case.json").id == "node-b1"
    with Store() as store:
        assert open_into_store([folder], store) == ["node-b1"]
