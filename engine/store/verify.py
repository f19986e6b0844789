"""`oncolens store verify`: is the store's record as OncoLens wrote it?

Read-only (the store is opened without the write lock and never migrated). It checks
- the database file (SQLite's integrity check; a file others can read is a note),
- the guard triggers (guards.py): present, enabled and with their own text,
- the audit chain: every event still hashes to what it stored and points at the event before it,
- every row OncoLens keeps a fingerprint of (cases, readers, reading sessions, reads, studies and their
  frozen cases) against its newest audit event, and the images of every study case against the hashes
  frozen with the study.
A problem is a sign of tampering (or damage); a note is worth knowing but not a sign of either. The chain
needs no secret, so someone who rewrites the whole file consistently is caught only by the head recorded
earlier (`expect`): write down the head a report prints.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from engine.store import guards
from engine.store.connect import sqlite_path
from engine.store.db import Store, head_revision
from engine.store.fingerprints import (
    EVENT_FIELDS,
    FROZEN_CASE_KEYS,
    GENESIS_HASH,
    changed_columns,
    event_hash,
    image_sha256,
    row_values,
)
from engine.store.schema import (
    AuditEvent,
    CaseRecord,
    ReaderRecord,
    ReadingSessionRecord,
    ReadRecord,
    StoreError,
    StudyCaseRecord,
    StudyRecord,
)

MAX_LISTED = 20  # problems listed per check; the rest are counted


def _n(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


@dataclass
class Check:
    name: str
    summary: str = ""
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class VerifyReport:
    url: str
    revision: str
    checks: list[Check]
    head: tuple[int, str] | None  # newest event id and hash

    @property
    def intact(self) -> bool:
        return not any(c.problems for c in self.checks)

    @property
    def n_problems(self) -> int:
        return sum(len(c.problems) for c in self.checks)

    def text(self) -> str:
        lines = [f"OncoLens store verify: {self.url} (schema {self.revision})"]
        for check in self.checks:
            state = "ok" if not check.problems else f"TAMPERED ({len(check.problems)})"
            lines.append(f"  {check.name:<14} {state:<14} {check.summary}".rstrip())
            lines += [f"    - {p}" for p in check.problems[:MAX_LISTED]]
            if len(check.problems) > MAX_LISTED:
                lines.append(f"    - and {len(check.problems) - MAX_LISTED} more")
            lines += [f"    note: {n}" for n in check.notes]
        if self.head is not None:
            lines.append(f"head: event {self.head[0]} {self.head[1]}")
        if self.intact:
            lines.append("result: INTACT")
            if self.head is not None:
                lines.append("To notice a later rewrite of the whole store, keep the head line somewhere else and "
                             f"check with: oncolens store verify --expect {self.head[0]}:{self.head[1]}")
        else:
            lines.append(f"result: TAMPERED: {self.n_problems} problem(s). Keep a copy of this store as it is (for "
                         "the record), find out who changed it, and restore it from a backup; the audit log names "
                         "who did what through OncoLens.")
        return "\n".join(lines)


@dataclass
class _Event:
    id: int
    action: str
    at: str
    actor: str
    entity_id: str
    detail: dict[str, Any]


def verify_store(store: Store, *, expect: tuple[int, str] | None = None, images: bool = True) -> VerifyReport:
    """Check the whole store; see the module docstring."""
    revision = store.schema_revision()
    if revision != head_revision():
        raise StoreError(f"The store is at schema revision {revision or 'none'}, this OncoLens verifies revision "
                         f"{head_revision()}: upgrade it first (oncolens store upgrade).")
    with store.transaction(write=False) as session:
        key = store.store_key(session)
        rows = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        chain, events = _check_chain(rows, expect)
        checks = [_check_database(store, session), _check_guards(session), chain,
                  _check_cases(session, events, key), _check_readers(session, events, key),
                  _check_sessions(session, events, key), _check_reads(session, events, key),
                  _check_studies(store, session, events, key, images)]
    head = (rows[-1].id, rows[-1].event_hash or "") if rows else None
    return VerifyReport(store.shown_url, revision, checks, head)


# -- database and triggers ------------------------------------------------------------------------------


def _check_database(store: Store, session: Session) -> Check:
    check = Check("database")
    path = sqlite_path(store.engine.url)
    if store.engine.dialect.name != "sqlite":
        check.summary = f"{store.engine.dialect.name} (no file to check)"
        return check
    result = [r[0] for r in session.execute(text("PRAGMA integrity_check")).all()]
    if result != ["ok"]:
        check.problems += [f"SQLite integrity check: {r}" for r in result]
    check.summary = "SQLite integrity check ok" if result == ["ok"] else "SQLite integrity check failed"
    if path is not None:
        for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            if file.exists() and stat.S_IMODE(file.stat().st_mode) & 0o077:
                check.notes.append(f"{file} can be read by other users (mode {stat.S_IMODE(file.stat().st_mode):o}); "
                                   f"chmod 600 it (OncoLens creates new stores 0600).")
        if os.name == "posix" and path.exists():
            check.summary += f", file mode {stat.S_IMODE(path.stat().st_mode):o}"
    return check


def _check_guards(session: Session) -> Check:
    check = Check("guards")
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        found = {name: (table, sql) for name, table, sql in session.execute(
            text("SELECT name, tbl_name, sql FROM sqlite_master WHERE type = 'trigger'")).all()}
        expected = guards.all_sqlite_triggers()
        for name, (table, sql) in expected.items():
            if name not in found:
                check.problems.append(f"trigger {name} on {table} is missing (dropped): {table} can be changed "
                                      "without a trace")
            elif guards.normalised_sql(found[name][1]) != guards.normalised_sql(sql):
                check.problems.append(f"trigger {name} on {table} was replaced by other SQL")
    elif dialect == "postgresql":
        found = {r.tgname: r for r in session.execute(text(
            "SELECT t.tgname, c.relname, t.tgenabled, t.tgtype, p.proname, p.prosrc FROM pg_trigger t "
            "JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_proc p ON p.oid = t.tgfoid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE NOT t.tgisinternal AND n.nspname = current_schema()")).all()}
        bodies = {guards.pg_function_name(g): guards.pg_function_body(g) for g in guards.GUARDS}
        expected = guards.pg_expected_triggers()
        for name, (table, function, tgtype) in expected.items():
            row = found.get(name)
            if row is None:
                check.problems.append(f"trigger {name} on {table} is missing (dropped): {table} can be changed "
                                      "without a trace")
            elif row.tgenabled == "D":
                check.problems.append(f"trigger {name} on {table} is disabled")
            elif (row.relname, row.proname, row.tgtype) != (table, function, tgtype) or (
                    guards.normalised_sql(row.prosrc) != guards.normalised_sql(bodies[function])):
                check.problems.append(f"trigger {name} on {table} (or its function {function}) was changed")
    else:
        check.notes.append(f"{dialect} gets no guard triggers; only OncoLens's own checks keep its record")
        expected, found = {}, {}
    for name in sorted(set(found) - set(expected)):
        check.problems.append(f"unexpected trigger {name}: not one of OncoLens's")
    in_place = len(expected) - sum(1 for p in check.problems if p.startswith("trigger "))
    check.summary = f"{in_place} of {len(expected)} triggers in place"
    return check


# -- the audit chain ------------------------------------------------------------------------------------


def _check_chain(rows: list[AuditEvent], expect: tuple[int, str] | None) -> tuple[Check, list[_Event]]:
    check = Check("audit chain")
    previous = GENESIS_HASH
    events = []
    for row in rows:
        where = f"event {row.id} ({row.action} by {row.actor}, {row.at})"
        if row.event_hash is None:
            check.problems.append(f"{where} has no hash: written outside OncoLens")
        else:
            if row.prev_hash != previous:
                check.problems.append(f"{where} is not chained to the event before it: an event before it was "
                                      "deleted, inserted or rewritten")
            if event_hash(row.prev_hash or "", {f: getattr(row, f) for f in EVENT_FIELDS}) != row.event_hash:
                check.problems.append(f"{where} was changed after it was written (it no longer matches its hash)")
            previous = row.event_hash
        try:
            detail = json.loads(row.detail_json)
        except ValueError:
            detail = {}
        events.append(_Event(row.id, row.action, row.at, row.actor, row.entity_id,
                             detail if isinstance(detail, dict) else {}))
    if expect is not None:
        recorded = {row.id: row.event_hash for row in rows}
        event_id, digest = expect
        if event_id not in recorded:
            check.problems.append(f"the head you recorded (event {event_id}) is not in the log: events were removed "
                                  "from its end, or the log was rewritten")
        elif recorded[event_id] != digest:
            check.problems.append(f"event {event_id} no longer has the hash you recorded: the log was rewritten up "
                                  "to it")
    check.summary = _n(len(rows), "event") + (f", matches the recorded head (event {expect[0]})"
                                             if expect is not None and not check.problems else "")
    return check, events


def _newest(events: Iterable[_Event], actions: tuple[str, ...], key) -> dict[Any, _Event]:
    """The newest event of these actions per key(event) (None keys skipped)."""
    out: dict[Any, _Event] = {}
    for event in events:
        if event.action in actions:
            k = key(event)
            if k is not None:
                out[k] = event
    return out


def _compare(check: Check, what: str, event: _Event | None, values: dict[str, Any], key: str,
             recorded: dict[str, str] | None = None) -> None:
    """A problem for every column of `values` that differs from the fingerprint in `event`."""
    if event is None:
        check.problems.append(f"{what}: no audit event wrote it (added outside OncoLens)")
        return
    recorded = recorded if recorded is not None else event.detail.get("row")
    if not isinstance(recorded, dict):
        check.notes.append(f"{what}: written before fingerprints were kept; not checked")
        return
    changed = changed_columns(recorded, values, key)
    if changed:
        check.problems.append(f"{what}: {', '.join(changed)} changed outside OncoLens (differs from event "
                              f"{event.id}, {event.action} at {event.at})")


# -- rows -----------------------------------------------------------------------------------------------


def _check_cases(session: Session, events: list[_Event], key: str) -> Check:
    check = Check("cases")
    last = _newest(events, ("case.add", "case.update", "case.baseline", "case.delete"), lambda e: e.entity_id)
    rows = {r.id: r for r in session.scalars(select(CaseRecord))}
    for case_id, record in rows.items():
        event = last.get(case_id)
        if event is not None and event.action == "case.delete":
            check.problems.append(f"case {case_id}: the log says it was deleted (event {event.id}), but its row is "
                                  "there (put back outside OncoLens)")
            continue
        _compare(check, f"case {case_id}", event, row_values(record), key)
    for case_id, event in last.items():
        if case_id not in rows and event.action != "case.delete":
            check.problems.append(f"case {case_id}: its row is gone, but the log has no case.delete (deleted "
                                  "outside OncoLens)")
    check.summary = _n(len(rows), "case")
    return check


def _check_readers(session: Session, events: list[_Event], key: str) -> Check:
    check = Check("readers")
    last = _newest(events, ("reader.add", "reader.pin_reset", "reader.baseline"),
                   lambda e: (e.entity_id, e.detail.get("reader_id")) if "row" in e.detail else None)
    rows = {(r.study_id, r.reader_id): r for r in session.scalars(select(ReaderRecord))}
    for (study_id, reader_id), record in rows.items():
        _compare(check, f"reader {reader_id} of study {study_id}", last.get((study_id, reader_id)),
                 row_values(record), key)
    for study_id, reader_id in set(last) - set(rows):
        check.problems.append(f"reader {reader_id} of study {study_id}: deleted outside OncoLens")
    check.summary = _n(len(rows), "reader") + " (PIN hashes and names)"
    return check


def _check_sessions(session: Session, events: list[_Event], key: str) -> Check:
    check = Check("sessions")
    started = _newest(events, ("session.start", "session.baseline"), lambda e: e.detail.get("session_id"))
    completed = _newest(events, ("session.complete",), lambda e: e.detail.get("session_id"))
    rows = {r.id: r for r in session.scalars(select(ReadingSessionRecord))}
    for session_id, record in rows.items():
        what = f"session {session_id} ({record.reader_id}, {record.arm}, round {record.round}, study {record.study_id})"
        start = started.get(session_id)
        if start is not None and isinstance(start.detail.get("row"), dict):
            recorded = {k: v for k, v in start.detail["row"].items() if k != "completed"}
            _compare(check, what, start, row_values(record, skip=("completed",)), key, recorded)
        elif start is None:
            check.problems.append(f"{what}: no audit event started it (added outside OncoLens)")
        done = completed.get(session_id)
        if record.completed is None and done is not None:
            check.problems.append(f"{what}: the log says it was completed at {done.detail.get('completed', done.at)} "
                                  f"(event {done.id}), but the table says it is not: reopened outside OncoLens")
        elif record.completed is not None and done is None:
            check.problems.append(f"{what}: marked completed with no session.complete event (outside OncoLens)")
        elif done is not None and done.detail.get("completed", record.completed) != record.completed:
            check.problems.append(f"{what}: its completion time was changed outside OncoLens (event {done.id})")
    for session_id in set(started) - set(rows):
        check.problems.append(f"session {session_id}: deleted outside OncoLens")
    check.summary = _n(len(rows), "session")
    return check


_LEGACY_READ_FIELDS = ("session_id", "reader_id", "case_id", "positive", "confidence", "comment", "answered_at")


def _check_reads(session: Session, events: list[_Event], key: str) -> Check:
    check = Check("reads")
    logged = _newest(events, ("read.add", "read.change"), lambda e: e.detail.get("read_id"))
    rows = {r.id: r for r in session.scalars(select(ReadRecord))}
    for read_id, record in rows.items():
        what = f"read {read_id} ({record.reader_id}, case {record.case_id})"
        event = logged.get(read_id)
        if event is not None and "row" not in event.detail:  # written before revision 0003
            differ = [f for f in _LEGACY_READ_FIELDS if f in event.detail and event.detail[f] != getattr(record, f)]
            if differ:
                check.problems.append(f"{what}: {', '.join(differ)} changed outside OncoLens (differs from event "
                                      f"{event.id})")
            continue
        _compare(check, what, event, row_values(record), key)
    for read_id in sorted(set(logged) - set(rows)):
        check.problems.append(f"read {read_id}: deleted or replaced outside OncoLens (written by event "
                              f"{logged[read_id].id})")
    check.summary = _n(len(rows), "read")
    return check


def _check_studies(store: Store, session: Session, events: list[_Event], key: str, images: bool) -> Check:
    check = Check("studies")
    frozen = _newest(events, ("study.freeze",), lambda e: e.entity_id)
    studies = {r.id: r for r in session.scalars(select(StudyRecord))}
    cases: dict[str, dict[str, StudyCaseRecord]] = {}
    for row in session.scalars(select(StudyCaseRecord)):
        cases.setdefault(row.study_id, {})[row.case_id] = row
    for study_id, record in studies.items():
        event = frozen.get(study_id)
        _compare(check, f"study {study_id}", event, row_values(record), key,
                 None if event is None else event.detail.get("study"))
        recorded = {} if event is None else event.detail.get("cases", {})
        mine = cases.get(study_id, {})
        for case_id in sorted(set(recorded) | set(mine)):
            what = f"study {study_id}, case {case_id}"
            if case_id not in mine:
                check.problems.append(f"{what}: removed from the study outside OncoLens")
            elif case_id not in recorded:
                if event is not None:
                    check.problems.append(f"{what}: added to the study outside OncoLens")
            else:
                _compare(check, what, event, row_values(mine[case_id], skip=FROZEN_CASE_KEYS), key,
                         recorded[case_id])
    for study_id in set(frozen) - set(studies):
        check.problems.append(f"study {study_id}: deleted outside OncoLens")
    n_checked = _check_images(store, check, cases) if images else 0
    for event in events:
        if event.action == "study.case_images_changed":
            check.notes.append(f"at {event.at} reader {event.actor} was refused case {event.detail.get('case_id')} of "
                               f"study {event.entity_id}: its images were not the frozen ones (event {event.id})")
    n_cases = sum(len(c) for c in cases.values())
    check.summary = (f"{_n(len(studies), 'study').replace('studys', 'studies')}, {_n(n_cases, 'frozen case')}"
                     + (f", images of {_n(n_checked, 'case')} checked" if images else ", images not checked"))
    return check


def _check_images(store: Store, check: Check, cases: dict[str, dict[str, StudyCaseRecord]]) -> int:
    """Compare the images in each study case's bundle with the hashes frozen with the study."""
    checked = 0
    loaded: dict[str, Any] = {}
    for study_id, by_case in cases.items():
        for case_id, row in by_case.items():
            if row.images_sha256 is None:
                continue
            if case_id not in loaded:
                try:
                    loaded[case_id] = store.load_case(case_id)
                except StoreError as exc:
                    loaded[case_id] = exc
            case = loaded[case_id]
            if isinstance(case, StoreError):
                check.notes.append(f"study {study_id}, case {case_id}: its images cannot be read, so readers get "
                                   f"'case unavailable' ({case})")
                continue
            frozen = json.loads(row.images_sha256)
            changed = [m for m, digest in frozen.items()
                       if m not in case.images or image_sha256(case.images[m]) != digest]
            if changed:
                bundle = store.get_case_record(case_id).bundle_path
                check.problems.append(f"study {study_id}, case {case_id}: the {', '.join(changed)} image(s) in "
                                      f"{bundle} are not the ones frozen with the study (swapped or rewritten)")
            checked += 1
    return checked
