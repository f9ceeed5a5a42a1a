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
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from fastapi import HTTPException

from serving import metrics
from serving.model_store import LoadedModel, redact
from serving.prediction_log import Served
from serving.validation import Batch

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


def risk_bands(proba: np.ndarray, threshold: float) -> list[str]:
    """high: at or over the decision threshold; medium: over half of it; low: the rest."""
    return np.where(proba >= threshold, "high", np.where(proba >= threshold / 2, "medium", "low")).tolist()


@dataclass(frozen=True)
class Arm:
    """A model that scores traffic, under the alias it was loaded from."""

    model: LoadedModel
    alias: str


@dataclass
class _Group:
    """The records one arm scores: their positions in the request, features and probabilities."""

    arm: Arm
    rows: np.ndarray  # positions in the request
    batch: Batch
    matrix: np.ndarray
    proba: np.ndarray | None = None

    def probabilities(self) -> None:
        self.proba = self.arm.model.probabilities(self.matrix)

    @property
    def scores(self) -> np.ndarray:
        """The probabilities computed by `probabilities()`, which must have run."""
        if self.proba is None:
            raise RuntimeError(f"the {self.arm.alias} group was not scored: call probabilities() first")
        return self.proba

    def served(self, request_id: str, endpoint: str, served_at: datetime, *, shadow: bool) -> Served:
        model = self.arm.model
        return Served(
            request_id=request_id,
            served_at=served_at,
            endpoint=endpoint,
            model_name=model.name,
            model_version=model.version,
            model_alias=self.arm.alias,
            shadow=shadow,
            records=self.batch.columns,
            feature_columns=tuple(model.model.feature_columns),
            features=self.matrix,
            probabilities=self.scores,
            threshold=model.model.threshold,
        )


def score(
    batch: Batch,
    champion: Arm,
    challenger: Arm | None,
    *,
    share: float,
    shadow: bool,
    request_id: str,
    endpoint: str,
    served_at: datetime,
    batch_input: bool,
) -> tuple[list[dict[str, Any]], list[Served]]:
    """The answers, in the records' order, and what the prediction log keeps (shadow scores last).

    Column-wise: one feature-SQL call and one `predict_proba` per arm, probabilities counted per request.
    `challenger` is None when it is off (not configured, not loaded, or the champion's own version).
    Raises HTTPException 422 when a record yields non-finite features in the model that answers it.
    """
    groups = [
        _features(batch, arm, rows) for arm, rows in _answering_groups(batch, champion, challenger, share)
    ]
    _refuse_non_finite(groups, batch_input)
    predictions: list[dict[str, Any] | None] = [None] * batch.size
    logged: list[Served] = []
    for group in groups:
        group.probabilities()
        _answer(group, request_id, predictions)
        logged.append(group.served(request_id, endpoint, served_at, shadow=False))
        _count(group, shadow=False)
    if shadow and challenger is not None:
        answered = next((g.rows for g in groups if g.arm is champion), None)
        if answered is not None:
            logged.extend(_shadow(batch, challenger, answered, request_id, endpoint, served_at))
    metrics.BATCH_SIZE.observe(batch.size)
    return predictions, logged  # type: ignore[return-value]  # every position was answered by one group


def _answering_groups(
    batch: Batch, champion: Arm, challenger: Arm | None, share: float
) -> list[tuple[Arm, np.ndarray]]:
    everyone = np.arange(batch.size)
    if challenger is None or share <= 0:
        return [(champion, everyone)]
    to_challenger = np.array([goes_to_challenger(i, share) for i in batch.ids], dtype=bool)
    groups = [(champion, everyone[~to_challenger]), (challenger, everyone[to_challenger])]
    return [(arm, rows) for arm, rows in groups if len(rows)]


def _features(batch: Batch, arm: Arm, rows: np.ndarray) -> _Group:
    subset = batch if len(rows) == batch.size else batch.take(rows.tolist())
    return _Group(arm, rows, subset, arm.model.features(subset.columns))


def _refuse_non_finite(groups: list[_Group], batch_input: bool) -> None:
    finite = [np.isfinite(group.matrix).all(axis=1) for group in groups]
    if all(f.all() for f in finite):
        return
    bad = sorted(int(row) for group, ok in zip(groups, finite, strict=True) for row in group.rows[~ok])
    message = "yields non-finite features: charges outside any range the model knows"
    raise HTTPException(
        422,
        [
            {"loc": ["body", row] if batch_input else ["body"], "msg": message, "type": "value_error"}
            for row in bad
        ],
    )


def _answer(group: _Group, request_id: str, predictions: list[dict[str, Any] | None]) -> None:
    threshold = group.arm.model.model.threshold
    proba = group.scores
    decided = (proba >= threshold).tolist()
    bands = risk_bands(proba, threshold)
    version, alias = group.arm.model.version, group.arm.alias
    contributions = _contributions(group)
    for k, (row, customer, p, churn, band) in enumerate(
        zip(group.rows.tolist(), group.batch.ids, proba.tolist(), decided, bands, strict=True)
    ):
        prediction = {
            "customerID": customer,
            "churn_probability": p,
            "churn": churn,
            "risk_band": band,
            "model_version": version,
            "model_alias": alias,
            "request_id": request_id,
            "top_features": contributions.get(k),
        }
        predictions[row] = prediction


def _contributions(group: _Group) -> dict[int, list[dict[str, Any]]]:
    """The top contributions of the group's records that asked for them, by position in the group."""
    explain = [k for k, wanted in enumerate(group.batch.explain) if wanted]
    if not explain:
        return {}
    try:
        values = group.arm.model.contributions(group.matrix[explain])
    except TypeError as exc:
        raise HTTPException(422, f"explain is not available for this model: {exc}") from exc
    names = group.arm.model.model.feature_columns
    top_features = {}
    for k, row in zip(explain, values, strict=True):
        top = np.argsort(-np.abs(row), kind="stable")[:TOP_FEATURES]
        top_features[k] = [
            {"feature": names[j], "value": float(group.matrix[k, j]), "contribution": float(row[j])}
            for j in top
        ]
    return top_features


def _shadow(
    batch: Batch,
    challenger: Arm,
    rows: np.ndarray,
    request_id: str,
    endpoint: str,
    served_at: datetime,
) -> list[Served]:
    """The challenger's scores of the records the champion answered; nothing (counted) when it fails."""
    try:
        group = _features(batch, challenger, rows)
        if not np.isfinite(group.matrix).all():
            raise ValueError("non-finite features")
        group.probabilities()
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
    return [group.served(request_id, endpoint, served_at, shadow=True)]


def _count(group: _Group, *, shadow: bool) -> None:
    alias, flag = group.arm.alias, "true" if shadow else "false"
    metrics.observe_many(metrics.PROBABILITY.labels(alias, flag), group.scores)
    decided = int((group.scores >= group.arm.model.model.threshold).sum())
    metrics.PREDICTIONS.labels("churn", alias, flag).inc(decided)
    metrics.PREDICTIONS.labels("stay", alias, flag).inc(len(group.rows) - decided)
