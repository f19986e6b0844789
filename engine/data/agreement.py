"""Whether the models shown for one case agree: e.g. FL-CNN and WL-CNN calling the same specimen differently.
The results panel flags a disagreement; review filters can use the same test."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.data.prediction import Prediction, PredictionSummary


@dataclass(frozen=True)
class Disagreement:
    """One task on which the assessed models' calls differ: (model id, call, positive) per model."""

    task: str
    answers: tuple[tuple[str, str, bool], ...]

    @property
    def positive_models(self) -> tuple[str, ...]:
        return tuple(model for model, _call, positive in self.answers if positive)

    @property
    def negative_models(self) -> tuple[str, ...]:
        return tuple(model for model, _call, positive in self.answers if not positive)


def call_disagreements(predictions: Sequence[Prediction | PredictionSummary]) -> list[Disagreement]:
    """The tasks, in first-seen order, that two or more models assessed (probability against threshold) with
    different calls. Gated or not-assessable tasks have no call to compare and are left out."""
    tasks = list(dict.fromkeys(task for p in predictions for task in p.tasks))
    found = []
    for task in tasks:
        answers = tuple((p.model, p.tasks[task].call, p.tasks[task].positive) for p in predictions
                        if task in p.tasks and p.tasks[task].assessed and p.tasks[task].threshold is not None)
        if len(answers) >= 2 and len({positive for _m, _c, positive in answers}) > 1:
            found.append(Disagreement(task, answers))
    return found
