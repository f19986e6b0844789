"""The Store's audit log: appending chained events, keyed patient ids and row fingerprints, reading the log.

A part of `Store` (a mixin over its `_session`), kept apart so that db.py holds cases and predictions.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.data import utc_now
from engine.store.connect import take_write_lock
from engine.store.fingerprints import (
    GENESIS_HASH,
    PATIENT_KEY_SETTING,
    event_hash,
    fingerprint,
    keyed_id,
    row_values,
)
from engine.store.schema import AuditEvent, StoreError, StoreSetting

_HEAD = "oncolens_audit_head"  # Session.info key: the hash of the newest event written in this transaction
_ID_CHARS = 128  # actor and entity_id columns


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=_json_default)


class AuditTrail:
    """Audit-log methods of `Store`; needs `_session(write=...)` and `_shown_url` from it."""

    _shown_url: str
    _store_key: str | None = None

    def _session(self, *, write: bool) -> AbstractContextManager[Session]:
        raise NotImplementedError

    # -- writing --------------------------------------------------------------------------------

    def record_event(
        self, session: Session, actor: str, action: str, entity: str, entity_id: str, detail: dict[str, Any]
    ) -> None:
        """Append an event inside an open `transaction`, so it commits with the change it describes.

        The event is chained to the newest one. Writers hold the write lock (SQLite's BEGIN IMMEDIATE, the
        PostgreSQL advisory lock), so the newest event read here stays the newest until this commits."""
        previous = session.info.get(_HEAD)
        if previous is None:
            take_write_lock(session.connection())  # for writers, the lock they already hold
            newest = session.scalars(select(AuditEvent.event_hash).where(AuditEvent.event_hash.is_not(None))
                                     .order_by(AuditEvent.id.desc()).limit(1)).first()
            previous = newest or GENESIS_HASH
        fields = {"at": utc_now(), "actor": str(actor)[:_ID_CHARS], "action": action, "entity": entity,
                  "entity_id": str(entity_id)[:_ID_CHARS], "detail_json": dumps(detail)}
        digest = event_hash(previous, fields)
        session.add(AuditEvent(**fields, prev_hash=previous, event_hash=digest))
        session.flush()  # each event enters the table before the next, in the order of the chain
        session.info[_HEAD] = digest

    def audit(
        self, actor: str, action: str, entity: str, entity_id: str, detail: dict[str, Any] | None = None
    ) -> None:
        """Append one event to the audit log (changes made through the Store log themselves)."""
        with self._session(write=True) as session:
            self.record_event(session, actor, action, entity, str(entity_id), detail or {})

    # -- keyed values ---------------------------------------------------------------------------

    def store_key(self, session: Session | None = None) -> str:
        """The store's random key (store_settings), for keyed patient ids and row fingerprints."""
        if self._store_key is None:
            if session is None:
                with self._session(write=False) as own:
                    return self.store_key(own)
            setting = session.get(StoreSetting, PATIENT_KEY_SETTING)
            if setting is None:
                raise StoreError(f"The store {self._shown_url} has no key in store_settings: it was changed outside "
                                 "OncoLens. Run oncolens store verify, and restore the store from a backup.")
            self._store_key = setting.value
        return self._store_key

    def patient_ref(self, patient_id: str | None, session: Session | None = None) -> str | None:
        """How `patient_id` appears in the audit log: HMAC-SHA256 under the store's key. A deleted case leaves no
        readable patient id behind; whoever knows the id can still find its events with this."""
        return keyed_id(self.store_key(session), patient_id)

    def row_fingerprint(self, session: Session, record: Any, skip: tuple[str, ...] = ()) -> dict[str, str]:
        """The keyed column fingerprint of an ORM row, for the event that writes or changes it."""
        return fingerprint(row_values(record, skip), self.store_key(session))

    # -- reading --------------------------------------------------------------------------------

    def audit_log(self, entity_id: str | None = None, entity: str | None = None,
                  actions: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """Audit events oldest first, optionally only those about one entity id (and entity type, and actions)."""
        query = select(AuditEvent).order_by(AuditEvent.id)
        if entity_id is not None:
            query = query.where(AuditEvent.entity_id == str(entity_id))
        if entity is not None:
            query = query.where(AuditEvent.entity == entity)
        if actions:
            query = query.where(AuditEvent.action.in_(actions))
        with self._session(write=False) as session:
            events = session.scalars(query).all()
        return [{"id": e.id, "at": e.at, "actor": e.actor, "action": e.action, "entity": e.entity,
                 "entity_id": e.entity_id, "detail": json.loads(e.detail_json)} for e in events]
