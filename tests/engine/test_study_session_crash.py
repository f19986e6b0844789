"""Reading sessions across processes: a reader process killed with SIGKILL mid-session loses no saved answer,
and two readers reading at the same moment in two processes against one SQLite file lose and mix nothing."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
import traceback

import pytest
from test_studies import PINS, make_study  # same folder; spawned children import it from there too

from engine.store import Store
from engine.store.verify import verify_store
from engine.studies import ReadingSession
from engine.studies.analysis import read_rows

SAVED_BEFORE_KILL = 10


def expected_call(case_id: str) -> bool:
    return int(case_id[-3:]) % 3 == 0


# -- killed mid-session -----------------------------------------------------------------------------------


def _answer_until_killed(url: str, conn) -> None:
    """Child: answer case after case, reporting each one after `answer` returns; after SAVED_BEFORE_KILL
    answers it goes on more slowly, so the kill lands mid-session even on a busy machine."""
    try:
        with Store(url) as shared:
            session = ReadingSession.open(shared, "s1", "r1", PINS["r1"])
            n = 0
            while True:
                case = session.current_case()
                positive = expected_call(case.case_id)
                session.answer(positive, 5 if positive else 1, comment=f"answer {n}")
                conn.send(("saved", case.case_id, f"answer {n}"))
                n += 1
                if n >= SAVED_BEFORE_KILL:
                    time.sleep(0.2)
                if session.next() is None:
                    session.go_to(1)
    except BaseException:
        conn.send(("error", traceback.format_exc(), ""))


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_reader_process_killed_mid_session_loses_no_saved_answer(tmp_path):
    url = f"sqlite:///{(tmp_path / 'study.sqlite3').as_posix()}"
    with Store(url) as setup:
        make_study(setup, tmp_path / "bundles", n=30, readers=("r1",))
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_answer_until_killed, args=(url, sender))
    child.start()
    saved = []
    try:
        while len(saved) < SAVED_BEFORE_KILL:
            assert receiver.poll(90), "the reading process stopped answering"
            kind, case_id, comment = receiver.recv()
            assert kind == "saved", case_id
            saved.append((case_id, comment))
    finally:
        os.kill(child.pid, signal.SIGKILL)  # no clean-up of any kind: as a crash or a pulled plug
        child.join(timeout=30)
    assert child.exitcode == -signal.SIGKILL

    with Store(url) as after:
        with after.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL: each commit reaches the disk
        rows = read_rows(after, "s1", history=True)
        kept = {(r["case_id"], r["comment"]) for r in rows}
        assert set(saved) <= kept, set(saved) - kept
        assert all(r["positive"] == expected_call(r["case_id"]) for r in rows)
        answered = {r["case_id"] for r in rows}
        assert len(answered) >= SAVED_BEFORE_KILL

        resumed = ReadingSession.open(after, "s1", "r1", PINS["r1"])
        assert resumed.progress().answered == len(answered)
        assert resumed.position == len(answered) + 1 and resumed.current_case().answer is None
        case = resumed.current_case()
        while case is not None:
            if case.answer is None:
                resumed.answer(expected_call(case.case_id), 3)
            case = resumed.next()
        assert resumed.is_complete
        report = verify_store(after)
        assert report.intact, report.text()  # the audit chain survived the kill too


# -- two readers at once --------------------------------------------------------------------------------


def _read_in_process(url: str, study_id: str, reader: str, pin: str, start, results) -> None:
    try:
        with Store(url) as shared:
            session = ReadingSession.open(shared, study_id, reader, pin)
            start.wait(timeout=60)
            case = session.current_case()
            while case is not None:
                positive = (reader == "r1") == expected_call(case.case_id)
                session.answer(positive, 5 if positive else 1, comment=f"{reader}:{case.case_id}")
                case = session.next()
        results.put((reader, "ok"))
    except BaseException:
        results.put((reader, traceback.format_exc()))


SERVERS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
    not os.environ.get("ONCOLENS_TEST_PG_URL"), reason="set ONCOLENS_TEST_PG_URL to a PostgreSQL database to run"))]


@pytest.mark.parametrize("server", SERVERS)
def test_two_readers_in_two_processes_lose_and_mix_nothing(tmp_path, server):
    """One SQLite file (WAL) or one PostgreSQL server shared by two reading stations."""
    if server == "sqlite":
        url, study_id = f"sqlite:///{(tmp_path / 'shared.sqlite3').as_posix()}", "s1"
    else:
        url, study_id = os.environ["ONCOLENS_TEST_PG_URL"], f"two-{os.getpid()}-{time.time_ns()}"
    with Store(url) as setup:
        study = make_study(setup, tmp_path / "bundles", n=30, id=study_id, prefix=study_id)
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_read_in_process, args=(url, study_id, r, PINS[r], start, results))
               for r in ("r1", "r2")]
    for worker in workers:
        worker.start()
    outcome = dict(results.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(timeout=30)
    assert outcome == {"r1": "ok", "r2": "ok"}, outcome

    with Store(url) as shared:
        rows = read_rows(shared, study_id, history=True)
        report = verify_store(shared, images=False)
    assert report.intact, report.text()  # one chain: the two writers never appended to the same event
    assert len(rows) == 60 and all(r["current"] for r in rows)
    for reader in ("r1", "r2"):
        mine = {r["case_id"]: r for r in rows if r["reader_id"] == reader}
        assert set(mine) == set(study.case_ids)
        for case_id, row in mine.items():
            assert row["positive"] == ((reader == "r1") == expected_call(case_id))
            assert row["comment"] == f"{reader}:{case_id}"
