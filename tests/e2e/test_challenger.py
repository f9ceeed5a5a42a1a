"""End-to-end: the challenger next to the champion — an A/B share by customer, shadow scoring, and the
challenger alias followed as it moves (real servers on the materialized installation's registry)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import polars as pl
import pytest
from mlflow import MlflowClient

from churn_assets.ml.champion import CHALLENGER_ALIAS, CHAMPION_ALIAS, MODEL_NAME, version_by_alias
from churn_assets.ml.pyfunc import REQUEST_RELATION
from churn_assets.monitoring.assets import served_records
from serving.scoring import goes_to_challenger
from tests.conftest import Installation
from tests.e2e.conftest import Server, logged_rows, metric, running_server, until


@pytest.fixture(scope="module")
def registry(materialized: Installation) -> Iterator[MlflowClient]:
    """The installation's registry; the challenger alias is given back as it was when the module ends."""
    # create_model_version resolves a `models:/m-…` source through the global tracking URI, not the client's.
    mlflow.set_tracking_uri(materialized.settings.mlflow_tracking_uri)
    client = MlflowClient(materialized.settings.mlflow_tracking_uri)
    before = version_by_alias(client, MODEL_NAME, CHALLENGER_ALIAS)
    yield client
    if before is None:
        client.delete_registered_model_alias(MODEL_NAME, CHALLENGER_ALIAS)
    else:
        client.set_registered_model_alias(MODEL_NAME, CHALLENGER_ALIAS, before.version)


def _new_challenger(client: MlflowClient) -> str:
    """A new version of the champion's run (same model, another version number) made the challenger."""
    champion = client.get_model_version_by_alias(MODEL_NAME, CHAMPION_ALIAS)
    version = client.create_model_version(
        MODEL_NAME, source=champion.source, run_id=champion.run_id, tags=dict(champion.tags)
    ).version
    client.set_registered_model_alias(MODEL_NAME, CHALLENGER_ALIAS, version)
    return str(version)


def _info(server: Server) -> dict:
    with server.client() as http:
        return http.get("/model-info").json()


def _challenger_serves(server: Server, version: str | None, workers: int = 4) -> bool:
    """Every worker (of both APIs) scores with this challenger version, or (None) with no challenger."""
    challenger = _info(server)["challenger"]
    active = workers if version else 0
    return challenger["versions_served"] == ([version] if version else []) and (
        challenger["workers"],
        challenger["active_workers"],
    ) == (workers, active)


def test_ab_share_routes_customers_steadily_and_follows_the_alias(
    registry: MlflowClient, materialized: Installation, csv_records, tmp_path: Path
) -> None:
    champion = str(registry.get_model_version_by_alias(MODEL_NAME, CHAMPION_ALIAS).version)
    challenger = _new_challenger(registry)
    records = csv_records[:300]
    expected = {r["customerID"]: goes_to_challenger(r["customerID"], 0.5) for r in records}
    with running_server(materialized.settings.home, tmp_path, CHURN_CHALLENGER_SHARE="0.5") as server:
        assert until(lambda: _challenger_serves(server, challenger), 30)  # both workers of both APIs
        info = _info(server)
        assert (info["version"], info["challenger_share"], info["shadow_challenger"]) == (
            champion,
            0.5,
            False,
        )
        assert info["challenger"]["active"] and info["challenger"]["version"] == challenger

        with server.client() as http:
            before = http.get("/metrics").text
            batch = http.post("/batch-predict", json=records).json()
            singles = [http.post("/predict", json=r).json() for r in records[:40] for _ in range(2)]
            after = http.get("/metrics").text
        answered = {p["customerID"]: (p["model_alias"], p["model_version"]) for p in batch["predictions"]}
        assert [p["customerID"] for p in batch["predictions"]] == [r["customerID"] for r in records]
        assert answered == {
            c: (CHALLENGER_ALIAS, challenger) if to_challenger else (CHAMPION_ALIAS, champion)
            for c, to_challenger in expected.items()
        }
        assert 0.4 < sum(expected.values()) / len(expected) < 0.6
        assert batch["model_version"] == champion
        # A customer gets the same model in /predict, on either worker, every time, as in the batch.
        assert [(s["model_alias"], s["model_version"]) for s in singles] == [
            answered[r["customerID"]] for r in records[:40] for _ in range(2)
        ]

        rows = logged_rows(server, batch["request_id"])
        assert rows.height == 300 and not rows["shadow"].any()
        assert {
            (r["customer_id"], r["model_alias"], r["model_version"]) for r in rows.iter_rows(named=True)
        } == {(c, *answered[c]) for c in answered}

        delta = lambda **labels: (  # noqa: E731
            metric(after, "churn_predictions_total", **labels)
            - metric(before, "churn_predictions_total", **labels)
        )
        to_challenger = sum(expected.values()) + 2 * sum(expected[r["customerID"]] for r in records[:40])
        assert delta(alias=CHALLENGER_ALIAS, shadow="false") == to_challenger
        assert delta(alias=CHAMPION_ALIAS, shadow="false") == 300 + 80 - to_challenger
        assert metric(after, "churn_model_version_info", alias=CHALLENGER_ALIAS, version=challenger) == 4

        # The alias moves: every worker follows within a few poll intervals (CHURN_MODEL_POLL_S=1).
        moved_at = time.monotonic()
        newer = _new_challenger(registry)
        assert until(lambda: _challenger_serves(server, newer), 30)
        followed_s = time.monotonic() - moved_at
        routed = next(r for r in records if expected[r["customerID"]])
        with server.client() as http:
            assert http.post("/predict", json=routed).json()["model_version"] == newer
        print(f"challenger alias followed by all workers in {followed_s:.1f} s")

        # The challenger is the champion's version (a promotion): everything goes to the champion.
        registry.set_registered_model_alias(MODEL_NAME, CHALLENGER_ALIAS, champion)
        assert until(lambda: _challenger_serves(server, None), 30)
        off = _info(server)["challenger"]
        assert not off["active"] and off["off_reasons"] == [
            f"{MODEL_NAME}@{CHALLENGER_ALIAS} is the champion's version v{champion}"
        ]
        # No challenger alias at all: the same, and /model-info says so.
        registry.delete_registered_model_alias(MODEL_NAME, CHALLENGER_ALIAS)
        assert until(
            lambda: (
                _info(server)["challenger"]["off_reasons"] == [f"{MODEL_NAME}@{CHALLENGER_ALIAS} is not set"]
            ),
            30,
        )
        with server.client() as http:
            batch = http.post("/batch-predict", json=records[:50]).json()
            health = http.get("/health").json()
        assert {(p["model_alias"], p["model_version"]) for p in batch["predictions"]} == {
            (CHAMPION_ALIAS, champion)
        }
        assert health == {"status": "ok"}  # the challenger's absence is not a fault of the service


def test_shadow_logs_the_challenger_and_answers_with_the_champion(
    registry: MlflowClient, materialized: Installation, csv_records, tmp_path: Path
) -> None:
    champion = str(registry.get_model_version_by_alias(MODEL_NAME, CHAMPION_ALIAS).version)
    challenger = _new_challenger(registry)
    env = {"CHURN_SHADOW_CHALLENGER": "true", "CHURN_SERVE_WORKERS": "1"}
    with running_server(materialized.settings.home, tmp_path, **env) as server:
        assert until(lambda: _challenger_serves(server, challenger, workers=2), 30)
        assert _info(server)["shadow_challenger"] is True
        with server.client() as http:
            before = http.get("/metrics").text
            batch = http.post("/batch-predict", json=csv_records[:100]).json()
            single = http.post("/predict", json=csv_records[200]).json()
            after = http.get("/metrics").text
        # Read while the server runs: its workers flush the log every CHURN_LOG_FLUSH_S.
        requests = [
            (batch["request_id"], [r["customerID"] for r in csv_records[:100]], batch["predictions"]),
            (single["request_id"], [csv_records[200]["customerID"]], [single]),
        ]
        logged = [
            (logged_rows(server, request_id), customers, answers)
            for request_id, customers, answers in requests
        ]
        folder = server.home / "serving" / "predictions"
        log = pl.concat(
            [pl.read_parquet(f) for f in sorted(folder.glob("date=*/part-*.parquet"))], how="diagonal_relaxed"
        )

    assert {(p["model_alias"], p["model_version"]) for p in [*batch["predictions"], single]} == {
        (CHAMPION_ALIAS, champion)
    }
    for rows, customers, answers in logged:
        served, shadow = rows.filter(~pl.col("shadow")), rows.filter(pl.col("shadow"))
        assert served["customer_id"].to_list() == customers
        assert set(served["model_alias"]) == {CHAMPION_ALIAS} and set(served["model_version"]) == {champion}
        assert served["churn_probability"].to_list() == [a["churn_probability"] for a in answers]
        assert sorted(shadow["customer_id"].to_list()) == sorted(customers)  # the same request's customers
        assert set(shadow["model_alias"]) == {CHALLENGER_ALIAS}
        assert set(shadow["model_version"]) == {challenger}
    delta = lambda **labels: (  # noqa: E731
        metric(after, "churn_predictions_total", **labels)
        - metric(before, "churn_predictions_total", **labels)
    )
    assert delta(alias=CHALLENGER_ALIAS, shadow="true") == 101
    assert delta(alias=CHAMPION_ALIAS, shadow="false") == 101
    assert metric(after, "churn_shadow_failures_total") == 0

    # Drift monitoring reads what was answered: every row of the log but the shadow ones.
    answered = log.filter(pl.col("shadow").fill_null(False).not_())
    assert 0 < answered.height < log.height
    assert len(served_records(str(folder), f"select * from {REQUEST_RELATION}", 10**9)) == answered.height
