"""The store: migrations, cases, predictions, the append-only audit log and sharing one SQLite file."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import traceback
import zlib
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from engine.cases.bundle import write_bundle
from engine.cases.model import Case, GroundTruth
from engine.data import ImageMeta, Prediction, TaskResult
from engine.store import CaseSummary, Store, StoreError, default_db_url, head_revision
from engine.store.schema import AuditEvent, Base

STORE_TABLES = {"cases", "predictions", "audit_events", "store_settings"}


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("ONCOLENS_HOME", str(home))
    monkeypatch.delenv("ONCOLENS_DB_URL", raising=False)
    return home


@pytest.fixture
def store() -> Store:
    opened = Store()
    yield opened
    opened.close()


def make_case(case_id: str, *, kind: str = "glioma_specimen", patient_id: str | None = None,
              truth: bool = False) -> Case:
    rng = np.random.default_rng(zlib.crc32(case_id.encode()))
    case = Case(id=case_id, kind=kind, patient_id=patient_id)
    case.add_image("FL", rng.integers(0, 65535, (8, 8), dtype=np.uint16), ImageMeta(bit_depth=16))
    case.add_image("WL", rng.integers(0, 255, (8, 8, 3), dtype=np.uint8), ImageMeta(bit_depth=8))
    if truth:
        case.truth = GroundTruth(labels={"tumor": 1}, masks={"tumor": np.ones((8, 8), np.uint8)},
                                 source="phantom generator")
    return case


def bundled(case: Case, root: Path) -> Path:
    return write_bundle(case, root / case.id)


def make_prediction(p_tumor: float = 0.91) -> Prediction:
    return Prediction(
        family="fl_cnn",
        weights_sha256={"fl_cnn_tumor": "ab" * 32},
        tasks={"tumor": TaskResult("tumor" if p_tumor >= 0.5 else "normal", p_tumor, 0.5)},
        masks={"tumor": np.zeros((8, 8), np.uint8)},
    )


# -- schema and connection ---------------------------------------------------------------------


def test_default_url_is_a_sqlite_file_in_the_user_data_folder(isolated_home, monkeypatch):
    assert default_db_url() == f"sqlite:///{(isolated_home / 'oncolens.sqlite3').as_posix()}"
    monkeypatch.setenv("ONCOLENS_DB_URL", "postgresql+psycopg://reader@db.example/oncolens")
    assert default_db_url() == "postgresql+psycopg://reader@db.example/oncolens"


def test_migrations_from_empty_create_every_table_at_head(store, isolated_home):
    assert (isolated_home / "oncolens.sqlite3").is_file()
    inspector = sa.inspect(store.engine)
    assert STORE_TABLES | {"alembic_version"} <= set(inspector.get_table_names())
    assert store.schema_revision() == head_revision() == "0004"
    # The models must describe exactly what the migrations built.
    for table in Base.metadata.sorted_tables:
        built = {column["name"] for column in inspector.get_columns(table.name)}
        assert built == set(table.columns.keys()), table.name


def test_reopening_a_migrated_database_changes_nothing(store, tmp_path):
    store.add_case(make_case("case-a"), bundled(make_case("case-a"), tmp_path))
    store.close()
    for _ in range(2):
        with Store() as again:
            assert again.schema_revision() == head_revision()
            assert [c.id for c in again.list_cases()] == ["case-a"]
            with again.engine.connect() as conn:
                assert conn.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar() == 1
            assert [e["action"] for e in again.audit_log()] == ["store.upgrade", "case.add"]


def test_sqlite_runs_in_wal_mode_with_foreign_keys_and_a_busy_timeout(store):
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar().lower() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000


def test_a_database_from_a_newer_oncolens_is_refused(store):
    with store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    store.close()
    with pytest.raises(StoreError, match="9999.*Update OncoLens"):
        Store()


# -- cases --------------------------------------------------------------------------------------


def test_add_list_filter_and_load_cases(store, tmp_path):
    glioma = make_case("glioma-001", patient_id="PT-Alpha", truth=True)
    node = make_case("node-002", kind="lymph_node", patient_id="PT-beta")
    node_b = make_case("node_003", kind="lymph_node")
    for case in (glioma, node, node_b):
        store.add_case(case, bundled(case, tmp_path))

    cases = {c.id: c for c in store.list_cases()}
    assert set(cases) == {"glioma-001", "node-002", "node_003"}
    summary = cases["glioma-001"]
    assert isinstance(summary, CaseSummary)
    assert summary.kind == "glioma_specimen"
    assert summary.modalities == ("FL", "WL")
    assert summary.has_truth and not cases["node-002"].has_truth
    assert summary.n_predictions == 0
    assert summary.bundle_path == (tmp_path / "glioma-001").resolve()

    assert {c.id for c in store.list_cases(kind="lymph_node")} == {"node-002", "node_003"}
    assert [c.id for c in store.list_cases(text="pt-ALPHA")] == ["glioma-001"]  # patient id, any case
    assert [c.id for c in store.list_cases(text="NODE-0")] == ["node-002"]  # id, any case
    assert [c.id for c in store.list_cases(text="_")] == ["node_003"]  # LIKE wildcards are literal
    assert store.list_cases(kind="lymph_node", text="alpha") == []
    assert len(store.list_cases(limit=2)) == 2

    loaded = store.load_case("glioma-001")
    assert loaded.patient_id == "PT-Alpha"
    np.testing.assert_array_equal(loaded.image("FL").array, glioma.image("FL").array)
    np.testing.assert_array_equal(loaded.truth.masks["tumor"], glioma.truth.masks["tumor"])
    record = store.get_case_record("glioma-001")
    assert record.has_truth and '"tumor": 1' in record.truth_json


def test_adding_a_case_again_updates_its_row_and_logs_only_real_changes(store, tmp_path):
    case = make_case("case-x", patient_id="P1")
    store.add_case(case, bundled(case, tmp_path / "first"))
    store.add_case(case, tmp_path / "first" / "case-x")  # nothing changed: no new event
    assert [e["action"] for e in store.audit_log("case-x")] == ["case.add"]

    case.patient_id = "P2"
    store.add_case(case, bundled(case, tmp_path / "second"), actor="dr.lee")
    events = store.audit_log("case-x")
    assert [e["action"] for e in events] == ["case.add", "case.update"]
    assert events[1]["actor"] == "dr.lee"
    assert events[1]["detail"]["changed"]["patient_ref"] == [store.patient_ref("P1"), store.patient_ref("P2")]
    assert store.get_case_record("case-x").bundle_path == str((tmp_path / "second" / "case-x").resolve())
    assert len(store.list_cases()) == 1


def test_add_case_needs_the_bundle_written_first(store, tmp_path):
    with pytest.raises(StoreError, match="case-y.*write_bundle"):
        store.add_case(make_case("case-y"), tmp_path / "nowhere")


def test_unknown_case_ids_are_named_in_the_error(store):
    for call in (
        lambda: store.get_case_record("ghost-42"),
        lambda: store.load_case("ghost-42"),
        lambda: store.add_prediction("ghost-42", make_prediction()),
        lambda: store.predictions_for("ghost-42"),
        lambda: store.delete_case("ghost-42", actor="dr.lee"),
    ):
        with pytest.raises(StoreError, match="ghost-42"):
            call()


def test_a_missing_bundle_folder_says_where_and_how_to_fix(store, tmp_path):
    case = make_case("case-gone")
    folder = bundled(case, tmp_path)
    store.add_case(case, folder)
    shutil.rmtree(folder)
    with pytest.raises(StoreError) as info:
        store.load_case("case-gone")
    message = str(info.value)
    assert "case-gone" in message and str(folder.resolve()) in message and "Re-import" in message


def test_import_bundles_adds_every_bundle_one_level_down(store, tmp_path):
    root = tmp_path / "incoming"
    for case_id in ("imp-1", "imp-2"):
        bundled(make_case(case_id), root)
    (root / "notes").mkdir()
    (root / "readme.txt").write_text("not a bundle")
    bundled(make_case("too-deep"), root / "notes")

    assert store.import_bundles(root, actor="importer") == ["imp-1", "imp-2"]
    assert {c.id for c in store.list_cases()} == {"imp-1", "imp-2"}
    assert {e["actor"] for e in store.audit_log(entity="case")} == {"importer"}
    assert store.import_bundles(root) == ["imp-1", "imp-2"]  # importing again adds nothing
    assert len(store.list_cases()) == 2


def test_import_bundles_adds_nothing_when_a_bundle_is_broken(store, tmp_path):
    root = tmp_path / "incoming"
    bundled(make_case("good-1"), root)
    broken = bundled(make_case("bad-2"), root)
    (broken / "image_FL.png").unlink()
    with pytest.raises(StoreError, match="image_FL.png"):
        store.import_bundles(root)
    assert store.list_cases() == []
    with pytest.raises(StoreError, match="not a folder"):
        store.import_bundles(tmp_path / "absent")


# -- predictions and the audit log ---------------------------------------------------------------


def test_predictions_are_kept_as_summaries(store, tmp_path):
    case = make_case("case-p")
    store.add_case(case, bundled(case, tmp_path))
    first = store.add_prediction("case-p", make_prediction(0.91))
    second = store.add_prediction("case-p", make_prediction(0.12), actor="dr.lee")
    assert isinstance(first, int) and second > first

    summaries = store.predictions_for("case-p")
    assert [s.id for s in summaries] == [first, second]
    assert summaries[0].summary.probabilities == {"tumor": 0.91}
    assert summaries[1].summary.calls == {"tumor": "normal"}
    assert summaries[0].summary.weights_sha256 == {"fl_cnn_tumor": "ab" * 32}
    assert summaries[0].summary.mask_names == ("tumor",)
    assert store.list_cases()[0].n_predictions == 2


def test_every_change_leaves_an_audit_event_that_outlives_the_case(store, tmp_path):
    case = make_case("case-z", patient_id="P1")
    store.add_case(case, bundled(case, tmp_path), actor="dr.lee")
    case.patient_id = "P9"
    store.add_case(case, tmp_path / "case-z", actor="dr.lee")
    prediction_id = store.add_prediction("case-z", make_prediction())
    store.audit("reader-7", "case.view", "case", "case-z", {"seconds": 12})
    store.delete_case("case-z", actor="admin")

    events = store.audit_log("case-z")
    assert [e["action"] for e in events] == [
        "case.add", "case.update", "prediction.add", "case.view", "case.delete"
    ]
    assert [e["actor"] for e in events] == ["dr.lee", "dr.lee", "system", "reader-7", "admin"]
    assert events[2]["detail"]["prediction_id"] == prediction_id
    assert events[4]["detail"]["predictions_deleted"] == 1
    assert all(e["at"].endswith("+00:00") for e in events)
    assert store.list_cases() == []
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM predictions").scalar() == 0
    assert (tmp_path / "case-z" / "case.json").is_file()  # the bundle on disk is left alone


def test_the_orm_refuses_to_change_or_delete_audit_events(store):
    store.audit("system", "test.event", "test", "1", {"n": 1})
    with Session(store.engine) as session:
        event = session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "test.event")).one()
        event.actor = "mallory"
        with pytest.raises(StoreError, match="append-only"):
            session.flush()
        session.rollback()
        session.delete(session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "test.event")).one())
        with pytest.raises(StoreError, match="append-only"):
            session.flush()
    assert store.audit_log(entity="test")[0]["actor"] == "system"


@pytest.mark.parametrize("statement", [
    "UPDATE audit_events SET actor = 'mallory'",
    "DELETE FROM audit_events",
])
def test_the_database_refuses_to_change_or_delete_audit_events(store, statement):
    store.audit("system", "test.event", "test", "1", {"n": 1})
    with pytest.raises(sa.exc.IntegrityError, match="append-only"):
        with store.engine.begin() as conn:
            conn.exec_driver_sql(statement)
    assert [e["actor"] for e in store.audit_log(entity="test")] == ["system"]


# -- several processes on one SQLite file ----------------------------------------------------------


def _add_cases_in_process(url: str, bundle_root: str, prefix: str, count: int, start, results) -> None:
    """Child process: open the shared file at the same moment as its sibling, then add cases."""
    try:
        start.wait(timeout=60)
        with Store(url) as shared:
            for i in range(count):
                case = make_case(f"{prefix}-{i:03d}")
                shared.add_case(case, bundled(case, Path(bundle_root)), actor=prefix)
        results.put((prefix, "ok"))
    except BaseException:
        results.put((prefix, traceback.format_exc()))


def test_two_processes_share_one_sqlite_file(tmp_path):
    url = f"sqlite:///{(tmp_path / 'shared.sqlite3').as_posix()}"
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(2), context.Queue()
    workers = [
        context.Process(target=_add_cases_in_process,
                        args=(url, str(tmp_path / "bundles"), prefix, 50, start, results))
        for prefix in ("proc-a", "proc-b")
    ]
    for worker in workers:
        worker.start()
    outcome = dict(results.get(timeout=90) for _ in workers)
    for worker in workers:
        worker.join(timeout=30)
    assert outcome == {"proc-a": "ok", "proc-b": "ok"}, outcome

    with Store(url) as shared:
        assert len(shared.list_cases()) == 100
        events = shared.audit_log(entity="case")
        assert len(events) >= 100
        assert {e["actor"] for e in events} == {"proc-a", "proc-b"}


# -- PostgreSQL, only where a server is given ---------------------------------------------------------


@pytest.mark.skipif(not os.environ.get("ONCOLENS_TEST_PG_URL"),
                    reason="set ONCOLENS_TEST_PG_URL to an empty PostgreSQL database to run")
def test_postgresql_store_round_trip(tmp_path):
    with Store(os.environ["ONCOLENS_TEST_PG_URL"]) as pg:
        assert pg.schema_revision() == head_revision()
        case = make_case(f"pg-{os.getpid()}", patient_id="PG-1")
        pg.add_case(case, bundled(case, tmp_path))
        pg.add_prediction(case.id, make_prediction())
        assert [c.id for c in pg.list_cases(text=case.id.upper())] == [case.id]
        pg.delete_case(case.id, actor="pytest")
        for statement in ("UPDATE audit_events SET actor = 'x'", "DELETE FROM audit_events",
                          "TRUNCATE audit_events"):
            with pytest.raises(sa.exc.IntegrityError, match="append-only"):
                with pg.engine.begin() as conn:
                    conn.exec_driver_sql(statement)
