"""Readers of a study: enrolment with a PIN, sign-in, lockout after repeated wrong PINs, unlock and PIN reset.

A PIN is kept only as a salted scrypt hash. It must be at least 6 digits, or a passphrase of at least 10
characters: a 4-digit PIN falls to 10 000 guesses. After MAX_FAILED_LOGINS wrong PINs in a row a reader id is
locked until the study administrator unlocks it (`unlock_reader`, `oncolens study unlock-reader`) or gives
it a new PIN; both are audited. The count comes from the append-only audit log (reader.login_failed since
the last reader.login, reader.unlock or reader.pin_reset), so there is no counter to reset quietly. Unknown
reader ids are counted and locked the same way, so the lock tells nothing about which ids exist.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select

from engine.data import utc_now
from engine.store import Store
from engine.store.schema import ReaderRecord, StudyRecord
from engine.studies.model import AUTH_FAILED, RESERVED_READER_IDS, AuthError, StudyError

MIN_PIN_DIGITS = 6
MIN_PASSPHRASE_CHARS = 10
MAX_PIN_CHARS = 128
MAX_FAILED_LOGINS = 5
PIN_POLICY = (f"A PIN must be at least {MIN_PIN_DIGITS} digits, or a passphrase of at least {MIN_PASSPHRASE_CHARS} "
              f"characters (at most {MAX_PIN_CHARS}, without leading or trailing spaces).")

# PIN hashing: scrypt with a 16-byte random salt per reader (Django's default cost, 16 MiB per hash).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_SCRYPT_MAXMEM = 64 * 2**20
_SALT_BYTES, _KEY_BYTES = 16, 32
_LOGIN_ACTIONS = ("reader.add", "reader.login", "reader.login_failed", "reader.unlock", "reader.pin_reset")


class LockedError(AuthError):
    """Too many wrong PINs in a row for this reader id; the study administrator unlocks it."""


@dataclass(frozen=True)
class ReaderInfo:
    study_id: str
    reader_id: str
    display_name: str
    created: str


def hash_pin(pin: str) -> str:
    """`scrypt$N$r$p$salt$key` with a fresh random salt; the PIN itself is never stored."""
    salt = secrets.token_bytes(_SALT_BYTES)
    key = hashlib.scrypt(pin.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P,
                         maxmem=_SCRYPT_MAXMEM, dklen=_KEY_BYTES)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(key).decode()}"


def verify_pin(pin: str, stored: str) -> bool:
    """True when `pin` matches `stored` (constant-time comparison); False for anything malformed."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key, validate=True)
        actual = hashlib.scrypt(pin.encode("utf-8"), salt=base64.b64decode(salt, validate=True), n=int(n),
                                r=int(r), p=int(p), maxmem=_SCRYPT_MAXMEM, dklen=len(expected))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


_DECOY_HASH: list[str] = []  # verified against when the reader id is unknown, so both failures cost the same


def check_pin(pin: str) -> None:
    """StudyError with PIN_POLICY unless `pin` is at least 6 digits or a passphrase of at least 10 characters."""
    if not isinstance(pin, str) or len(pin) > MAX_PIN_CHARS or pin != pin.strip():
        raise StudyError(PIN_POLICY)
    digits = pin.isascii() and pin.isdigit()
    if len(pin) < (MIN_PIN_DIGITS if digits else MIN_PASSPHRASE_CHARS):
        raise StudyError(PIN_POLICY)


def add_reader(store: Store, study_id: str, reader_id: str, display_name: str, pin: str,
               actor: str = "admin") -> ReaderInfo:
    """Enrol a reader in a study with a PIN (kept only as a salted scrypt hash)."""
    reader_id = str(reader_id)
    if not reader_id or reader_id != reader_id.strip() or len(reader_id) > 128 or reader_id in RESERVED_READER_IDS:
        raise StudyError(f"Reader id {reader_id!r} is not allowed: use 1 to 128 characters without leading or "
                         f"trailing spaces, and none of {', '.join(map(repr, RESERVED_READER_IDS))}.")
    check_pin(pin)
    pin_hash = hash_pin(pin)  # slow on purpose: done before taking the write lock
    created = utc_now()
    with store.transaction(write=True) as session:
        if session.get(StudyRecord, study_id) is None:
            raise StudyError(f"No reader study {study_id!r} in the store; create it first.")
        existing = session.get(ReaderRecord, (study_id, reader_id))
        if existing is not None:
            raise StudyError(f"Study {study_id!r} already has a reader {reader_id!r} ({existing.display_name}); "
                             "choose another reader id (a forgotten PIN is reset with reset_pin).")
        record = ReaderRecord(study_id=study_id, reader_id=reader_id, display_name=display_name or reader_id,
                              pin_hash=pin_hash, created=created, created_by=actor)
        session.add(record)
        store.record_event(session, actor, "reader.add", "study", study_id,
                           {"reader_id": reader_id, "display_name": display_name or reader_id,
                            "row": store.row_fingerprint(session, record)})
    return ReaderInfo(study_id, reader_id, display_name or reader_id, created)


def reset_pin(store: Store, study_id: str, reader_id: str, pin: str, actor: str = "admin") -> None:
    """Give an enrolled reader a new PIN (their reads are untouched); this also lifts a lockout."""
    check_pin(pin)
    pin_hash = hash_pin(pin)
    with store.transaction(write=True) as session:
        record = session.get(ReaderRecord, (study_id, reader_id))
        if record is None:
            raise StudyError(f"Study {study_id!r} has no reader {reader_id!r}.")
        record.pin_hash = pin_hash
        store.record_event(session, actor, "reader.pin_reset", "study", study_id,
                           {"reader_id": reader_id, "row": store.row_fingerprint(session, record)})


def list_readers(store: Store, study_id: str) -> list[ReaderInfo]:
    """The study's readers (never their PIN hashes), in enrolment order."""
    with store.transaction(write=False) as session:
        rows = session.scalars(select(ReaderRecord).where(ReaderRecord.study_id == study_id)
                               .order_by(ReaderRecord.created, ReaderRecord.reader_id)).all()
        return [ReaderInfo(r.study_id, r.reader_id, r.display_name, r.created) for r in rows]


def failed_logins(store: Store, study_id: str, reader_id: str) -> int:
    """Wrong PINs in a row for this reader id, since its enrolment, last sign-in, unlock or PIN reset."""
    count = 0
    for event in store.audit_log(study_id, entity="study", actions=_LOGIN_ACTIONS):
        # Events from before the lockout (revision 0003) name the reader only as the actor of a failure.
        if event["detail"].get("reader_id", event["actor"]) != reader_id:
            continue
        count = count + 1 if event["action"] == "reader.login_failed" else 0
    return count


def _locked_message(study_id: str, reader_id: str) -> str:
    return (f"Reader {reader_id} is locked out of study {study_id} after {MAX_FAILED_LOGINS} wrong PINs in a row. "
            f"The study administrator unlocks it with: oncolens study unlock-reader {study_id} {reader_id} "
            "(or gives the reader a new PIN).")


def authenticate(store: Store, study_id: str, reader_id: str, pin: str) -> ReaderInfo:
    """The reader when the PIN matches; AuthError with one message for an unknown reader or a wrong PIN;
    LockedError (an AuthError) after MAX_FAILED_LOGINS wrong PINs in a row, saying how to unlock."""
    reader_id = str(reader_id)[:128]
    if failed_logins(store, study_id, reader_id) >= MAX_FAILED_LOGINS:
        raise LockedError(_locked_message(study_id, reader_id))
    with store.transaction(write=False) as session:
        record = session.get(ReaderRecord, (study_id, reader_id))
        info = None if record is None else ReaderInfo(record.study_id, record.reader_id, record.display_name,
                                                      record.created)
        stored = None if record is None else record.pin_hash
    if stored is None:
        if not _DECOY_HASH:
            _DECOY_HASH.append(hash_pin(secrets.token_hex(8)))
        stored = _DECOY_HASH[0]
    if verify_pin(str(pin), stored) and info is not None:
        store.audit(reader_id, "reader.login", "study", study_id, {"reader_id": reader_id})
        return info
    store.audit(reader_id, "reader.login_failed", "study", study_id, {"reader_id": reader_id})
    if failed_logins(store, study_id, reader_id) >= MAX_FAILED_LOGINS:
        store.audit("system", "reader.locked", "study", study_id,
                    {"reader_id": reader_id, "failed_logins": MAX_FAILED_LOGINS})
        raise LockedError(_locked_message(study_id, reader_id))
    raise AuthError(AUTH_FAILED)


def unlock_reader(store: Store, study_id: str, reader_id: str, actor: str = "admin") -> int:
    """Lift a reader's lockout (audited as reader.unlock); returns the wrong PINs in a row it had."""
    with store.transaction(write=False) as session:
        if session.get(ReaderRecord, (study_id, reader_id)) is None:
            raise StudyError(f"Study {study_id!r} has no reader {reader_id!r}.")
    failures = failed_logins(store, study_id, reader_id)
    store.audit(actor, "reader.unlock", "study", study_id, {"reader_id": reader_id, "failed_logins": failures})
    return failures
