"""Readers' outlines of one study case for the study administrator, outside any reading session: every reader's
current outline (per arm and round), the model's mask and the truth mask, each outline with its Dice against
the truth. The analysis (engine.studies.contours) scores the same masks over the whole study; this is the
per-case look behind those numbers. No reader sees this: it is read with the administrator's store access.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.data import ModalityImage
from engine.metrics.segmentation import segmentation_metrics
from engine.seg.contours import mask_to_contours
from engine.store import Store, StoreError
from engine.studies.analysis import _current_reads
from engine.studies.contours import _mask_named, polygons_to_mask
from engine.studies.model import StudyError, load_study


@dataclass(frozen=True)
class Outline:
    """One rater's outline of a case: a reader (with arm and round) or the study's model."""

    rater: str
    arm: str  # "" for the model
    round: int
    mask: np.ndarray  # bool, on the image grid
    contours: list  # (N, 2) row/column loops of `mask`
    dice: float | None  # against the truth mask (None: the case has no truth mask)
    drawn: bool  # False: the reader answered without outlining (scored as an empty mask)

    @property
    def title(self) -> str:
        who = f"Model {self.rater}" if not self.arm else f"{self.rater} · {self.arm}" + (f" (round {self.round})"
                                                                            if self.round > 1 else "")
        return who + (f" · Dice {self.dice:.2f}" if self.dice is not None else "")


@dataclass(frozen=True)
class CaseOutlines:
    """What the administrator sees for one study case."""

    study_id: str
    case_id: str
    image: ModalityImage
    truth: np.ndarray | None
    truth_contours: list
    model: Outline | None
    readers: tuple[Outline, ...]
    notes: tuple[str, ...]


def _dice(mask: np.ndarray, truth: np.ndarray | None) -> float | None:
    return None if truth is None else float(segmentation_metrics(mask, truth)["dice"])


def _plane(image: ModalityImage) -> ModalityImage:
    if image.axes not in ("YX", "YXC"):
        raise StudyError(f"Image {image.modality} has axes {image.axes}: outlines are drawn on planes (YX or YXC).")
    return image


def case_outlines(store: Store, study_id: str, case_id: str) -> CaseOutlines:
    """Every reader's current outline of `case_id` in study `study_id`, the model's and the truth, with Dice."""
    study = load_study(store, study_id)
    if case_id not in study.case_ids:
        raise StudyError(f"Case {case_id!r} is not in study {study_id!r}; pick one of its {len(study.case_ids)} cases.")
    if not study.contours:
        raise StudyError(f"Study {study_id!r} was created without contours: its readers drew no outlines.")
    try:
        case = store.load_case(case_id)
    except StoreError as exc:
        raise StudyError(f"Study {study_id}, case {case_id}: {exc}") from None
    image = _plane(case.image(study.modalities[0]))
    shape = image.array.shape[:2]
    notes = []
    truth = None
    if case.truth is not None and case.truth.masks:
        truth = _mask_named(case.truth.masks, study.task_label)
    if truth is None:
        notes.append(f"The bundle has no truth mask for {study.task_label!r}: no Dice.")
    elif truth.shape != shape:
        notes.append(f"The truth mask is {truth.shape}, the image {shape}: no Dice.")
        truth = None
    model = None
    prediction = next((p for p in reversed(case.predictions) if p.model == study.model and p.masks), None)
    model_mask = None if prediction is None else _mask_named(prediction.masks, study.task_label)
    if model_mask is not None and model_mask.shape == shape:
        model = Outline(study.model or "model", "", 1, model_mask, mask_to_contours(model_mask), _dice(model_mask, truth),
                        True)
    else:
        notes.append(f"The bundle holds no mask of the study's model {study.model!r} for this case.")
    reads, sessions, current = _current_reads(store, study_id)
    readers = []
    for read in reads:
        if read.id not in current or read.case_id != case_id:
            continue
        s = sessions[read.session_id]
        mask = polygons_to_mask(read.contour_json, shape)
        readers.append(Outline(read.reader_id, s.arm, s.round, mask, mask_to_contours(mask), _dice(mask, truth),
                               read.contour_json is not None))
    readers.sort(key=lambda o: (o.rater, o.round, study.arms.index(o.arm) if o.arm in study.arms else 9))
    if not readers:
        notes.append("No reader has answered this case yet.")
    return CaseOutlines(study_id, case_id, image, truth, [] if truth is None else mask_to_contours(truth), model,
                        tuple(readers), tuple(notes))


def outline_dice_table(outlines: CaseOutlines) -> list[dict]:
    """One row per rater: rater, arm, round, drawn, dice (for a table or a CSV)."""
    rows = [] if outlines.model is None else [outlines.model]
    return [{"rater": o.rater, "arm": o.arm or "model", "round": o.round, "drawn": o.drawn,
             "dice": o.dice} for o in [*rows, *outlines.readers]]
