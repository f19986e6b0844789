"""Reader studies: studies, their cases, readers, reading sessions and the append-only reads.

Readers belong to one study (primary key study_id + reader_id). Case ids are not foreign keys:
a study keeps naming its cases when a case row is deleted and re-imported, and the model output
shown to readers is frozen into study_cases when the study is created.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None

READS_APPEND_ONLY_MESSAGE = "reads is append-only - a changed answer is a new row"

SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER reads_no_{verb.lower()} BEFORE {verb} ON reads
        BEGIN SELECT RAISE(ABORT, '{READS_APPEND_ONLY_MESSAGE}'); END"""
    for verb in ("UPDATE", "DELETE")
]

# Same error class as the audit_events triggers of 0001 (restrict_violation -> IntegrityError).
POSTGRESQL_TRIGGERS = [
    f"""CREATE FUNCTION reads_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION USING MESSAGE = '{READS_APPEND_ONLY_MESSAGE} (' || TG_OP || ')',
                                  ERRCODE = 'restrict_violation';
        END $$""",
    """CREATE TRIGGER reads_no_change BEFORE UPDATE OR DELETE ON reads
        FOR EACH ROW EXECUTE FUNCTION reads_append_only()""",
    """CREATE TRIGGER reads_no_truncate BEFORE TRUNCATE ON reads
        FOR EACH STATEMENT EXECUTE FUNCTION reads_append_only()""",
]


def upgrade() -> None:
    op.create_table(
        "studies",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("task_label", sa.String(64), nullable=False),
        sa.Column("case_kind", sa.String(64), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("confidence_scale", sa.String(16), nullable=False),
        sa.Column("contours", sa.Boolean(), nullable=False),
        sa.Column("modalities", sa.String(256), nullable=False),
        sa.Column("arms", sa.String(64), nullable=False),
        sa.Column("model", sa.String(128), nullable=False),
        sa.Column("model_threshold", sa.Float(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("repeat_reads", sa.Integer(), nullable=False),
        sa.Column("washout_days", sa.Float(), nullable=False),
        sa.Column("created", sa.String(40), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_studies"),
    )

    op.create_table(
        "study_cases",
        sa.Column("study_id", sa.String(128), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.String(128), nullable=False),
        sa.Column("prediction_id", sa.Integer(), nullable=False),
        sa.Column("model_probability", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("study_id", "position", name="pk_study_cases"),
        sa.UniqueConstraint("study_id", "case_id", name="uq_study_cases_study_id"),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], name="fk_study_cases_study_id_studies"),
    )

    op.create_table(
        "readers",
        sa.Column("study_id", sa.String(128), nullable=False),
        sa.Column("reader_id", sa.String(128), nullable=False),
        sa.Column("display_name", sa.String(256), nullable=False),
        sa.Column("pin_hash", sa.String(256), nullable=False),
        sa.Column("created", sa.String(40), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.PrimaryKeyConstraint("study_id", "reader_id", name="pk_readers"),
        sa.ForeignKeyConstraint(["study_id"], ["studies.id"], name="fk_readers_study_id_studies"),
    )

    op.create_table(
        "reading_sessions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("study_id", sa.String(128), nullable=False),
        sa.Column("reader_id", sa.String(128), nullable=False),
        sa.Column("arm", sa.String(16), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("order_json", sa.Text(), nullable=False),
        sa.Column("order_seed", sa.String(40), nullable=False),
        sa.Column("started", sa.String(40), nullable=False),
        sa.Column("completed", sa.String(40), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_reading_sessions"),
        sa.UniqueConstraint("study_id", "reader_id", "arm", "round", name="uq_reading_sessions_study_id"),
        sa.ForeignKeyConstraint(["study_id", "reader_id"], ["readers.study_id", "readers.reader_id"],
                                name="fk_reading_sessions_study_id_readers"),
    )

    op.create_table(
        "reads",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.String(128), nullable=False),
        sa.Column("reader_id", sa.String(128), nullable=False),
        sa.Column("case_id", sa.String(128), nullable=False),
        sa.Column("positive", sa.Boolean(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("contour_json", sa.Text(), nullable=True),
        sa.Column("shown_at", sa.String(40), nullable=False),
        sa.Column("answered_at", sa.String(40), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("supersedes", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_reads"),
        sa.ForeignKeyConstraint(["session_id"], ["reading_sessions.id"], name="fk_reads_session_id_reading_sessions"),
    )
    op.create_index("ix_reads_session_id", "reads", ["session_id"])
    op.create_index("ix_reads_study_id", "reads", ["study_id"])

    # Other dialects get no trigger; there only the ORM guard in schema.py keeps reads append-only.
    dialect = op.get_bind().dialect.name
    for statement in {"sqlite": SQLITE_TRIGGERS, "postgresql": POSTGRESQL_TRIGGERS}.get(dialect, []):
        op.execute(statement)


def downgrade() -> None:
    # Dropping a table drops its triggers; the PostgreSQL function must go on its own.
    op.drop_index("ix_reads_study_id", table_name="reads")
    op.drop_index("ix_reads_session_id", table_name="reads")
    op.drop_table("reads")
    op.drop_table("reading_sessions")
    op.drop_table("readers")
    op.drop_table("study_cases")
    op.drop_table("studies")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS reads_append_only()")
