"""Fingerprints that let `store verify` see a quiet rewrite: the audit chain, row fingerprints, image hashes,
keyed patient ids.

- Every audit event stores the SHA-256 of the event before it and of itself (`event_hash`), so an event
  edited, deleted or slipped in between breaks the chain at that point.
- Rows that may change only through OncoLens (cases, readers, reading sessions, reads, studies and their
  frozen cases) have their columns fingerprinted (`fingerprint`) in the audit event that wrote them, so an
  edit made with SQL shows as a difference, column by column. The column digests are keyed like the
  patient ids: a plain hash of a patient id or a truth label could be found again by trying every value.
- The images shown to a study's readers are hashed by content (`image_sha256`) when the study is made.
- Patient ids go into the audit log only as HMAC-SHA256 with a random key kept in the store's own settings
  (`keyed_id`), so a deleted case leaves no readable identifier behind.

None of this needs a secret: someone who can write the database file and knows these rules can rebuild a
consistent chain. The chain's head, written down outside the store (`oncolens store verify` prints it),
is what shows such a rewrite later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Mapping
from typing import Any

from engine.data import ModalityImage

GENESIS_HASH = "0" * 64  # "previous hash" of the first event
FROZEN_CASE_KEYS = ("study_id", "case_id")  # left out of a study case's fingerprint: study.freeze is keyed by them
COLUMN_DIGEST_CHARS = 16  # 64 bits per column: enough to show a change, short enough for a study's 300 cases
PATIENT_KEY_SETTING = "patient_id_hmac_key"
KEYED_PREFIX = "hmac-sha256:"

# Columns of an audit event that its hash covers, in this order. The row id is left out: the chain itself
# fixes the order, and the id is given by the database only after the hash is needed.
EVENT_FIELDS = ("at", "actor", "action", "entity", "entity_id", "detail_json")


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=_plain)


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"{type(value).__name__} cannot be fingerprinted")


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def event_hash(previous: str, fields: Mapping[str, Any]) -> str:
    """SHA-256 of the previous event's hash and this event's columns (EVENT_FIELDS)."""
    return _sha256(_canonical([previous, *(fields[name] for name in EVENT_FIELDS)]))


def _column_value(value: Any) -> Any:
    # Booleans come back from SQLite as 0/1 through some paths and as bool through others; floats that are
    # whole numbers as int from some drivers. Fingerprints compare what a value means, not its Python type.
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return value


def fingerprint(values: Mapping[str, Any], key: str) -> dict[str, str]:
    """A short keyed digest per column (HMAC-SHA256 under the store's key); compare with `changed_columns`."""
    secret = bytes.fromhex(key)
    return {name: hmac.new(secret, f"{name}={_canonical(_column_value(v))}".encode(), hashlib.sha256).hexdigest()
            [:COLUMN_DIGEST_CHARS] for name, v in values.items()}


def changed_columns(recorded: Mapping[str, str], values: Mapping[str, Any], key: str) -> list[str]:
    """Names of the columns whose value differs from the recorded fingerprint (added or missing ones too)."""
    now = fingerprint(values, key)
    return sorted(name for name in set(recorded) | set(now) if recorded.get(name) != now.get(name))


def row_values(record: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Column values of an ORM row, by column name."""
    return {c.key: getattr(record, c.key) for c in record.__table__.columns if c.key not in skip}


def image_sha256(image: ModalityImage) -> str:
    """SHA-256 of what a reader sees: axes, dtype, shape and pixels (not the file, so re-encoding keeps it)."""
    array = image.array
    digest = hashlib.sha256(f"{image.axes}|{array.dtype.str}|{array.shape}|".encode())
    digest.update(array.tobytes(order="C"))
    return digest.hexdigest()


def keyed_id(key: str, value: str | None) -> str | None:
    """`value` as HMAC-SHA256 under the store's key: the same id gives the same text, which tells nothing."""
    if value is None:
        return None
    mac = hmac.new(bytes.fromhex(key), str(value).encode("utf-8"), hashlib.sha256)
    return KEYED_PREFIX + mac.hexdigest()
