"""The promotion rule: a challenger replaces the champion only when it is better on the same held-out rows
by a margin, and the gain is beyond resampling noise.

Both models score the same current test rows; a paired bootstrap resamples those rows once per round and
computes both ROC AUCs on the same resample, so what the two models have in common (hard and easy
customers) cancels out and the interval is the interval of the *difference*. Pure functions, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score

Outcome = Literal["promoted", "kept_champion", "refused", "awaiting_approval"]


@dataclass(frozen=True)
class PromotionPolicy:
    min_auc_gain: float = 0.005
    """The challenger's test ROC AUC must beat the champion's by at least this much..."""
    confidence: float = 0.95
    """...and the one-sided lower bound of the paired bootstrap difference at this level must be above 0."""
    n_bootstrap: int = 1000
    seed: int = 0


@dataclass(frozen=True)
class Comparison:
    """Challenger vs champion ROC AUC on the same rows, with the paired bootstrap interval of the gain."""

    challenger_auc: float
    champion_auc: float
    gain: float
    gain_lower: float  # one-sided lower bound at the policy's confidence
    gain_upper: float  # the symmetric upper bound, for the record
    n_rows: int


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason: str
    comparison: Comparison | None


def paired_auc_gain(
    y: np.ndarray, p_challenger: np.ndarray, p_champion: np.ndarray, policy: PromotionPolicy
) -> Comparison:
    y, a, b = np.asarray(y), np.asarray(p_challenger), np.asarray(p_champion)
    if not len(y) == len(a) == len(b):
        raise ValueError(f"rows differ: {len(y)} labels, {len(a)} and {len(b)} probabilities")
    rng = np.random.default_rng(policy.seed)
    idx = rng.integers(0, len(y), (policy.n_bootstrap, len(y)))
    labels = y[idx]
    both_classes = labels.min(axis=1) != labels.max(axis=1)  # a single-class resample has no AUC
    if not both_classes.any():
        raise ValueError("every bootstrap resample held a single class")
    idx, labels = idx[both_classes], labels[both_classes]
    gains = _row_auc(labels, a[idx]) - _row_auc(labels, b[idx])
    alpha = 1 - policy.confidence
    low, high = np.quantile(gains, [alpha, 1 - alpha])
    challenger, champion = float(roc_auc_score(y, a)), float(roc_auc_score(y, b))
    return Comparison(challenger, champion, challenger - champion, float(low), float(high), len(y))


def _row_auc(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ROC AUC of every row at once (Mann-Whitney U from mid-ranks; equals sklearn's `roc_auc_score`)."""
    ranks = rankdata(scores, axis=1)
    positives = labels.sum(axis=1)
    negatives = labels.shape[1] - positives
    rank_sum = (ranks * labels).sum(axis=1)
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def decide(
    comparison: Comparison | None,
    gate_failures: list[str],
    policy: PromotionPolicy,
    requires_approval: bool = False,
) -> Decision:
    """What happens to a registered candidate. ``comparison`` is None when there is no champion yet."""
    if gate_failures:
        return Decision("refused", "floor checks failed: " + "; ".join(gate_failures), comparison)
    win: Outcome = "promoted" if not requires_approval else "awaiting_approval"
    wait = " (waits for `churn model approve`)" if requires_approval else ""
    if comparison is None:
        return Decision(win, "no champion yet" + wait, None)
    c = comparison
    scores = (
        f"challenger ROC AUC {c.challenger_auc:.4f} vs champion {c.champion_auc:.4f} on {c.n_rows} test rows"
    )
    if c.gain < policy.min_auc_gain:
        return Decision(
            "kept_champion", f"{scores}: gain {c.gain:+.4f} below the margin {policy.min_auc_gain}", c
        )
    bound = f"{policy.confidence:.0%} lower bound of the gain {c.gain_lower:+.4f}"
    if c.gain_lower <= 0:
        return Decision("kept_champion", f"{scores}: gain {c.gain:+.4f} not beyond noise ({bound} ≤ 0)", c)
    return Decision(win, f"{scores}: gain {c.gain:+.4f} ({bound} > 0){wait}", c)
