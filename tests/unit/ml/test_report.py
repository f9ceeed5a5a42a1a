import json
from pathlib import Path

import numpy as np
import pytest

from churn_assets.ml.crossval import Comparison, CrossValidated, compare
from churn_assets.ml.metrics import lift_table
from churn_assets.ml.plots import write_comparison_plots
from churn_assets.ml.report import (
    FamilyEvaluation,
    markdown_summary,
    noise_verdict,
    quality_markdown,
    write_report,
)


def _evaluation(family: str, auc: float) -> FamilyEvaluation:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p = np.clip(y * 0.3 + rng.random(200) * 0.7, 0, 1)
    metrics = dict.fromkeys(
        ["roc_auc", "pr_auc", "log_loss", "brier", "accuracy", "precision", "recall", "f1"], 0.5
    ) | {"roc_auc": auc, "tn": 10.0, "fp": 2.0, "fn": 3.0, "tp": 5.0}
    return FamilyEvaluation(
        family,
        0.4,
        "expected_net_value",
        0.45,
        0.14,
        metrics,
        (auc - 0.02, auc + 0.02),
        lift_table(y, p),
        [("tenure_months", 0.1)],
    )


def _scored(roc_auc: list[float]) -> CrossValidated:
    """Per-split ROC AUCs on two 2-fold repeats of 100 rows (the probabilities are not used here)."""
    tests = tuple(np.arange(50 * (j % 2), 50 * (j % 2) + 50) for j in range(4))
    scores = {"roc_auc": np.array(roc_auc), "pr_auc": np.array(roc_auc) - 0.2}
    return CrossValidated(2, 2, 0, tests, tuple(np.full(50, 0.5) for _ in tests), scores)


NOISY = [0.85, 0.83, 0.84, 0.835]  # split differences from the best: +0.01, -0.02, +0.01, -0.005
WORSE = [0.79, 0.80, 0.78, 0.7901]  # 0.05 below the best on every split


def _comparisons(xgboost: list[float]) -> list[Comparison]:
    results = {"logistic_regression": _scored([0.84, 0.85, 0.83, 0.84]), "xgboost": _scored(xgboost)}
    return [compare(results, "roc_auc"), compare(results, "pr_auc")]


def test_report_files_hold_every_family_and_the_choice(tmp_path: Path) -> None:
    evaluations = [_evaluation("logistic_regression", 0.84), _evaluation("xgboost", 0.85)]
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 100)
    plots = write_comparison_plots(y, {"a": rng.random(100)}, tmp_path / "plots")
    html_path, json_path = write_report(
        tmp_path, evaluations, "xgboost", plots, {"data_version": "abc"}, _comparisons(NOISY), "2 x 2 CV"
    )
    payload = json.loads(json_path.read_text())
    assert payload["chosen"] == "xgboost"
    assert payload["families"]["logistic_regression"]["test"]["roc_auc"] == 0.84
    assert payload["families"]["xgboost"]["validation_brier"] == 0.14
    assert len(payload["families"]["xgboost"]["lift"]) == 10
    cv = payload["cross_validation"]
    assert cv["design"] == "2 x 2 CV"
    assert cv["metrics"]["roc_auc"]["best"] == "logistic_regression"
    assert cv["metrics"]["roc_auc"]["intervals"]["xgboost"]["mean"] == pytest.approx(0.83875)
    assert set(cv["metrics"]["pr_auc"]["differences_from_best"]) == {"xgboost"}
    page = html_path.read_text()
    assert page.count("data:image/png;base64,") == len(plots)
    assert "logistic_regression" in page and "abc" in page
    assert "Repeated cross-validation on the train split" in page and "2 x 2 CV" in page


def test_noise_verdict_says_plainly_whether_a_gap_is_beyond_noise() -> None:
    within = noise_verdict(_comparisons(NOISY)[0])
    beyond = noise_verdict(_comparisons(WORSE)[0])

    assert within == (
        "ROC AUC: best logistic_regression (0.8400); no other candidate differs from it beyond noise "
        "(every Holm-adjusted p >= 0.05)."
    )
    assert beyond.startswith(
        "ROC AUC: best logistic_regression (0.8400); beyond noise below it: xgboost (-0.0500"
    )


def test_quality_markdown_has_one_row_per_candidate_and_the_selection_scores() -> None:
    evaluations = [_evaluation("logistic_regression", 0.84), _evaluation("xgboost", 0.85)]
    md = quality_markdown(evaluations, _comparisons(WORSE), "xgboost")
    rows = [
        line
        for line in md.splitlines()
        if line.startswith("| logistic_regression") or line.startswith("| xgboost")
    ]

    assert len(rows) == 2
    assert "Chosen by validation log loss: **xgboost**" in md
    assert rows[0].split(" | ")[2] == "best" and "beyond noise" in rows[1]
    assert rows[1].endswith("| 0.4500 | 0.1400 |")


def test_markdown_summary_has_one_row_per_family() -> None:
    md = markdown_summary([_evaluation("a", 0.84), _evaluation("b", 0.85)], "b")
    rows = [line for line in md.splitlines() if line.startswith("| a ") or line.startswith("| b ")]
    assert len(rows) == 2
    assert "0.8500 (0.830–0.870)" in md
