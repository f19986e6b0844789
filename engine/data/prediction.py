"""What a predictor returns: a typed Prediction (results per task plus arrays) and its JSON-ready summary.

A prediction names its model by `family` (the registry's family id, e.g. `fl_cnn`) and `variant` (which
member of the family ran, e.g. the modality `FL` or the segmentation net `unetplusplus`). `model` joins the
two into the identifier the store and the studies key on (`fl_cnn[FL]`); nothing splits it again except
`PredictionSummary.from_dict` reading summaries written before the typed model (format 1).

Each task (`tumor`, `grade`, `metastatic`, ...) has one `TaskResult`: the call in words, and, when the model
assessed the task, its probability and the card's operating threshold. A probability is always a finite
number in [0, 1]; NaN or infinity from a net is an error, never a call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any

import numpy as np

from engine.data.times import utc_now

SUMMARY_VERSION = 2


NOT_ASSESSABLE = "input not assessable"  # how a call starts when input quality checks blocked it


def model_id(family: str, variant: str = "") -> str:
    """'fl_cnn', 'FL' -> 'fl_cnn[FL]'; a family without variants is just its name."""
    return f"{family}[{variant}]" if variant else family


class PredictionError(ValueError):
    """A model produced something that is not a probability (NaN, infinite, outside [0, 1])."""


def checked_probability(value: Any, what: str) -> float:
    """`value` as a float in [0, 1]; PredictionError naming `what` otherwise."""
    try:
        p = float(value)
    except (TypeError, ValueError):
        raise PredictionError(f"{what}: the model returned {value!r}, not a probability.") from None
    if not math.isfinite(p) or not 0.0 <= p <= 1.0:
        raise PredictionError(f"{what}: the model returned {p!r}, not a probability in [0, 1]. The input is "
                              "probably outside what the model can assess; no call is made.")
    return p


@dataclass(frozen=True)
class TaskResult:
    """One task's answer: the call in words; probability and threshold when the model assessed the task."""

    call: str
    probability: float | None = None
    threshold: float | None = None

    @property
    def assessed(self) -> bool:
        return self.probability is not None

    @property
    def not_assessable(self) -> bool:
        """The input failed a quality check: there is no probability and no call, only the reason."""
        return self.call.startswith(NOT_ASSESSABLE)

    @property
    def positive(self) -> bool:
        """At or above the operating threshold (False when not assessed)."""
        return self.assessed and self.threshold is not None and self.probability >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {"call": self.call,  # full precision: a saved result re-opens exactly as it was shown
                "probability": None if self.probability is None else float(self.probability),
                "threshold": None if self.threshold is None else float(self.threshold)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskResult:
        return cls(call=str(d.get("call") or ""), probability=_finite_or_none(d.get("probability")),
                   threshold=_finite_or_none(d.get("threshold")))


def _finite_or_none(value: Any) -> float | None:
    """Stored numbers back as floats; a stored non-number (old files could hold NaN) reads as not assessed."""
    if value is None:
        return None
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


@dataclass
class _PredictionCore:
    """The scalar part shared by a Prediction and its summary."""

    family: str
    variant: str = ""
    weights_sha256: dict[str, str] = field(default_factory=dict)
    tasks: dict[str, TaskResult] = field(default_factory=dict)
    measures: dict[str, float] = field(default_factory=dict)  # e.g. area_px, area_mm2, regions
    timings_ms: dict[str, float] = field(default_factory=dict)
    device: str = ""
    created: str = field(default_factory=utc_now)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # input-quality warnings that travel with the result

    @property
    def model(self) -> str:
        return model_id(self.family, self.variant)

    @property
    def probabilities(self) -> MappingProxyType:
        """{task: probability} of the assessed tasks (read-only: use `set_result`)."""
        return MappingProxyType({t: r.probability for t, r in self.tasks.items() if r.assessed})

    @property
    def thresholds(self) -> MappingProxyType:
        return MappingProxyType({t: r.threshold for t, r in self.tasks.items() if r.threshold is not None})

    @property
    def calls(self) -> MappingProxyType:
        return MappingProxyType({t: r.call for t, r in self.tasks.items()})

    def set_result(self, task: str, call: str, probability: float | None = None,
                   threshold: float | None = None) -> TaskResult:
        """Record one task's answer; a probability that is not a finite number in [0, 1] is refused."""
        if probability is not None:
            probability = checked_probability(probability, f"{self.model} {task}")
        result = TaskResult(call, probability, None if threshold is None else float(threshold))
        self.tasks[task] = result
        return result

    def _core_dict(self) -> dict[str, Any]:
        return {
            "summary_version": SUMMARY_VERSION,
            "family": self.family,
            "variant": self.variant,
            "model": self.model,
            "weights_sha256": dict(self.weights_sha256),
            "tasks": {t: r.to_dict() for t, r in self.tasks.items()},
            "measures": {k: round(float(v), 6) for k, v in self.measures.items()},
            "timings_ms": {k: round(float(v), 2) for k, v in self.timings_ms.items()},
            "device": self.device,
            "created": self.created,
            "notes": list(self.notes),
            "warnings": list(self.warnings),
        }


def _core_kwargs(d: dict[str, Any]) -> dict[str, Any]:
    """Constructor arguments of the scalar part from a summary dict of format 2 or 1."""
    if int(d.get("summary_version", 1)) >= 2:
        family, variant = str(d["family"]), str(d.get("variant") or "")
        tasks = {t: TaskResult.from_dict(r) for t, r in (d.get("tasks") or {}).items()}
    else:  # format 1: "model" is "family[variant]"; results in three flat dicts
        family, _, rest = str(d["model"]).partition("[")
        variant = rest[:-1] if rest.endswith("]") else rest
        probabilities, thresholds = d.get("probabilities") or {}, d.get("thresholds") or {}
        calls = d.get("calls") or {}
        tasks = {t: TaskResult(call=str(calls.get(t, "")), probability=_finite_or_none(probabilities.get(t)),
                               threshold=_finite_or_none(thresholds.get(t)))
                 for t in dict.fromkeys([*calls, *probabilities])}
    return {
        "family": family, "variant": variant,
        "weights_sha256": dict(d.get("weights_sha256") or {}),
        "tasks": tasks,
        "measures": {k: float(v) for k, v in (d.get("measures") or {}).items()},
        "timings_ms": {k: float(v) for k, v in (d.get("timings_ms") or {}).items()},
        "device": str(d.get("device") or ""),
        "created": str(d.get("created") or ""),
        "notes": [str(n) for n in d.get("notes") or []],
        "warnings": [str(w) for w in d.get("warnings") or []],
    }


@dataclass
class PredictionSummary(_PredictionCore):
    """A prediction without its arrays: what `oncolens predict` prints, the store keeps and studies freeze.
    `mask_names` / `heatmap_names` say which arrays the full prediction had."""

    mask_names: tuple[str, ...] = ()
    heatmap_names: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {**self._core_dict(), "masks": sorted(self.mask_names), "heatmaps": sorted(self.heatmap_names)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PredictionSummary:
        """Read a summary of format 2, or of format 1 (bundles and stores written before it)."""
        return cls(**_core_kwargs(d), mask_names=tuple(d.get("masks") or ()),
                   heatmap_names=tuple(d.get("heatmaps") or ()))


@dataclass
class Prediction(_PredictionCore):
    """A predictor's full result. Heatmap keys are '<task>/<modality or layer>' with values in [0, 1] on the
    image grid; masks and contours are keyed by structure (contours: (N, 2) row/col points in pixels)."""

    masks: dict[str, np.ndarray] = field(default_factory=dict)
    contours: dict[str, list[np.ndarray]] = field(default_factory=dict)
    heatmaps: dict[str, np.ndarray] = field(default_factory=dict)

    def summary(self) -> PredictionSummary:
        core = {f.name: getattr(self, f.name) for f in fields(_PredictionCore)}
        return PredictionSummary(**{**core, "tasks": dict(self.tasks), "measures": dict(self.measures),
                                    "timings_ms": dict(self.timings_ms), "notes": list(self.notes),
                                    "warnings": list(self.warnings)},
                                 mask_names=tuple(sorted(self.masks)), heatmap_names=tuple(sorted(self.heatmaps)))

    @classmethod
    def from_summary(cls, summary: PredictionSummary, masks: dict | None = None, contours: dict | None = None,
                     heatmaps: dict | None = None) -> Prediction:
        """A prediction rebuilt from its summary and whatever arrays were kept with it."""
        core = {f.name: getattr(summary, f.name) for f in fields(_PredictionCore)}
        return cls(**core, masks=dict(masks or {}), contours=dict(contours or {}), heatmaps=dict(heatmaps or {}))
