import json
from pathlib import Path

import numpy as np

from churn_assets.ml.metrics import lift_table
from churn_assets.ml.plots import write_comparison_plots
from churn_assets.ml.report import FamilyEvaluation, markdown_summary, write_report


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
        metrics,
        (auc - 0.02, auc + 0.02),
        lift_table(y, p),
        [("tenure_months", 0.1)],
    )


def test_report_files_hold_every_family_and_the_choice(tmp_path: Path) -> None:
    evaluations = [_evaluation("logistic_regression", 0.84), _evaluation("xgboost", 0.85)]
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 100)
    plots = write_comparison_plots(y, {"a": rng.random(100)}, tmp_path / "plots")
    html_path, json_path = write_report(tmp_path, evaluations, "xgboost", plots, {"data_version": "abc"})
    payload = json.loads(json_path.read_text())
    assert payload["chosen"] == "xgboost"
    assert payload["families"]["logistic_regression"]["test"]["roc_auc"] == 0.84
    assert len(payload["families"]["xgboost"]["lift"]) == 10
    page = html_path.read_text()
    assert page.count("data:image/png;base64,") == len(plots)
    assert "logistic_regression" in page and "abc" in page


def test_markdown_summary_has_one_row_per_family() -> None:
    md = markdown_summary([_evaluation("a", 0.84), _evaluation("b", 0.85)], "b")
    rows = [line for line in md.splitlines() if line.startswith("| a ") or line.startswith("| b ")]
    assert len(rows) == 2
    assert "0.8500 (0.830–0.870)" in md
