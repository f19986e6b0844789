"""Losses used by the training loops."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def class_balance_weights(n_pos: int, n_neg: int) -> tuple[float, float]:
    """FL-CNN eq. (2): alpha_P = (|P|+|N|) / (2|P|), alpha_N = (|P|+|N|) / (2|N|)."""
    if n_pos <= 0 or n_neg <= 0:
        raise ValueError(f"Both classes are needed to train (got {n_pos} positive, {n_neg} negative samples).")
    total = n_pos + n_neg
    return total / (2.0 * n_pos), total / (2.0 * n_neg)


def weighted_bce_with_logits(logits: torch.Tensor, targets: torch.Tensor, alpha_pos: float,
                             alpha_neg: float) -> torch.Tensor:
    """FL-CNN eq. (1), averaged over the batch instead of summed (a constant factor; keeps lr meaningful)."""
    targets = targets.to(logits.dtype)
    weights = alpha_pos * targets + alpha_neg * (1.0 - targets)
    return F.binary_cross_entropy_with_logits(logits, targets, weight=weights, reduction="mean")


# --- MFI-FFP (Zhu et al., IEEE TMI 2024): L_All = L_LDAM^reweighted + alpha * L_Focal + beta * L_Intra ---
# The paper sets LDAM's hyperparameters "as in reference [28]" (Cao et al., NeurIPS 2019), whose code
# (kaidic/LDAM-DRW, losses.py, LDAMLoss defaults and cifar_train.py) takes margins proportional to n_j^(-1/4),
# rescales them so the largest is max_m = 0.5, and multiplies the margin-shifted logits by s = 30.
LDAM_MAX_MARGIN = 0.5  # the paper's C-hat = 0.5, the reference's max_m
LDAM_SCALE = 30.0  # the reference's s


def ldam_margins(class_counts: list[int], max_margin: float = LDAM_MAX_MARGIN) -> torch.Tensor:
    """Eq. (17), Delta_j proportional to n_j^(-1/4), rescaled as the reference code does so that the largest
    margin (the rarest class's) equals `max_margin`. Taken literally (C / n_j^(1/4) with C = 0.5) the margins of
    a few hundred nodes are about 0.1-0.2, a hundredth of the reference's 0.5 x s."""
    counts = torch.as_tensor(class_counts, dtype=torch.float32)
    if (counts <= 0).any():
        raise ValueError(f"Every class needs training samples for LDAM margins, got counts {class_counts}.")
    raw = counts.pow(-0.25)
    return max_margin * raw / raw.max()


def ldam_margins_literal(class_counts: list[int], c: float = LDAM_MAX_MARGIN) -> torch.Tensor:
    """Eq. (17) read literally, Delta_j = C / n_j^(1/4) with no rescaling (used with scale 1): what OncoLens
    trained with before following the reference; kept for the ablation row that compares the two."""
    counts = torch.as_tensor(class_counts, dtype=torch.float32)
    if (counts <= 0).any():
        raise ValueError(f"Every class needs training samples for LDAM margins, got counts {class_counts}.")
    return c * counts.pow(-0.25)


LDAM_RULES = ("reference", "literal")


def class_weights(positive_weight: float = 0.85, n_classes: int = 2) -> torch.Tensor:
    """The paper's weight 0.85, read as w = (1 - 0.85, 0.85) for (benign, metastatic): the minority class
    counts 5.7x the majority, near the inverse of the ~10:1 imbalance."""
    if n_classes != 2 or not 0 < positive_weight < 1:
        raise ValueError("class_weights takes two classes and a positive weight in (0, 1).")
    return torch.tensor([1.0 - positive_weight, positive_weight])


def ldam_loss(logits: torch.Tensor, targets: torch.Tensor, margins: torch.Tensor,
              weights: torch.Tensor | None = None, scale: float = LDAM_SCALE) -> torch.Tensor:
    """Eq. (16)/(18): weighted cross-entropy of `scale` x the logits after subtracting the true class's margin from
    its logit, as the reference computes it. The reference also L2-normalises the last layer's features and
    weights when it trains with LDAM (so its logits are cosines); MFI-FFP's head is the paper's plain fully
    connected layer, whose logits the focal term shares, so the scale applies to them as they are."""
    shifted = logits - F.one_hot(targets, logits.shape[1]).to(logits.dtype) * margins.to(logits)[None]
    return F.cross_entropy(scale * shifted, targets, weight=None if weights is None else weights.to(logits))


def focal_loss(logits: torch.Tensor, targets: torch.Tensor, kappa: float = 2.0,
               weights: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. (19): -w_y (1 - p_y)^kappa log p_y, normalised by the summed weights like weighted cross-entropy."""
    log_p = F.log_softmax(logits, dim=1).gather(1, targets[:, None]).squeeze(1)
    w = torch.ones_like(log_p) if weights is None else weights.to(logits)[targets]
    return -(w * (1 - log_p.exp()).pow(kappa) * log_p).sum() / w.sum()


def pearson_rows(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Pearson correlation between matching rows of a and b (each row one sample's feature vector)."""
    a = a - a.mean(dim=1, keepdim=True)
    b = b - b.mean(dim=1, keepdim=True)
    return (a * b).sum(dim=1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


def intra_loss(features: torch.Tensor, targets: torch.Tensor, n_classes: int = 2) -> torch.Tensor:
    """Eq. (20)-(22) on the fused feature vectors (B, C), not on the 2-class outputs.

    On a 2-element probability vector the Pearson correlation of two samples is always +1 or -1 (two
    points define a line), so it carries no gradient; the pooled fused features (the head's input) do.
    rho_m is the mean correlation of consecutive same-class samples in the batch (n_m - 1 pairs); a class
    with fewer than two samples in the batch contributes nothing. The sum runs over ordered class pairs
    m != k, as eq. (22) is written."""
    rhos = []
    for m in range(n_classes):
        rows = features[targets == m]
        if len(rows) >= 2:
            rhos.append(pearson_rows(rows[:-1], rows[1:]).mean())
    loss = features.new_zeros(())
    for i, rho_m in enumerate(rhos):
        for j, rho_k in enumerate(rhos):
            if i != j:
                loss = loss + (rho_m - rho_k).pow(2)
    return loss


class MFILoss(torch.nn.Module):
    """L_All with switchable terms for the paper's Table V/VI ablations.

    terms: any of 'ldam', 'focal', 'intra' (L_All = all three), or ('ce',) for the weighted cross-entropy
    the paper uses for its comparison models. ldam: 'reference' (Cao et al.'s settings) or 'literal' (eq. 17
    taken literally, logits unscaled: the old behaviour, for the ablation)."""

    def __init__(self, class_counts: list[int], terms: tuple[str, ...] = ("ldam", "focal", "intra"),
                 alpha: float = 1.0, beta: float = 1.0, c_hat: float = LDAM_MAX_MARGIN, kappa: float = 2.0,
                 positive_weight: float = 0.85, scale: float = LDAM_SCALE, ldam: str = "reference") -> None:
        super().__init__()
        if ldam not in LDAM_RULES:
            raise ValueError(f"ldam must be one of {LDAM_RULES}, got {ldam!r}.")
        unknown = set(terms) - {"ldam", "focal", "intra", "ce"}
        if not terms or unknown:
            raise ValueError(f"Loss terms must be from ldam, focal, intra, ce; got {terms}.")
        if terms == ("intra",):
            pass  # allowed for the ablation table, although it never supervises the logits
        self.terms = tuple(terms)
        self.alpha, self.beta, self.kappa = alpha, beta, kappa
        self.scale = scale if ldam == "reference" else 1.0
        margins = ldam_margins(class_counts, c_hat) if ldam == "reference" else ldam_margins_literal(class_counts, c_hat)
        self.register_buffer("margins", margins)
        self.register_buffer("weights", class_weights(positive_weight))

    def forward(self, logits: torch.Tensor, targets: torch.Tensor,
                features: torch.Tensor | None = None) -> torch.Tensor:
        loss = logits.new_zeros(())
        if "ce" in self.terms:
            loss = loss + F.cross_entropy(logits, targets, weight=self.weights.to(logits))
        if "ldam" in self.terms:
            loss = loss + ldam_loss(logits, targets, self.margins, self.weights, self.scale)
        if "focal" in self.terms:
            loss = loss + self.alpha * focal_loss(logits, targets, self.kappa, self.weights)
        if "intra" in self.terms:
            if features is None:
                raise ValueError("The intra loss needs the fused feature vectors.")
            loss = loss + self.beta * intra_loss(features, targets)
        return loss
