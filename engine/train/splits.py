"""Patient-level splits: every specimen of a patient goes to the same side."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np

Labels = Sequence[int | None]


def _label_sets(labels: Labels | Mapping[str, Labels] | None) -> dict[str, np.ndarray]:
    """{task: (N,) float array with NaN where a sample has no label for that task}."""
    if labels is None:
        return {}
    sets = labels if isinstance(labels, Mapping) else {"label": labels}
    return {task: np.array([np.nan if v is None else float(v) for v in values]) for task, values in sets.items()}


def patient_split(patient_ids: list[str], test_fraction: float = 0.3, seed: int = 0,
                  labels: Labels | Mapping[str, Labels] | None = None,
                  tries: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Assign whole patients to train/test so the test side holds about `test_fraction` of the samples.

    With `labels` (one per sample, or a mapping task -> labels with None where a sample has no label for that
    task, as grade and Ki-67 have none for non-tumor specimens), among random patient orders the split is kept
    whose size is closest to the target and whose test positive rate of every task is closest to that task's
    overall rate, among the splits with both classes of every task on both sides. One split for several tasks
    is how a cascade keeps each net's test patients unseen by the others. Returns boolean masks (train, test)."""
    ids = np.asarray(patient_ids)
    counts = Counter(ids.tolist())
    patients = sorted(counts)
    if len(patients) < 2:
        raise ValueError(f"A patient-level split needs at least 2 patients, got {len(patients)}.")
    rng = np.random.default_rng(seed)
    sets = _label_sets(labels)
    best, best_cost = None, np.inf
    for _ in range(tries if sets else 1):
        order = rng.permutation(patients)
        chosen, n = [], 0
        for p in order:
            if n >= test_fraction * len(ids):
                break
            chosen.append(p)
            n += counts[p]
        test = np.isin(ids, chosen)
        cost = abs(test.mean() - test_fraction)
        for y in sets.values():
            known = ~np.isnan(y)
            if len(set(y[test & known])) < 2 or len(set(y[~test & known])) < 2:
                cost = np.inf
                break
            cost += abs(y[test & known].mean() - y[known].mean())
        if cost < best_cost:
            best, best_cost = test, cost
    if best is None:
        raise ValueError("No patient-level split has both classes of every task on both sides; more patients are "
                         "needed.")
    return ~best, best
