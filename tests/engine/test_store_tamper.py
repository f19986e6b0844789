"""Every route to rewrite the store's record quietly (issue 13, item 6): the database refuses it, and where the
guard is first taken away (a dropped or disabled trigger), `oncolens store verify` reports what was done.

The tamperer here is an outsider with write access to the database who does not go through OncoLens: the
sqlite3 module with its defaults (no recursive_triggers), or a plain PostgreSQL connection. Each test prints
the verify report (shown by `pytest -rP`). SQLite always; PostgreSQL when ONCOLENS_TEST_PG_URL is set, each
test in its own schema, dropped afterwards."""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from test_studies import PINS, answer_all, make_study  # same folder

from engine.cases.bundle import read_bundle, write_bundle
from engine.cli import main
from engine.store import Store, StoreError
from engine.store.guards import GUARDS, pg_expected_triggers, sqlite_triggers
from engine.studies import ReadingSession
from engine.studies.session import CASE_UNAVAILABLE

PG_URL = os.environ.get("ONCOLENS_TEST_PG_URL")
SERVERS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not PG_URL, reason="set ONCOLENS_TEST_PG_URL to an empty PostgreSQL database to run"))]
LEGACY = Path(__file__).resolve().parents[1] / "data" / "legacy_v1"


@contextmanager
def pg_schema() -> Iterator[str]:
    """A URL of the test server whose tables live in a fresh schema of their own."""
    name = f"tamper_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {name}")
    url = sa.make_url(PG_URL).update_query_dict({"options": f"-csearch_path={name}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {name} CASCADE")
        admin.dispose()


class Outsider:
    """Runs SQL on the store's database the way a person with the file (or a database login) could."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect = sa.make_url(url).get_backend_name()
        self._engine = None if self.dialect == "sqlite" else sa.create_engine(url)

    def run(self, *statements: str) -> None:
        if self.dialect == "sqlite":
            conn = sqlite3.connect(sa.make_url(self.url).database, isolation_level=None)
            try:
                conn.execute("BEGIN")
                for statement in statements:
                    conn.execute(statement)
                conn.execute("COMMIT")
            finally:
                conn.close()
            return
        with self._engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)

    def refused(self, statement: str, message: str = "") -> None:
        """The database refuses `statement` with a guard's message."""
        with pytest.raises((sqlite3.IntegrityError, sa.exc.IntegrityError)) as info:
            self.run(statement)
        assert message in str(info.value), str(info.value)

    def drop_guard(self, table: str) -> None:
        guard = next(g for g in GUARDS if g.table == table)
        if self.dialect == "sqlite":
            self.run(*(f"DROP TRIGGER {name}" for name in sqlite_triggers(guard)))
        else:
            self.run(*(f"DROP TRIGGER {name} ON {t}" for name, (t, _f, _e) in pg_expected_triggers().items()
                       if t == table))

    def upsert(self, table: str, values: str, key: str = "id") -> str:
        """SQLite's INSERT OR REPLACE, or PostgreSQL's INSERT ... ON CONFLICT DO UPDATE, of a row by its key."""
        if self.dialect == "sqlite":
            return f"INSERT OR REPLACE INTO {table} SELECT {values} FROM {table} WHERE {key} = (SELECT min({key}) FROM {table})"
        columns = f"SELECT {values} FROM {table} WHERE {key} = (SELECT min({key}) FROM {table})"
        return (f"INSERT INTO {table} {columns} ON CONFLICT ({key}) DO UPDATE SET "
                f"{'positive = NOT EXCLUDED.positive' if table == 'reads' else 'actor = EXCLUDED.actor'}")

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


@pytest.fixture(params=SERVERS)
def url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{(tmp_path / 'store.sqlite3').as_posix()}"
    else:
        with pg_schema() as pg:
            yield pg


@pytest.fixture
def study_store(url, tmp_path) -> Iterator[tuple[Store, Outsider]]:
    """A study of 4 cases with two readers; r1 has answered every case (and so finished the unaided session)."""
    store = Store(url)
    make_study(store, tmp_path / "bundles", n=4)
    answer_all(ReadingSession.open(store, "s1", "r1", PINS["r1"]))
    outsider = Outsider(url)
    yield store, outsider
    outsider.close()
    store.close()


def verify(store: Store, capsys, *options: str) -> tuple[int, str]:
    code = main(["store", "--db", store.url, "verify", *options])
    report = capsys.readouterr().out
    print(report)  # kept in the test's captured output: pytest -rP shows it
    return code, report


def reported(store: Store, capsys, *expected: str, options: tuple[str, ...] = ()) -> str:
    """Verify exits 2 and its report says every one of `expected`."""
    code, report = verify(store, capsys, *options)
    assert code == 2 and "result: TAMPERED" in report
    for text in expected:
        assert text in report, text
    return report


def read_id(store: Store) -> int:
    with store.engine.connect() as conn:
        return conn.exec_driver_sql("SELECT min(id) FROM reads").scalar()


# -- an untouched store ---------------------------------------------------------------------------------------


def test_an_untouched_store_verifies_intact(study_store, capsys):
    store, _ = study_store
    code, report = verify(store, capsys)
    assert code == 0 and "result: INTACT" in report and "TAMPERED" not in report
    for check in ("guards", "audit chain", "cases", "readers", "sessions", "reads", "studies"):
        assert any(line.split()[:len(check.split())] == check.split() and " ok " in line
                   for line in report.splitlines()), check
    assert "images of 4 cases checked" in report and "head: event " in report


# -- reads ------------------------------------------------------------------------------------------------


def test_replacing_a_read_is_refused_and_with_the_trigger_dropped_reported(study_store, capsys):
    store, outsider = study_store
    replace = outsider.upsert("reads", "id, session_id, study_id, reader_id, case_id, 1 - positive, confidence, "
                                       "comment, contour_json, shown_at, answered_at, seconds, supersedes"
                              if outsider.dialect == "sqlite" else "*")
    outsider.refused(replace, "append-only")
    outsider.refused("UPDATE reads SET confidence = 1", "append-only")
    outsider.refused("DELETE FROM reads", "append-only")

    outsider.drop_guard("reads")
    outsider.run(replace)
    reported(store, capsys, f"read {read_id(store)} (r1, case ", "positive changed outside OncoLens",
             "on reads is missing (dropped)")


def test_a_deleted_read_is_reported(study_store, capsys):
    store, outsider = study_store
    first = read_id(store)
    outsider.drop_guard("reads")
    outsider.run(f"DELETE FROM reads WHERE id = {first}")
    reported(store, capsys, f"read {first}: deleted or replaced outside OncoLens")


# -- the audit log ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["replace", "update", "delete"])
def test_audit_events_cannot_be_replaced_changed_or_deleted(study_store, capsys, route):
    store, outsider = study_store
    statement = {
        "replace": outsider.upsert("audit_events", "id, at, 'mallory', action, entity, entity_id, detail_json, "
                                                   "prev_hash, event_hash" if outsider.dialect == "sqlite"
                                   else "id, at, 'mallory', action, entity, entity_id, detail_json, prev_hash, "
                                        "event_hash"),
        "update": "UPDATE audit_events SET detail_json = '{}' WHERE id = 3",
        "delete": "DELETE FROM audit_events WHERE id = 3",
    }[route]
    outsider.refused(statement, "append-only")
    if outsider.dialect == "postgresql":
        outsider.refused("TRUNCATE audit_events", "append-only")
    assert verify(store, capsys)[0] == 0

    outsider.drop_guard("audit_events")
    outsider.run(statement)
    if route == "delete":
        reported(store, capsys, "event 4 (", "is not chained to the event before it")
    else:
        reported(store, capsys, "was changed after it was written")


def test_an_event_written_outside_oncolens_is_reported(study_store, capsys):
    store, outsider = study_store
    outsider.run("INSERT INTO audit_events (at, actor, action, entity, entity_id, detail_json) "
                 "VALUES ('2026-01-01', 'mallory', 'read.add', 'study', 's1', '{}')")
    reported(store, capsys, "(read.add by mallory, 2026-01-01) has no hash: written outside OncoLens")


def test_a_cut_off_end_of_the_log_is_caught_by_the_recorded_head(study_store, capsys):
    store, outsider = study_store
    store.audit("admin", "study.note", "study", "s1", {"text": "checked the reads"})
    code, report = verify(store, capsys)
    head = next(line.split()[2:4] for line in report.splitlines() if line.startswith("head: event"))
    expect = f"{head[0]}:{head[1]}"
    assert code == 0 and verify(store, capsys, "--expect", expect)[0] == 0

    outsider.drop_guard("audit_events")
    outsider.run(f"DELETE FROM audit_events WHERE id = {head[0]}")
    # Without the recorded head the chain cannot show that its newest event is gone (verify.py says so) ...
    chain = next(line for line in verify(store, capsys)[1].splitlines() if line.strip().startswith("audit chain"))
    assert " ok " in chain
    # ... with it, it can.
    reported(store, capsys, f"the head you recorded (event {head[0]}) is not in the log", options=("--expect", expect))


# -- triggers -----------------------------------------------------------------------------------------------


def test_a_dropped_disabled_or_rewritten_trigger_is_reported(study_store, capsys):
    store, outsider = study_store
    if outsider.dialect == "sqlite":
        outsider.run("DROP TRIGGER reads_no_delete")
        outsider.run("DROP TRIGGER studies_no_update",
                     "CREATE TRIGGER studies_no_update BEFORE UPDATE ON studies BEGIN SELECT 1; END")
        reported(store, capsys, "guards         TAMPERED (2)", "trigger reads_no_delete on reads is missing (dropped)",
                 "trigger studies_no_update on studies was replaced by other SQL")
    else:
        outsider.run("DROP TRIGGER reads_guard_change ON reads")
        outsider.run("ALTER TABLE studies DISABLE TRIGGER studies_guard_change")
        reported(store, capsys, "guards         TAMPERED (2)",
                 "trigger reads_guard_change on reads is missing (dropped)",
                 "trigger studies_guard_change on studies is disabled")


# -- frozen study data -------------------------------------------------------------------------------------


def test_the_frozen_model_output_and_threshold_cannot_be_edited(study_store, capsys):
    store, outsider = study_store
    outsider.refused("UPDATE study_cases SET model_probability = 0.99", "append-only")
    outsider.refused("UPDATE studies SET model_threshold = 0.9", "append-only")
    outsider.refused("DELETE FROM study_cases", "append-only")

    outsider.drop_guard("study_cases")
    outsider.drop_guard("studies")
    outsider.run("UPDATE study_cases SET model_probability = 0.99 WHERE position = 0",
                 "UPDATE studies SET model_threshold = 0.9")
    reported(store, capsys, "study s1: model_threshold changed outside OncoLens",
             "study s1, case gl-000: model_probability changed outside OncoLens")


def test_an_edited_truth_is_reported(study_store, capsys):
    """Cases are not frozen (truth may come later from pathology), but every change goes through OncoLens's
    log with the row's fingerprint, so one made with SQL shows."""
    store, outsider = study_store
    outsider.run("UPDATE cases SET truth_json = '{\"labels\": {\"tumor\": 1}}' WHERE id = 'gl-000'")
    reported(store, capsys, "case gl-000: truth_json changed outside OncoLens")


def test_an_edited_pin_hash_is_reported_and_readers_are_otherwise_frozen(study_store, capsys):
    store, outsider = study_store
    outsider.refused("UPDATE readers SET display_name = 'Dr Mallory'")
    outsider.refused("DELETE FROM readers")
    # The PIN hash is the one column OncoLens changes (reset_pin, logged); a change made with SQL is not logged.
    outsider.run("UPDATE readers SET pin_hash = (SELECT pin_hash FROM readers WHERE reader_id = 'r1') "
                 "WHERE reader_id = 'r2'")
    reported(store, capsys, "reader r2 of study s1: pin_hash changed outside OncoLens")


def test_a_finished_session_cannot_be_reopened(study_store, capsys):
    store, outsider = study_store
    outsider.refused("UPDATE reading_sessions SET completed = NULL", "only completed may change")
    outsider.refused("UPDATE reading_sessions SET order_json = '[]'")
    outsider.refused("DELETE FROM reading_sessions")

    outsider.drop_guard("reading_sessions")
    outsider.run("UPDATE reading_sessions SET completed = NULL")
    reported(store, capsys, "session 1 (r1, unaided, round 1, study s1): the log says it was completed",
             "reopened outside OncoLens")


@pytest.mark.skipif(not PG_URL, reason="set ONCOLENS_TEST_PG_URL to an empty PostgreSQL database to run")
def test_postgresql_triggers_bypassed_as_a_replica_are_still_seen():
    """A superuser can skip every trigger with session_replication_role; the fingerprints still show the edit."""
    with pg_schema() as pg, Store(pg) as store:
        root = Path(f"/tmp/oncolens-tamper-{uuid.uuid4().hex[:8]}")
        try:
            make_study(store, root, n=4)
            answer_all(ReadingSession.open(store, "s1", "r1", PINS["r1"]))
            outsider = Outsider(pg)
            outsider.run("SET LOCAL session_replication_role = replica", "UPDATE reads SET positive = NOT positive")
            outsider.close()
            from engine.store.verify import verify_store

            report = verify_store(store).text()
            assert "positive changed outside OncoLens" in report and "guards         ok" in report
        finally:
            shutil.rmtree(root, ignore_errors=True)


# -- the images readers see ---------------------------------------------------------------------------------


def test_a_swapped_bundle_is_unavailable_to_readers_logged_and_reported(url, tmp_path, capsys):
    if sa.make_url(url).get_backend_name() != "sqlite":
        pytest.skip("bundles are files: one database is enough")
    store = Store(url)
    make_study(store, tmp_path / "bundles", n=4)
    folder = tmp_path / "bundles" / "gl-002"
    swapped = read_bundle(folder)
    swapped.images["FL"].array[...] = np.flipud(swapped.images["FL"].array)
    with pytest.raises(StoreError, match="gl-002 is used by reader study s1.*FL image"):
        store.add_case(swapped, write_bundle(swapped, tmp_path / "elsewhere" / "gl-002"))  # refused by the store
    write_bundle(swapped, folder)  # rewritten on disk, behind OncoLens's back

    session = ReadingSession.open(store, "s1", "r1", PINS["r1"])
    position = next(i for i in range(1, 5) if session.go_to(i).case_id == "gl-002")
    case = session.go_to(position)
    assert case.unavailable == CASE_UNAVAILABLE and case.images == {}
    assert "gl-002" not in case.unavailable and str(tmp_path) not in case.unavailable
    event = [e for e in store.audit_log("s1") if e["action"] == "study.case_images_changed"][-1]
    assert event["detail"]["case_id"] == "gl-002" and event["detail"]["frozen"]["FL"] != event["detail"]["found"]["FL"]

    answer_all(session)
    session.finish()  # the swapped case counts as one that cannot be shown
    reported(store, capsys, f"study s1, case gl-002: the FL image(s) in {folder.resolve()} are not the ones frozen",
             "was refused case gl-002 of study s1")  # the second: the reader's refusal, from the log
    store.close()


# -- a store written before revision 0003 ---------------------------------------------------------------------


def test_a_migrated_store_verifies_intact_and_its_old_reads_are_still_checked(tmp_path, capsys):
    shutil.copytree(LEGACY, tmp_path / "legacy")
    url = f"sqlite:///{(tmp_path / 'legacy' / 'store.sqlite3').as_posix()}"
    with Store(url) as store:
        store.import_bundles(tmp_path / "legacy" / "bundles", actor="test")  # the bundles moved with the store
        code, report = verify(store, capsys)
        assert code == 0, report
        outsider = Outsider(url)
        outsider.drop_guard("reads")
        outsider.run("UPDATE reads SET comment = 'edited'")
        reported(store, capsys, "read 1 (r1, case legacy-specimen-01): comment changed outside OncoLens")
