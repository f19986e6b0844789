"""The paired permutation test of model against readers on one shared stream of swap patterns.

`engine.metrics.resampling.paired_permutation_test` run for every reader and metric would redo the work for
each. Here each count after a swap is the original count plus a matrix product with the swap pattern, and an
AUC difference is linear in the per-case swap signs (`_auc_swap_weights`), so 10,000 permutations cost a few
matrix-vector products per reader. `engine.metrics.reader_study.compare_model_with_readers` uses it; its
p-values equal the plain test's with the same seed.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from engine.metrics.classification import _COUNT_FORMULAS, COUNT_METRIC_NAMES, _below


def _common_scale(scores: np.ndarray) -> np.ndarray:
    """Normalised mid-ranks: keeps each rater's AUC and makes a model probability and a 5-point
    rating swappable between raters."""
    return rankdata(scores) / scores.size


def _auc_swap_weights(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Case weights w with AUC(a') - AUC(b') = sum_k w_k (1 - 2 s_k), where a' takes b's score on the
    cases with s_k = 1 and b' takes a's. Follows from writing both AUCs as sums over (positive i,
    negative k) pairs: each pair's contribution is linear in the signs of its two cases."""
    n1, n0 = int(np.count_nonzero(y)), int(np.count_nonzero(~y))
    pa, pb, na, nb = a[y], b[y], a[~y], b[~y]
    w = np.empty(y.size)
    w[y] = _below(pa, na) - _below(pb, nb) + _below(pa, nb) - _below(pb, na)
    w[~y] = _below(nb, pb) - _below(na, pa) + _below(nb, pa) - _below(na, pb)
    return w / (2 * n1 * n0)


class PairedSwaps:
    """Model-minus-reader differences of every metric under a block of swap patterns."""

    def __init__(self, y: np.ndarray, model: tuple[np.ndarray, np.ndarray | None],
                 reader: tuple[np.ndarray, np.ndarray | None]) -> None:
        a, b = model[0].astype(float), reader[0].astype(float)
        change = b - a
        self.to_pos, self.to_neg = change * y, change * ~y
        self.tp_a, self.fp_a = a[y].sum(), a[~y].sum()
        self.tp_b, self.fp_b = b[y].sum(), b[~y].sum()
        self.n_pos, self.n_neg = float(np.count_nonzero(y)), float(np.count_nonzero(~y))
        self.w = None
        if model[1] is not None and reader[1] is not None:
            self.w = _auc_swap_weights(y, _common_scale(model[1]), _common_scale(reader[1]))

    @property
    def vectors(self) -> np.ndarray:
        """[n, 3]: multiplied by a swap block, the shift in TP, in FP, and the AUC term."""
        return np.stack([self.to_pos, self.to_neg, np.zeros_like(self.to_pos) if self.w is None else self.w], axis=1)

    def diffs(self, products: np.ndarray) -> dict[str, np.ndarray]:
        """Differences per swap pattern from `swap_block @ self.vectors`."""
        d_tp, d_fp = products[:, 0], products[:, 1]
        tp_a, fp_a, tp_b, fp_b = self.tp_a + d_tp, self.fp_a + d_fp, self.tp_b - d_tp, self.fp_b - d_fp
        out = {}
        if self.w is not None:
            out["auc"] = self.w.sum() - 2 * products[:, 2]
        for name in COUNT_METRIC_NAMES:
            formula = _COUNT_FORMULAS[name]
            out[name] = (formula(tp_a, fp_a, self.n_neg - fp_a, self.n_pos - tp_a)
                         - formula(tp_b, fp_b, self.n_neg - fp_b, self.n_pos - tp_b))
        return out
