"""Reader-study set-up is checked when the study is created (issue 18): cases need truth for the task label,
both classes, and the model compared with readers is the kind's primary one unless another is chosen."""

from __future__ import annotations

import numpy as np
import pytest

from engine.cases.bundle import write_bundle
from engine.cases.model import Case, GroundTruth
from engine.data import ImageMeta, Prediction, TaskResult
from engine.store import Store
from engine.studies import Study, StudyError, create_study, load_study


@pytest.fixture
def store():
    opened = Store()
    yield opened
    opened.close()


def add_glioma_cases(store: Store, root, n: int = 4, truth: bool = True, variants=("FL", "WL")) -> list[str]:
    """Glioma cases with an FL-CNN result per modality; the WL one is stored last (the newest)."""
    ids = []
    for i in range(n):
        case = Case(id=f"g-{i}", kind="glioma_specimen")
        rng = np.random.default_rng(i)
        case.add_image("FL", rng.integers(0, 65535, (8, 8), dtype=np.uint16), ImageMeta(bit_depth=16))
        case.add_image("WL", rng.integers(0, 255, (8, 8, 3), dtype=np.uint8), ImageMeta(bit_depth=8))
        if truth:
            case.truth = GroundTruth(labels={"tumor": i % 2}, source="phantom")
        store.add_case(case, write_bundle(case, root / case.id))
        for variant in variants:
            p = 0.2 + 0.15 * i
            store.add_prediction(case.id, Prediction(family="fl_cnn", variant=variant,
                                                     tasks={"tumor": TaskResult("x", p, 0.3)}))
        ids.append(case.id)
    return ids


def _study(ids, **settings) -> Study:
    return Study(id=settings.pop("id", "s"), name="S", task_label="tumor", case_ids=tuple(ids), modalities=("FL",),
                 **settings)


def test_the_default_model_is_the_kinds_primary_one_not_the_newest(store, tmp_path):
    ids = add_glioma_cases(store, tmp_path)
    assert create_study(store, _study(ids)).model == "fl_cnn[FL]"
    assert create_study(store, _study(ids, id="wl", model="fl_cnn[WL]")).model == "fl_cnn[WL]"


def test_cases_without_truth_are_refused_at_creation(store, tmp_path):
    ids = add_glioma_cases(store, tmp_path, truth=False)
    with pytest.raises(StudyError, match=r"4 case\(s\) have no 0/1 truth for 'tumor': g-0, g-1, g-2, g-3"):
        create_study(store, _study(ids))
    with pytest.raises(StudyError, match="No reader study 's'"):
        load_study(store, "s")


def test_one_class_is_refused_at_creation(store, tmp_path):
    ids = add_glioma_cases(store, tmp_path)
    with pytest.raises(StudyError, match=r"all 2 cases are negative for 'tumor'"):
        create_study(store, _study(ids[::2]))


class ThresholdSegmenter:
    """Stands in for a fluorescence segmentation net: bright pixels are tumor; the frame score is the bright
    fraction scaled into [0, 1] (deterministic, so a run again reproduces the stored probability)."""

    family, variant, modalities = "fluoro_seg", "fake", ("NIR",)

    def __init__(self, shift: float = 0.0) -> None:
        self.shift = shift

    def predict(self, images, *, explain=True) -> Prediction:
        frame = np.asarray(images["NIR"].array, dtype=np.float32)
        mask = frame > np.percentile(frame, 97)
        probability = min(1.0, float(mask.mean()) * 10 + self.shift)
        prediction = Prediction(family=self.family, variant=self.variant, masks={"tumor": mask.astype(np.uint8)})
        prediction.set_result("tumor", "tumor" if probability >= 0.2 else "no tumor", probability, 0.2)
        return prediction


@pytest.mark.parametrize("shift, drawn", [(0.0, True), (0.01, False)], ids=["same-result", "different-result"])
def test_aided_outline_studies_show_the_models_mask(store, tmp_path, monkeypatch, shift, drawn):
    """The store keeps only summaries; the aided reader of an outline study still gets the model's mask (its
    contour is drawn on the frame), from a run again that must reproduce the frozen probability."""
    from engine.cases.bundle import write_bundle as write
    from engine.cases.kinds import get_kind
    from engine.phantoms.fluoro_frames import frame_to_case, make_frame
    from engine.studies import AIDED, ReadingSession, add_reader

    ids = []
    for i in range(2):
        case = frame_to_case(make_frame(np.random.default_rng(i), "C", 96, tumor_free=bool(i)), f"fr-{i}")
        store.add_case(case, write(case, tmp_path / case.id))
        store.add_prediction(case.id, ThresholdSegmenter().predict(case.images))
        ids.append(case.id)
    monkeypatch.setattr(get_kind("fluoro_frame"), "make_predictor",
                        lambda modalities, method=None: ThresholdSegmenter(shift))
    create_study(store, Study(id="outline", name="O", task_label="tumor", case_ids=tuple(ids),
                              modalities=("NIR",), arms=(AIDED,), contours=True))
    add_reader(store, "outline", "r1", "R1", "482913")
    aid = ReadingSession.open(store, "outline", "r1", "482913").current_case().aid
    assert aid is not None and aid.model == "fluoro_seg[fake]"
    assert ("tumor" in aid.masks) is drawn


def test_the_next_arm_opens_after_the_washout_without_the_pin_again(store, tmp_path):
    from datetime import UTC, datetime, timedelta

    from engine.studies import AIDED, UNAIDED, ReadingSession, WashoutError, add_reader

    ids = add_glioma_cases(store, tmp_path)
    create_study(store, _study(ids, arms=(UNAIDED, AIDED), washout_days=1.0))
    add_reader(store, "s", "r1", "R1", "482913")
    now = [datetime(2026, 3, 1, 9, 0, tzinfo=UTC)]
    session = ReadingSession.open(store, "s", "r1", "482913", clock=lambda: now[0])
    with pytest.raises(StudyError, match="case\\(s\\) of this session left"):
        session.next_session()
    for _ in ids:
        session.answer(False, 1)
        session.next()
    with pytest.raises(WashoutError, match="1-day washout"):
        session.next_session()
    now[0] += timedelta(days=1, minutes=1)
    aided = session.next_session()
    assert aided is not None and aided.aided and aided.current_case().aid is not None
    for _ in ids:
        aided.answer(False, 1)
        aided.next()
    assert aided.next_session() is None  # every session of the study is done
