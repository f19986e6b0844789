"""Privacy and access (issue 13, item 7) and study integrity (item 8): owner-only files, the PIN policy, lockout
and unlock, PINs never on the command line, keyed patient ids, CSV cells neutralised against formulas,
unaided before aided."""

from __future__ import annotations

import csv
import io
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_store import bundled, make_case  # same folder
from test_studies import PINS, answer_all, make_study

import engine.cli.study as study_cli
from engine.cases.bundle import write_bundle
from engine.cli import main
from engine.exports import FORMULA_STARTS, csv_dict_writer, csv_writer, restore_cell, safe_cell
from engine.paths import open_private, private_dir
from engine.store import Store
from engine.studies import (
    AIDED,
    PIN_POLICY,
    UNAIDED,
    AuthError,
    LockedError,
    ReadingSession,
    Study,
    StudyError,
    add_reader,
    export_long_format,
    export_reads_csv,
    reset_pin,
    unlock_reader,
)
from engine.studies.model import AUTH_FAILED
from engine.studies.readers import MAX_FAILED_LOGINS

ENGINE = Path(__file__).resolve().parents[2] / "engine"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def store() -> Store:
    opened = Store()
    yield opened
    opened.close()


# -- files readable by their owner only -------------------------------------------------------------------


def test_bundles_written_by_oncolens_are_owner_only(tmp_path):
    case = make_case("private-1", patient_id="P-1", truth=True)
    folder = write_bundle(case, tmp_path / "new" / "deeper" / "private-1")
    assert [mode(p) for p in (tmp_path / "new", tmp_path / "new" / "deeper", folder)] == [0o700] * 3
    assert sorted(mode(f) for f in folder.iterdir()) == [0o600] * len(list(folder.iterdir()))
    existing = tmp_path / "shared"
    existing.mkdir(mode=0o755)
    existing.chmod(0o755)
    write_bundle(case, existing)
    assert mode(existing) == 0o755 and all(mode(f) == 0o600 for f in existing.iterdir())


def test_cases_opened_in_the_app_are_saved_owner_only(store, tmp_path, isolated_user_data):
    from engine.kinds.opening import save_new_case

    save_new_case(make_case("gui-1", patient_id="P-9"), store)
    folder = isolated_user_data / "cases" / "gui-1"
    assert mode(isolated_user_data / "cases") == 0o700 and mode(folder) == 0o700
    assert all(mode(f) == 0o600 for f in folder.iterdir())


def test_study_exports_and_reports_are_owner_only(store, tmp_path):
    make_study(store, tmp_path / "bundles", n=6)
    for reader in ("r1", "r2"):
        answer_all(ReadingSession.open(store, "s1", reader, PINS[reader]))
    reads = export_reads_csv(store, "s1", tmp_path / "out" / "reads.csv")
    long = export_long_format(store, "s1", tmp_path / "long")
    assert mode(tmp_path / "out") == 0o700 and mode(reads) == 0o600
    assert long and all(mode(p) == 0o600 for p in long)
    assert main(["study", "--db", store.url, "report", "s1", "--out", str(tmp_path / "report"), "--n-boot", "20",
                 "--n-perm", "20"]) == 0
    written = list((tmp_path / "report").iterdir())
    assert mode(tmp_path / "report") == 0o700 and written and all(mode(p) == 0o600 for p in written)


def test_open_private_tightens_a_file_that_was_there(tmp_path):
    path = tmp_path / "old.csv"
    path.write_text("x")
    path.chmod(0o644)
    with open_private(path) as handle:
        handle.write("y")
    assert mode(path) == 0o600 and path.read_text() == "y"
    with pytest.raises(NotADirectoryError, match="not a folder"):
        private_dir(path)


# -- PINs ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pin, allowed", [
    ("1234", False), ("12345", False), ("123456", True), ("0000000", True),
    ("abc123", False), ("short pass", True), ("nine char", False),
    ("\u0661\u0662\u0663\u0664\u0665\u0666", False),  # Arabic-Indic digits are not ASCII digits: a passphrase
    (" 1234567", False), ("1234567 ", False), ("x" * 128, True), ("x" * 129, False),
])
def test_pins_need_six_digits_or_a_ten_character_passphrase(store, tmp_path, pin, allowed):
    make_study(store, tmp_path, readers=("r1",))
    if allowed:
        add_reader(store, "s1", "rx", "Dr X", pin)
        assert ReadingSession.open(store, "s1", "rx", pin).reader_id == "rx"
        reset_pin(store, "s1", "r1", pin)
    else:
        for refused in (lambda: add_reader(store, "s1", "rx", "Dr X", pin), lambda: reset_pin(store, "s1", "r1", pin)):
            with pytest.raises(StudyError) as info:
                refused()
            assert str(info.value) == PIN_POLICY


def test_five_wrong_pins_lock_a_reader_until_the_administrator_unlocks(store, tmp_path, capsys):
    make_study(store, tmp_path)
    for attempt in range(1, MAX_FAILED_LOGINS):
        with pytest.raises(AuthError) as info:
            ReadingSession.open(store, "s1", "r1", f"99999{attempt}")
        assert str(info.value) == AUTH_FAILED and not isinstance(info.value, LockedError)
    with pytest.raises(LockedError) as info:
        ReadingSession.open(store, "s1", "r1", "999990")
    message = str(info.value)
    assert f"after {MAX_FAILED_LOGINS} wrong PINs" in message and "oncolens study unlock-reader s1 r1" in message
    with pytest.raises(LockedError):  # the right PIN does not help while locked
        ReadingSession.open(store, "s1", "r1", PINS["r1"])
    assert ReadingSession.open(store, "s1", "r2", PINS["r2"]).reader_id == "r2"  # other readers are not locked

    assert main(["study", "--db", store.url, "--actor", "dr.admin", "unlock-reader", "s1", "r1"]) == 0
    assert "unlocked reader r1 of study s1" in capsys.readouterr().err
    assert ReadingSession.open(store, "s1", "r1", PINS["r1"]).reader_id == "r1"
    actions = [(e["action"], e["actor"]) for e in store.audit_log("s1") if e["detail"].get("reader_id") == "r1"]
    assert ("reader.locked", "system") in actions and ("reader.unlock", "dr.admin") in actions
    assert ("reader.login", "r1") in actions[actions.index(("reader.unlock", "dr.admin")):]


def test_the_count_is_of_wrong_pins_in_a_row_and_a_reset_unlocks(store, tmp_path):
    make_study(store, tmp_path)
    for _ in range(2):
        for _ in range(MAX_FAILED_LOGINS - 1):
            with pytest.raises(AuthError):
                ReadingSession.open(store, "s1", "r1", "000000")
        ReadingSession.open(store, "s1", "r1", PINS["r1"])  # a right PIN starts the count again
    for _ in range(MAX_FAILED_LOGINS):
        with pytest.raises(AuthError):
            ReadingSession.open(store, "s1", "r1", "000000")
    reset_pin(store, "s1", "r1", "a new passphrase", actor="dr.admin")
    assert ReadingSession.open(store, "s1", "r1", "a new passphrase").reader_id == "r1"


def test_unknown_reader_ids_lock_the_same_way(store, tmp_path):
    """So that a lock tells nothing about which reader ids exist."""
    make_study(store, tmp_path)
    errors = []
    for _ in range(MAX_FAILED_LOGINS + 1):
        with pytest.raises(AuthError) as info:
            ReadingSession.open(store, "s1", "nobody", "123456")
        errors.append(type(info.value))
    assert errors == [AuthError] * (MAX_FAILED_LOGINS - 1) + [LockedError] * 2
    with pytest.raises(StudyError, match="has no reader 'nobody'"):
        unlock_reader(store, "s1", "nobody")


def test_the_cli_takes_no_pin_argument_but_a_file_a_variable_or_the_prompt(store, tmp_path, monkeypatch, capsys):
    make_study(store, tmp_path, readers=())
    db = ["study", "--db", store.url]
    assert main([*db, "add-reader", "s1", "r1", "--pin", "123456"]) == 2
    assert "--pin is not accepted" in capsys.readouterr().err
    pin_file = tmp_path / "pin.txt"
    pin_file.write_text("246810\n")
    assert main([*db, "add-reader", "s1", "r1", "--pin-file", str(pin_file)]) == 0
    monkeypatch.setenv(study_cli.PIN_VARIABLE, "a long passphrase")
    assert main([*db, "add-reader", "s1", "r2"]) == 0
    monkeypatch.delenv(study_cli.PIN_VARIABLE)
    answers = iter(["135790", "135790"])
    monkeypatch.setattr(study_cli, "PROMPT", lambda _: next(answers))
    assert main([*db, "add-reader", "s1", "r3"]) == 0
    for reader, pin in (("r1", "246810"), ("r2", "a long passphrase"), ("r3", "135790")):
        assert ReadingSession.open(store, "s1", reader, pin).reader_id == reader
    (tmp_path / "empty.txt").write_text("")
    assert main([*db, "add-reader", "s1", "r4", "--pin-file", str(tmp_path / "empty.txt")]) == 2
    assert "is empty" in capsys.readouterr().err

    def closed(_prompt):
        raise EOFError

    monkeypatch.setattr(study_cli, "PROMPT", closed)
    assert main([*db, "reset-pin", "s1", "r1"]) == 2
    assert "standard input is closed" in capsys.readouterr().err


def test_a_pin_read_from_a_closed_stdin_is_a_clear_error_not_a_traceback(store, tmp_path):
    make_study(store, tmp_path, readers=())
    env = {**os.environ, "PYTHONPATH": str(ENGINE.parent)}
    env.pop(study_cli.PIN_VARIABLE, None)
    done = subprocess.run([sys.executable, "-m", "engine.cli", "study", "--db", store.url, "add-reader", "s1", "r1"],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=120,
                          cwd=ENGINE.parent, start_new_session=True)  # no controlling terminal: getpass reads stdin
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "No PIN was typed: standard input is closed" in done.stderr


# -- keyed patient ids ----------------------------------------------------------------------------------------


def test_a_deleted_case_leaves_no_readable_patient_id_behind(store, tmp_path):
    patient = "MRN-7734-Johansson"
    case = make_case("case-k", patient_id=patient)
    store.add_case(case, bundled(case, tmp_path))
    case.patient_id = patient + "-B"
    store.add_case(case, tmp_path / "case-k")
    store.delete_case("case-k", actor="admin")
    events = store.audit_log("case-k")
    assert [e["action"] for e in events] == ["case.add", "case.update", "case.delete"]
    assert patient not in str(events)
    ref = store.patient_ref(patient)
    assert re.fullmatch(r"hmac-sha256:[0-9a-f]{64}", ref) and ref != store.patient_ref(patient + "-B")
    assert events[0]["detail"]["patient_ref"] == ref and events[2]["detail"]["patient_ref"] != ref
    with Store(store.url) as other:  # the same key in every process: refs can be looked up
        assert other.patient_ref(patient) == ref
    with store.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    path = Path(store.url.removeprefix("sqlite:///"))
    assert patient.encode() not in path.read_bytes()  # secure_delete: not even in free pages


# -- CSV cells ------------------------------------------------------------------------------------------------


@given(st.text())
def test_no_text_cell_starts_like_a_formula_and_every_cell_comes_back(value):
    cell = safe_cell(value)
    assert restore_cell(cell) == value
    if cell.startswith(FORMULA_STARTS):
        assert float(cell) == float(cell)  # only a plain number may: spreadsheets read it as that number
    assert cell == value or cell == "'" + value


@given(st.lists(st.one_of(st.text(), st.integers(), st.floats(allow_nan=False)), min_size=1, max_size=6))
def test_csv_rows_read_back_neutralised_and_numbers_untouched(row):
    handle = io.StringIO()
    csv_writer(handle).writerow(row)
    back = next(csv.reader(io.StringIO(handle.getvalue())))
    for written, original in zip(back, row, strict=True):
        if isinstance(original, str):
            assert restore_cell(written) == original.replace("\r\n", "\n") or "\r" in original
        else:
            assert written == str(original)


ATTACKS = ["=HYPERLINK(\"http://evil\",\"x\")", "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\r=1", "'=quoted", "=1"]


def test_study_exports_neutralise_text_cells_and_keep_scores_numeric(store, tmp_path):
    make_study(store, tmp_path / "bundles", n=6, readers=("r1", "r2"))
    for reader in ("r1", "r2"):
        session = ReadingSession.open(store, "s1", reader, PINS[reader])
        case = session.resume()
        for i, attack in enumerate(ATTACKS * 2):
            if case is None:
                break
            session.answer(i % 2 == 0, 5 if i % 2 == 0 else 1, comment=attack)
            case = session.next()
    rows = list(csv.DictReader(export_reads_csv(store, "s1", tmp_path / "reads.csv").open(newline="")))
    comments = [r["comment"] for r in rows]
    assert comments and not any(c.startswith(FORMULA_STARTS) for c in comments)
    assert {restore_cell(c) for c in comments} <= set(ATTACKS)
    assert all(float(r["confidence"]) in (1.0, 5.0) for r in rows)
    for path in export_long_format(store, "s1", tmp_path / "long"):
        if path.suffix == ".csv":
            for row in csv.reader(path.open(newline="")):
                assert not any(cell.startswith(FORMULA_STARTS) and not re.fullmatch(r"-?[\d.]+", cell)
                               for cell in row), row


def test_dict_writer_neutralises_values_and_the_header():
    handle = io.StringIO()
    writer = csv_dict_writer(handle, ["=a", "b"])
    writer.writeheader()
    writer.writerow({"=a": "@x", "b": -0.5})
    assert handle.getvalue().splitlines() == ["'=a,b", "'@x,-0.5"]


def test_every_csv_writer_in_the_engine_goes_through_engine_exports():
    direct = [f"{path.relative_to(ENGINE.parent)}:{n}" for path in ENGINE.rglob("*.py") if path.name != "exports.py"
              for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
              if re.search(r"\bcsv\.(writer|DictWriter)\(", line)]
    assert direct == []


# -- arms ---------------------------------------------------------------------------------------------------


def test_aided_before_unaided_is_refused():
    study = Study(id="s", name="S", task_label="tumor", case_ids=("a",), modalities=("FL",), arms=(AIDED, UNAIDED))
    with pytest.raises(StudyError, match="unaided before aided"):
        study.validate()
    Study(id="s", name="S", task_label="tumor", case_ids=("a",), modalities=("FL",), arms=(UNAIDED, AIDED)).validate()
