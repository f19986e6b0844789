"""Opening loose images and bundles: modality guessing, specimen cases, clear errors naming the file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from engine.cases.bundle import write_bundle
from engine.cases.loading import case_from_images, guess_modality, open_into_store, sort_paths
from engine.cases.model import FL, WL
from engine.io.images import ImageReadError
from engine.phantoms.glioma import PatientEffects, make_specimen, specimen_to_case
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
    assert case.images[FL].meta.source == "a.png"


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
