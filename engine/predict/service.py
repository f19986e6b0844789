"""Which predictors a case gets, cached and run together, with their results kept in the store. No Qt here.

The GUI calls `PredictionService.predict_case` on a worker thread, the CLI calls it directly;
the service is thread-safe.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from engine.cases.model import FL, WL, Case
from engine.predict.base import Prediction, Predictor

# Glioma specimens: one FL-CNN cascade per modality present, in display order (FL-CNN is the paper's primary
# model). Lymph nodes: one MFI-FFP net for the set of modalities present (tri-modal when all three exist).
# Fluorescence frames: one segmentation method (a net or DRLSE), chosen in the view (`segmentation_method`).
PREDICTOR_MODALITIES: dict[str, tuple[str, ...]] = {"glioma_specimen": (FL, WL), "lymph_node": ("WLI", "FI", "PCI"),
                                                    "fluoro_frame": ("NIR",)}
SEGMENTATION_KINDS = ("fluoro_frame",)

# (case kind, modalities it reads) -> predictor; segmentation kinds also get method=<net or 'drlse'>
PredictorFactory = Callable[..., Predictor]


def default_segmentation_method() -> str:
    """UNet++ (the paper's best) when installed, else the first installed net, else DRLSE."""
    from engine.predict.fluoro import installed_methods

    methods = installed_methods()
    return "unetplusplus" if "unetplusplus" in methods else methods[0]


def default_predictor(kind: str, modalities: tuple[str, ...], method: str | None = None) -> Predictor:
    """Build the shipped predictor for a case kind and the modalities it reads (loads and verifies weights)."""
    if kind == "glioma_specimen":
        from engine.predict.glioma import GliomaCascadePredictor

        (modality,) = modalities
        return GliomaCascadePredictor(modality)
    if kind == "lymph_node":
        from engine.predict.lymph_node import MFIFFPPredictor

        return MFIFFPPredictor(modalities)
    if kind == "fluoro_frame":
        from engine.predict.fluoro import FluoroSegPredictor

        return FluoroSegPredictor(method or default_segmentation_method())
    raise ValueError(f"OncoLens has no predictor for '{kind}' cases yet.")


def short_fingerprint(weights_sha256: dict[str, str]) -> str:
    return "+".join(sha[:8] for sha in weights_sha256.values())


def model_label(prediction: Prediction) -> str:
    """Status-bar text naming the model and the weights it used, e.g. 'fl_cnn[FL] 7fc7615a+2279013e+fd1bdbfa'."""
    return f"{prediction.model} {short_fingerprint(prediction.weights_sha256)}"


class PredictionService:
    """Runs every predictor a case calls for and stores each new result's summary."""

    def __init__(self, store: Any = None, make_predictor: PredictorFactory | None = None,
                 actor: str = "oncolens-gui") -> None:
        self.store = store
        self._make_predictor = make_predictor or default_predictor
        self._predictors: dict[tuple, Predictor] = {}
        self.segmentation_method: str | None = None  # None: default_segmentation_method()
        self._lock = threading.Lock()  # one inference at a time; predictors are built once
        self.actor = actor

    def modalities_for(self, case: Case) -> list[tuple[str, ...]]:
        """The modality sets the case's predictors read: one per modality (glioma) or one set (lymph node)."""
        wanted = PREDICTOR_MODALITIES.get(case.kind)
        if wanted is None:
            raise ValueError(f"Case {case.id}: OncoLens has no predictor for '{case.kind}' cases yet.")
        present = [m for m in wanted if m in case.images]
        if not present:
            raise ValueError(
                f"Case {case.id} has no image the models can read: it has {', '.join(case.images) or 'none'}, "
                f"the models need {' or '.join(wanted)}."
            )
        if case.kind == "lymph_node":
            return [tuple(present)]
        return [(m,) for m in present]

    def predictor(self, kind: str, modalities: tuple[str, ...]) -> Predictor:
        if kind in SEGMENTATION_KINDS:
            method = self.segmentation_method or default_segmentation_method()
            key = (kind, modalities, method)
            if key not in self._predictors:
                self._predictors[key] = self._make_predictor(kind, modalities, method=method)
            return self._predictors[key]
        key = (kind, modalities)
        if key not in self._predictors:
            self._predictors[key] = self._make_predictor(kind, modalities)
        return self._predictors[key]

    def predict_case(self, case: Case, explain: bool = True) -> list[Prediction]:
        """Run the case's predictors; new results go to the store (if any). Call off the GUI thread."""
        with self._lock:
            predictions = []
            for modalities in self.modalities_for(case):
                predictor = self.predictor(case.kind, modalities)
                arrays = {m: case.images[m].array for m in modalities}
                if case.kind == "lymph_node":
                    depths = {m: case.images[m].meta.bit_depth for m in modalities}
                    predictions.append(predictor.predict(arrays, explain=explain, bit_depths=depths))
                elif case.kind in SEGMENTATION_KINDS:
                    meta = case.images[modalities[0]].meta
                    predictions.append(predictor.predict(arrays, explain=explain, bit_depth=meta.bit_depth,
                                                         spacing=meta.spacing))
                else:
                    (modality,) = modalities
                    predictions.append(predictor.predict(
                        arrays, explain=explain, bit_depth=case.images[modality].meta.bit_depth))
        if self.store is not None:
            self._keep(case.id, predictions)
        return predictions

    def _keep(self, case_id: str, predictions: list[Prediction]) -> None:
        """Store each prediction unless the same model, weights and result are already stored for the case."""
        stored = self.store.predictions_for(case_id)
        for prediction in predictions:
            summary = prediction.summary()
            if not any(_same_result(s, summary) for s in stored):
                self.store.add_prediction(case_id, prediction, actor=self.actor)

    def status_labels(self, kind: str = "glioma_specimen") -> tuple[str, str]:
        """(device, models) texts for the status bar, read from settings and model cards (no nets loaded)."""
        from engine.device import describe_device, select_device

        try:
            device = describe_device(select_device())
        except (RuntimeError, ValueError) as exc:
            device = f"Device error: {exc}"
        return device, self.cards_label(kind)

    @staticmethod
    def cards_label(kind: str) -> str:
        if kind == "lymph_node":
            return _node_cards_label()
        if kind in SEGMENTATION_KINDS:
            from engine.predict.fluoro import installed_methods

            nets = [m for m in installed_methods() if m != "drlse"]
            return f"fluoro_seg: {', '.join(nets) or 'no nets installed'} + DRLSE"
        if kind != "glioma_specimen":
            return ""
        from engine.paths import models_dir
        from engine.predict.glioma import TASKS, card_name
        from engine.registry import ModelError, load_card

        parts = []
        for modality in PREDICTOR_MODALITIES[kind]:
            try:
                shas = {t: load_card(card_name(modality, t)).weights["sha256"] for t in TASKS}
            except ModelError:
                parts.append(f"fl_cnn[{modality}] not installed")
                continue
            parts.append(f"fl_cnn[{modality}] {short_fingerprint(shas)}")
        if all(p.endswith("not installed") for p in parts):
            return f"No FL-CNN models in {models_dir()}"
        return " · ".join(parts)


def _node_cards_label() -> str:
    from engine.predict.lymph_node import card_name
    from engine.registry import ModelError, load_card

    try:
        card = load_card(card_name(PREDICTOR_MODALITIES["lymph_node"]))
    except ModelError:
        return "mfi_ffp not installed"
    return f"mfi_ffp {card.weights['sha256'][:8]}"


def _same_result(stored: dict, summary: dict) -> bool:
    return (
        stored.get("model") == summary["model"]
        and stored.get("weights_sha256") == summary["weights_sha256"]
        and stored.get("probabilities") == summary["probabilities"]
    )


def stored_predictions(case: Case, summaries: list[dict]) -> list[Prediction]:
    """The newest known result per model: from the bundle when it has them (with heatmaps), else the store's summaries."""
    latest: dict[str, Prediction] = {}
    for summary in summaries:
        latest[summary["model"]] = Prediction(
            model=summary["model"],
            weights_sha256=dict(summary.get("weights_sha256") or {}),
            probabilities=dict(summary.get("probabilities") or {}),
            thresholds=dict(summary.get("thresholds") or {}),
            calls=dict(summary.get("calls") or {}),
            timings_ms=dict(summary.get("timings_ms") or {}),
            device=summary.get("device", ""),
            created=summary.get("created", ""),
            notes=list(summary.get("notes") or []),
        )
    for prediction in case.predictions:  # bundle results carry heatmaps: they win over summaries
        current = latest.get(prediction.model)
        if current is None or prediction.created >= current.created:
            latest[prediction.model] = prediction
    order = {f"fl_cnn[{m}]": i for i, m in enumerate(PREDICTOR_MODALITIES.get(case.kind, ()))}
    if case.kind == "lymph_node":  # the tri-modal result first, then bi-, then uni-modal ones
        return sorted(latest.values(), key=lambda p: -p.model.count("+"))
    return sorted(latest.values(), key=lambda p: order.get(p.model, len(order)))


def truth_labels(case: Case) -> dict[str, str] | None:
    """Reference labels as words (from the model cards' label names where installed), or None without truth."""
    if case.truth is None:
        return None
    names: dict[str, list[str]] = {}
    if case.kind == "glioma_specimen":
        from engine.predict.glioma import card_name
        from engine.registry import ModelError, load_card

        for task in case.truth.labels:
            try:
                names[task] = load_card(card_name(FL, task)).labels
            except ModelError:
                pass
    elif case.kind == "lymph_node":
        names["metastatic"] = ["benign", "metastatic"]
    elif case.kind == "fluoro_frame":
        names["tumor"] = ["no tumor", "tumor"]
    words = {}
    for task, value in case.truth.labels.items():
        if value is None:
            words[task] = "n/a"
        elif task in names and 0 <= int(value) < len(names[task]):
            words[task] = names[task][int(value)]
        else:
            words[task] = "positive" if int(value) else "negative"
    return words


__all__ = [
    "FL", "WL", "PREDICTOR_MODALITIES", "PredictionService", "default_predictor", "model_label",
    "stored_predictions", "truth_labels",
]
