"""Scoring raw records with the champion and, when configured, the challenger: A/B share and shadow.

* A/B: a customer goes to the challenger when a stable hash of the trimmed `customerID` falls in the first
  `share` of BUCKETS buckets, so the same customer always gets the same model (in /predict and in every
  /batch-predict; a batch may mix both models, answers keep the records' order).
* Shadow: the challenger also scores the records the champion answered; its scores go only to the
  prediction log (rows with `shadow` true), and nothing it does (an error, non-finite features) changes the
  answer or fails the request: it is logged and counted.

Every prediction and every log row names the alias and version that scored it. Without a challenger this
is the champion's path alone: no hashing, no second model.
"""

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from fastapi import HTTPException

from serving import metrics
from serving.model_store import LoadedModel, redact

log = logging.getLogger(__name__)

BUCKETS = 10_000
TOP_FEATURES = 5


def bucket(customer_id: str) -> int:
    """The customer's bucket in [0, BUCKETS): the same in every process and run (not Python's `hash`)."""
    digest = hashlib.blake2b(customer_id.strip(" ").encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def goes_to_challenger(customer_id: str | None, share: float) -> bool:
    """True for the customers of the challenger's share (`share` of the buckets, the lowest ones)."""
    if share <= 0 or not customer_id:
        return False
    return bucket(customer_id) < round(share * BUCKETS)


def risk_band(probability: float, threshold: float) -> str:
    """high: at or over the decision threshold; medium: over half of it; low: the rest."""
    if probability >= threshold:
        return "high"
    return "medium" if probability >= threshold / 2 else "low"


@dataclass(frozen=True)
class Arm:
    """A model that scores traffic, under the alias it was loaded from."""

    model: LoadedModel
    alias: str


@dataclass
class _Scored:
    arm: Arm
    rows: list[int]  # the records' indices in the request
    matrix: np.ndarray
    ids: list[str | None]
    proba: np.ndarray | None = None
    values: list[float] | None = None  # proba as Python floats

    def probabilities(self) -> None:
        self.proba = self.arm.model.probabilities(self.matrix)
        self.values = self.proba.tolist()


def score(
    records: list[dict[str, Any]],
    champion: Arm,
    challenger: Arm | None,
    *,
    share: float,
    shadow: bool,
    request_id: str,
    endpoint: str,
    served_at: datetime,
    batch_input: bool,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The answers, in the records' order, and the prediction-log rows (shadow rows last).

    `challenger` is None when it is off (not configured, not loaded, or the champion's own version).
    Raises HTTPException 422 when a record yields non-finite features in the model that answers it.
    """
    groups = _answering_groups(records, champion, challenger, share)
    scored = [_features(records, arm, rows) for arm, rows in groups]
    _refuse_non_finite(scored, batch_input)
    predictions: list[dict[str, Any] | None] = [None] * len(records)
    logged: list[dict[str, Any]] = []
    for group in scored:
        group.probabilities()
        contributions = _contributions(records, group)
        threshold = group.arm.model.model.threshold
        for k, i in enumerate(group.rows):
            p = group.values[k]
            prediction = {
                "customerID": records[i].get("customerID"),
                "churn_probability": p,
                "churn": p >= threshold,
                "risk_band": risk_band(p, threshold),
                "model_version": group.arm.model.version,
                "model_alias": group.arm.alias,
                "request_id": request_id,
            }
            if k in contributions:
                prediction["top_features"] = contributions[k]
            predictions[i] = prediction
        logged.extend(_log_rows(records, group, request_id, endpoint, served_at, shadow=False))
        _count(group, shadow=False)
    if shadow and challenger is not None:
        answered_by_champion = next((rows for arm, rows in groups if arm is champion), [])
        logged.extend(
            _shadow_rows(records, challenger, answered_by_champion, request_id, endpoint, served_at)
        )
    metrics.BATCH_SIZE.observe(len(records))
    return predictions, logged  # type: ignore[return-value]  # every index was answered by one group


def _answering_groups(
    records: list[dict[str, Any]], champion: Arm, challenger: Arm | None, share: float
) -> list[tuple[Arm, list[int]]]:
    everyone = list(range(len(records)))
    if challenger is None or share <= 0:
        return [(champion, everyone)]
    to_challenger = [goes_to_challenger(r.get("customerID"), share) for r in records]
    groups = [
        (champion, [i for i in everyone if not to_challenger[i]]),
        (challenger, [i for i in everyone if to_challenger[i]]),
    ]
    return [(arm, rows) for arm, rows in groups if rows]


def _features(records: list[dict[str, Any]], arm: Arm, rows: list[int]) -> _Scored:
    subset = records if len(rows) == len(records) else [records[i] for i in rows]
    ids, matrix = arm.model.features(subset)
    return _Scored(arm, rows, matrix, ids)


def _refuse_non_finite(scored: list[_Scored], batch_input: bool) -> None:
    if all(np.isfinite(group.matrix).all() for group in scored):
        return
    bad = sorted(
        {group.rows[int(k)] for group in scored for k in np.argwhere(~np.isfinite(group.matrix))[:, 0]}
    )
    message = "yields non-finite features: charges outside any range the model knows"
    raise HTTPException(
        422,
        [
            {"loc": ["body", row] if batch_input else ["body"], "msg": message, "type": "value_error"}
            for row in bad
        ],
    )


def _contributions(records: list[dict[str, Any]], group: _Scored) -> dict[int, list[dict[str, Any]]]:
    """The top contributions of the group's records that asked for them, by position in the group."""
    explain = [k for k, i in enumerate(group.rows) if records[i].get("explain")]
    if not explain:
        return {}
    try:
        values = group.arm.model.contributions(group.matrix[explain])
    except TypeError as exc:
        raise HTTPException(422, f"explain is not available for this model: {exc}") from exc
    names = group.arm.model.model.feature_columns
    top_features = {}
    for k, row in zip(explain, values, strict=True):
        top = sorted(range(len(row)), key=lambda j: -abs(row[j]))[:TOP_FEATURES]
        top_features[k] = [
            {"feature": names[j], "value": float(group.matrix[k, j]), "contribution": float(row[j])}
            for j in top
        ]
    return top_features


def _log_rows(
    records: list[dict[str, Any]],
    group: _Scored,
    request_id: str,
    endpoint: str,
    served_at: datetime,
    *,
    shadow: bool,
) -> list[dict[str, Any]]:
    model = group.arm.model
    threshold, columns = model.model.threshold, model.model.feature_columns
    return [
        {
            "request_id": request_id,
            "served_at": served_at,
            "endpoint": endpoint,
            "model_name": model.name,
            "model_version": model.version,
            "model_alias": group.arm.alias,
            "shadow": shadow,
            "customer_id": group.ids[k],
            "record": json.dumps({key: v for key, v in records[i].items() if key != "explain"}),
            "features": json.dumps(dict(zip(columns, group.matrix[k].tolist(), strict=True))),
            "churn_probability": group.values[k],
            "churn": group.values[k] >= threshold,
        }
        for k, i in enumerate(group.rows)
    ]


def _shadow_rows(
    records: list[dict[str, Any]],
    challenger: Arm,
    rows: list[int],
    request_id: str,
    endpoint: str,
    served_at: datetime,
) -> list[dict[str, Any]]:
    """The challenger's scores of the records the champion answered; nothing (counted) when it fails."""
    if not rows:
        return []
    try:
        group = _features(records, challenger, rows)
        if not np.isfinite(group.matrix).all():
            raise ValueError("non-finite features")
        group.probabilities()
        logged = _log_rows(records, group, request_id, endpoint, served_at, shadow=True)
    except Exception as exc:  # the answer is the champion's: a shadow failure must not touch it
        metrics.SHADOW_FAILURES.labels(endpoint).inc()
        log.warning(
            "shadow scoring by %s v%s failed for request %s: %s: %s",
            challenger.alias,
            challenger.model.version,
            request_id,
            type(exc).__name__,
            redact(str(exc)),
        )
        return []
    _count(group, shadow=True)
    return logged


def _count(group: _Scored, *, shadow: bool) -> None:
    alias, flag = group.arm.alias, "true" if shadow else "false"
    threshold = group.arm.model.model.threshold
    histogram = metrics.PROBABILITY.labels(alias, flag)
    for p in group.proba:
        histogram.observe(p)
    decided = int((group.proba >= threshold).sum())
    metrics.PREDICTIONS.labels("churn", alias, flag).inc(decided)
    metrics.PREDICTIONS.labels("stay", alias, flag).inc(len(group.rows) - decided)
