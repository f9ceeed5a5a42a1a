import numpy as np

from churn_assets.ml.gate import GatePolicy, floor_results, regression_result, reproduction_result

POLICY = GatePolicy()


def test_floors_pass_at_the_boundary_and_fail_below() -> None:
    at = {r.name: r.passed for r in floor_results({"roc_auc": 0.83, "pr_auc": 0.60}, POLICY)}
    below = {r.name: r.passed for r in floor_results({"roc_auc": 0.8299, "pr_auc": 0.5999}, POLICY)}
    assert at == {"roc_auc_floor": True, "pr_auc_floor": True}
    assert below == {"roc_auc_floor": False, "pr_auc_floor": False}


def test_regression_tolerance_against_the_champion() -> None:
    assert regression_result(0.835, None, POLICY).passed
    assert regression_result(0.835, 0.845, POLICY).passed  # exactly the tolerance behind
    assert not regression_result(0.834, 0.845, POLICY).passed
    assert "0.8340 vs champion 0.8450" in regression_result(0.834, 0.845, POLICY).detail


def test_reproduction_needs_equal_probabilities() -> None:
    p = np.linspace(0.01, 0.99, 50)
    assert reproduction_result(p, p.copy(), POLICY).passed
    assert not reproduction_result(p, p + 1e-6, POLICY).passed
    assert not reproduction_result(p, p[:-1], POLICY).passed
