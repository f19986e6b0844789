"""Integrity: the chained audit log, the guard triggers of every frozen table, image hashes, keyed patient ids.

- audit_events gains prev_hash and event_hash; the events already there are chained in id order.
- study_cases gains images_sha256 (NULL for studies made before this revision: their images are not checked).
- store_settings holds the random key of the keyed patient ids (fingerprints.keyed_id).
- The triggers of 0001 and 0002 are replaced by the full set of guards.py (SQLite names kept).
- Rows already there get a baseline event (case.baseline, reader.baseline, study.freeze) with their
  fingerprints, so that `store verify` covers them from now on. Events written before this revision stay
  as they are (the log is append-only): case events among them may hold patient ids in plain text, and
  the store.upgrade event written here says how many.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

import importlib
import json
import secrets

import sqlalchemy as sa
from alembic import op

from engine.data import utc_now
from engine.store import guards
from engine.store.fingerprints import (
    FROZEN_CASE_KEYS,
    GENESIS_HASH,
    PATIENT_KEY_SETTING,
    event_hash,
    fingerprint,
)

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None

ACTOR = "oncolens-migration-0003"
_EARLIER_TRIGGERS = {  # what 0001 and 0002 installed, dropped here and put back by downgrade
    "sqlite": ["DROP TRIGGER IF EXISTS audit_events_no_update", "DROP TRIGGER IF EXISTS audit_events_no_delete",
               "DROP TRIGGER IF EXISTS reads_no_update", "DROP TRIGGER IF EXISTS reads_no_delete"],
    "postgresql": ["DROP TRIGGER IF EXISTS audit_events_no_change ON audit_events",
                   "DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events",
                   "DROP TRIGGER IF EXISTS reads_no_change ON reads", "DROP TRIGGER IF EXISTS reads_no_truncate ON reads",
                   "DROP FUNCTION IF EXISTS audit_events_append_only()", "DROP FUNCTION IF EXISTS reads_append_only()"],
}


def _rows(bind, sql: str) -> list[dict]:
    return [dict(r._mapping) for r in bind.execute(sa.text(sql))]


class _Chain:
    """Appends events to the chain from inside the migration (the Store is not usable here)."""

    def __init__(self, bind, head: str) -> None:
        self.bind, self.head, self.written = bind, head, 0

    def append(self, action: str, entity: str, entity_id: str, detail: dict) -> None:
        fields = {"at": utc_now(), "actor": ACTOR, "action": action, "entity": entity, "entity_id": entity_id,
                  "detail_json": json.dumps(detail, sort_keys=True)}
        digest = event_hash(self.head, fields)
        self.bind.execute(sa.text(
            "INSERT INTO audit_events (at, actor, action, entity, entity_id, detail_json, prev_hash, event_hash) "
            "VALUES (:at, :actor, :action, :entity, :entity_id, :detail_json, :prev, :hash)"),
            {**fields, "prev": self.head, "hash": digest})
        self.head = digest
        self.written += 1


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    for statement in _EARLIER_TRIGGERS.get(dialect, []):
        op.execute(statement)

    op.add_column("audit_events", sa.Column("prev_hash", sa.String(64), nullable=True))
    op.add_column("audit_events", sa.Column("event_hash", sa.String(64), nullable=True))
    op.add_column("study_cases", sa.Column("images_sha256", sa.Text(), nullable=True))
    if not sa.inspect(bind).has_table("store_settings"):  # kept by a downgrade: see there
        op.create_table(
            "store_settings",
            sa.Column("key", sa.String(64), nullable=False),
            sa.Column("value", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("key", name="pk_store_settings"),
        )
    key = bind.execute(sa.text("SELECT value FROM store_settings WHERE key = :k"), {"k": PATIENT_KEY_SETTING}).scalar()
    if key is None:
        key = secrets.token_hex(32)
        bind.execute(sa.text("INSERT INTO store_settings (key, value) VALUES (:k, :v)"),
                     {"k": PATIENT_KEY_SETTING, "v": key})

    head = GENESIS_HASH
    chained = 0
    plain_patient_ids = 0
    for row in _rows(bind, "SELECT id, at, actor, action, entity, entity_id, detail_json FROM audit_events "
                           "ORDER BY id"):
        digest = event_hash(head, row)
        bind.execute(sa.text("UPDATE audit_events SET prev_hash = :prev, event_hash = :hash WHERE id = :id"),
                     {"prev": head, "hash": digest, "id": row["id"]})
        head = digest
        chained += 1
        plain_patient_ids += row["action"].startswith("case.") and '"patient_id"' in row["detail_json"]

    chain = _Chain(bind, head)
    chain.append("store.upgrade", "store", "0003", {
        "revision": "0003", "events_chained": chained, "events_with_plain_patient_ids": int(plain_patient_ids),
        "note": "events before this one were written before patient ids were keyed; the log is append-only, "
                "so they stay as they are"})
    for row in _rows(bind, "SELECT * FROM cases ORDER BY id"):
        chain.append("case.baseline", "case", row["id"], {"row": fingerprint(row, key)})
    for row in _rows(bind, "SELECT * FROM readers ORDER BY study_id, reader_id"):
        chain.append("reader.baseline", "study", row["study_id"],
                     {"reader_id": row["reader_id"], "row": fingerprint(row, key)})
    for row in _rows(bind, "SELECT * FROM reading_sessions ORDER BY id"):
        chain.append("session.baseline", "study", row["study_id"], {"session_id": row["id"], "row": fingerprint(row, key)})
    cases_of: dict[str, dict] = {}
    for row in _rows(bind, "SELECT * FROM study_cases ORDER BY study_id, position"):
        cases_of.setdefault(row["study_id"], {})[row["case_id"]] = fingerprint(
            {k: v for k, v in row.items() if k not in FROZEN_CASE_KEYS}, key)
    for row in _rows(bind, "SELECT * FROM studies ORDER BY id"):
        chain.append("study.freeze", "study", row["id"], {"study": fingerprint(row, key), "cases": cases_of.get(row["id"], {})})

    for statement in guards.install_statements(dialect):
        op.execute(statement)


def downgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    for statement in guards.drop_statements(dialect):
        op.execute(statement)
    # store_settings stays: its key is what the patient ids and fingerprints already in the log were keyed
    # with, and upgrading again must find it (events are never removed, so neither is their key).
    with op.batch_alter_table("study_cases") as batch:
        batch.drop_column("images_sha256")
    with op.batch_alter_table("audit_events") as batch:
        batch.drop_column("event_hash")
        batch.drop_column("prev_hash")
    # Put back what 0001 and 0002 installed, from their own modules. The events appended by upgrade stay.
    for name in ("0001_initial", "0002_reader_studies"):
        earlier = importlib.import_module(f"engine.store.migrations.versions.{name}")
        for statement in {"sqlite": earlier.SQLITE_TRIGGERS, "postgresql": earlier.POSTGRESQL_TRIGGERS}.get(dialect, []):
            op.execute(statement)
