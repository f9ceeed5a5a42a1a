import numpy as np
import pytest

from churn_assets.ml.threshold import cost_based_threshold, expected_net_value

ECONOMICS = {"offer_cost": 1.0, "saved_customer_value": 10.0, "offer_success_rate": 0.5}


def test_obvious_cut_between_churners_and_stayers() -> None:
    y = np.array([1, 1, 1, 0, 0, 0])
    proba = np.array([0.95, 0.9, 0.8, 0.4, 0.35, 0.1])

    by_value = cost_based_threshold(y, proba, **ECONOMICS)

    assert by_value.threshold == 0.8
    assert by_value.value == pytest.approx(3 * 10.0 * 0.5 - 3 * 1.0)
    assert by_value.contact_rate == pytest.approx(0.5)
    assert by_value.value == expected_net_value(y, proba, by_value.threshold, **ECONOMICS)


def test_cheap_offers_widen_the_campaign() -> None:
    # Rows 4-5 churn at 1 in 2: worth contacting iff 0.5 * V * s > C.
    y = np.array([1, 1, 1, 0, 0, 0])
    proba = np.array([0.9, 0.8, 0.5, 0.5, 0.2, 0.1])
    costly = cost_based_threshold(y, proba, offer_cost=3.0, saved_customer_value=10.0, offer_success_rate=0.5)
    cheap = cost_based_threshold(y, proba, offer_cost=1.0, saved_customer_value=10.0, offer_success_rate=0.5)
    assert costly.threshold == 0.8
    assert cheap.threshold == 0.5  # ties are contacted together
    assert cheap.contact_rate == pytest.approx(4 / 6)


def test_nobody_is_contacted_when_no_offer_pays() -> None:
    y = np.array([1, 0, 1, 0])
    proba = np.array([0.9, 0.7, 0.6, 0.2])
    choice = cost_based_threshold(y, proba, offer_cost=6.0, saved_customer_value=10.0, offer_success_rate=0.5)
    assert choice.threshold > proba.max()
    assert (choice.value, choice.contact_rate) == (0.0, 0.0)


@pytest.mark.parametrize(
    ("offer_cost", "saved_customer_value", "offer_success_rate"), [(1, 8, 0.5), (3, 10, 0.6)]
)
def test_empirical_rule_lands_near_closed_form_on_calibrated_scores(
    offer_cost: float, saved_customer_value: float, offer_success_rate: float
) -> None:
    rng = np.random.default_rng(0)
    proba = rng.beta(2, 3, size=200_000)
    y = (rng.uniform(size=proba.size) < proba).astype(int)  # calibrated by construction

    choice = cost_based_threshold(y, proba, offer_cost, saved_customer_value, offer_success_rate)

    closed_form = offer_cost / (saved_customer_value * offer_success_rate)  # C_FP / (C_FP + C_FN)
    assert choice.threshold == pytest.approx(closed_form, abs=0.03)


def test_invalid_economics_are_rejected() -> None:
    y, proba = np.array([0, 1]), np.array([0.3, 0.7])
    with pytest.raises(ValueError, match="offer_success_rate"):
        cost_based_threshold(y, proba, offer_cost=1.0, saved_customer_value=10.0, offer_success_rate=0.0)
