"""Which predictors a case gets, cached and run together, with their results kept in the store. No Qt here.

The GUI calls `PredictionService.predict_case` on a worker thread, the CLI calls it directly; the service
is thread-safe. What a case gets is its kind's business (engine.cases.kinds): the modality groups, the
predictor for each, the method the user chose where the kind offers a choice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import engine.kinds  # noqa: F401  (registers the built-in kinds)
from engine.cases.bundle import BundleError, append_predictions
from engine.cases.kinds import CaseKind, find_kind, get_kind
from engine.cases.model import Case
from engine.data import Prediction, PredictionSummary, utc_now
from engine.metrics.image_quality import not_assessable_reason
from engine.paths import resources_dir
from engine.predict.base import ExplainClassChoice, Predictor

log = logging.getLogger(__name__)

# (kind, modalities it reads, method or None) -> predictor; the default asks the kind
PredictorFactory = Callable[[CaseKind, tuple[str, ...], str | None], Predictor]


def kind_predictor(kind: CaseKind, modalities: tuple[str, ...], method: str | None) -> Predictor:
    """The shipped predictor for a kind's modality group (loads and verifies weights)."""
    return kind.make_predictor(modalities, method)


def short_fingerprint(weights_sha256: dict[str, str]) -> str:
    return "+".join(sha[:8] for sha in weights_sha256.values())


def model_label(prediction: PredictionSummary) -> str:
    """Status-bar text naming the model and the weights it used, e.g. 'fl_cnn[FL] 7fc7615a+2279013e+fd1bdbfa'."""
    return f"{prediction.model} {short_fingerprint(prediction.weights_sha256)}"


class PredictionService(ExplainClassChoice):
    """Runs every predictor a case calls for and stores each new result's summary."""

    def __init__(self, store: Any = None, make_predictor: PredictorFactory | None = None,
                 actor: str = "oncolens-gui") -> None:
        self.store = store
        self._make_predictor = make_predictor or kind_predictor
        self._predictors: dict[tuple, Predictor] = {}
        self._methods: dict[str, str] = {}  # kind -> method the user chose (kinds that offer a choice)
        self._lock = threading.Lock()  # one inference at a time; predictors are built once
        self.actor = actor
        self._explain_class = "predicted"

    # -- methods (kinds whose user picks the model) ---------------------------------------------

    def method(self, kind: str) -> str | None:
        """The method cases of `kind` run with: the user's choice, else the kind's default (None: no choice)."""
        return self._methods.get(kind) or get_kind(kind).default_method()

    def set_method(self, kind: str, method: str) -> None:
        known = [m.id for m in get_kind(kind).methods()]
        if method not in known:
            raise ValueError(f"'{kind}' cases have no method {method!r}; installed: {', '.join(known) or 'none'}.")
        self._methods[kind] = method

    # -- prediction -----------------------------------------------------------------------------

    def modalities_for(self, case: Case) -> list[tuple[str, ...]]:
        """The modality sets the case's predictors read, primary first."""
        return get_kind(case.kind).predictor_groups(case)

    def predictor(self, kind: str, modalities: tuple[str, ...]) -> Predictor:
        method = self.method(kind)
        key = (kind, modalities, method)
        if key not in self._predictors:
            self._predictors[key] = self._make_predictor(get_kind(kind), modalities, method)
        return self._predictors[key]

    def predict_case(self, case: Case, explain: bool = True, keep_all: bool = False) -> list[Prediction]:
        """Run the case's predictors; new results go to the store (if any) and their arrays to the case's bundle.
        Call off the GUI thread. `keep_all`: keep the results even when an identical one is stored (an explicit
        re-run, kept beside the old one); otherwise a repeat of a stored result is not stored again.

        The kind first assesses each predictor's images: when a check blocks, the prediction says "input not
        assessable: <reason>" for every task instead of a probability; other findings travel as warnings.
        Every prediction of one call carries the same `created` time: that is how the history groups a run."""
        kind = get_kind(case.kind)
        run_started = utc_now()
        with self._lock:
            predictions = []
            for modalities in self.modalities_for(case):
                predictor = self.predictor(case.kind, modalities)
                images = {m: case.images[m] for m in modalities}
                findings = kind.assess(images)
                reason = not_assessable_reason(findings)
                if reason is not None:
                    prediction = predictor.new_prediction()
                    for task in kind.tasks:
                        prediction.set_result(task.name, reason)
                else:
                    predictor.explain_class = self._explain_class
                    prediction = predictor.predict(images, explain=explain)
                prediction.warnings.extend(f.text() for f in findings if not f.blocking)
                prediction.notes.extend(f"{m}: {note}" for m, image in images.items()
                                        for note in image.meta.extra.get("conversions", []))
                prediction.created = run_started
                predictions.append(prediction)
        if self.store is not None:
            self._keep(case, predictions, keep_all)
        return predictions

    def _keep(self, case: Case, predictions: list[Prediction], keep_all: bool) -> None:
        """Store each new prediction's summary, and its arrays in the case's bundle (so that re-opening shows
        exactly this result); unless `keep_all`, a result identical to a stored one is not stored again."""
        stored = [s.summary for s in self.store.predictions_for(case.id)]
        new = [p for p in predictions if keep_all or not any(_same_result(s, p.summary()) for s in stored)]
        if not new:
            return
        folder = Path(self.store.get_case_record(case.id).bundle_path)
        try:
            if resources_dir().resolve() in folder.resolve().parents:
                raise BundleError(f"{folder} is part of the OncoLens installation, which is never written. Open a "
                                  "copy of the bundle to keep results with their arrays.")
            append_predictions(folder, new)
            case.predictions.extend(new)
        except BundleError as exc:  # the summaries are still kept; the user is told the arrays are not
            log.warning("%s", exc)
            for prediction in new:
                prediction.warnings.append(f"masks and heatmaps not saved with the case: {exc}")
        for prediction in new:
            self.store.add_prediction(case.id, prediction, actor=self.actor)

    def status_labels(self, kind: str | None = None) -> tuple[str, str]:
        """(device, models) texts for the status bar, read from settings and model cards (no nets loaded)."""
        from engine.device import describe_device, select_device

        try:
            device = describe_device(select_device())
        except (RuntimeError, ValueError) as exc:
            device = f"Device error: {exc}"
        return device, self.cards_label(kind)

    @staticmethod
    def cards_label(kind: str | None = None) -> str:
        """The kind's installed models and weights; with no kind, how many models are installed."""
        if kind is None:
            from engine.paths import models_dir
            from engine.registry import list_models

            cards = list_models()
            phantom = all((c.training.get("data") or {}).get("kind") == "phantom" for c in cards)
            return (f"{len(cards)} models installed" + (" (phantom-trained demo weights)" if phantom else "")
                    if cards else f"No models in {models_dir()}")
        info = find_kind(kind)
        return info.cards_label() if info is not None else ""


def _same_result(stored: PredictionSummary, summary: PredictionSummary) -> bool:
    return (stored.model == summary.model and stored.weights_sha256 == summary.weights_sha256
            and stored.to_dict()["tasks"] == summary.to_dict()["tasks"])


def stored_predictions(case: Case, summaries: Sequence[PredictionSummary]) -> list[Prediction]:
    """The newest known result per model: from the bundle when it has them (with arrays), else the store's
    summaries; in the kind's display order (primary model first)."""
    latest: dict[str, Prediction] = {}
    for summary in summaries:
        latest[summary.model] = Prediction.from_summary(summary)
    for prediction in case.predictions:  # bundle results carry heatmaps: they win over summaries
        current = latest.get(prediction.model)
        if current is None or prediction.created >= current.created:
            latest[prediction.model] = prediction
    kind = find_kind(case.kind)
    return sorted(latest.values(), key=kind.prediction_rank if kind is not None else (lambda p: 0))


def truth_labels(case: Case) -> dict[str, str] | None:
    """Reference labels as words (from the model cards' label names where installed), or None without truth."""
    if case.truth is None:
        return None
    kind = find_kind(case.kind)
    words = {}
    for task, value in case.truth.labels.items():
        if value is None:
            words[task] = "n/a"
            continue
        names = kind.label_names(task) if kind is not None else ("negative", "positive")
        words[task] = names[int(value)] if 0 <= int(value) < len(names) else ("positive" if int(value) else "negative")
    return words


__all__ = ["PredictionService", "kind_predictor", "model_label", "stored_predictions", "truth_labels"]
