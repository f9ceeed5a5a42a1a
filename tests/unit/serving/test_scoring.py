"""Champion and challenger on the same traffic: deterministic A/B routing by customer, and shadow scores that
only the prediction log sees (with fake models: no registry, no feature SQL)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from types import SimpleNamespace

import numpy as np
import pytest
from fastapi import HTTPException

from churn_assets.ml.champion import CHALLENGER_ALIAS, CHAMPION_ALIAS, MODEL_NAME
from serving import metrics
from serving.prediction_log import log_frame
from serving.scoring import BUCKETS, Arm, bucket, goes_to_challenger, score
from serving.validation import Batch


def _ids(n: int, seed: int = 7) -> list[str]:
    """Ids shaped like the data set's (`7590-VHVEG`)."""
    rng = random.Random(seed)
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return [f"{rng.randrange(10_000):04d}-{''.join(rng.choices(letters, k=5))}" for _ in range(n)]


def test_the_bucket_is_stable_across_processes_and_runs() -> None:
    # Pinned: Python's own hash() is salted per process and would send a customer to either model.
    assert bucket("7590-VHVEG") == 7797
    assert bucket("5575-GNVDE") == 3749
    assert all(0 <= bucket(i) < BUCKETS for i in _ids(1000))


@pytest.mark.parametrize(("share", "expected"), [(0.0, 0), (1.0, 10_000)])
def test_share_zero_sends_nobody_and_one_everybody(share: float, expected: int) -> None:
    assert sum(goes_to_challenger(i, share) for i in _ids(10_000)) == expected


@pytest.mark.parametrize("share", [0.05, 0.3, 0.5])
def test_the_share_is_honoured_within_three_points(share: float) -> None:
    routed = sum(goes_to_challenger(i, share) for i in _ids(10_000))
    assert abs(routed / 10_000 - share) <= 0.03


def test_a_customer_always_gets_the_same_model_and_a_larger_share_only_adds_customers() -> None:
    ids = _ids(2000)
    first = [goes_to_challenger(i, 0.3) for i in ids]
    assert first == [goes_to_challenger(i, 0.3) for i in ids]
    assert [goes_to_challenger(f"  {i} ", 0.3) for i in ids] == first  # the trimmed id decides
    small = [goes_to_challenger(i, 0.1) for i in ids]
    assert all(big for s, big in zip(small, first, strict=True) if s)


class FakeModel:
    """Scores tenure with its own offset; `broken` raises on scoring, `nan_for` yields non-finite features."""

    def __init__(self, version: str, offset: float, broken: bool = False, nan_for: str | None = None):
        self.name, self.version, self.offset, self.broken, self.nan_for = (
            MODEL_NAME,
            version,
            offset,
            broken,
            nan_for,
        )
        self.model = SimpleNamespace(threshold=0.5, feature_columns=["tenure_months"])

    def features(self, columns: dict[str, list]) -> np.ndarray:
        values = [
            np.nan if i == self.nan_for else float(t)
            for i, t in zip(columns["customerID"], columns["tenure"], strict=True)
        ]
        return np.array(values).reshape(-1, 1)

    def probabilities(self, matrix: np.ndarray) -> np.ndarray:
        if self.broken:
            raise RuntimeError("challenger exploded")
        return np.clip(matrix[:, 0] / 100 + self.offset, 0, 1)

    def contributions(self, matrix: np.ndarray) -> np.ndarray:
        return matrix


CHAMPION, CHALLENGER = Arm(FakeModel("1", 0.0), CHAMPION_ALIAS), Arm(FakeModel("2", 0.25), CHALLENGER_ALIAS)


def _score(records, challenger=CHALLENGER, share=0.0, shadow=False):
    """Score plain records (as a validated batch); the log rows as the prediction log writes them."""
    batch = Batch(
        {c: [str(r[c]) for r in records] for c in ("customerID", "tenure")},
        [r["explain"] for r in records],
    )
    predictions, served = score(
        batch,
        CHAMPION,
        challenger,
        share=share,
        shadow=shadow,
        request_id="r1",
        endpoint="/batch-predict",
        served_at=datetime.now(UTC),
        batch_input=True,
    )
    return predictions, log_frame(served).to_dicts() if served else []


def _records(n: int) -> list[dict]:
    return [{"customerID": i, "tenure": k % 70, "explain": False} for k, i in enumerate(_ids(n))]


def test_ab_mixes_a_batch_keeps_its_order_and_names_who_answered() -> None:
    records = _records(400)
    predictions, logged = _score(records, share=0.5)
    assert [p["customerID"] for p in predictions] == [r["customerID"] for r in records]
    for record, prediction in zip(records, predictions, strict=True):
        to_challenger = goes_to_challenger(record["customerID"], 0.5)
        assert prediction["model_alias"] == (CHALLENGER_ALIAS if to_challenger else CHAMPION_ALIAS)
        assert prediction["model_version"] == ("2" if to_challenger else "1")
        expected = record["tenure"] / 100 + (0.25 if to_challenger else 0.0)
        assert prediction["churn_probability"] == pytest.approx(expected)
    assert {p["model_alias"] for p in predictions} == {CHAMPION_ALIAS, CHALLENGER_ALIAS}
    assert len(logged) == 400 and not any(row["shadow"] for row in logged)
    by_customer = {row["customer_id"]: row for row in logged}
    for prediction in predictions:
        row = by_customer[prediction["customerID"]]
        assert (row["model_alias"], row["model_version"]) == (
            prediction["model_alias"],
            prediction["model_version"],
        )
        assert row["churn_probability"] == prediction["churn_probability"]


def test_without_a_challenger_everything_is_the_champions() -> None:
    predictions, logged = _score(_records(50), challenger=None, share=0.5, shadow=True)
    assert {(p["model_alias"], p["model_version"]) for p in predictions} == {(CHAMPION_ALIAS, "1")}
    assert len(logged) == 50 and {(r["model_alias"], r["shadow"]) for r in logged} == {
        (CHAMPION_ALIAS, False)
    }


def test_shadow_logs_the_challengers_scores_and_answers_with_the_champion() -> None:
    records = _records(30)
    predictions, logged = _score(records, shadow=True)
    assert {(p["model_alias"], p["model_version"]) for p in predictions} == {(CHAMPION_ALIAS, "1")}
    served = [r for r in logged if not r["shadow"]]
    shadow = [r for r in logged if r["shadow"]]
    assert (
        [r["customer_id"] for r in served]
        == [r["customer_id"] for r in shadow]
        == [r["customerID"] for r in records]
    )
    assert {(r["model_alias"], r["model_version"], r["request_id"]) for r in shadow} == {
        (CHALLENGER_ALIAS, "2", "r1")
    }
    assert [r["churn_probability"] for r in shadow] == pytest.approx(
        [p["churn_probability"] + 0.25 for p in predictions]
    )


def test_shadow_with_a_share_shadows_only_what_the_champion_answered() -> None:
    records = _records(200)
    predictions, logged = _score(records, share=0.3, shadow=True)
    champion_answered = [p["customerID"] for p in predictions if p["model_alias"] == CHAMPION_ALIAS]
    assert [r["customer_id"] for r in logged if r["shadow"]] == champion_answered


@pytest.mark.parametrize(
    "challenger",
    [
        Arm(FakeModel("3", 0.0, broken=True), CHALLENGER_ALIAS),
        Arm(FakeModel("3", 0.0, nan_for="*"), CHALLENGER_ALIAS),
    ],
    ids=["raises", "non-finite"],
)
def test_a_failing_shadow_changes_no_answer_and_is_counted(challenger: Arm) -> None:
    records = _records(20)
    if challenger.model.nan_for:
        challenger.model.nan_for = records[4]["customerID"]
    failures = metrics.SHADOW_FAILURES.labels("/batch-predict")
    before = failures._value.get()
    predictions, logged = _score(records, challenger=challenger, shadow=True)
    assert predictions == _score(records, challenger=None)[0]
    assert len(logged) == 20 and not any(r["shadow"] for r in logged)
    assert failures._value.get() == before + 1


def test_non_finite_features_in_the_answering_model_name_the_request_row() -> None:
    records = _records(300)
    routed = next(k for k, r in enumerate(records) if goes_to_challenger(r["customerID"], 0.5))
    challenger = Arm(FakeModel("2", 0.0, nan_for=records[routed]["customerID"]), CHALLENGER_ALIAS)
    with pytest.raises(HTTPException) as refused:
        _score(records, challenger=challenger, share=0.5)
    assert refused.value.status_code == 422
    assert [d["loc"] for d in refused.value.detail] == [["body", routed]]


def test_explain_uses_the_model_that_answered() -> None:
    records = [{**r, "explain": True} for r in _records(40)]
    predictions, _ = _score(records, share=0.5)
    assert all(p["top_features"][0]["feature"] == "tenure_months" for p in predictions)
    assert {p["model_alias"] for p in predictions} == {CHAMPION_ALIAS, CHALLENGER_ALIAS}
