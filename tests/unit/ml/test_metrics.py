import numpy as np
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, f1_score, log_loss, roc_auc_score

from churn_assets.ml.metrics import bootstrap_ci, classification_metrics, lift_table


def _scored(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    proba = rng.uniform(size=n)
    return (rng.uniform(size=n) < proba).astype(int), proba


def test_classification_metrics_match_hand_counts_and_sklearn() -> None:
    y = np.array([1, 1, 0, 1, 0, 0, 0, 1])
    proba = np.array([0.9, 0.6, 0.55, 0.5, 0.4, 0.2, 0.1, 0.05])

    m = classification_metrics(y, proba, threshold=0.5)

    # Predicted positive: the first four (p >= 0.5) → TP 3, FP 1, FN 1, TN 3.
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (3, 1, 1, 3)
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["precision"] == pytest.approx(3 / 4)
    assert m["recall"] == pytest.approx(3 / 4)
    assert m["f1"] == pytest.approx(f1_score(y, proba >= 0.5))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, proba))
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, proba))
    assert m["log_loss"] == pytest.approx(log_loss(y, proba))
    assert m["brier"] == pytest.approx(np.mean((proba - y) ** 2))
    assert m["brier"] == pytest.approx(brier_score_loss(y, proba))


def test_lift_table_by_hand() -> None:
    y = np.array([1, 1, 0, 1, 0, 0, 0, 0, 1, 0])
    proba = np.linspace(0.95, 0.05, 10)

    table = lift_table(y, proba, n_bins=5)

    assert table.get_column("customers").to_list() == [2, 2, 2, 2, 2]
    assert table.get_column("churners").to_list() == [2, 1, 0, 0, 1]
    assert table.get_column("share_contacted").to_list() == pytest.approx([0.2, 0.4, 0.6, 0.8, 1.0])
    assert table.get_column("precision").to_list() == pytest.approx([1.0, 0.5, 0.0, 0.0, 0.5])
    assert table.get_column("cumulative_recall").to_list() == pytest.approx([0.5, 0.75, 0.75, 0.75, 1.0])
    # Base rate 0.4: the top bin churns at 1.0, i.e. 2.5x the base rate.
    assert table.get_column("lift").to_list() == pytest.approx([2.5, 1.25, 0.0, 0.0, 1.25])
    assert table.get_column("cumulative_lift").to_list()[1] == pytest.approx(0.75 / 0.4)
    assert table.get_column("cumulative_lift").to_list()[-1] == pytest.approx(1.0)


def test_lift_table_rejects_more_bins_than_rows() -> None:
    with pytest.raises(ValueError, match="n_bins"):
        lift_table(np.array([0, 1]), np.array([0.2, 0.8]), n_bins=3)


def test_bootstrap_ci_contains_estimate_and_narrows_with_more_data() -> None:
    widths = []
    for n in (200, 5000):
        y, proba = _scored(n, seed=n)
        low, high = bootstrap_ci(y, proba, roc_auc_score, n_boot=200, seed=0)
        assert low < roc_auc_score(y, proba) < high
        widths.append(high - low)
    assert widths[1] < widths[0] / 3  # ~ 1/sqrt(25) = 1/5 in theory


def test_bootstrap_skips_single_class_resamples() -> None:
    y = np.array([0, 0, 0, 0, 0, 1])
    proba = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.9])
    low, high = bootstrap_ci(y, proba, roc_auc_score, n_boot=100, seed=1)
    assert 0 <= low <= high <= 1
    with pytest.raises(ValueError, match="single class"):
        bootstrap_ci(np.zeros(5, dtype=int), proba[:5], roc_auc_score, n_boot=10)
