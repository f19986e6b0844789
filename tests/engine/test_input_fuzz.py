"""Property-based fuzzing of the two JSON documents OncoLens reads from disk: a bundle's case.json and a model
card. Whatever the document, reading it returns a valid object or raises the module's own error naming the
file — never another exception."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.cases.bundle import BundleError, read_bundle, write_bundle
from engine.cases.model import Case
from engine.data import ImageMeta
from engine.registry import ModelCard, ModelError

JSON_LEAF = st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True) | st.text(max_size=20)
JSON = st.recursive(JSON_LEAF, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10),
                                                                                           inner, max_size=4),
                    max_leaves=20)
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def good_bundle(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz") / "fuzz-case"
    case = Case(id="fuzz-case", kind="glioma_specimen")
    case.add_image("FL", np.random.default_rng(0).integers(0, 4000, (32, 32)).astype(np.uint16), ImageMeta(16))
    write_bundle(case, folder)
    return folder, json.loads((folder / "case.json").read_text())


PATHS = [("id",), ("kind",), ("version",), ("images",), ("images", "FL"), ("images", "FL", "file"),
         ("images", "FL", "axes"), ("images", "FL", "meta"), ("images", "FL", "meta", "bit_depth"),
         ("images", "FL", "meta", "spacing"), ("images", "FL", "meta", "direction"), ("truth",), ("predictions",),
         ("reads",), ("patient_id",), ("notes",)]


def _put(doc: dict, path: tuple, value) -> None:
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


@FUZZ
@given(path=st.sampled_from(PATHS), value=JSON)
def test_any_field_value_in_case_json_reads_or_is_refused_by_name(good_bundle, path, value):
    folder, doc = good_bundle
    edited = json.loads(json.dumps(doc))
    _put(edited, path, value)
    (folder / "case.json").write_text(json.dumps(edited))
    try:
        case = read_bundle(folder)
    except BundleError as exc:
        assert "case.json" in str(exc)
    else:
        assert case.id and all(img.array.size for img in case.images.values())
    finally:
        (folder / "case.json").write_text(json.dumps(doc))


@FUZZ
@given(document=JSON)
def test_any_json_document_as_case_json_is_refused_by_name(good_bundle, document):
    folder, doc = good_bundle
    (folder / "case.json").write_text(json.dumps(document))
    try:
        with pytest.raises(BundleError, match="case.json"):
            read_bundle(folder)
    finally:
        (folder / "case.json").write_text(json.dumps(doc))


CARD = {"name": "fuzz_card", "family": "fl_cnn", "task": "tumor: a vs b", "config": {},
        "input": {"modalities": ["FL"], "channels": 3, "size": [64, 64]}, "preprocessing": {"kind": "fluorescence"},
        "labels": ["a", "b"], "thresholds": {"tumor": {"value": 0.5, "rule": "x"}}, "gradcam_layers": {},
        "training": {}, "evaluation": {}, "weights": {"file": "w.safetensors", "sha256": "0"}, "card_version": 2}
CARD_FIELDS = sorted(CARD)


@FUZZ
@given(field=st.sampled_from(CARD_FIELDS), value=JSON)
def test_any_field_value_in_a_card_loads_a_valid_card_or_is_refused_by_name(field, value):
    raw = {**json.loads(json.dumps(CARD)), field: value}
    try:
        card = ModelCard.from_dict(raw, where="Model card fuzz_card")
    except ModelError as exc:
        assert "fuzz_card" in str(exc) or "Model card" in str(exc)
    else:
        assert all(0 <= t.value <= 1 and math.isfinite(t.value) for t in card.thresholds.values())
        assert len(card.labels) >= 2 and card.input.modalities
