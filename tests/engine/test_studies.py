"""Reader studies: set-up, PINs, blinding, append-only answers, orders, resume, washout, bad input, the admin
commands and migration 0002 on an existing database. Several processes: test_study_session_crash.py."""

from __future__ import annotations

import dataclasses
import os
import shutil
import uuid
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.orm import Session

from engine.cases.bundle import write_bundle
from engine.cases.model import Case, GroundTruth
from engine.data import ImageMeta, Prediction, TaskResult
from engine.store import Store, StoreError
from engine.store.db import alembic_config
from engine.store.schema import Base, ReaderRecord, ReadRecord
from engine.studies import (
    AIDED,
    UNAIDED,
    AuthError,
    BlindedCase,
    ReadingSession,
    Study,
    StudyError,
    WashoutError,
    add_reader,
    create_study,
    load_study,
    reading_order,
    study_progress,
)
from engine.studies.analysis import analyze_study, export_reads_csv, read_rows
from engine.studies.model import AUTH_FAILED
from engine.studies.readers import hash_pin, verify_pin

STUDY_TABLES = {"studies", "study_cases", "readers", "reading_sessions", "reads"}
PINS = {"r1": "111111", "r2": "222222", "r3": "333333"}


def probability(case_id: str) -> float:
    """A distinctive model probability per case, so tests can look for it anywhere."""
    return round(0.05 + 0.9 * (zlib.crc32(case_id.encode()) % 10007) / 10007, 6)


def add_cases(store: Store, root: Path, n: int, *, prefix: str = "gl", truth: bool = True) -> list[str]:
    ids = []
    for i in range(n):
        case_id = f"{prefix}-{i:03d}"
        rng = np.random.default_rng(i)
        case = Case(id=case_id, kind="glioma_specimen", patient_id=f"P{i}")
        case.add_image("FL", rng.integers(0, 65535, (8, 8), dtype=np.uint16),
                       ImageMeta(bit_depth=16, source=f"tumor_{i % 2}.png"))
        case.add_image("WL", rng.integers(0, 255, (8, 8, 3), dtype=np.uint8), ImageMeta(bit_depth=8))
        if truth:
            case.truth = GroundTruth(labels={"tumor": i % 2}, masks={"tumor": np.full((8, 8), i % 2, np.uint8)},
                                     source="phantom")
        p = probability(case_id)
        prediction = Prediction(family="fl_cnn", weights_sha256={"fl_cnn_fl_tumor": "ab" * 32},
                                tasks={"tumor": TaskResult("tumor" if p >= 0.5 else "normal", p, 0.5)},
                                masks={"tumor": np.ones((8, 8), np.uint8)})
        case.predictions.append(prediction)
        store.add_case(case, write_bundle(case, root / case_id))
        store.add_prediction(case_id, prediction)
        ids.append(case_id)
    return ids


def make_study(store: Store, root: Path, n: int = 6, readers: tuple[str, ...] = ("r1", "r2"), **settings) -> Study:
    case_ids = add_cases(store, root, n, prefix=settings.pop("prefix", "gl"))
    spec = Study(id=settings.pop("id", "s1"), name="Glioma FL study", task_label="tumor", case_ids=tuple(case_ids),
                 modalities=settings.pop("modalities", ("FL",)), seed=7, **settings)
    study = create_study(store, spec, actor="admin")
    for reader in readers:
        add_reader(store, study.id, reader, f"Dr {reader.upper()}", PINS[reader])
    return study


@pytest.fixture
def store() -> Store:
    opened = Store()
    yield opened
    opened.close()


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def answer_all(session: ReadingSession, rule=lambda case_id: probability(case_id) >= 0.5) -> None:
    case = session.resume()
    while case is not None:
        if case.answer is None and not case.unavailable:
            positive = rule(case.case_id)
            session.answer(positive, 4 if positive else 2)
        case = session.next()


# -- PINs ------------------------------------------------------------------------------------------


def test_pins_are_kept_only_as_salted_scrypt_hashes(store, tmp_path):
    make_study(store, tmp_path, readers=())
    pin = "open sesame 42"
    add_reader(store, "s1", "r1", "Dr One", pin)
    add_reader(store, "s1", "r2", "Dr Two", pin)  # same PIN, different salt
    with Session(store.engine) as session:
        hashes = {r.reader_id: r.pin_hash for r in session.scalars(sa.select(ReaderRecord))}
    assert all(pin not in h and h.startswith("scrypt$16384$8$1$") for h in hashes.values())
    assert hashes["r1"] != hashes["r2"] and hashes["r1"].split("$")[4] != hashes["r2"].split("$")[4]
    assert verify_pin(pin, hashes["r1"]) and not verify_pin(pin + "!", hashes["r1"])
    assert not verify_pin(pin, "garbage") and not verify_pin(pin, hash_pin(pin)[:-4] + "AAAA")
    assert all(pin not in str(e["detail"]) for e in store.audit_log())


def test_wrong_pin_and_unknown_reader_give_the_same_error(store, tmp_path):
    make_study(store, tmp_path)
    messages = []
    for reader, pin in (("r1", "999999"), ("nobody", "111111"), ("r1", "")):
        with pytest.raises(AuthError) as info:
            ReadingSession.open(store, "s1", reader, pin)
        messages.append(str(info.value))
    assert messages == [AUTH_FAILED] * 3
    assert [e["action"] for e in store.audit_log("s1")].count("reader.login_failed") == 3
    assert ReadingSession.open(store, "s1", "r1", "111111").reader_id == "r1"


def test_duplicate_reader_ids_and_bad_pins_are_refused(store, tmp_path):
    make_study(store, tmp_path)
    with pytest.raises(StudyError, match="already has a reader 'r1'"):
        add_reader(store, "s1", "r1", "Someone else", "555555")
    with pytest.raises(StudyError, match="PIN must be"):
        add_reader(store, "s1", "r9", "Short", "12")
    with pytest.raises(StudyError, match="not allowed"):
        add_reader(store, "s1", "model", "Model", "555555")
    ReadingSession.open(store, "s1", "r1", PINS["r1"])  # the first reader's PIN still works


# -- set-up -------------------------------------------------------------------------------------------


def test_study_set_up_checks_cases_settings_and_predictions(store, tmp_path):
    ids = add_cases(store, tmp_path, 4)
    base = Study(id="s", name="S", task_label="tumor", case_ids=tuple(ids), modalities=("FL",))
    with pytest.raises(StudyError, match="ghost-1"):
        create_study(store, dataclasses.replace(base, case_ids=(*ids, "ghost-1")))
    with pytest.raises(StudyError, match="arms must be"):
        create_study(store, dataclasses.replace(base, arms=("sideways",)))
    with pytest.raises(StudyError, match="lack a modality"):
        create_study(store, dataclasses.replace(base, modalities=("PET",)))
    with pytest.raises(StudyError, match="no stored prediction .*'grade'"):
        create_study(store, dataclasses.replace(base, task_label="grade"))
    saved = create_study(store, base)
    assert (saved.model, saved.model_threshold, saved.case_kind) == ("fl_cnn", 0.5, "glioma_specimen")
    assert load_study(store, "s") == saved
    with pytest.raises(StudyError, match="already exists"):
        create_study(store, base)


# -- blinding -----------------------------------------------------------------------------------------


def _everything_in(obj, seen=None):
    """Every object reachable through dataclass fields, mappings, sequences and __dict__ (Store excluded)."""
    seen = set() if seen is None else seen
    if id(obj) in seen or isinstance(obj, Store):
        return
    seen.add(id(obj))
    yield obj
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        children = [getattr(obj, f.name) for f in dataclasses.fields(obj)]
    elif hasattr(obj, "items"):
        children = [v for kv in obj.items() for v in kv]
    elif isinstance(obj, (list, tuple, set, frozenset)):
        children = list(obj)
    elif hasattr(obj, "__dict__") and not isinstance(obj, type):
        children = list(vars(obj).values())
    else:
        children = []
    for child in children:
        yield from _everything_in(child, seen)


def test_unaided_sessions_hold_no_truth_and_no_model_output(store, tmp_path):
    study = make_study(store, tmp_path, modalities=("FL",))
    session = ReadingSession.open(store, "s1", "r1", PINS["r1"])
    cases = [session.go_to(i) for i in range(1, session.total + 1)]
    session.answer(True, 5)
    reachable = list(_everything_in(session)) + [x for c in cases for x in _everything_in(c)]
    assert not any(isinstance(x, (GroundTruth, Prediction)) for x in reachable)
    floats = {round(float(x), 6) for x in reachable if isinstance(x, float)}
    assert not floats & {probability(c) for c in study.case_ids}
    for case in cases:
        assert isinstance(case, BlindedCase) and case.aid is None
        assert set(case.images) == {"FL"}  # WL exists in the bundle but is not part of this study
        assert case.images["FL"].meta.file_name is None  # "tumor_1.png" would hint at the answer
        assert not case.images["FL"].array.flags.writeable
        assert not any("truth" in f.name for f in dataclasses.fields(case))


def test_aided_sessions_show_the_stored_prediction_but_no_truth(store, tmp_path):
    make_study(store, tmp_path, arms=(AIDED,))
    session = ReadingSession.open(store, "s1", "r2", PINS["r2"])
    assert session.aided
    case = session.current_case()
    assert case.aid.probability == pytest.approx(probability(case.case_id))
    assert (case.aid.model, case.aid.threshold) == ("fl_cnn", 0.5)
    assert case.aid.positive == (case.aid.probability >= 0.5)
    assert set(case.aid.masks) == {"tumor"}  # the bundle's matching prediction mask, not the truth mask
    assert not any(isinstance(x, GroundTruth) for x in _everything_in(session))


def test_a_reader_sees_only_their_own_reads(store, tmp_path):
    make_study(store, tmp_path)
    one = ReadingSession.open(store, "s1", "r1", PINS["r1"])
    answer_all(one)
    two = ReadingSession.open(store, "s1", "r2", PINS["r2"])
    assert two.my_answers() == [] and two.current_case().answer is None
    two.answer(False, 1)
    mine = {a.read_id for a in one.my_answers()}
    theirs = {a.read_id for a in two.my_answers()}
    assert len(mine) == 6 and len(theirs) == 1 and not mine & theirs
    with Session(store.engine) as session:
        owners = dict(session.execute(sa.select(ReadRecord.id, ReadRecord.reader_id)).all())
    assert {owners[i] for i in mine} == {"r1"} and {owners[i] for i in theirs} == {"r2"}


# -- answers --------------------------------------------------------------------------------------------


def test_answers_are_checked_against_the_scale(store, tmp_path):
    make_study(store, tmp_path, confidence_scale="5-point")
    session = ReadingSession.open(store, "s1", "r1", PINS["r1"])
    for positive, rating, match in ((True, 6, "from 1 to 5"), (True, 4.5, "whole number"),
                                    (True, 2, "at or above 3"), (False, 4, "at or below 3"), (True, "x", "number")):
        with pytest.raises(StudyError, match=match):
            session.answer(positive, rating)
    with pytest.raises(StudyError, match="does not ask for contours"):
        session.answer(True, 4, contour=[[(0, 0), (1, 0), (1, 1)]])
    assert session.my_answers() == []
    assert session.answer(True, 3).confidence == 3.0  # equivocal goes with either call


def test_changing_an_answer_adds_a_read_and_keeps_the_earlier_one(store, tmp_path):
    make_study(store, tmp_path)
    session = ReadingSession.open(store, "s1", "r1", PINS["r1"])
    case_id = session.current_case().case_id
    first = session.answer(True, 4, "looks bright")
    second = session.answer(False, 2, "on second look: autofluorescence")
    assert second.supersedes == first.read_id and second.read_id > first.read_id
    assert [a.read_id for a in session.my_answers()] == [second.read_id]
    assert session.current_case().answer == second

    history = [r for r in read_rows(store, "s1", history=True) if r["case_id"] == case_id]
    assert [(r["positive"], r["current"]) for r in history] == [(1, 0), (0, 1)]
    assert [r["current"] for r in read_rows(store, "s1")] == [1]
    change = [e for e in store.audit_log("s1") if e["action"] == "read.change"]
    assert len(change) == 1
    detail = change[0]["detail"]
    assert detail["previous"] == {"read_id": first.read_id, "positive": True, "confidence": 4.0,
                                  "comment": "looks bright", "answered_at": first.answered_at}
    assert detail["answered_at"] == second.answered_at and change[0]["at"].endswith("+00:00")


@pytest.mark.parametrize("statement", ["UPDATE reads SET positive = 0", "DELETE FROM reads"])
def test_the_database_refuses_to_change_or_delete_reads(store, tmp_path, statement):
    make_study(store, tmp_path)
    ReadingSession.open(store, "s1", "r1", PINS["r1"]).answer(True, 5)
    with pytest.raises(sa.exc.IntegrityError, match="append-only"):
        with store.engine.begin() as conn:
            conn.exec_driver_sql(statement)
    with Session(store.engine) as session:
        read = session.scalars(sa.select(ReadRecord)).one()
        read.positive = False
        with pytest.raises(StoreError, match="append-only"):
            session.flush()
    assert [r["positive"] for r in read_rows(store, "s1")] == [1]


def test_time_on_a_case_is_recorded_and_adds_up_over_visits(store, tmp_path):
    make_study(store, tmp_path)
    session = ReadingSession.open(store, "s1", "r1", PINS["r1"])
    session.current_case()
    first = session.answer(True, 4)
    session.next()
    session.previous()
    again = session.answer(True, 5)
    assert first.seconds > 0 and again.seconds > first.seconds
    assert again.shown_at >= first.answered_at


def test_a_prefetched_case_shows_without_reading_the_store_and_its_timer_starts_when_shown(store, tmp_path,
                                                                                          monkeypatch):
    make_study(store, tmp_path, n=4)
    session = ReadingSession.open(store, "s1", "r1", PINS["r1"])
    session.prefetch(2)
    session.prefetch(99)  # outside the session: nothing
    loads = []
    monkeypatch.setattr(store, "load_case", lambda case_id: loads.append(case_id))
    second = session.next()
    assert loads == [] and second.position == 2 and second.images and second.answer is None
    assert second.images["FL"].array.flags.writeable is False  # blinded as ever
    saved = session.answer(True, 4)
    assert saved.seconds < 5 and session.current_case().answer == saved


# -- order, resume, washout -------------------------------------------------------------------------


def test_reading_order_is_reproducible_per_reader_and_differs_between_readers(store, tmp_path):
    ids = tuple(f"c{i}" for i in range(40))
    assert reading_order(ids, 7, "r1") == reading_order(ids, 7, "r1")
    assert sorted(reading_order(ids, 7, "r1")) == sorted(ids)
    assert len({reading_order(ids, 7, r) for r in ("r1", "r2", "r3")}) == 3
    assert reading_order(ids, 8, "r1") != reading_order(ids, 7, "r1")
    assert reading_order(ids, 7, "r1", AIDED) != reading_order(ids, 7, "r1", UNAIDED)

    study = make_study(store, tmp_path, n=12)
    for reader in ("r1", "r2"):
        session = ReadingSession.open(store, "s1", reader, PINS[reader])
        seen = tuple(session.go_to(i).case_id for i in range(1, 13))
        assert seen == reading_order(study.case_ids, 7, reader)


def test_a_reader_resumes_at_the_first_unanswered_case(store, tmp_path):
    make_study(store, tmp_path, n=8)
    session = ReadingSession.open(store, "s1", "r1", PINS["r1"])
    order = [session.go_to(i).case_id for i in range(1, 9)]
    for position in (1, 2, 4):
        session.go_to(position)
        session.answer(False, 1)
    again = ReadingSession.open(store, "s1", "r1", PINS["r1"])
    assert again.session_id == session.session_id
    assert again.position == 3 and again.current_case().case_id == order[2]
    assert (again.progress().answered, again.progress().total) == (3, 8)
    assert str(again.progress()) == "case 3 of 8 (3 answered)"


def test_repeat_reads_open_only_after_the_washout(store, tmp_path):
    clock = Clock()
    make_study(store, tmp_path, n=6, repeat_reads=1, washout_days=14)
    first = ReadingSession.open(store, "s1", "r1", PINS["r1"], clock=clock)
    first_order = [first.go_to(i).case_id for i in range(1, 7)]
    answer_all(first)
    assert first.is_complete
    clock.now += timedelta(days=3)
    with pytest.raises(WashoutError, match=r"14-day washout, at 2026-03-15T09:00"):
        ReadingSession.open(store, "s1", "r1", PINS["r1"], clock=clock)
    clock.now += timedelta(days=11, seconds=1)
    second = ReadingSession.open(store, "s1", "r1", PINS["r1"], clock=clock)
    assert (second.round, second.position, second.my_answers()) == (2, 1, [])
    assert [second.go_to(i).case_id for i in range(1, 7)] != first_order
    answer_all(second)
    with pytest.raises(StudyError, match="finished every reading session"):
        ReadingSession.open(store, "s1", "r1", PINS["r1"], clock=clock)
    progress = {(p.reader_id, p.round): p for p in study_progress(store, "s1")}
    assert progress[("r1", 2)].answered == 6 and progress[("r2", 1)].started is None


# -- bad input while reading ----------------------------------------------------------------------------


def test_a_deleted_bundle_is_logged_not_named_to_the_reader_and_the_study_goes_on(store, tmp_path):
    make_study(store, tmp_path, n=6)
    session = ReadingSession.open(store, "s1", "r1", PINS["r1"])
    order = [session.go_to(i).case_id for i in range(1, 7)]
    gone = tmp_path / order[2]
    shutil.rmtree(gone)
    session.go_to(1)
    answer_all(session)
    case = session.go_to(3)
    assert case.images == {} and "cannot be shown" in case.unavailable
    assert order[2] not in case.unavailable and str(tmp_path) not in case.unavailable  # blinding: no id, no path
    logged = [e["detail"] for e in store.audit_log("s1") if e["action"] == "study.case_unavailable"]
    assert logged[-1]["case_id"] == order[2] and str(gone.resolve()) in logged[-1]["reason"]
    with pytest.raises(StudyError, match="could not be shown"):
        session.answer(True, 5)
    assert len(session.my_answers()) == 5 and not session.is_complete
    other = ReadingSession.open(store, "s1", "r2", PINS["r2"])
    with pytest.raises(StudyError, match=r"5 case\(s\) are still unanswered"):
        other.finish()
    session.finish()  # only the unreadable case is left
    answer_all(other)
    other.finish()
    assert all(p.completed is not None for p in study_progress(store, "s1"))
    assert any(e["action"] == "study.case_unavailable" for e in store.audit_log("s1"))

    analysis = analyze_study(store, "s1", n_boot=50, n_perm=50)  # the study goes on without the case
    assert order[2] not in analysis.data.case_ids and len(analysis.data.case_ids) == 5
    assert analysis.data.excluded == [{"kind": "case", "id": order[2], "arm": UNAIDED, "reason": (
        "not answered by every reader who finished (e.g. its bundle could not be shown)")}]
    assert "1 of 6 cases are left out (see the excluded table)." in analysis.notes


# -- administrator's commands -------------------------------------------------------------------------


def test_admin_commands_create_enrol_and_export(store, tmp_path, monkeypatch, capsys):
    import engine.cli.study as study_cli
    from engine.cli import main

    ids = add_cases(store, tmp_path, 4)
    db = ["--db", store.url]
    assert main(["study", *db, "create", "cli", "--label", "tumor", "--cases", *ids[:2], "--kind", "glioma_specimen",
                 "--modalities", "FL", "WL", "--arms", "unaided", "aided", "--washout-days", "28"]) == 0
    assert load_study(store, "cli").case_ids == tuple(ids) and load_study(store, "cli").arms == (UNAIDED, AIDED)
    answers = iter(["654321", "654321"])
    monkeypatch.setattr(study_cli, "PROMPT", lambda _: next(answers))
    assert main(["study", *db, "add-reader", "cli", "dr.k", "--name", "Dr K"]) == 0
    pins = iter(["111111", "222222"])
    monkeypatch.setattr(study_cli, "PROMPT", lambda _: next(pins))
    assert main(["study", *db, "add-reader", "cli", "dr.m"]) == 2
    assert "differ" in capsys.readouterr().err
    ReadingSession.open(store, "cli", "dr.k", "654321").answer(True, 4)
    assert main(["study", *db, "progress", "cli"]) == 0
    said = capsys.readouterr().err.splitlines()
    assert any("dr.k" in line and "1/4" in line for line in said)
    path = export_reads_csv(store, "cli", tmp_path / "reads.csv")
    lines = path.read_text().splitlines()
    assert lines[0].startswith("study_id,reader_id,arm,round") and len(lines) == 2 and "tumor" not in lines[0]


# -- schema and migration ---------------------------------------------------------------------------------


def test_models_match_the_tables_migration_0002_builds(store):
    inspector = sa.inspect(store.engine)
    assert STUDY_TABLES <= set(inspector.get_table_names())
    for table in Base.metadata.sorted_tables:
        assert {c["name"] for c in inspector.get_columns(table.name)} == set(table.columns.keys()), table.name


def test_upgrading_a_0001_database_keeps_its_data_and_downgrading_removes_only_studies(tmp_path):
    url = f"sqlite:///{(tmp_path / 'old.sqlite3').as_posix()}"
    engine = sa.create_engine(url)
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        conn.exec_driver_sql("INSERT INTO cases VALUES ('old-1', 'lymph_node', 'P1', '/x/old-1', 'WLI,FI,PCI', 1, "
                             "'{\"labels\": {\"metastatic\": 1}}', '2025-01-01', '2025-01-01')")
        conn.exec_driver_sql("INSERT INTO predictions (case_id, model, weights_sha256, summary_json, created) "
                             "VALUES ('old-1', 'mfi_ffp', '{}', '{\"probabilities\": {\"metastatic\": 0.7}}', '2025')")
        conn.exec_driver_sql("INSERT INTO audit_events (at, actor, action, entity, entity_id, detail_json) "
                             "VALUES ('2025', 'admin', 'case.add', 'case', 'old-1', '{}')")
    engine.dispose()

    with Store(url) as upgraded:
        assert upgraded.schema_revision() == "0004"
        assert [c.id for c in upgraded.list_cases()] == ["old-1"]
        assert upgraded.predictions_for("old-1")[0].summary.probabilities == {"metastatic": 0.7}
        assert upgraded.predictions_for("old-1")[0].summary.model == "mfi_ffp"
        assert [e["action"] for e in upgraded.audit_log()] == ["case.add", "store.upgrade", "case.baseline",
                                                               "store.upgrade", "case.baseline"]  # 0003, 0004
        with pytest.raises(sa.exc.IntegrityError, match="append-only"):  # 0001's triggers survive
            with upgraded.engine.begin() as conn:
                conn.exec_driver_sql("DELETE FROM audit_events")

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0001")
    tables = set(sa.inspect(engine).get_table_names())
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM predictions").scalar() == 1
    engine.dispose()
    assert not tables & STUDY_TABLES and {"cases", "predictions", "audit_events"} <= tables
    with Store(url) as again:
        assert again.schema_revision() == "0004" and len(again.list_cases()) == 1


# -- PostgreSQL, only where a server is given ---------------------------------------------------------


@pytest.mark.skipif(not os.environ.get("ONCOLENS_TEST_PG_URL"),
                    reason="set ONCOLENS_TEST_PG_URL to an empty PostgreSQL database to run")
def test_postgresql_study_round_trip(tmp_path):
    tag = uuid.uuid4().hex[:10]  # ids unlike test_store's "pg-<pid>", which it looks up by substring
    with Store(os.environ["ONCOLENS_TEST_PG_URL"]) as pg:
        case_ids = add_cases(pg, tmp_path, 6, prefix=f"study{tag}")
        create_study(pg, Study(id=f"pg-{tag}", name="PG", task_label="tumor", case_ids=tuple(case_ids),
                               modalities=("FL",), arms=(UNAIDED, AIDED)))
        for reader in ("r1", "r2"):
            add_reader(pg, f"pg-{tag}", reader, reader, PINS[reader])
        with pytest.raises(StudyError, match="already has a reader"):
            add_reader(pg, f"pg-{tag}", "r1", "again", "999999")
        for reader in ("r1", "r2"):
            for _ in range(2):
                answer_all(ReadingSession.open(pg, f"pg-{tag}", reader, PINS[reader]))
        with pytest.raises(AuthError):
            ReadingSession.open(pg, f"pg-{tag}", "r3", "000000")
        rows = read_rows(pg, f"pg-{tag}")
        assert len(rows) == 24 and {r["arm"] for r in rows} == {UNAIDED, AIDED}
        analysis = analyze_study(pg, f"pg-{tag}", n_boot=50, n_perm=50)
        assert "aided_vs_unaided/auc" in analysis.result.mrmc
        for statement in ("UPDATE reads SET positive = false", "DELETE FROM reads", "TRUNCATE reads CASCADE"):
            with pytest.raises(sa.exc.IntegrityError, match="append-only"):
                with pg.engine.begin() as conn:
                    conn.exec_driver_sql(statement)
