"""Offline review of stored cases: every stored run of the models on a case (its history), each with the arrays
its bundle kept, and the case-list facts the browser filters on (truth, call, disagreement, date). No Qt here.

A run is what one prediction request produced (one result per modality group of the case's kind). The service
gives every prediction of one request the same `created` time; results stored before that (or written by
other tools) are grouped by time: consecutive results of different models less than RUN_WINDOW_S apart, for
cases whose kind runs several models at once (one result per run otherwise: two methods tried a minute apart
on a fluorescence frame stay two runs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import engine.kinds  # noqa: F401  (registers the built-in kinds)
from engine.cases.kinds import find_kind
from engine.cases.model import Case
from engine.data import Prediction, PredictionSummary

RUN_WINDOW_S = 120.0


@dataclass(frozen=True)
class ResultRun:
    """One stored run: its results in the kind's display order (primary model first)."""

    created: str
    predictions: tuple[Prediction, ...]
    prediction_ids: tuple[int | None, ...]  # store row ids (None: a result only the bundle holds)

    @property
    def has_arrays(self) -> bool:
        """True when the bundle kept this run's masks or heatmaps (results stored as summaries only have none)."""
        return any(p.masks or p.heatmaps for p in self.predictions)

    def label(self, kind: str | None = None, short: bool = False) -> str:
        """'2026-11-30 06:10:02 · FL-CNN 7fc7615a+2279013e+fd1bdbfa, WL-CNN ...' (local time; model titles from the
        kind; every weights file's hash). `short`: the first hash of each model only, for narrow lists."""
        info = find_kind(kind) if kind else None
        models = []
        for p in self.predictions:
            title = " ".join(t for t in info.model_title(p) if t and t != "segmentation") if info else p.model
            hashes = [sha[:8] for sha in p.weights_sha256.values()] or ["no weights hash"]
            weights = hashes[0] + ("…" if len(hashes) > 1 else "") if short else "+".join(hashes)
            models.append(f"{title} {weights}")
        return f"{local_time(self.created)} · " + ", ".join(models)


def local_time(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return iso or "unknown time"


def _seconds(iso: str) -> float | None:
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return None


def _same(a: PredictionSummary, b: PredictionSummary) -> bool:
    return a.model == b.model and a.created == b.created and a.weights_sha256 == b.weights_sha256


def prediction_history(case: Case, stored: Sequence[tuple[int, PredictionSummary]]) -> list[ResultRun]:
    """Every stored run on `case`, newest first. `stored`: (row id, summary) from the store; each is matched
    with the bundle's copy of the same result (same model, weights and time) for its arrays. Results only the
    bundle holds (written by `oncolens predict --save-bundles`, or by another store) are runs too."""
    entries: list[tuple[int | None, Prediction]] = []
    unmatched = list(case.predictions)
    for row_id, summary in stored:
        match = next((p for p in unmatched if _same(p, summary)), None)
        if match is not None:
            unmatched.remove(match)
        entries.append((row_id, match if match is not None else Prediction.from_summary(summary)))
    entries.extend((None, p) for p in unmatched)
    entries.sort(key=lambda e: (e[1].created, e[0] is None, e[0] or 0))

    info = find_kind(case.kind)
    try:
        several = info is None or not case.images or len(info.predictor_groups(case)) > 1
    except ValueError:  # a case with no image its kind reads: group as results come
        several = True
    groups: list[list[tuple[int | None, Prediction]]] = []
    for entry in entries:
        current = groups[-1] if groups else None
        if current is not None and _joins(current, entry[1], by_time=several):
            current.append(entry)
        else:
            groups.append([entry])
    runs = []
    for group in groups:
        group.sort(key=lambda e: info.prediction_rank(e[1]) if info is not None else 0)
        runs.append(ResultRun(group[0][1].created, tuple(p for _i, p in group), tuple(i for i, _p in group)))
    runs.sort(key=lambda r: r.created, reverse=True)
    return runs


def _joins(group: list[tuple[int | None, Prediction]], prediction: Prediction, by_time: bool) -> bool:
    first = group[0][1]
    if prediction.created == first.created:
        return True
    if not by_time or prediction.model in {p.model for _i, p in group}:
        return False
    if len(group) > 1 and all(p.created == first.created for _i, p in group):
        return False  # a run the service stamped is complete
    a, b = _seconds(first.created), _seconds(prediction.created)
    return a is not None and b is not None and abs(b - a) < RUN_WINDOW_S


# -- the case list's review filter ---------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewFilter:
    """What the case browser keeps: None / "" means any. `truth` and `call`: "positive", "negative" or "none"
    (no truth / no stored result); `disagreement`: "models" (the case's models call its primary task
    differently, e.g. FL-CNN vs WL-CNN) or "truth" (the primary model's call differs from the truth);
    `since`: cases added on or after this date (YYYY-MM-DD)."""

    truth: str = ""
    call: str = ""
    disagreement: str = ""
    since: str = ""

    @property
    def active(self) -> bool:
        return bool(self.truth or self.call or self.disagreement or self.since)


@dataclass(frozen=True)
class ReviewFacts:
    """What the filter looks at for one case, read from the store alone (no bundle is opened)."""

    truth_positive: bool | None
    call_positive: bool | None  # the primary model's call on the primary task in the newest run
    models_disagree: bool
    created: str

    @property
    def model_vs_truth(self) -> bool:
        return self.truth_positive is not None and self.call_positive is not None \
            and self.truth_positive != self.call_positive


def review_facts(kind: str, truth_labels: dict | None, summaries: Sequence[PredictionSummary],
                 created: str) -> ReviewFacts:
    """The facts of one case from its truth labels and its stored summaries (any order)."""
    info = find_kind(kind)
    tasks = [t.name for t in info.tasks] if info is not None else []
    task = tasks[0] if tasks else next(iter(truth_labels or {}), "")
    truth = (truth_labels or {}).get(task)
    truth_positive = None if truth is None else bool(truth)
    runs = prediction_history(Case(id="-", kind=kind), [(0, s) for s in summaries]) if summaries else []
    calls = []
    if runs:
        for p in runs[0].predictions:
            result = p.tasks.get(task)
            if result is not None and result.assessed and result.threshold is not None:
                calls.append(result.positive)
    call_positive = calls[0] if calls else None
    return ReviewFacts(truth_positive, call_positive, len(set(calls)) > 1, created)


def keeps(facts: ReviewFacts, wanted: ReviewFilter) -> bool:
    """Whether a case with `facts` passes the filter."""
    def side(value: bool | None, want: str) -> bool:
        return not want or (want == "none" and value is None) or (want == "positive" and value is True) \
            or (want == "negative" and value is False)

    if not side(facts.truth_positive, wanted.truth) or not side(facts.call_positive, wanted.call):
        return False
    if wanted.disagreement == "models" and not facts.models_disagree:
        return False
    if wanted.disagreement == "truth" and not facts.model_vs_truth:
        return False
    return not wanted.since or facts.created[:10] >= wanted.since


def filtered_cases(store, kind: str | None = None, text: str | None = None, wanted: ReviewFilter | None = None):
    """`store.list_cases(kind, text)` less the cases the review filter leaves out (read on a worker)."""
    import json

    from sqlalchemy import select

    from engine.store import record_summary
    from engine.store.schema import CaseRecord, PredictionRecord

    cases = store.list_cases(kind=kind, text=text)
    if wanted is None or not wanted.active or not cases:
        return cases
    ids = [c.id for c in cases]
    truths: dict[str, dict] = {}
    summaries: dict[str, list[PredictionSummary]] = {i: [] for i in ids}
    with store.transaction(write=False) as session:
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            for case_id, text_ in session.execute(select(CaseRecord.id, CaseRecord.truth_json)
                                                  .where(CaseRecord.id.in_(chunk))):
                truths[case_id] = (json.loads(text_) or {}).get("labels", {}) if text_ else None
            for record in session.scalars(select(PredictionRecord).where(PredictionRecord.case_id.in_(chunk))):
                summaries[record.case_id].append(record_summary(record))
    return [c for c in cases if keeps(review_facts(c.kind, truths.get(c.id), summaries[c.id], c.created), wanted)]
