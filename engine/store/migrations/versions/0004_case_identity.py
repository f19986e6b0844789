"""Case identity: a case name the user gives, and the content hash that finds a case opened again from files.

- cases gains `name` (NULL: none given) and `content_sha256` (SHA-256 over the case's images, indexed; NULL for
  rows written before this revision until their case is added again).
- Every case row gets a case.baseline event with its new fingerprint (the two new columns included), so that
  `store verify` keeps covering it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from engine.data import utc_now
from engine.store.fingerprints import GENESIS_HASH, PATIENT_KEY_SETTING, event_hash, fingerprint

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | tuple[str, ...] | None = None
depends_on: str | tuple[str, ...] | None = None

ACTOR = "oncolens-migration-0004"


def _append(bind, head: str, action: str, entity: str, entity_id: str, detail: dict) -> str:
    fields = {"at": utc_now(), "actor": ACTOR, "action": action, "entity": entity, "entity_id": entity_id,
              "detail_json": json.dumps(detail, sort_keys=True)}
    digest = event_hash(head, fields)
    bind.execute(sa.text(
        "INSERT INTO audit_events (at, actor, action, entity, entity_id, detail_json, prev_hash, event_hash) "
        "VALUES (:at, :actor, :action, :entity, :entity_id, :detail_json, :prev, :hash)"),
        {**fields, "prev": head, "hash": digest})
    return digest


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column("cases", sa.Column("name", sa.String(256), nullable=True))
    op.add_column("cases", sa.Column("content_sha256", sa.String(64), nullable=True))
    op.create_index("ix_cases_content_sha256", "cases", ["content_sha256"])
    key = bind.execute(sa.text("SELECT value FROM store_settings WHERE key = :k"), {"k": PATIENT_KEY_SETTING}).scalar()
    head = bind.execute(sa.text("SELECT event_hash FROM audit_events WHERE event_hash IS NOT NULL "
                                "ORDER BY id DESC LIMIT 1")).scalar() or GENESIS_HASH
    rows = [dict(r._mapping) for r in bind.execute(sa.text("SELECT * FROM cases ORDER BY id"))]
    if not rows:
        return  # nothing to cover: a new store's log starts with its first real change
    head = _append(bind, head, "store.upgrade", "store", "0004", {"revision": "0004", "cases": len(rows)})
    for row in rows:
        head = _append(bind, head, "case.baseline", "case", row["id"], {"row": fingerprint(row, key)})


def downgrade() -> None:
    op.drop_index("ix_cases_content_sha256", "cases")
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("content_sha256")
        batch.drop_column("name")
