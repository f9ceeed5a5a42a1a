"""Evaluation numbers for a scored hold-out set: point metrics, a lift table and bootstrap intervals."""

from collections.abc import Callable

import numpy as np
import polars as pl
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)


def predict_at(proba: np.ndarray, threshold: float) -> np.ndarray:
    """The single decision convention shared by evaluation and serving: churn iff p >= threshold."""
    return (np.asarray(proba) >= threshold).astype(np.int64)


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, threshold: float) -> dict[str, float]:
    """Threshold metrics at `threshold` plus threshold-free ones (ranking and probability quality)."""
    y_pred = predict_at(proba, threshold)
    tn, fp, fn, tp = confusion_matrix(y_true, y_pred, labels=[0, 1]).ravel()
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "precision": float(precision_score(y_true, y_pred, zero_division=0)),
        "recall": float(recall_score(y_true, y_pred, zero_division=0)),
        "f1": float(f1_score(y_true, y_pred, zero_division=0)),
        "roc_auc": float(roc_auc_score(y_true, proba)),
        "pr_auc": float(average_precision_score(y_true, proba)),
        "log_loss": float(log_loss(y_true, proba, labels=[0, 1])),
        "brier": float(brier_score_loss(y_true, proba)),
        "tn": float(tn),
        "fp": float(fp),
        "fn": float(fn),
        "tp": float(tp),
    }


def lift_table(y_true: np.ndarray, proba: np.ndarray, n_bins: int = 10) -> pl.DataFrame:
    """What a retention campaign gets by contacting customers bin by bin, highest scores first.

    Bins have equal counts (± 1); ties are ordered stably, so the table is deterministic.
    """
    y = np.asarray(y_true, dtype=np.int64)
    if not 0 < n_bins <= len(y):
        raise ValueError(f"n_bins must be between 1 and the number of rows ({len(y)}), got {n_bins}")
    order = np.argsort(-np.asarray(proba, dtype=np.float64), kind="stable")
    bins = np.array_split(order, n_bins)
    customers = np.array([len(b) for b in bins])
    churners = np.array([int(y[b].sum()) for b in bins])
    base_rate = y.mean()
    cum_customers = np.cumsum(customers)
    cum_churners = np.cumsum(churners)
    return pl.DataFrame(
        {
            "bin": np.arange(1, n_bins + 1),
            "min_score": [float(np.asarray(proba)[b].min()) for b in bins],
            "customers": customers,
            "churners": churners,
            "share_contacted": cum_customers / len(y),
            "precision": churners / customers,
            "cumulative_precision": cum_churners / cum_customers,
            "cumulative_recall": cum_churners / y.sum(),
            "lift": churners / customers / base_rate,
            "cumulative_lift": cum_churners / cum_customers / base_rate,
        }
    )


def bootstrap_ci(
    y_true: np.ndarray,
    proba: np.ndarray,
    metric_fn: Callable[[np.ndarray, np.ndarray], float],
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> tuple[float, float]:
    """Percentile interval from plain row resampling, so class-mix variability is included too.

    Resamples that contain a single class are skipped, since ROC AUC and friends are undefined there.
    """
    y = np.asarray(y_true)
    p = np.asarray(proba)
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        if y[idx].min() == y[idx].max():
            continue
        stats.append(metric_fn(y[idx], p[idx]))
    if not stats:
        raise ValueError("every bootstrap resample held a single class")
    low, high = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)
