"""Patient-level splits: every specimen of a patient goes to the same side."""

from __future__ import annotations

from collections import Counter

import numpy as np


def patient_split(patient_ids: list[str], test_fraction: float = 0.3, seed: int = 0,
                  labels: list[int] | None = None, tries: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Assign whole patients to train/test so the test side holds about `test_fraction` of the samples.

    With `labels`, among random patient orders the split whose test positive rate is closest to the
    overall rate (and whose size is closest to the target) is kept, so both sides have both classes.
    Returns boolean masks (train, test)."""
    ids = np.asarray(patient_ids)
    counts = Counter(ids.tolist())
    patients = sorted(counts)
    if len(patients) < 2:
        raise ValueError(f"A patient-level split needs at least 2 patients, got {len(patients)}.")
    rng = np.random.default_rng(seed)
    y = np.asarray(labels) if labels is not None else None
    overall = y.mean() if y is not None else 0.0
    best, best_cost = None, np.inf
    for _ in range(tries if y is not None else 1):
        order = rng.permutation(patients)
        chosen, n = [], 0
        for p in order:
            if n >= test_fraction * len(ids):
                break
            chosen.append(p)
            n += counts[p]
        test = np.isin(ids, chosen)
        cost = abs(test.mean() - test_fraction)
        if y is not None:
            if len(set(y[test])) < 2 or len(set(y[~test])) < 2:
                continue
            cost += abs(y[test].mean() - overall)
        if cost < best_cost:
            best, best_cost = test, cost
    if best is None:
        raise ValueError("No patient-level split has both classes on both sides; more patients are needed.")
    return ~best, best
