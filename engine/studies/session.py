"""A reader's reading session: blinded cases in the reader's own order, every answer saved at once.

`ReadingSession` is the only reader-facing way in. It never loads truth; it loads the model's output
only in an aided session; what it hands out (`BlindedCase`, `ReaderAnswer`) holds the allowed images,
the aid where allowed and the reader's own answers, nothing else. Every `answer` is its own committed
transaction, so closing the window, a crash or a power cut loses nothing already answered. Answers are
never overwritten: a change is a new read that supersedes the old one, and an audit event keeps both.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

import numpy as np
from sqlalchemy import distinct, func, select
from sqlalchemy.exc import IntegrityError

from engine.cases.kinds import get_kind
from engine.cases.model import Case
from engine.data import ImageMeta, ModalityImage
from engine.store import Store, StoreError, record_summary
from engine.store.fingerprints import image_sha256
from engine.store.schema import (
    PredictionRecord,
    ReadingSessionRecord,
    ReadRecord,
    StudyCaseRecord,
)
from engine.studies.model import (
    AIDED,
    ConfidenceScale,
    Study,
    StudyError,
    WashoutError,
    load_study,
    order_seed,
    parse_time,
    reading_order,
)
from engine.studies.readers import ReaderInfo, authenticate, list_readers

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
CASE_UNAVAILABLE = ("This case cannot be shown: its images are missing, unreadable, or not the ones this study "
                    "was made with. Tell the study administrator, then go on with the next case.")


class ImagesChanged(StoreError):
    """A case's bundle holds other images than those frozen with the study (a bundle re-written or swapped)."""

    def __init__(self, case_id: str, frozen: Mapping[str, str], found: Mapping[str, str]) -> None:
        changed = sorted(m for m in frozen if found.get(m) != frozen[m])
        super().__init__(f"Case {case_id}: the {', '.join(changed)} image(s) in its bundle are not the ones frozen "
                         "with the study (content hash differs). Put the original bundle back; the study keeps "
                         "its images.")
        self.frozen, self.found = dict(frozen), dict(found)


def _utc_clock() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class ModelAid:
    """The model output an aided reader sees: its stored probability and call for the task label, plus the
    masks, contours and heatmaps of the matching prediction in the case bundle when there is one."""

    model: str
    family: str
    variant: str
    label: str
    probability: float
    threshold: float
    positive: bool
    masks: Mapping[str, np.ndarray]
    contours: Mapping[str, tuple[np.ndarray, ...]]
    heatmaps: Mapping[str, np.ndarray]


@dataclass(frozen=True)
class ReaderAnswer:
    """One of the reader's own answers (the current one for its case unless superseded)."""

    read_id: int
    case_id: str
    positive: bool
    confidence: float
    comment: str
    contour: tuple[tuple[tuple[float, float], ...], ...] | None
    shown_at: str
    answered_at: str
    seconds: float  # time the case was on screen up to this answer, over all visits
    supersedes: int | None


@dataclass(frozen=True)
class Progress:
    position: int  # 1-based position of the case on screen
    total: int
    answered: int

    @property
    def remaining(self) -> int:
        return self.total - self.answered

    def __str__(self) -> str:
        return f"case {self.position} of {self.total} ({self.answered} answered)"


@dataclass(frozen=True)
class BlindedCase:
    """What the reader may see of one case: never truth, never other readers' reads, and model output only
    in an aided session. `unavailable` says why the images cannot be shown (the reader goes on)."""

    study_id: str
    case_id: str
    position: int
    total: int
    kind: str
    question: str
    task_label: str
    scale: ConfidenceScale
    draw_contour: bool
    images: Mapping[str, ModalityImage]
    aid: ModelAid | None
    answer: ReaderAnswer | None
    unavailable: str | None = None


def _answer_from(row: ReadRecord) -> ReaderAnswer:
    contour = None
    if row.contour_json is not None:
        contour = tuple(tuple((float(x), float(y)) for x, y in poly) for poly in json.loads(row.contour_json))
    return ReaderAnswer(row.id, row.case_id, bool(row.positive), float(row.confidence), row.comment, contour,
                        row.shown_at, row.answered_at, float(row.seconds), row.supersedes)


def _contour_json(contour: Any, case_id: str) -> str:
    try:
        polygons = [[[float(x), float(y)] for x, y in poly] for poly in contour]
    except (TypeError, ValueError):
        raise StudyError(f"Case {case_id}: a contour must be a list of polygons, each a list of (x, y) points.") from None
    if any(len(p) < 3 for p in polygons) or not all(math.isfinite(v) for p in polygons for pt in p for v in pt):
        raise StudyError(f"Case {case_id}: every contour polygon needs at least 3 finite (x, y) points.")
    return json.dumps(polygons)


def _read_only(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


def _blinded_image(image: ModalityImage) -> ModalityImage:
    """The image with its geometry but without its provenance (a file name may hint at the truth)."""
    meta = image.meta
    return ModalityImage(image.modality, _read_only(image.array),
                         ImageMeta(meta.bit_depth, meta.units, meta.spacing, origin=meta.origin, direction=meta.direction), image.axes)


def _session_row(store: Store, study: Study, reader_id: str, now: datetime) -> ReadingSessionRecord:
    """The reader's unfinished session, or the next one in the schedule once the washout has passed."""
    with store.transaction(write=True) as session:
        rows = {(r.arm, r.round): r for r in session.scalars(
            select(ReadingSessionRecord).where(ReadingSessionRecord.study_id == study.id,
                                               ReadingSessionRecord.reader_id == reader_id))}
        previous: ReadingSessionRecord | None = None
        for round_, arm in study.schedule():
            row = rows.get((arm, round_))
            if row is not None and row.completed is None:
                return row
            if row is None:
                if previous is not None:
                    opens = parse_time(previous.completed) + timedelta(days=study.washout_days)
                    if now < opens:
                        raise WashoutError(
                            f"Reader {reader_id} finished the {previous.arm} session (round {previous.round}) of "
                            f"study {study.id} at {previous.completed}; the {arm} session (round {round_}) opens "
                            f"after the {study.washout_days:g}-day washout, at {_iso(opens)}.")
                seed = order_seed(study.seed, reader_id, arm, round_)
                row = ReadingSessionRecord(
                    study_id=study.id, reader_id=reader_id, arm=arm, round=round_, started=_iso(now),
                    order_json=json.dumps(reading_order(study.case_ids, study.seed, reader_id, arm, round_)),
                    order_seed=str(seed), completed=None)
                session.add(row)
                session.flush()
                store.record_event(session, reader_id, "session.start", "study", study.id,
                                   {"session_id": row.id, "reader_id": reader_id, "arm": arm, "round": round_,
                                    "row": store.row_fingerprint(session, row)})
                return row
            previous = row
    raise StudyError(f"Reader {reader_id} has finished every reading session of study {study.id}. Thank you.")


OUTLINE_TOLERANCE = 1e-3  # a model run again matches its frozen probability to this (backends differ slightly)


def _model_parts(model: str) -> tuple[str, str]:
    """'fluoro_seg[unetplusplus]' -> ('fluoro_seg', 'unetplusplus'); 'chmfl' -> ('chmfl', '')."""
    family, _, rest = model.partition("[")
    return family, rest[:-1] if rest.endswith("]") else rest


class ReadingSession:
    """One reader reading one arm/round of a study. Open with `ReadingSession.open(store, study, reader, pin)`."""

    def __init__(self, store: Store, study: Study, reader: ReaderInfo, row: ReadingSessionRecord,
                 clock: Clock) -> None:
        self._store = store
        self._study = study
        self._reader = reader
        self._clock = clock
        self.session_id: int = row.id
        self.arm: str = row.arm
        self.round: int = row.round
        self._order: tuple[str, ...] = tuple(json.loads(row.order_json))
        with store.transaction(write=False) as session:
            frozen = session.scalars(select(StudyCaseRecord).where(StudyCaseRecord.study_id == study.id)).all()
        self._aids: dict[str, tuple[float, int]] = {}
        if self.arm == AIDED:
            self._aids = {r.case_id: (r.model_probability, r.prediction_id) for r in frozen}
        # None for studies made before image hashes were kept (store revision 0003): their images are not checked
        self._frozen_images: dict[str, dict[str, str] | None] = {
            r.case_id: None if r.images_sha256 is None else json.loads(r.images_sha256) for r in frozen}
        self._answers: dict[str, ReaderAnswer] = {a.case_id: a for a in self.my_answers()}
        self._index = 0
        self._shown: tuple[int, float, str, float] | None = None  # index, monotonic start, shown_at, earlier seconds
        self._case: BlindedCase | None = None
        self._prefetched: dict[str, tuple[dict[str, ModalityImage], ModelAid | None]] = {}
        self._outline_predictor = None  # outline studies: the frozen model, loaded once (`_outline_again`)
        self.resume()

    @classmethod
    def open(cls, store: Store, study_id: str, reader_id: str, pin: str, *, clock: Clock | None = None
             ) -> ReadingSession:
        """Check the PIN, then open the reader's unfinished session (or start the next one) at the first
        unanswered case. AuthError for a wrong reader or PIN, WashoutError when the next session is not due."""
        clock = clock or _utc_clock
        study = load_study(store, study_id)
        reader = authenticate(store, study_id, reader_id, pin)
        try:
            row = _session_row(store, study, reader.reader_id, clock())
        except IntegrityError:  # the same reader started this session in another window at the same moment
            row = _session_row(store, study, reader.reader_id, clock())
        return cls(store, study, reader, row, clock)

    # -- what the reader sees ------------------------------------------------------------------------

    @property
    def study_id(self) -> str:
        return self._study.id

    @property
    def study(self) -> Study:
        """The study's frozen settings (no truth in them)."""
        return self._study

    @property
    def reader_id(self) -> str:
        return self._reader.reader_id

    @property
    def display_name(self) -> str:
        return self._reader.display_name

    @property
    def aided(self) -> bool:
        return self.arm == AIDED

    @property
    def total(self) -> int:
        return len(self._order)

    @property
    def position(self) -> int:
        return self._index + 1

    def progress(self) -> Progress:
        return Progress(self.position, self.total, len(self._answers))

    @property
    def is_complete(self) -> bool:
        return len(self._answers) == self.total

    def next_session(self) -> ReadingSession | None:
        """Once this session is complete, the reader's next one in the study's schedule (e.g. the aided arm after
        the unaided one), opened without asking the PIN again: the reader signed in for this one. None when
        every session is done; WashoutError (saying when it opens) while the washout runs."""
        if not self.is_complete:
            raise StudyError(f"Reader {self.reader_id} has {self.total - len(self._answers)} case(s) of this "
                             "session left; the next session opens when every case is answered.")
        try:
            row = _session_row(self._store, self._study, self.reader_id, self._clock())
        except WashoutError:
            raise
        except StudyError:  # every session of the schedule is finished
            return None
        return ReadingSession(self._store, self._study, self._reader, row, self._clock)

    def current_case(self) -> BlindedCase:
        """The case on screen; its timer starts the first time it is asked for after a move."""
        if self._case is None or self._shown is None or self._shown[0] != self._index:
            case_id = self._order[self._index]
            earlier = self._answers[case_id].seconds if case_id in self._answers else 0.0
            self._shown = (self._index, time.monotonic(), _iso(self._clock()), earlier)
            self._case = self._load(case_id)
        return self._case

    def _checked_case(self, case_id: str) -> Case:
        """The case from its bundle, with every image the study shows, as frozen with the study.
        StoreError (ImagesChanged when the bundle's images are not the frozen ones) otherwise."""
        case = self._store.load_case(case_id)
        missing = [m for m in self._study.modalities if m not in case.images]
        if missing:
            raise StoreError(f"Case {case_id}: its bundle has no {', '.join(missing)} image any more "
                             f"(it has {', '.join(case.images) or 'none'}). Re-import the right bundle.")
        frozen = self._frozen_images.get(case_id)
        if frozen is not None:
            found = {m: image_sha256(case.images[m]) for m in frozen if m in case.images}
            if found != frozen:
                raise ImagesChanged(case_id, frozen, found)
        return case

    def _load(self, case_id: str) -> BlindedCase:
        study = self._study
        base = dict(study_id=study.id, case_id=case_id, position=self.position, total=self.total,
                    kind=study.case_kind, question=study.asked(), task_label=study.task_label, scale=study.scale,
                    draw_contour=study.contours, answer=self._answers.get(case_id))
        try:
            images, aid = self._prefetched.pop(case_id, None) or self._read(case_id)
        except StoreError as exc:
            # The reader is told nothing that could identify the case (id, path, patient); the log keeps all.
            detail = {"case_id": case_id, "session_id": self.session_id, "reason": str(exc)}
            if isinstance(exc, ImagesChanged):
                detail.update(frozen=exc.frozen, found=exc.found)
            action = "study.case_images_changed" if isinstance(exc, ImagesChanged) else "study.case_unavailable"
            self._store.audit(self.reader_id, action, "study", study.id, detail)
            return BlindedCase(**base, images=MappingProxyType({}), aid=None, unavailable=CASE_UNAVAILABLE)
        return BlindedCase(**base, images=MappingProxyType(images), aid=aid)

    def _read(self, case_id: str) -> tuple[dict[str, ModalityImage], ModelAid | None]:
        """The case's blinded images and, in an aided session, the model aid; StoreError when unreadable or not
        as frozen with the study (ImagesChanged)."""
        case = self._checked_case(case_id)
        images = {m: _blinded_image(case.images[m]) for m in self._study.modalities}
        return images, (self._aid(case_id, case.predictions) if self.aided else None)

    def prefetch(self, position: int) -> None:
        """Read the case at `position` ahead of time (e.g. the next one while the reader reads this one), so that
        moving there needs no disk or database. Its timer still starts when it is shown; a case that cannot be
        read is left alone here and reported when it is shown. Keeps at most two cases read ahead."""
        if not 1 <= position <= self.total:
            return
        case_id = self._order[position - 1]
        if case_id in self._prefetched or (self._case is not None and self._case.case_id == case_id):
            return
        try:
            read = self._read(case_id)
        except StoreError:
            return
        while len(self._prefetched) >= 2:
            self._prefetched.pop(next(iter(self._prefetched)))
        self._prefetched[case_id] = read

    def _aid(self, case_id: str, bundle_predictions: Sequence[Any]) -> ModelAid:
        probability, prediction_id = self._aids[case_id]
        study = self._study
        with self._store.transaction(write=False) as session:
            frozen = record_summary(session.get(PredictionRecord, prediction_id))
        match = next((p for p in reversed(bundle_predictions) if p.model == study.model
                      and abs(float(p.probabilities.get(study.task_label, math.nan)) - probability) < 1e-6), None)
        if match is None and study.contours:
            match = self._outline_again(case_id, probability)
        masks = {} if match is None else {k: _read_only(v) for k, v in match.masks.items()}
        contours = {} if match is None else {k: tuple(_read_only(c) for c in cs) for k, cs in match.contours.items()}
        heatmaps = {} if match is None else {k: _read_only(v) for k, v in match.heatmaps.items()}
        return ModelAid(study.model, frozen.family, frozen.variant, study.task_label, probability,
                        float(study.model_threshold),
                        probability >= study.model_threshold, MappingProxyType(masks),
                        MappingProxyType(contours), MappingProxyType(heatmaps))

    def _outline_again(self, case_id: str, probability: float) -> Any | None:
        """For outline studies whose case bundle keeps no mask of the frozen prediction: the frozen model run
        again on the case, so that aided readers see its contour on the frame and not only its number. Used
        only when it reproduces the frozen probability (same weights, same input); None otherwise."""
        study = self._study
        kind = get_kind(study.case_kind)
        case = self._checked_case(case_id)
        family, variant = _model_parts(study.model)
        try:
            if self._outline_predictor is None:
                groups = kind.predictor_groups(case)
                method = variant if kind.methods() else None
                self._outline_predictor = kind.make_predictor(groups[0], method)
            predictor = self._outline_predictor
            images = {m: case.images[m] for m in predictor.modalities if m in case.images}
            again = predictor.predict(images, explain=False)
        except Exception as exc:  # a missing net or unreadable input: the reader still gets the number
            log.warning("Study %s, case %s: the model's outline could not be drawn (%s).", study.id, case_id, exc)
            return None
        value = again.probabilities.get(study.task_label)
        if again.model != study.model or value is None or abs(float(value) - probability) > OUTLINE_TOLERANCE:
            log.warning("Study %s, case %s: running %s again gave %s, not the frozen %.6f; no outline drawn.",
                        study.id, case_id, study.model, value, probability)
            return None
        return again

    # -- moving --------------------------------------------------------------------------------------

    def go_to(self, position: int) -> BlindedCase:
        if not 1 <= position <= self.total:
            raise StudyError(f"Position {position} is outside this session (1 to {self.total}).")
        self._index = position - 1
        return self.current_case()

    def next(self) -> BlindedCase | None:
        """The next case, or None at the end (the position stays on the last case)."""
        return None if self._index + 1 >= self.total else self.go_to(self.position + 1)

    def previous(self) -> BlindedCase | None:
        return None if self._index == 0 else self.go_to(self.position - 1)

    def resume(self) -> BlindedCase:
        """Go to the first unanswered case in the reader's order (the last case when all are answered)."""
        unanswered = [i for i, c in enumerate(self._order) if c not in self._answers]
        return self.go_to((unanswered[0] if unanswered else self.total - 1) + 1)

    # -- answering -----------------------------------------------------------------------------------

    def answer(self, positive: bool, confidence: float, comment: str = "",
               contour: Sequence[Sequence[Sequence[float]]] | None = None) -> ReaderAnswer:
        """Save the answer for the case on screen now, in its own transaction; a second answer to the same
        case is a new read that supersedes the first, and both stay in the reads table and the audit log."""
        case = self.current_case()
        if case.unavailable:
            raise StudyError(f"Case {case.position} of {self.total} could not be shown, so it cannot be answered; "
                             "go on with the next case.")
        value = self._study.scale.check(bool(positive), confidence)
        if contour is not None and not self._study.contours:
            raise StudyError(f"Study {self.study_id} does not ask for contours; answer without one.")
        contour_text = None if contour is None else _contour_json(contour, case.case_id)
        _, started, shown_at, earlier = self._shown
        seconds = earlier + (time.monotonic() - started)
        now = _iso(self._clock())
        with self._store.transaction(write=True) as session:
            row_session = session.get(ReadingSessionRecord, self.session_id)
            previous = session.scalars(
                select(ReadRecord).where(ReadRecord.session_id == self.session_id, ReadRecord.case_id == case.case_id)
                .order_by(ReadRecord.id.desc()).limit(1)).first()
            row = ReadRecord(session_id=self.session_id, study_id=self.study_id, reader_id=self.reader_id,
                             case_id=case.case_id, positive=bool(positive), confidence=value, comment=str(comment),
                             contour_json=contour_text, shown_at=shown_at, answered_at=now, seconds=seconds,
                             supersedes=None if previous is None else previous.id)
            session.add(row)
            session.flush()
            detail: dict[str, Any] = {
                "read_id": row.id, "session_id": self.session_id, "reader_id": self.reader_id, "arm": self.arm,
                "round": self.round, "case_id": case.case_id, "positive": bool(positive), "confidence": value,
                "comment": row.comment, "shown_at": shown_at, "answered_at": now, "seconds": round(seconds, 3),
                "row": self._store.row_fingerprint(session, row)}
            if previous is not None:
                detail["previous"] = {"read_id": previous.id, "positive": bool(previous.positive),
                                      "confidence": previous.confidence, "comment": previous.comment,
                                      "answered_at": previous.answered_at}
            self._store.record_event(session, self.reader_id, "read.change" if previous else "read.add", "study",
                                     self.study_id, detail)
            if row_session.completed is None:
                answered = session.scalar(select(func.count(distinct(ReadRecord.case_id)))
                                          .where(ReadRecord.session_id == self.session_id))
                if answered == self.total:
                    row_session.completed = now
                    self._store.record_event(session, self.reader_id, "session.complete", "study", self.study_id,
                                             {"session_id": self.session_id, "unanswered": [], "completed": now})
            saved = _answer_from(row)
        self._answers[case.case_id] = saved
        self._case = replace(case, answer=saved)
        return saved

    def my_answers(self) -> list[ReaderAnswer]:
        """This reader's current answers in this session, in reading order (only their own reads)."""
        with self._store.transaction(write=False) as session:
            rows = session.scalars(select(ReadRecord).where(
                ReadRecord.session_id == self.session_id, ReadRecord.reader_id == self.reader_id)
                .order_by(ReadRecord.id)).all()
            newest = {row.case_id: _answer_from(row) for row in rows}
        rank = {c: i for i, c in enumerate(self._order)}
        return sorted(newest.values(), key=lambda a: rank[a.case_id])

    def finish(self) -> None:
        """Close the session when the only unanswered cases are ones that cannot be shown (a session with
        every case answered closes by itself); StudyError lists the cases still to read."""
        unanswered = [c for c in self._order if c not in self._answers]
        readable = [c for c in unanswered if self._can_show(c)]
        if readable:
            positions = ", ".join(str(self._order.index(c) + 1) for c in readable)
            raise StudyError(f"{len(readable)} case(s) are still unanswered (positions {positions}); "
                             "answer them before finishing.")
        now = _iso(self._clock())
        with self._store.transaction(write=True) as session:
            row = session.get(ReadingSessionRecord, self.session_id)
            if row.completed is None:
                row.completed = now
                self._store.record_event(session, self.reader_id, "session.complete", "study", self.study_id,
                                         {"session_id": self.session_id, "unanswered": unanswered,
                                          "completed": now})

    def _can_show(self, case_id: str) -> bool:
        try:
            self._checked_case(case_id)
        except StoreError:
            return False
        return True

    def __repr__(self) -> str:
        return (f"ReadingSession(study={self.study_id!r}, reader={self.reader_id!r}, arm={self.arm!r}, "
                f"round={self.round}, {self.progress()})")


# ----------------------------------------------------------------------------------------------------
# Administrator's view


@dataclass(frozen=True)
class SessionProgress:
    reader_id: str
    arm: str
    round: int
    answered: int
    total: int
    started: str | None
    completed: str | None


def study_progress(store: Store, study_id: str) -> list[SessionProgress]:
    """How far every reader is in every session of the schedule (for the administrator, not readers)."""
    study = load_study(store, study_id)
    with store.transaction(write=False) as session:
        rows = {(r.reader_id, r.arm, r.round): r for r in session.scalars(
            select(ReadingSessionRecord).where(ReadingSessionRecord.study_id == study_id))}
        counts = dict(session.execute(
            select(ReadRecord.session_id, func.count(distinct(ReadRecord.case_id)))
            .where(ReadRecord.study_id == study_id).group_by(ReadRecord.session_id)).all())
    out = []
    for reader in list_readers(store, study_id):
        for round_, arm in study.schedule():
            row = rows.get((reader.reader_id, arm, round_))
            out.append(SessionProgress(reader.reader_id, arm, round_, counts.get(row.id, 0) if row else 0,
                                       len(study.case_ids), row.started if row else None,
                                       row.completed if row else None))
    return out

