"""Decision rules turning churn probabilities into a contact / do-not-contact cut-off.

Primary rule — expected net value of a retention campaign. Contacting a customer costs
`offer_cost` (C); contacting a churner keeps them with probability `offer_success_rate` (s),
worth `saved_customer_value` (V). Contacting everyone with p >= t on a scored set is worth

    value(t) = V·s·TP(t) − C·(TP(t) + FP(t)),

and the rule picks the observed score t maximising it (or nobody, when no t is worth it).

For calibrated probabilities the optimum has a closed form. Contacting a customer with churn
probability p is worth p·V·s − C in expectation, positive iff p > C / (V·s). In the usual cost
terms, with C_FP = C (an offer wasted on a loyal customer) and C_FN = V·s − C (the net value
forgone by not contacting a churner),

    t* = C_FP / (C_FP + C_FN) = C / (V·s).

The empirical rule is used rather than t* because it stays right when calibration is imperfect.

The rule shares the convention of `metrics.predict_at`: churn iff p >= threshold.
"""

from dataclasses import dataclass
from typing import Literal

import numpy as np

ThresholdRule = Literal["expected_net_value"]


@dataclass(frozen=True)
class ThresholdChoice:
    threshold: float
    rule: ThresholdRule
    # The rule's objective at `threshold`: total net value on the scored set, or F1.
    value: float
    contact_rate: float


def _counts_by_threshold(y_true: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each distinct score t, highest first: (t, TP, FP) when contacting everyone with p >= t."""
    y = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(proba, dtype=np.float64)
    if len(y) != len(p) or len(y) == 0:
        raise ValueError("y_true and proba must be non-empty and of equal length")
    order = np.argsort(-p, kind="stable")
    p_sorted, y_sorted = p[order], y[order]
    last_of_ties = np.r_[np.flatnonzero(np.diff(p_sorted)), len(p_sorted) - 1]
    tp = np.cumsum(y_sorted)[last_of_ties]
    fp = np.cumsum(1 - y_sorted)[last_of_ties]
    return p_sorted[last_of_ties], tp, fp


def expected_net_value(
    y_true: np.ndarray,
    proba: np.ndarray,
    threshold: float,
    *,
    offer_cost: float,
    saved_customer_value: float,
    offer_success_rate: float,
) -> float:
    """Net value of contacting everyone with p >= threshold, in the units of the inputs."""
    contacted = np.asarray(proba) >= threshold
    churners_contacted = int(np.asarray(y_true)[contacted].sum())
    benefit = saved_customer_value * offer_success_rate
    return float(benefit * churners_contacted - offer_cost * contacted.sum())


def cost_based_threshold(
    y_true: np.ndarray,
    proba: np.ndarray,
    offer_cost: float,
    saved_customer_value: float,
    offer_success_rate: float,
) -> ThresholdChoice:
    """Cut-off maximising expected net value on a scored set (training: the validation split)."""
    if offer_cost < 0 or saved_customer_value <= 0 or not 0 < offer_success_rate <= 1:
        raise ValueError("need offer_cost >= 0, saved_customer_value > 0 and 0 < offer_success_rate <= 1")
    thresholds, tp, fp = _counts_by_threshold(y_true, proba)
    values = saved_customer_value * offer_success_rate * tp - offer_cost * (tp + fp)
    best = int(np.argmax(values))  # first maximum: the highest cut-off, i.e. the fewest contacts
    if values[best] <= 0:
        return ThresholdChoice(
            threshold=float(np.nextafter(thresholds[0], np.inf)),
            rule="expected_net_value",
            value=0.0,
            contact_rate=0.0,
        )
    return ThresholdChoice(
        threshold=float(thresholds[best]),
        rule="expected_net_value",
        value=float(values[best]),
        contact_rate=float((tp[best] + fp[best]) / (tp[-1] + fp[-1])),
    )
