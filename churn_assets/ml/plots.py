"""Comparison figures for candidates scored on the same rows, written as PNG files.

Figures are built with matplotlib's object API (no pyplot), which renders PNG through Agg without
touching global backend state, so it is safe in worker threads.
"""

from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

Scores = Mapping[str, np.ndarray]


def _write_figure(path: Path, title: str, draw: Callable[[Axes], None]) -> Path:
    fig = Figure(figsize=(6, 5), layout="constrained")
    ax = fig.subplots()
    draw(ax)
    ax.set_title(title)
    ax.legend(loc="best", fontsize="small")
    fig.savefig(path, dpi=120)
    return Path(path)


def plot_roc_curves(y_true: np.ndarray, probas: Scores, path: Path) -> Path:
    def draw(ax: Axes) -> None:
        for name, proba in probas.items():
            fpr, tpr, _ = roc_curve(y_true, proba)
            ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(y_true, proba):.3f})")
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
        ax.set(xlabel="False positive rate", ylabel="True positive rate")

    return _write_figure(path, "ROC curves", draw)


def plot_pr_curves(y_true: np.ndarray, probas: Scores, path: Path) -> Path:
    def draw(ax: Axes) -> None:
        for name, proba in probas.items():
            precision, recall, _ = precision_recall_curve(y_true, proba)
            ax.plot(recall, precision, label=f"{name} (AP {average_precision_score(y_true, proba):.3f})")
        ax.axhline(np.mean(y_true), linestyle="--", color="grey", label="base rate")
        ax.set(xlabel="Recall", ylabel="Precision")

    return _write_figure(path, "Precision-recall curves", draw)


def plot_calibration_curves(y_true: np.ndarray, probas: Scores, path: Path, n_bins: int = 10) -> Path:
    """Quantile bins, so each point rests on the same number of customers."""

    def draw(ax: Axes) -> None:
        for name, proba in probas.items():
            observed, predicted = calibration_curve(y_true, proba, n_bins=n_bins, strategy="quantile")
            ax.plot(predicted, observed, marker="o", label=name)
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
        ax.set(xlabel="Mean predicted probability", ylabel="Observed churn rate")

    return _write_figure(path, "Calibration (reliability) curves", draw)


def write_comparison_plots(y_true: np.ndarray, probas: Scores, out_dir: Path) -> list[Path]:
    """ROC, PR and calibration figures in `out_dir`, named roc.png, pr.png and calibration.png."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [
        plot_roc_curves(y_true, probas, out_dir / "roc.png"),
        plot_pr_curves(y_true, probas, out_dir / "pr.png"),
        plot_calibration_curves(y_true, probas, out_dir / "calibration.png"),
    ]
