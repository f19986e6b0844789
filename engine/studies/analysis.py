"""Reader-study analysis from the store: truth, reads and the frozen model output in, statistics and tables out.

The administrator's side (it reads truth). Round 1 of each arm is analysed; repeat rounds give
intra-reader agreement. The main comparison is the model against the unaided readers (the aided
readers in an aided-only study); with both arms, the same readers on the same cases also give the
OR-Hillis MRMC aided-vs-unaided analysis. Which readers and cases take part:
- a reader takes part in an arm when their round-1 session of it is finished (every case answered, or
  closed with `ReadingSession.finish` when only cases that could not be shown were left);
- a case takes part when it has a 0/1 truth for the task label and every such reader answered it.
Everything left out is listed, with the reason, in the notes and the `excluded` table.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from engine.exports import write_csv
from engine.metrics.mrmc_export import long_format_rows, mrmc_tool_files, write_mrmc_tool_files
from engine.metrics.reader_study import (
    ComparisonResult,
    ReaderScores,
    ReaderStudyAnalysis,
    analyze_reader_study,
    compare_model_with_readers,
)
from engine.paths import open_private, private_dir
from engine.store import Store
from engine.store.schema import CaseRecord, ReadingSessionRecord, ReadRecord, StudyCaseRecord
from engine.studies.contours import ContourAgreement, contour_agreement
from engine.studies.model import AIDED, UNAIDED, Study, StudyError, id_chunks, load_study
from engine.studies.readers import list_readers

READS_COLUMNS = ("study_id", "reader_id", "arm", "round", "session_id", "order_position", "case_id", "read_id",
                 "positive", "confidence", "comment", "has_contour", "shown_at", "answered_at", "seconds",
                 "supersedes", "current")


@dataclass(frozen=True)
class ArmReads:
    """Round-1 reads of one arm on the analysed cases: per reader 0/1 calls, ratings and seconds."""

    arm: str
    calls: dict[str, np.ndarray]
    ratings: dict[str, np.ndarray]
    seconds: dict[str, np.ndarray]
    contours: dict[str, list[str | None]] = field(default_factory=dict)  # stored polygon JSON per case

    def reader_scores(self) -> list[ReaderScores]:
        return [ReaderScores(r, self.calls[r], self.ratings[r]) for r in self.calls]


@dataclass(frozen=True)
class StudyData:
    """The inputs of the statistics for one study, gathered from the store."""

    study: Study
    case_ids: tuple[str, ...]
    truth: np.ndarray
    model_scores: np.ndarray
    model_threshold: float
    arms: dict[str, ArmReads]
    agreement: list[dict[str, Any]]
    excluded: list[dict[str, str]]
    notes: tuple[str, ...]

    @property
    def primary_arm(self) -> str:
        return UNAIDED if UNAIDED in self.arms else AIDED


# ----------------------------------------------------------------------------------------------------
# Reads from the store


def _current_reads(store: Store, study_id: str) -> tuple[list[ReadRecord], dict[int, ReadingSessionRecord], set[int]]:
    """Every read of the study, its sessions, and the ids of the current (newest per session and case) reads."""
    with store.transaction(write=False) as session:
        sessions = {r.id: r for r in session.scalars(
            select(ReadingSessionRecord).where(ReadingSessionRecord.study_id == study_id))}
        reads = session.scalars(select(ReadRecord).where(ReadRecord.study_id == study_id).order_by(ReadRecord.id)).all()
    newest: dict[tuple[int, str], int] = {}
    for read in reads:
        newest[(read.session_id, read.case_id)] = read.id
    return list(reads), sessions, set(newest.values())


def _truth(store: Store, study: Study) -> tuple[dict[str, int], dict[str, str]]:
    """0/1 truth per case for the task label, and the reason for every case without one."""
    with store.transaction(write=False) as session:
        records = {r.id: r for chunk in id_chunks(list(study.case_ids))
                   for r in session.scalars(select(CaseRecord).where(CaseRecord.id.in_(chunk)))}
    truth, missing = {}, {}
    for case_id in study.case_ids:
        record = records.get(case_id)
        if record is None:
            missing[case_id] = "case no longer in the store (re-import its bundle)"
            continue
        labels = json.loads(record.truth_json)["labels"] if record.truth_json else {}
        value = labels.get(study.task_label)
        if value is not None and value in (0, 1):
            truth[case_id] = int(value)
        else:
            missing[case_id] = f"no 0/1 truth for {study.task_label!r} (got {value!r})"
    return truth, missing


def _kappa(a: np.ndarray, b: np.ndarray) -> float:
    observed = float(np.mean(a == b))
    pa, pb = float(np.mean(a)), float(np.mean(b))
    chance = pa * pb + (1 - pa) * (1 - pb)
    return math.nan if chance >= 1 else (observed - chance) / (1 - chance)


def collect_study_data(store: Store, study_id: str) -> StudyData:
    """Truth, the frozen model scores and every reader's current round-1 answers on the analysable cases."""
    study = load_study(store, study_id)
    with store.transaction(write=False) as session:
        model_prob = dict(session.execute(select(StudyCaseRecord.case_id, StudyCaseRecord.model_probability)
                                          .where(StudyCaseRecord.study_id == study_id)).all())
    truth, no_truth = _truth(store, study)
    reads, sessions, current = _current_reads(store, study_id)
    answers: dict[tuple[str, int], dict[str, dict[str, ReadRecord]]] = defaultdict(lambda: defaultdict(dict))
    for read in reads:
        if read.id in current:
            s = sessions[read.session_id]
            answers[(s.arm, s.round)][read.reader_id][read.case_id] = read

    excluded: list[dict[str, str]] = []
    notes: list[str] = []
    finished = {(s.reader_id, s.arm) for s in sessions.values() if s.round == 1 and s.completed is not None}
    complete: dict[str, list[str]] = {}
    enrolled = [r.reader_id for r in list_readers(store, study_id)]
    for arm in study.arms:
        by_reader = answers.get((arm, 1), {})
        complete[arm] = [r for r in sorted(by_reader) if (r, arm) in finished]
        for reader in enrolled:
            if reader not in complete[arm]:
                reason = (f"answered {len(by_reader[reader])} of the {len(study.case_ids)} cases; the session is "
                          "not finished") if reader in by_reader else "has not started"
                excluded.append({"kind": "reader", "id": reader, "arm": arm, "reason": reason})
    arms = [a for a in study.arms if complete[a]]
    for arm in study.arms:
        if not complete[arm]:
            notes.append(f"The {arm} arm is not analysed: no reader has finished it yet.")
    if len(arms) == 2 and set(complete[UNAIDED]) != set(complete[AIDED]):
        only = sorted(set(complete[UNAIDED]) ^ set(complete[AIDED]))
        notes.append(f"Aided vs unaided is not analysed: readers {', '.join(only)} have finished only one arm; "
                     "the unaided arm is analysed alone.")
        arms = [UNAIDED]
    if not arms:
        raise StudyError(f"Study {study_id!r} cannot be analysed yet: no reader has finished an arm "
                         f"(`oncolens study progress {study_id}` shows how far each reader is). Nothing was changed.")

    case_ids = []
    for case_id in study.case_ids:
        unread = [a for a in arms if any(case_id not in answers[(a, 1)][r] for r in complete[a])]
        if case_id in no_truth:
            excluded.append({"kind": "case", "id": case_id, "arm": "", "reason": no_truth[case_id]})
        elif unread:
            excluded.append({"kind": "case", "id": case_id, "arm": ",".join(unread),
                             "reason": "not answered by every reader who finished (e.g. its bundle could not "
                                       "be shown)"})
        else:
            case_ids.append(case_id)
    n_cases = sum(1 for e in excluded if e["kind"] == "case")
    if n_cases:
        notes.append(f"{n_cases} of {len(study.case_ids)} cases are left out (see the excluded table).")

    arm_reads = {}
    for arm in arms:
        got = answers[(arm, 1)]
        rows = {r: [got[r][c] for c in case_ids] for r in complete[arm]}
        arm_reads[arm] = ArmReads(
            arm, calls={r: np.array([int(x.positive) for x in v]) for r, v in rows.items()},
            ratings={r: np.array([x.confidence for x in v]) for r, v in rows.items()},
            seconds={r: np.array([x.seconds for x in v]) for r, v in rows.items()},
            contours={r: [x.contour_json for x in v] for r, v in rows.items()})

    agreement = []
    for arm in arms:
        first = answers[(arm, 1)]
        for round_ in range(2, study.rounds + 1):
            for reader, again in sorted(answers.get((arm, round_), {}).items()):
                both = [c for c in case_ids if c in again and c in first.get(reader, {})]
                if not both:
                    continue
                a = np.array([first[reader][c].positive for c in both], dtype=bool)
                b = np.array([again[c].positive for c in both], dtype=bool)
                ra = np.array([first[reader][c].confidence for c in both])
                rb = np.array([again[c].confidence for c in both])
                agreement.append({"reader": reader, "arm": arm, "round": round_, "n_cases": len(both),
                                  "call_agreement": float(np.mean(a == b)), "kappa": _kappa(a, b),
                                  "mean_abs_rating_change": float(np.mean(np.abs(ra - rb)))})

    return StudyData(study=study, case_ids=tuple(case_ids), truth=np.array([truth[c] for c in case_ids], dtype=int),
                     model_scores=np.array([model_prob[c] for c in case_ids], dtype=float),
                     model_threshold=float(study.model_threshold), arms=arm_reads, agreement=agreement,
                     excluded=excluded, notes=tuple(notes))


# ----------------------------------------------------------------------------------------------------
# Analysis


def _finite(value: Any) -> Any:
    """NaN and infinity become None, for JSON."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


@dataclass(frozen=True)
class StudyAnalysis:
    """A study's statistics: `result` (model vs the primary arm's readers, MRMC), the aided arm's own
    comparison when both arms were analysed, agreement, reading times, exclusions and notes."""

    data: StudyData
    result: ReaderStudyAnalysis
    aided_comparison: ComparisonResult | None
    notes: tuple[str, ...]
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)
    contours: ContourAgreement | None = None  # studies where readers draw contours

    @property
    def study(self) -> Study:
        return self.data.study

    def reading_time_rows(self) -> list[dict[str, Any]]:
        return [{"reader": r, "arm": arm, "n_cases": len(s), "median_seconds": float(np.median(s)),
                 "mean_seconds": float(np.mean(s)), "total_minutes": float(np.sum(s) / 60)}
                for arm, reads in self.data.arms.items() for r, s in reads.seconds.items()]

    def tables(self) -> dict[str, list[dict[str, Any]]]:
        """Flat tables for CSV; the primary arm's under the names `ReaderStudyAnalysis.tables` uses."""
        tables = self.result.tables()
        if self.aided_comparison is not None:
            tables["aided_metrics"] = self.aided_comparison.metric_rows()
            tables["aided_differences"] = self.aided_comparison.difference_rows()
            tables["aided_errors"] = self.aided_comparison.error_rows()
        if self.contours is not None:
            tables["contours"] = self.contours.summary
            tables["contour_cases"] = self.contours.per_case
        tables["agreement"] = list(self.data.agreement)
        tables["reading_time"] = self.reading_time_rows()
        tables["excluded"] = list(self.data.excluded)
        return tables

    def to_dict(self) -> dict[str, Any]:
        study = asdict(self.study)
        study["n_cases_in_study"] = len(study.pop("case_ids"))
        return {
            "study": study, "primary_arm": self.data.primary_arm, "analysed_arms": list(self.data.arms),
            "n_cases_analysed": len(self.data.case_ids), "settings": self.settings,
            "analysis": self.result.to_dict(),
            "aided_comparison": None if self.aided_comparison is None else self.aided_comparison.to_dict(),
            "agreement": [{k: _finite(v) for k, v in row.items()} for row in self.data.agreement],
            "contours": None if self.contours is None else [{k: _finite(v) for k, v in row.items()}
                                                            for row in self.contours.summary],
            "reading_time": self.reading_time_rows(), "excluded": self.data.excluded, "notes": list(self.notes),
            "analysis_seconds": round(self.seconds, 3),
        }

    def write(self, out_dir: str | Path, stem: str | None = None) -> list[Path]:
        """`<stem>.json`, `<stem>_<table>.csv` for every non-empty table and the MRMC tools' input files of the
        scores (`engine.metrics.mrmc_export.mrmc_tool_files`: `<stem>.imrmc` for the iMRMC app,
        `<stem>_imrmc_R.imrmc` for the iMRMC R package, `<stem>_rjafroc.imrmc` + `_rjafroc_ids.csv` for RJafroc)."""
        out = private_dir(out_dir)
        stem = stem or f"study_{self.study.id}"
        paths = [out / f"{stem}.json"]
        with open_private(paths[0], encoding="utf-8") as handle:
            handle.write(json.dumps(self.to_dict(), indent=2, allow_nan=False) + "\n")
        for name, rows in self.tables().items():
            if rows:
                paths.append(write_csv(out / f"{stem}_{name}.csv", rows))
        if self.result.reads_scores:
            paths += write_mrmc_tool_files(out, stem, self.result.reads_scores, _tool_title(self.study))[0]
        return paths


def _tool_title(study: Study) -> str:
    return f"OncoLens reader study {study.id}: {study.name}"



def _check_classes(data: StudyData) -> None:
    n_pos = int(data.truth.sum())
    n_neg = data.truth.size - n_pos
    label = data.study.task_label
    if data.truth.size == 0:
        raise StudyError(f"Study {data.study.id!r} has no case with both a truth label and reads "
                         "from every analysed reader; nothing to analyse (the reads are kept).")
    if min(n_pos, n_neg) < 2:
        raise StudyError(
            f"Study {data.study.id!r}: of the {data.truth.size} analysable cases {n_pos} are {label} and {n_neg} "
            f"are not. Sensitivity, specificity, AUC and their jackknife need at least 2 cases of each class; "
            "add cases of the missing class or fix the truth labels, then analyse again (the reads are kept).")


def analyze_study(store: Store, study_id: str, *, n_boot: int = 1000, n_perm: int = 10000, alpha: float = 0.05,
                  seed: int | None = None, covariance: str = "jackknife") -> StudyAnalysis:
    """The full analysis of a study (bootstrap and permutation seeded by the study seed unless `seed`;
    `covariance` of the AUC in the MRMC analyses: "jackknife" or "delong")."""
    started = time.perf_counter()
    data = collect_study_data(store, study_id)
    _check_classes(data)
    seed = data.study.seed if seed is None else int(seed)
    primary = data.arms[data.primary_arm]
    aided = data.arms.get(AIDED) if data.primary_arm == UNAIDED else None
    result = analyze_reader_study(data.truth, data.model_scores, data.model_threshold, primary.reader_scores(),
                                  aided_readers=None if aided is None else aided.reader_scores(),
                                  case_ids=data.case_ids, n_boot=n_boot, n_perm=n_perm, alpha=alpha, seed=seed,
                                  covariance=covariance)
    aided_comparison = None
    if aided is not None:
        aided_comparison = compare_model_with_readers(data.truth, data.model_scores, data.model_threshold,
                                                      aided.reader_scores(), data.case_ids, n_boot, n_perm,
                                                      alpha, seed)
    notes = list(data.notes)
    if len(primary.calls) == 1:
        notes.append(f"Only one reader ({next(iter(primary.calls))}) finished the {data.primary_arm} arm: "
                     "per-reader results only; MRMC analyses need at least 2 readers.")
    notes.extend(result.notes)
    if result.reads_scores:  # say now which MRMC tool will get no file (or only part of one)
        notes.extend(mrmc_tool_files("study", result.reads_scores, _tool_title(data.study))[1])
    contours = None
    if data.study.contours:
        contours = contour_agreement(store, data.study.task_label, data.study.model, data.case_ids,
                                     {arm: reads.contours for arm, reads in data.arms.items()},
                                     n_boot=n_boot, n_perm=n_perm, alpha=alpha, seed=seed)
        notes.extend(contours.notes)
    settings = {"n_boot": n_boot, "n_perm": n_perm, "alpha": alpha, "seed": seed, "covariance": covariance}
    return StudyAnalysis(data, result, aided_comparison, tuple(notes), time.perf_counter() - started, settings,
                         contours)


# ----------------------------------------------------------------------------------------------------
# Exports


def read_rows(store: Store, study_id: str, history: bool = False) -> list[dict[str, Any]]:
    """Every current read of a study (with `history`, also the superseded ones), without truth."""
    load_study(store, study_id)
    reads, sessions, current = _current_reads(store, study_id)
    rows = []
    for read in reads:
        if not history and read.id not in current:
            continue
        s = sessions[read.session_id]
        rows.append({
            "study_id": read.study_id, "reader_id": read.reader_id, "arm": s.arm, "round": s.round,
            "session_id": s.id, "order_position": json.loads(s.order_json).index(read.case_id) + 1,
            "case_id": read.case_id, "read_id": read.id, "positive": int(read.positive),
            "confidence": read.confidence, "comment": read.comment, "has_contour": int(read.contour_json is not None),
            "shown_at": read.shown_at, "answered_at": read.answered_at, "seconds": round(read.seconds, 3),
            "supersedes": "" if read.supersedes is None else read.supersedes, "current": int(read.id in current)})
    rows.sort(key=lambda r: (r["reader_id"], r["round"], r["arm"], r["order_position"], r["read_id"]))
    return rows


def export_reads_csv(store: Store, study_id: str, path: str | Path, history: bool = False) -> Path:
    """The study's reads as a CSV (one row per answer; `history` adds superseded answers)."""
    return write_csv(Path(path), read_rows(store, study_id, history), READS_COLUMNS)


def long_format(data: StudyData, what: str = "scores") -> list[dict[str, str]]:
    """Reads in the long format of MRMC tools (readerID, caseID, modalityID, score; truth rows first):
    modality "model" for the frozen model output and one modality per analysed arm."""
    model = data.model_scores if what == "scores" else (data.model_scores >= data.model_threshold).astype(int)
    readings = {"model": {"model": model}}
    for arm, reads in data.arms.items():
        readings[arm] = dict(reads.ratings if what == "scores" else reads.calls)
    return long_format_rows(data.truth, readings, data.case_ids)


def export_long_format(store: Store, study_id: str, out_dir: str | Path) -> list[Path]:
    """`<study>_long_scores.csv` and `<study>_long_calls.csv` (a data frame of either goes into iMRMC's
    `doIMRMC`), then the MRMC tools' input files of the scores (see `StudyAnalysis.write`)."""
    data = collect_study_data(store, study_id)
    out = Path(out_dir)
    scores = long_format(data, "scores")
    paths = [write_csv(out / f"{study_id}_long_scores.csv", scores),
             write_csv(out / f"{study_id}_long_calls.csv", long_format(data, "calls"))]
    return paths + write_mrmc_tool_files(out, study_id, scores, _tool_title(data.study))[0]

