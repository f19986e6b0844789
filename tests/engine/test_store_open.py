"""Opening the store: a corrupt, foreign or empty file is refused naming the file and the fix (and never turned
into a new empty store); the pragmas every connection gets; read-only stores take no write lock and never
migrate; the files of a new store are readable by their owner only."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from test_studies import make_study  # same folder

from engine.cli import main
from engine.store import Store, StoreError
from engine.store.db import alembic_config

LEGACY = Path(__file__).resolve().parents[1] / "data" / "legacy_v1"


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.as_posix()}"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- files that are not a store -------------------------------------------------------------------------------


def test_an_empty_file_is_refused_and_left_as_it_is(tmp_path):
    path = tmp_path / "store.sqlite3"
    path.write_bytes(b"")
    for read_only in (False, True):
        with pytest.raises(StoreError) as info:
            Store(sqlite_url(path), read_only=read_only)
        message = str(info.value)
        assert str(path) in message and "0 bytes" in message and "Restore" in message and "delete it" in message
    assert path.stat().st_size == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["store.sqlite3"]


@pytest.mark.parametrize("content", [b"patient,name\n1,Alice\n", b"\x89PNG\r\n\x1a\n" + bytes(200)])
def test_a_file_that_is_not_a_database_is_refused(tmp_path, content):
    path = tmp_path / "store.sqlite3"
    path.write_bytes(content)
    with pytest.raises(StoreError, match="not an SQLite database") as info:
        Store(sqlite_url(path))
    assert str(path) in str(info.value) and "backup" in str(info.value)
    assert path.read_bytes() == content


def test_a_damaged_database_is_refused_naming_it(tmp_path):
    path = tmp_path / "store.sqlite3"
    Store(sqlite_url(path)).close()
    data = bytearray(path.read_bytes())
    data[100:] = bytes(b ^ 0x5A for b in data[100:])  # SQLite's header survives, everything after is garbage
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError) as info:
        Store(sqlite_url(path))
    message = str(info.value)
    assert "damaged or not a database" in message and str(path) in message and "backup" in message
    assert main(["store", "--db", sqlite_url(path), "verify"]) == 2


def test_a_missing_file_is_created_only_for_writing(tmp_path):
    path = tmp_path / "sub" / "store.sqlite3"
    with pytest.raises(StoreError, match="There is no store at"):
        Store(sqlite_url(path), read_only=True)
    assert not path.parent.exists()
    Store(sqlite_url(path)).close()
    assert path.is_file() and not list(path.parent.glob(".*.new"))


# -- connections --------------------------------------------------------------------------------------------


def test_every_sqlite_connection_writes_through_and_fires_triggers_on_replace(tmp_path):
    with Store(sqlite_url(tmp_path / "s.sqlite3")) as store, store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA recursive_triggers").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA secure_delete").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_a_new_store_its_wal_and_its_folder_are_readable_by_the_owner_only(tmp_path, isolated_user_data):
    with Store() as store:  # the default store, in the user data folder
        store.audit("test", "test.event", "test", "1")
        path = Path(sa.make_url(store.url).database)
        files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
        assert all(f.exists() for f in files)
        assert [mode(f) for f in files] == [0o600] * 3
    assert mode(isolated_user_data) == 0o700


# -- read-only stores ---------------------------------------------------------------------------------------


def test_read_only_commands_do_not_wait_for_the_write_lock(tmp_path, capsys):
    url = sqlite_url(tmp_path / "s.sqlite3")
    with Store(url) as store:
        make_study(store, tmp_path / "bundles", n=4)
    holder = sqlite3.connect(tmp_path / "s.sqlite3", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another program is writing
    try:
        started = time.monotonic()
        assert main(["study", "--db", url, "progress", "s1"]) == 0
        assert main(["store", "--db", url, "verify"]) == 0
        assert main(["study", "--db", url, "export-reads", "s1", "--out", str(tmp_path / "r.csv")]) == 0
        assert time.monotonic() - started < 4  # the busy timeout is 5 s: none of them waited for the lock
        with Store(url, read_only=True) as reading, pytest.raises(StoreError, match="opened read-only"):
            reading.audit("admin", "test.event", "test", "1")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "INTACT" in capsys.readouterr().out


def test_read_only_stores_never_migrate_and_say_how_to_upgrade(tmp_path, capsys):
    shutil.copytree(LEGACY, tmp_path / "legacy")
    url = sqlite_url(tmp_path / "legacy" / "store.sqlite3")
    before = (tmp_path / "legacy" / "store.sqlite3").read_bytes()
    with pytest.raises(StoreError) as info:
        Store(url, read_only=True)
    assert "revision 0002" in str(info.value) and "oncolens store upgrade" in str(info.value)
    assert main(["study", "--db", url, "progress", "legacy-study"]) == 2
    assert "oncolens store upgrade" in capsys.readouterr().err
    assert (tmp_path / "legacy" / "store.sqlite3").read_bytes() == before
    assert main(["store", "--db", url, "upgrade"]) == 0
    with Store(url, read_only=True) as store:
        assert store.schema_revision() == "0004"


def test_a_database_without_oncolens_tables_is_not_read_as_a_store(tmp_path):
    path = tmp_path / "other.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match="is not an OncoLens store"):
        Store(sqlite_url(path), read_only=True)


def test_downgrading_0003_puts_back_the_triggers_of_0002(tmp_path):
    url = sqlite_url(tmp_path / "s.sqlite3")
    Store(url).close()
    engine = sa.create_engine(url)
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0002")
    with engine.connect() as conn:
        triggers = {r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
        columns = {r[1] for r in conn.exec_driver_sql("PRAGMA table_info(audit_events)")}
    engine.dispose()
    assert triggers == {"audit_events_no_update", "audit_events_no_delete", "reads_no_update", "reads_no_delete"}
    assert "event_hash" not in columns
    with Store(url) as again:
        assert again.schema_revision() == "0004"
    assert main(["store", "--db", url, "verify"]) == 0  # upgraded again with the same key: still intact


# -- PostgreSQL ---------------------------------------------------------------------------------------------

needs_pg = pytest.mark.skipif(not os.environ.get("ONCOLENS_TEST_PG_URL"),
                              reason="set ONCOLENS_TEST_PG_URL to an empty PostgreSQL database to run")


@needs_pg
def test_postgresql_rows_written_at_0002_are_chained_and_covered_by_0003(capsys):
    from test_store_tamper import Outsider, pg_schema

    with pg_schema() as url:
        engine = sa.create_engine(url)
        config = alembic_config()
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0002")
            for statement in (
                "INSERT INTO cases VALUES ('old-1', 'glioma_specimen', 'P1', '/x/old-1', 'FL', true, "
                "'{\"labels\": {\"tumor\": 1}}', '2025-01-01', '2025-01-01')",
                "INSERT INTO audit_events (at, actor, action, entity, entity_id, detail_json) VALUES "
                "('2025-01-01', 'admin', 'case.add', 'case', 'old-1', '{\"patient_id\": \"P1\"}')",
                "INSERT INTO studies VALUES ('s0', 'Old', 'tumor', 'glioma_specimen', 'Q?', '', '5-point', false, "
                "'FL', 'unaided', 'fl_cnn', 0.5, 0, 0, 0.0, '2025-01-02', 'admin')",
                "INSERT INTO study_cases VALUES ('s0', 0, 'old-1', 1, 0.75)",
                "INSERT INTO readers VALUES ('s0', 'r1', 'Dr One', 'scrypt$x', '2025-01-02', 'admin')",
                "INSERT INTO reading_sessions (study_id, reader_id, arm, round, order_json, order_seed, started, "
                "completed) VALUES ('s0', 'r1', 'unaided', 1, '[\"old-1\"]', '1', '2025-01-03', '2025-01-03')",
                "INSERT INTO reads (session_id, study_id, reader_id, case_id, positive, confidence, comment, "
                "shown_at, answered_at, seconds) SELECT id, 's0', 'r1', 'old-1', true, 4, 'ok', '2025-01-03', "
                "'2025-01-03', 2.5 FROM reading_sessions",
                "INSERT INTO audit_events (at, actor, action, entity, entity_id, detail_json) SELECT '2025-01-03', "
                "'r1', 'read.add', 'study', 's0', '{\"read_id\": ' || id || ', \"positive\": true, "
                "\"confidence\": 4.0, \"comment\": \"ok\"}' FROM reads",
                "INSERT INTO audit_events (at, actor, action, entity, entity_id, detail_json) SELECT '2025-01-03', "
                "'r1', 'session.start', 'study', 's0', '{\"session_id\": ' || id || '}' FROM reading_sessions",
                "INSERT INTO audit_events (at, actor, action, entity, entity_id, detail_json) SELECT '2025-01-03', "
                "'r1', 'session.complete', 'study', 's0', '{\"session_id\": ' || id || '}' FROM reading_sessions",
            ):
                conn.exec_driver_sql(statement)
        engine.dispose()
        with Store(url) as store:
            assert store.schema_revision() == "0004"
            assert main(["store", "--db", url, "verify", "--no-images"]) == 0, capsys.readouterr().out
            upgrade = store.audit_log(entity="store")[0]["detail"]
            assert upgrade["events_chained"] == 4 and upgrade["events_with_plain_patient_ids"] == 1
            outsider = Outsider(url)
            outsider.refused("UPDATE study_cases SET model_probability = 0.1", "append-only")
            outsider.run("UPDATE cases SET truth_json = '{}'")
            outsider.close()
            assert main(["store", "--db", url, "verify", "--no-images"]) == 2
            assert "case old-1: truth_json changed outside OncoLens" in capsys.readouterr().out


@needs_pg
def test_a_read_only_postgresql_store_cannot_write(tmp_path):
    from test_store_tamper import pg_schema

    with pg_schema() as url:
        Store(url).close()
        with Store(url, read_only=True) as store:
            with pytest.raises(StoreError, match="opened read-only"):
                store.audit("admin", "test.event", "test", "1")
            with pytest.raises(sa.exc.InternalError, match="read-only transaction"):
                with store.engine.begin() as conn:
                    conn.exec_driver_sql("INSERT INTO store_settings VALUES ('x', 'y')")
