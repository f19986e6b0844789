"""Tables of the OncoLens store as SQLAlchemy declarative models, and the rules that keep the record from being
rewritten.

The tables themselves are created by the Alembic migrations in `migrations/versions/`, never by
`metadata.create_all`; these models must stay in step with the newest migration.

Each table's docstring says how it is kept: append-only (database triggers refuse UPDATE, DELETE and an
INSERT over an existing key; the ORM refuses the same), guarded (the triggers let only named columns
change, in a named way), or free (cases and predictions, whose every change is logged by the Store). The
triggers are defined in `guards.py`; what each allowed change looks like in the audit log, in
`fingerprints.py`; `oncolens store verify` (verify.py) checks both.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Stable constraint names, so later migrations (batch mode on SQLite) can find and alter them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class StoreError(RuntimeError):
    """A store operation cannot be done; the message names the case, path or database and the fix."""


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class CaseRecord(Base):
    """One case known to the store; its images stay in the case bundle folder at `bundle_path`."""

    __tablename__ = "cases"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    patient_id: Mapped[str | None] = mapped_column(String(128), index=True)
    bundle_path: Mapped[str] = mapped_column(Text)
    modalities: Mapped[str] = mapped_column(String(256), default="")  # comma list in the case's order
    has_truth: Mapped[bool] = mapped_column(Boolean, default=False)
    truth_json: Mapped[str | None] = mapped_column(Text)  # labels, source and mask names; no arrays
    created: Mapped[str] = mapped_column(String(40))  # the case's own creation time (UTC ISO)
    updated: Mapped[str] = mapped_column(String(40))  # last change of this row (UTC ISO)
    name: Mapped[str | None] = mapped_column(String(256))  # a name the user gave (migration 0004)
    content_sha256: Mapped[str | None] = mapped_column(String(64), index=True)  # over the images (0004)


class PredictionRecord(Base):
    """The JSON summary of one Prediction on one case (arrays live in bundles, not here)."""

    __tablename__ = "predictions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    case_id: Mapped[str] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    model: Mapped[str] = mapped_column(String(128))
    weights_sha256: Mapped[str] = mapped_column(Text)  # JSON object: weights file -> sha256
    summary_json: Mapped[str] = mapped_column(Text)  # Prediction.summary()
    created: Mapped[str] = mapped_column(String(40))


class AuditEvent(Base):
    """One change made through the store: who, what, on which entity, when. Append-only, and chained: each
    event stores the hash of the one before it and its own (fingerprints.event_hash), so that an edited,
    deleted or inserted event shows in `store verify` even where the triggers were dropped first."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[str] = mapped_column(String(40))  # UTC ISO timestamp
    actor: Mapped[str] = mapped_column(String(128))  # user name, reader id or "system"
    action: Mapped[str] = mapped_column(String(64), index=True)  # e.g. "case.add", "prediction.add"
    entity: Mapped[str] = mapped_column(String(64))  # e.g. "case"
    entity_id: Mapped[str] = mapped_column(String(128), index=True)
    detail_json: Mapped[str] = mapped_column(Text, default="{}")
    prev_hash: Mapped[str | None] = mapped_column(String(64))  # event_hash of the event before (migration 0003)
    event_hash: Mapped[str | None] = mapped_column(String(64))  # NULL only for a row written outside OncoLens


class StoreSetting(Base):
    """The store's own settings (migration 0003), e.g. the key of the keyed patient ids. Append-only: a key that
    changed would cut every old event off from the patient it is about."""

    __tablename__ = "store_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


@event.listens_for(AuditEvent, "before_update")
@event.listens_for(AuditEvent, "before_delete")
def _refuse_audit_change(mapper, connection, target: AuditEvent) -> None:
    """ORM guard; the database triggers (guards.py) refuse the same through raw SQL."""
    raise StoreError(
        f"audit_events is append-only: event {target.id} cannot be changed or deleted. "
        "Record a new event instead."
    )


@event.listens_for(StoreSetting, "before_update")
@event.listens_for(StoreSetting, "before_delete")
def _refuse_setting_change(mapper, connection, target: StoreSetting) -> None:
    raise StoreError(f"store_settings is append-only: {target.key} cannot be changed or deleted.")


# -- reader studies (migration 0002) --------------------------------------------------------------


class StudyRecord(Base):
    """One reader study: its question, what readers see, its arms and the model it is compared with.
    Append-only: a study's settings are what its readers read under; a changed study is a new study."""

    __tablename__ = "studies"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    task_label: Mapped[str] = mapped_column(String(64))  # truth / prediction label, e.g. "metastatic"
    case_kind: Mapped[str] = mapped_column(String(64))
    question: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    confidence_scale: Mapped[str] = mapped_column(String(16))  # "5-point" or "0-100"
    contours: Mapped[bool] = mapped_column(Boolean, default=False)  # readers also draw a contour
    modalities: Mapped[str] = mapped_column(String(256))  # comma list: what readers see
    arms: Mapped[str] = mapped_column(String(64))  # comma list in reading order: "unaided", "aided"
    model: Mapped[str] = mapped_column(String(128))
    model_threshold: Mapped[float] = mapped_column(Float)
    seed: Mapped[int] = mapped_column(Integer)
    repeat_reads: Mapped[int] = mapped_column(Integer, default=0)
    washout_days: Mapped[float] = mapped_column(Float, default=0.0)
    created: Mapped[str] = mapped_column(String(40))
    created_by: Mapped[str] = mapped_column(String(128))


class StudyCaseRecord(Base):
    """A case of a study, in the study's own order, with the model output and the content hashes of the images
    readers see, frozen when the study was made. Append-only: aided readers and the analysis must see the
    output the study was made with, and readers the images it was made with (checked when a case is shown)."""

    __tablename__ = "study_cases"
    __table_args__ = (UniqueConstraint("study_id", "case_id", name="uq_study_cases_study_id"),)

    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    case_id: Mapped[str] = mapped_column(String(128))  # no foreign key: see migration 0002
    prediction_id: Mapped[int] = mapped_column(Integer)  # provenance: predictions.id at creation
    model_probability: Mapped[float] = mapped_column(Float)
    images_sha256: Mapped[str | None] = mapped_column(Text)  # JSON {modality: sha256}; NULL before migration 0003


class ReaderRecord(Base):
    """A reader enrolled in one study; the PIN is kept only as a salted KDF hash. Guarded: never deleted (their
    reads refer to them), and only the PIN hash may change (a reset, logged with the row's new fingerprint)."""

    __tablename__ = "readers"

    study_id: Mapped[str] = mapped_column(ForeignKey("studies.id"), primary_key=True)
    reader_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(256))
    pin_hash: Mapped[str] = mapped_column(String(256))
    created: Mapped[str] = mapped_column(String(40))
    created_by: Mapped[str] = mapped_column(String(128))


class ReadingSessionRecord(Base):
    """One reader reading all the study's cases once in one arm (round 2+ are repeat reads). Guarded: never
    deleted, and the only change is `completed`, once, from empty to a time (logged as session.complete);
    a finished session cannot be reopened."""

    __tablename__ = "reading_sessions"
    __table_args__ = (
        UniqueConstraint("study_id", "reader_id", "arm", "round", name="uq_reading_sessions_study_id"),
        ForeignKeyConstraint(["study_id", "reader_id"], ["readers.study_id", "readers.reader_id"],
                             name="fk_reading_sessions_study_id_readers"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study_id: Mapped[str] = mapped_column(String(128))
    reader_id: Mapped[str] = mapped_column(String(128))
    arm: Mapped[str] = mapped_column(String(16))
    round: Mapped[int] = mapped_column(Integer)
    order_json: Mapped[str] = mapped_column(Text)  # case ids in this session's reading order
    order_seed: Mapped[str] = mapped_column(String(40))  # the seed that drew the order (decimal)
    started: Mapped[str] = mapped_column(String(40))
    completed: Mapped[str | None] = mapped_column(String(40))


class ReadRecord(Base):
    """One answer. Append-only: a changed answer is a new row that `supersedes` the old one."""

    __tablename__ = "reads"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("reading_sessions.id"), index=True)
    study_id: Mapped[str] = mapped_column(String(128), index=True)
    reader_id: Mapped[str] = mapped_column(String(128))
    case_id: Mapped[str] = mapped_column(String(128))
    positive: Mapped[bool] = mapped_column(Boolean)  # the call on the study's task label
    confidence: Mapped[float] = mapped_column(Float)  # rating on the study's scale, higher = more likely positive
    comment: Mapped[str] = mapped_column(Text, default="")
    contour_json: Mapped[str | None] = mapped_column(Text)  # list of [[x, y], ...] polygons
    shown_at: Mapped[str] = mapped_column(String(40))
    answered_at: Mapped[str] = mapped_column(String(40))
    seconds: Mapped[float] = mapped_column(Float)  # time the case was on screen up to this answer
    supersedes: Mapped[int | None] = mapped_column(Integer)  # id of the read this one replaces


@event.listens_for(StudyRecord, "before_update")
@event.listens_for(StudyRecord, "before_delete")
@event.listens_for(StudyCaseRecord, "before_update")
@event.listens_for(StudyCaseRecord, "before_delete")
def _refuse_study_change(mapper, connection, target: StudyRecord | StudyCaseRecord) -> None:
    study_id = target.id if isinstance(target, StudyRecord) else target.study_id
    raise StoreError(f"{target.__tablename__} is append-only: study {study_id} is frozen once created. "
                     "Create a new study instead.")


@event.listens_for(ReaderRecord, "before_delete")
@event.listens_for(ReadingSessionRecord, "before_delete")
def _refuse_reader_or_session_delete(mapper, connection, target: ReaderRecord | ReadingSessionRecord) -> None:
    raise StoreError(f"{target.__tablename__} rows are never deleted: reads refer to them.")


@event.listens_for(ReadRecord, "before_update")
@event.listens_for(ReadRecord, "before_delete")
def _refuse_read_change(mapper, connection, target: ReadRecord) -> None:
    """ORM guard; the database triggers (guards.py) refuse the same through raw SQL."""
    raise StoreError(
        f"reads is append-only: read {target.id} cannot be changed or deleted. "
        "A changed answer is saved as a new read."
    )
