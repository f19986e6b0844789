"""Tables of the OncoLens store as SQLAlchemy declarative models, and the rule that keeps the audit log append-only.

The tables themselves are created by the Alembic migrations in `migrations/versions/`, never by
`metadata.create_all`; these models must stay in step with the newest migration.
"""

from __future__ import annotations

from sqlalchemy import Boolean, ForeignKey, Integer, MetaData, String, Text, event
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
    """One change made through the store: who, what, on which entity, when. Rows are never changed."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[str] = mapped_column(String(40))  # UTC ISO timestamp
    actor: Mapped[str] = mapped_column(String(128))  # user name, reader id or "system"
    action: Mapped[str] = mapped_column(String(64), index=True)  # e.g. "case.add", "prediction.add"
    entity: Mapped[str] = mapped_column(String(64))  # e.g. "case"
    entity_id: Mapped[str] = mapped_column(String(128), index=True)
    detail_json: Mapped[str] = mapped_column(Text, default="{}")


@event.listens_for(AuditEvent, "before_update")
@event.listens_for(AuditEvent, "before_delete")
def _refuse_audit_change(mapper, connection, target: AuditEvent) -> None:
    """ORM guard; the database triggers from migration 0001 refuse the same through raw SQL."""
    raise StoreError(
        f"audit_events is append-only: event {target.id} cannot be changed or deleted. "
        "Record a new event instead."
    )
