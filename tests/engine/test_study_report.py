"""Reader-study analysis from the store end to end: tables, long format, iMRMC file, the HTML report, and
clear errors (nothing lost) for a study with one class or one reader."""

from __future__ import annotations

import csv
import re
import zlib

import numpy as np
import pytest
from test_studies import PINS, add_cases, make_study

from engine.store import Store
from engine.studies import (
    AIDED,
    UNAIDED,
    ReadingSession,
    Study,
    StudyError,
    create_study,
    load_study,
)
from engine.studies.analysis import analyze_study, collect_study_data, export_long_format
from engine.studies.report import render_report, write_report

STATS = {"n_boot": 200, "n_perm": 400}


@pytest.fixture
def store() -> Store:
    opened = Store()
    yield opened
    opened.close()


def truth_of(case_id: str) -> int:
    return int(case_id[-3:]) % 2  # as add_cases labels them


def rating(reader: str, arm: str, case_id: str) -> int:
    """A 5-point rating: mostly right, with reader noise; aided readers a little better."""
    noise = (zlib.crc32(f"{reader}/{arm}/{case_id}".encode()) % 1000) / 1000
    latent = truth_of(case_id) + (0.35 if arm == AIDED else 0) * (2 * truth_of(case_id) - 1) + 1.6 * (noise - 0.5)
    return int(np.clip(np.round(1 + 4 * (latent + 0.5) / 2), 1, 5))


def read_everything(store: Store, study_id: str, readers, arms=(UNAIDED,)) -> None:
    for reader in readers:
        for _ in arms:
            session = ReadingSession.open(store, study_id, reader, PINS[reader])
            case = session.current_case()
            while case is not None:
                r = rating(reader, session.arm, case.case_id)
                session.answer(r > 3 or (r == 3 and truth_of(case.case_id) == 1), r, comment="")
                case = session.next()
            assert session.is_complete


def test_end_to_end_analysis_with_both_arms_writes_tables_and_report(store, tmp_path):
    study = make_study(store, tmp_path / "bundles", n=24, readers=("r1", "r2", "r3"), arms=(UNAIDED, AIDED))
    read_everything(store, "s1", ("r1", "r2", "r3"), arms=study.arms)
    analysis = analyze_study(store, "s1", **STATS)

    data = analysis.data
    assert data.case_ids == study.case_ids and list(data.arms) == [UNAIDED, AIDED]
    assert data.truth.tolist() == [truth_of(c) for c in study.case_ids]
    assert set(analysis.result.mrmc) >= {"model_vs_readers/auc", "aided_vs_unaided/auc",
                                         "aided_vs_unaided/sensitivity"}
    assert [r.reader_id for r in analysis.result.comparison.readers] == ["r1", "r2", "r3"]
    assert analysis.aided_comparison is not None
    r1 = next(r for r in analysis.result.comparison.readers if r.reader_id == "r1")
    calls = data.arms[UNAIDED].calls["r1"]
    assert r1.metrics["sensitivity"].value == pytest.approx(calls[data.truth == 1].mean())

    paths = {p.name: p for p in analysis.write(tmp_path / "out")}
    assert {"study_s1.json", "study_s1_metrics.csv", "study_s1_differences.csv", "study_s1_errors.csv",
            "study_s1_mrmc.csv", "study_s1_reads_scores.csv", "study_s1_aided_metrics.csv",
            "study_s1_reading_time.csv", "study_s1.imrmc", "study_s1_imrmc_R.imrmc", "study_s1_rjafroc.imrmc",
            "study_s1_rjafroc_ids.csv"} <= set(paths)
    with paths["study_s1_reads_scores.csv"].open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 24 * (1 + 1 + 3 + 3)  # truth, model, three readers in each arm
    assert {r["modalityID"] for r in rows} == {"truth", "model", UNAIDED, AIDED}
    assert paths["study_s1.imrmc"].read_text().splitlines()[1:5] == ["N0:12", "N1:12", "NR:4", "NM:3"]
    # RJafroc: the model is copied to the three readers, so 3 readers read 3 modalities
    assert paths["study_s1_rjafroc.imrmc"].read_text().splitlines()[1:5] == ["N0:12", "N1:12", "NR:3", "NM:3"]

    html = write_report(analysis, tmp_path / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "Research use only" in html
    assert len(re.findall(r'src="data:image/png;base64,[A-Za-z0-9+/=]{2000,}"', html)) == 4  # ROC + forest x 2 arms
    assert not re.search(r'(src|href)="(http|file|/)', html)  # nothing outside the file
    for text in ("Study settings", "Metrics with confidence intervals", "Model minus reader", "Error analysis",
                 "MRMC analysis", "aided_vs_unaided/auc", "Reading time", "r1", "r2", "r3", "average reader",
                 "aided_vs_unaided_fixed_readers/auc", "fixed readers, random cases", "random readers, fixed cases",
                 "Covariance of the AUC estimates: jackknife", "Wilson score for accuracy, sensitivity",
                 "stratified by truth", study.question):
        assert text in html, text


def test_repeat_reads_give_intra_reader_agreement(store, tmp_path):
    make_study(store, tmp_path, n=12, readers=("r1", "r2"), repeat_reads=1, washout_days=0)
    read_everything(store, "s1", ("r1", "r2"), arms=(UNAIDED, UNAIDED))  # round 1, then round 2
    analysis = analyze_study(store, "s1", **STATS)
    agreement = {r["reader"]: r for r in analysis.data.agreement}
    assert set(agreement) == {"r1", "r2"} and agreement["r1"]["call_agreement"] == 1.0
    assert agreement["r1"]["kappa"] == pytest.approx(1.0) and agreement["r1"]["n_cases"] == 12
    assert "Intra-reader agreement" in render_report(analysis)


def test_one_reader_is_analysed_with_a_clear_note(store, tmp_path):
    make_study(store, tmp_path, n=12, readers=("r1", "r2"))
    read_everything(store, "s1", ("r1",))
    ReadingSession.open(store, "s1", "r2", PINS["r2"]).answer(True, 5)  # r2 has only just started
    analysis = analyze_study(store, "s1", **STATS)
    assert [r.reader_id for r in analysis.result.comparison.readers] == ["r1"]
    assert analysis.result.mrmc == {}
    assert any("Only one reader (r1)" in n for n in analysis.notes)
    assert {"kind": "reader", "id": "r2", "arm": UNAIDED, "reason": "answered 1 of the 12 cases; the session is not finished"} \
        in analysis.data.excluded
    assert "MRMC analyses need at least 2 readers" in render_report(analysis)


def test_one_class_only_is_refused_when_the_study_is_created(store, tmp_path):
    """Refused at creation (issue 18), not after every reader has read: nothing is saved."""
    ids = [c for c in add_cases(store, tmp_path, 12) if truth_of(c) == 1]
    with pytest.raises(StudyError, match=r"all 6 cases are positive for 'tumor'.*add cases of the other class"):
        create_study(store, Study(id="pos", name="All positive", task_label="tumor", case_ids=tuple(ids),
                                  modalities=("FL",)))
    with pytest.raises(StudyError, match="No reader study 'pos'"):
        load_study(store, "pos")


def test_nothing_to_analyse_before_anyone_finishes(store, tmp_path):
    make_study(store, tmp_path, n=6)
    ReadingSession.open(store, "s1", "r1", PINS["r1"]).answer(False, 1)
    with pytest.raises(StudyError, match="no reader has finished an arm"):
        analyze_study(store, "s1", **STATS)


def test_long_format_export_and_report_command(store, tmp_path, capsys):
    make_study(store, tmp_path / "bundles", n=10, readers=("r1", "r2"))
    read_everything(store, "s1", ("r1", "r2"))
    data = collect_study_data(store, "s1")
    scores, calls, imrmc, imrmc_r, rjafroc, rjafroc_ids = export_long_format(store, "s1", tmp_path / "long")
    assert (imrmc.name, imrmc_r.name, rjafroc.name, rjafroc_ids.name) == (
        "s1.imrmc", "s1_imrmc_R.imrmc", "s1_rjafroc.imrmc", "s1_rjafroc_ids.csv")
    with scores.open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["readerID", "caseID", "modalityID", "score"]
    truth = {r["caseID"]: r["score"] for r in rows if r["readerID"] == "truth"}
    assert truth == {c: str(t) for c, t in zip(data.case_ids, data.truth)}
    assert {r["score"] for r in csv.DictReader(calls.open()) if r["modalityID"] == UNAIDED} <= {"0", "1"}
    assert imrmc.read_text().startswith("OncoLens reader study s1 - ")  # the title's colon is replaced

    from engine.cli import main

    assert main(["study", "--db", store.url, "report", "s1", "--out", str(tmp_path / "cli"),
                 "--n-boot", str(STATS["n_boot"]), "--n-perm", str(STATS["n_perm"])]) == 0
    assert (tmp_path / "cli" / "study_s1_report.html").is_file()
    assert any(line.startswith("analysed 10 cases") for line in capsys.readouterr().err.splitlines())


def test_bench_study_times_a_simulated_study_through_the_real_store(tmp_path, capsys):
    from engine.cli import main

    assert main(["bench", "study", "--readers", "3", "--cases", "30", "--n-boot", "50", "--n-perm", "50",
                 "--out", str(tmp_path / "bench")]) == 0
    printed = capsys.readouterr().err  # the CLI reports on stderr
    assert "3 readers x 30 cases x 2 arms (180 answers)" in printed
    for phase in ("reading (every answer saved)", "analysis (bootstrap, permutations, MRMC)", "per saved answer"):
        assert phase in printed
    assert "MRMC model_vs_readers/auc" in printed and "MRMC aided_vs_unaided/auc" in printed
    html = (tmp_path / "bench" / "study_simulated_report.html").read_text(encoding="utf-8")
    assert "no clinician read anything" in html  # the report says the reads are simulated
