import numpy as np

from churn_assets.ml.gate import GatePolicy, floor_results, reproduction_result

POLICY = GatePolicy()


def test_floors_pass_at_the_boundary_and_fail_below() -> None:
    floor = {"roc_auc": POLICY.min_roc_auc, "pr_auc": POLICY.min_pr_auc}
    at = {r.name: r.passed for r in floor_results(floor, POLICY)}
    below = {r.name: r.passed for r in floor_results({k: v - 1e-4 for k, v in floor.items()}, POLICY)}
    assert at == {"roc_auc_floor": True, "pr_auc_floor": True}
    assert below == {"roc_auc_floor": False, "pr_auc_floor": False}


def test_reproduction_needs_equal_probabilities() -> None:
    p = np.linspace(0.01, 0.99, 50)
    assert reproduction_result(p, p.copy(), POLICY).passed
    assert not reproduction_result(p, p + 1e-6, POLICY).passed
    assert not reproduction_result(p, p[:-1], POLICY).passed
