"""Reader-study set-up: study settings, the study frozen with its cases, per-reader case orders.

A study asks one question per case: a call on the study's task label (e.g. "metastatic") plus a
rating of how likely the case is positive on a 5-point or 0-100 scale, so that every reader has an
ROC curve. Readers belong to one study (a clinician in two studies is enrolled twice), which keeps a
study and its PINs self-contained. Each reader reads every case once per arm ("unaided": images
only; "aided": images plus the model's stored output), in a random order drawn from the study seed
and the reader id, and again in a new order for each repeat round. Between two of a reader's sessions
at least `washout_days` must pass. Aided reads always come after unaided ones: a reader who has seen the
model's output cannot read the same cases unaided afterwards.

A study is frozen when it is created: its settings, and per case the model output and threshold aided
readers see and the content hash of every image readers see (checked each time a case is shown). An
audit event (study.freeze) keeps their fingerprints for `oncolens store verify`. Readers and PINs:
engine.studies.readers.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

import numpy as np
from sqlalchemy import distinct, func, select

import engine.kinds  # noqa: F401  (registers the built-in kinds)
from engine.cases.kinds import case_kinds, get_kind
from engine.data import utc_now
from engine.store import Store, StoreError, record_summary
from engine.store.fingerprints import FROZEN_CASE_KEYS, image_sha256
from engine.store.schema import CaseRecord, PredictionRecord, StudyCaseRecord, StudyRecord

UNAIDED = "unaided"  # images only: no model output, no truth
AIDED = "aided"  # images plus the model's stored output for the task label
ARMS = (UNAIDED, AIDED)
RESERVED_READER_IDS = ("model", "average reader", "-1")  # used by the statistics and the long format

# Keyboard mapping for the reading view (Qt key names as text; the GUI binds them).
KEY_POSITIVE = "Y"
KEY_NEGATIVE = "N"
KEY_NEXT = "Right"
KEY_PREVIOUS = "Left"
KEY_RESUME = "Home"
KEY_COMMENT = "C"


class StudyError(ValueError):
    """A reader-study request cannot be done; the message names the study, reader or case and the fix."""


class AuthError(StudyError):
    """Reader id or PIN is wrong; one message for both, so a failure tells nothing about which."""


class WashoutError(StudyError):
    """The reader's next session is not open yet: the washout since the previous one has not passed."""


AUTH_FAILED = ("Reader id or PIN is wrong. Check both and try again; the study administrator can "
               "reset a forgotten PIN.")


# ----------------------------------------------------------------------------------------------------
# Confidence scales


@dataclass(frozen=True)
class ConfidenceScale:
    """How likely the reader thinks the case is positive; higher = more likely. A positive call needs a
    rating at or above the midpoint, a negative call one at or below it."""

    name: str
    low: float
    high: float
    integer: bool
    anchors: tuple[tuple[float, str], ...]  # rating -> wording, "{label}" filled in by `wording`
    keys: tuple[tuple[str, float], ...]  # keyboard shortcut -> rating

    @property
    def midpoint(self) -> float:
        return (self.low + self.high) / 2

    def wording(self, label: str) -> list[tuple[float, str]]:
        return [(value, text.format(label=label)) for value, text in self.anchors]

    def check(self, positive: bool, rating: float) -> float:
        """The rating as a float; StudyError when it is off the scale or contradicts the call."""
        try:
            value = float(rating)
        except (TypeError, ValueError):
            raise StudyError(f"Confidence must be a number on the {self.name} scale, got {rating!r}.") from None
        if not math.isfinite(value) or not self.low <= value <= self.high or (self.integer and not value.is_integer()):
            kind = "a whole number" if self.integer else "a number"
            raise StudyError(f"Confidence must be {kind} from {self.low:g} to {self.high:g} "
                             f"({self.name} scale), got {rating!r}.")
        if positive and value < self.midpoint or not positive and value > self.midpoint:
            call = "positive" if positive else "negative"
            raise StudyError(f"A {call} call needs a rating {'at or above' if positive else 'at or below'} "
                             f"{self.midpoint:g} on the {self.name} scale (higher = more likely positive); "
                             f"got {value:g}. Change the call or the rating.")
        return value


SCALES = {
    "5-point": ConfidenceScale(
        "5-point", 1, 5, True,
        ((1, "definitely not {label}"), (2, "probably not {label}"), (3, "equivocal"),
         (4, "probably {label}"), (5, "definitely {label}")),
        tuple((str(v), float(v)) for v in range(1, 6))),
    "0-100": ConfidenceScale(
        "0-100", 0, 100, False,
        ((0, "certainly not {label}"), (50, "equivocal"), (100, "certainly {label}")),
        tuple((str(d), 10.0 * d + 5) for d in range(10))),
}


# ----------------------------------------------------------------------------------------------------
# Study settings


@dataclass(frozen=True)
class Study:
    """A reader study's settings. `model=None` takes the case kind's primary model (e.g. FL-CNN on FL for
    glioma specimens), or, where no case has a prediction of it, per case the newest stored prediction that has
    the task label (they must all come from one model and threshold). `create_study` fills in `model`, an empty `question`, and the last four fields."""

    id: str
    name: str
    task_label: str
    case_ids: tuple[str, ...]
    modalities: tuple[str, ...]
    arms: tuple[str, ...] = (UNAIDED,)
    confidence_scale: str = "5-point"
    contours: bool = False
    seed: int = 0
    repeat_reads: int = 0
    washout_days: float = 0.0
    model: str | None = None
    question: str = ""
    description: str = ""
    case_kind: str = ""
    model_threshold: float | None = None
    created: str = ""
    created_by: str = ""

    @property
    def scale(self) -> ConfidenceScale:
        return SCALES[self.confidence_scale]

    @property
    def rounds(self) -> int:
        return 1 + self.repeat_reads

    def schedule(self) -> tuple[tuple[int, str], ...]:
        """(round, arm) of every session a reader reads, in order."""
        return tuple((r, arm) for r in range(1, self.rounds + 1) for arm in self.arms)

    def asked(self) -> str:
        return self.question or f"Is this case {self.task_label}?"

    def validate(self) -> None:
        """StudyError naming every setting that is wrong (checks that need no database)."""
        problems = []
        if not self.id.strip() or len(self.id) > 128:
            problems.append("the study id must be 1 to 128 characters")
        if not self.name.strip():
            problems.append("the study needs a name")
        if not self.task_label.strip():
            problems.append("task_label must name the truth label readers call, e.g. 'metastatic' or 'tumor'")
        if not self.case_ids:
            problems.append("the study needs at least one case")
        repeated = sorted({c for c in self.case_ids if self.case_ids.count(c) > 1})
        if repeated:
            problems.append(f"case ids listed twice: {', '.join(repeated)}")
        if not self.modalities or any(not m or "," in m for m in self.modalities):
            problems.append("modalities must name at least one modality readers see (no commas)")
        if not self.arms or len(set(self.arms)) != len(self.arms) or any(a not in ARMS for a in self.arms):
            problems.append(f"arms must be one or both of {', '.join(ARMS)} (in reading order), got {list(self.arms)}")
        elif tuple(self.arms) == (AIDED, UNAIDED):
            problems.append("arms must be read unaided before aided (a reader who has seen the model's output "
                            "cannot read the same cases unaided afterwards): use arms ('unaided', 'aided')")
        if self.confidence_scale not in SCALES:
            problems.append(f"confidence_scale must be one of {', '.join(SCALES)}, got {self.confidence_scale!r}")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**31:
            problems.append(f"seed must be a whole number from 0 to 2**31 - 1, got {self.seed!r}")
        if not isinstance(self.repeat_reads, int) or self.repeat_reads < 0:
            problems.append(f"repeat_reads must be 0 or more, got {self.repeat_reads!r}")
        if not math.isfinite(self.washout_days) or self.washout_days < 0:
            problems.append(f"washout_days must be 0 or more, got {self.washout_days!r}")
        if problems:
            raise StudyError(f"Study {self.id!r} cannot be created: " + "; ".join(problems) + ".")


def id_chunks(values: Sequence[str], size: int = 500) -> Iterable[Sequence[str]]:
    """Keeps `IN (...)` lists under SQLite's bound-parameter limit."""
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _listed(ids: Sequence[str], limit: int = 10) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def _check_truth(study: Study, records: dict[str, CaseRecord]) -> None:
    """A study is analysed against truth: every case needs a 0/1 truth for the task label, and both classes
    must be present (an ROC curve needs positives and negatives). Refused at creation, not at report time."""
    values = {}
    for case_id in study.case_ids:
        labels = json.loads(records[case_id].truth_json)["labels"] if records[case_id].truth_json else {}
        values[case_id] = labels.get(study.task_label)
    missing = [c for c, v in values.items() if v not in (0, 1)]
    if missing:
        raise StudyError(f"Study {study.id!r}: {len(missing)} case(s) have no 0/1 truth for {study.task_label!r}: "
                         f"{_listed(missing)}. Add the truth to their bundles (or leave them out); readers and the "
                         "model are compared with it.")
    classes = {int(v) for v in values.values()}
    if len(classes) < 2:
        which = "positive" if classes == {1} else "negative"
        cases = "its only case is" if len(values) == 1 else f"all {len(values)} cases are"
        raise StudyError(f"Study {study.id!r}: {cases} {which} for {study.task_label!r}. "
                         "A reader study needs positive and negative cases (sensitivity, specificity and ROC "
                         "curves need both); add cases of the other class.")


def stored_models(store: Store, case_ids: Sequence[str]) -> dict[str, int]:
    """Model id -> how many of these cases have a stored prediction of it (the choices a new study offers)."""
    counts: dict[str, int] = {}
    with store.transaction(write=False) as session:
        for chunk in id_chunks(list(case_ids)):
            query = (select(PredictionRecord.model, func.count(distinct(PredictionRecord.case_id)))
                     .where(PredictionRecord.case_id.in_(chunk)).group_by(PredictionRecord.model))
            for model, n in session.execute(query):
                counts[model] = counts.get(model, 0) + int(n)
    return counts


def _default_model(session, kind, case_ids: Sequence[str]) -> str | None:
    """The kind's primary model (FL-CNN on FL, not whichever model ran last); None (the newest prediction per
    case, which must then all be of one model) only where no case has a prediction of the primary model."""
    primary = kind.primary_model()
    for chunk in id_chunks(list(case_ids)):
        if session.scalars(select(PredictionRecord.id).where(PredictionRecord.case_id.in_(chunk),
                                                             PredictionRecord.model == primary).limit(1)).first():
            return primary
    return None


def _frozen_predictions(session, study: Study, records: dict[str, CaseRecord]) -> dict[str, PredictionRecord]:
    """Per case the newest prediction with the task label (of `study.model` when set)."""
    chosen: dict[str, PredictionRecord] = {}
    for chunk in id_chunks(list(records)):
        query = select(PredictionRecord).where(PredictionRecord.case_id.in_(chunk)).order_by(PredictionRecord.id.desc())
        if study.model:
            query = query.where(PredictionRecord.model == study.model)
        for prediction in session.scalars(query):
            if prediction.case_id not in chosen and study.task_label in record_summary(prediction).probabilities:
                chosen[prediction.case_id] = prediction
    missing = [c for c in study.case_ids if c not in chosen]
    if missing:
        which = f"from model {study.model!r} " if study.model else ""
        raise StudyError(f"Study {study.id!r}: {len(missing)} case(s) have no stored prediction {which}with a "
                         f"{study.task_label!r} probability: {_listed(missing)}. Run the model on them first (its "
                         "summary is what aided readers see and what readers are compared with), or choose another "
                         "model.")
    summaries = {c: record_summary(p) for c, p in chosen.items()}
    for what, value in (("model", lambda s: s.model),
                        ("threshold", lambda s: s.thresholds.get(study.task_label)),
                        ("weights", lambda s: json.dumps(s.weights_sha256, sort_keys=True))):
        seen = {}
        for case_id, summary in summaries.items():
            seen.setdefault(value(summary), case_id)
        if len(seen) > 1:
            examples = "; ".join(f"{v} (e.g. case {c})" for v, c in list(seen.items())[:3])
            raise StudyError(f"Study {study.id!r}: the cases' predictions differ in {what}: {examples}. Choose "
                             "one model (study create --model, or the model list in the New study dialog) and "
                             "predict every case with its installed version.")
    return chosen


def _image_hashes(store: Store, study: Study) -> dict[str, dict[str, str]]:
    """Per case, the content hash of each image readers will see. Read before the write transaction, which
    would otherwise hold the write lock while every bundle is read. Unknown cases are left to create_study."""
    with store.transaction(write=False) as session:
        known = {c for chunk in id_chunks(list(study.case_ids))
                 for c in session.scalars(select(CaseRecord.id).where(CaseRecord.id.in_(chunk)))}
    hashes: dict[str, dict[str, str]] = {}
    problems = []
    for case_id in (c for c in study.case_ids if c in known):
        try:
            case = store.load_case(case_id)
        except StoreError as exc:
            problems.append(str(exc))
            continue
        hashes[case_id] = {m: image_sha256(case.images[m]) for m in study.modalities if m in case.images}
    if problems:
        raise StudyError(f"Study {study.id!r}: the images of {len(problems)} case(s) cannot be read, and a study "
                         "freezes the images its readers see:\n  " + "\n  ".join(problems[:10]))
    return hashes


def create_study(store: Store, study: Study, actor: str = "admin") -> Study:
    """Check the settings against the store and save the study with its cases, frozen model outputs and the
    content hashes of the images readers see."""
    study.validate()
    ids = list(study.case_ids)
    image_hashes = _image_hashes(store, study)
    with store.transaction(write=True) as session:
        if session.get(StudyRecord, study.id) is not None:
            raise StudyError(f"A study with id {study.id!r} already exists; choose another id.")
        records = {r.id: r for chunk in id_chunks(ids)
                   for r in session.scalars(select(CaseRecord).where(CaseRecord.id.in_(chunk)))}
        unknown = [c for c in ids if c not in records]
        if unknown:
            raise StudyError(f"Study {study.id!r}: {len(unknown)} case id(s) are not in the store: "
                             f"{_listed(unknown)}. Add them first: open their bundles in OncoLens (File ▸ Open case bundle…).")
        kinds = sorted({r.kind for r in records.values()})
        if len(kinds) > 1:
            raise StudyError(f"Study {study.id!r}: all cases must be of one kind, got {', '.join(kinds)}.")
        if study.contours and (not get_kind(kinds[0]).outline or len(study.modalities) != 1):
            outline_kinds = ", ".join(k.name for k in case_kinds() if k.outline)
            raise StudyError(f"Study {study.id!r}: readers can draw contours only on {outline_kinds} "
                             f"cases showing one modality (got {kinds[0]} with {', '.join(study.modalities)}); "
                             "create it without contours.")
        lacking = [f"{c} (has {records[c].modalities or 'none'})" for c in ids
                   if not set(study.modalities) <= set(records[c].modalities.split(","))]
        if lacking:
            raise StudyError(f"Study {study.id!r}: these cases lack a modality of {', '.join(study.modalities)}: "
                             f"{_listed(lacking)}.")
        if not study.model:
            study = Study(**{**asdict(study), "model": _default_model(session, get_kind(kinds[0]), ids)})
        chosen = _frozen_predictions(session, study, records)
        _check_truth(study, records)
        first = record_summary(chosen[ids[0]])
        saved = Study(**{**asdict(study), "case_ids": tuple(ids), "modalities": tuple(study.modalities),
                         "arms": tuple(study.arms), "model": first.model, "case_kind": kinds[0],
                         "model_threshold": float(first.thresholds[study.task_label]),
                         "question": study.asked(), "created": utc_now(), "created_by": actor})
        session.add(StudyRecord(
            id=saved.id, name=saved.name, task_label=saved.task_label, case_kind=saved.case_kind,
            question=saved.question, description=saved.description, confidence_scale=saved.confidence_scale,
            contours=saved.contours, modalities=",".join(saved.modalities), arms=",".join(saved.arms),
            model=saved.model, model_threshold=saved.model_threshold, seed=saved.seed,
            repeat_reads=saved.repeat_reads, washout_days=float(saved.washout_days), created=saved.created,
            created_by=actor))
        session.flush()
        frozen = {}
        for position, case_id in enumerate(ids):
            prediction = chosen[case_id]
            probability = record_summary(prediction).probabilities[study.task_label]
            frozen[case_id] = StudyCaseRecord(study_id=saved.id, position=position, case_id=case_id,
                                              prediction_id=prediction.id, model_probability=float(probability),
                                              images_sha256=json.dumps(image_hashes[case_id], sort_keys=True))
            session.add(frozen[case_id])
        detail = {k: v for k, v in asdict(saved).items() if k not in ("case_ids", "created", "created_by")}
        detail["n_cases"] = len(ids)
        store.record_event(session, actor, "study.create", "study", saved.id, detail)
        session.flush()
        store.record_event(session, actor, "study.freeze", "study", saved.id, {
            "study": store.row_fingerprint(session, session.get(StudyRecord, saved.id)),
            "cases": {c: store.row_fingerprint(session, r, skip=FROZEN_CASE_KEYS) for c, r in frozen.items()}})
    return saved


def _study_from_record(record: StudyRecord, case_ids: tuple[str, ...]) -> Study:
    return Study(
        id=record.id, name=record.name, task_label=record.task_label, case_ids=case_ids,
        modalities=tuple(record.modalities.split(",")), arms=tuple(record.arms.split(",")),
        confidence_scale=record.confidence_scale, contours=record.contours, seed=record.seed,
        repeat_reads=record.repeat_reads, washout_days=record.washout_days, model=record.model,
        question=record.question, description=record.description, case_kind=record.case_kind,
        model_threshold=record.model_threshold, created=record.created, created_by=record.created_by)


def load_study(store: Store, study_id: str) -> Study:
    """A saved study; StudyError naming the known studies when the id is unknown."""
    with store.transaction(write=False) as session:
        record = session.get(StudyRecord, study_id)
        if record is None:
            known = session.scalars(select(StudyRecord.id).order_by(StudyRecord.id)).all()
            raise StudyError(f"No reader study {study_id!r} in the store (known: {', '.join(known) or 'none'}).")
        case_ids = tuple(session.scalars(select(StudyCaseRecord.case_id).where(StudyCaseRecord.study_id == study_id)
                                         .order_by(StudyCaseRecord.position)))
        return _study_from_record(record, case_ids)


def list_studies(store: Store) -> list[Study]:
    with store.transaction(write=False) as session:
        ids = session.scalars(select(StudyRecord.id).order_by(StudyRecord.created)).all()
    return [load_study(store, i) for i in ids]


# ----------------------------------------------------------------------------------------------------
# Reading order


def order_seed(study_seed: int, reader_id: str, arm: str, round_: int) -> int:
    """A 63-bit seed from the study seed, reader, arm and round: reproducible, different per reader."""
    text = "\x1f".join((str(study_seed), reader_id, arm, str(round_)))
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") >> 1


def reading_order(case_ids: Sequence[str], study_seed: int, reader_id: str, arm: str = UNAIDED,
                  round_: int = 1) -> tuple[str, ...]:
    """The study's cases in the random order this reader reads them in this arm and round."""
    rng = np.random.default_rng(order_seed(study_seed, reader_id, arm, round_))
    return tuple(case_ids[i] for i in rng.permutation(len(case_ids)))


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text)
