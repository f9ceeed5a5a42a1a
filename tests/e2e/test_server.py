"""End-to-end: the prediction server as a client sees it."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import mlflow
import numpy as np
import polars as pl
import pytest
from mlflow import MlflowClient

from churn_assets.ml.champion import CHALLENGER_ALIAS, CHAMPION_ALIAS, MODEL_NAME
from churn_assets.ml.matrix import feature_matrix
from tests.conftest import Installation
from tests.e2e.conftest import Server, logged_rows, metric, running_server, until


def test_single_record_from_the_csv_is_scored(server: Server, csv_records) -> None:
    with server.client() as http:
        response = http.post("/predict", json=csv_records[0])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["customerID"] == csv_records[0]["customerID"]
    assert 0 < body["churn_probability"] < 1
    assert body["risk_band"] in {"low", "medium", "high"}
    assert body["model_version"] == "1" and body["model_alias"] == CHAMPION_ALIAS
    assert len(body["request_id"]) == 32
    assert body["top_features"] is None


def test_blank_and_null_total_charges_are_accepted(server: Server, csv_records) -> None:
    new_customer = next(r for r in csv_records if not r["TotalCharges"].strip())
    with server.client() as http:
        blank = http.post("/predict", json=new_customer).json()
        null = http.post("/predict", json={**new_customer, "TotalCharges": None}).json()
    assert blank["churn_probability"] == pytest.approx(null["churn_probability"], abs=1e-12)


def test_explain_adds_top_contributions(server: Server, csv_records) -> None:
    with server.client() as http:
        body = http.post("/predict?explain=true", json=csv_records[3]).json()
        batch = http.post("/batch-predict?explain=true", json=csv_records[:3]).json()
    assert len(body["top_features"]) == 5
    magnitudes = [abs(f["contribution"]) for f in body["top_features"]]
    assert magnitudes == sorted(magnitudes, reverse=True)
    assert all(len(p["top_features"]) == 5 for p in batch["predictions"])


def test_batch_as_json_and_as_csv_agree(server: Server, real_csv: Path, csv_records) -> None:
    lines = real_csv.read_text().splitlines()[:51]
    with server.client() as http:
        as_json = http.post("/batch-predict", json=csv_records[:50]).json()
        as_csv = http.post(
            "/batch-predict", content="\n".join(lines), headers={"content-type": "text/csv"}
        ).json()
    assert [p["customerID"] for p in as_csv["predictions"]] == [r["customerID"] for r in csv_records[:50]]
    assert [p["churn_probability"] for p in as_json["predictions"]] == pytest.approx(
        [p["churn_probability"] for p in as_csv["predictions"]], abs=1e-12
    )


def test_parity_all_rows_served_equal_the_offline_pipeline(
    server: Server, materialized: Installation, csv_records
) -> None:
    """All 7,043 real rows through /batch-predict: the features the server computed (prediction log) equal
    the dbt mart, and the probabilities equal the champion pipeline on the mart's features."""
    with server.client() as http:
        response = http.post("/batch-predict", json=csv_records)
    assert response.status_code == 200, response.text[:500]
    served = {p["customerID"]: p["churn_probability"] for p in response.json()["predictions"]}
    request_id = response.json()["request_id"]
    assert len(served) == 7043

    mlflow.set_tracking_uri(materialized.settings.mlflow_tracking_uri)
    champion = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@{CHAMPION_ALIAS}").unwrap_python_model()
    with duckdb.connect(str(materialized.settings.duckdb_path), read_only=True) as conn:
        mart = conn.sql("select * from marts.customer_features where customer_id not like 'NEW-%'").pl()
    mart = mart.filter(pl.col("customer_id").is_in(list(served)))
    assert mart.height == 7043
    offline = champion.estimator.predict_proba(feature_matrix(mart, champion.feature_columns))[:, 1]
    online = np.array([served[c] for c in mart["customer_id"]])
    np.testing.assert_allclose(online, offline, rtol=0, atol=1e-9)

    logged = logged_rows(server, request_id)
    assert logged.height == 7043
    features = pl.DataFrame([json.loads(f) for f in logged["features"]])
    features = features.with_columns(customer_id=logged["customer_id"]).sort("customer_id")
    expected = mart.sort("customer_id").select("customer_id", *champion.feature_columns)
    for column in champion.feature_columns:
        np.testing.assert_allclose(
            features[column].to_numpy(),
            expected[column].cast(pl.Float64).to_numpy(),
            rtol=0,
            atol=1e-9,
            err_msg=column,
        )


def test_prediction_log_holds_what_was_served(server: Server, csv_records) -> None:
    with server.client() as http:
        body = http.post("/predict", json=csv_records[5]).json()
    row = logged_rows(server, body["request_id"]).row(0, named=True)
    assert (row["model_version"], row["model_alias"], row["shadow"]) == ("1", CHAMPION_ALIAS, False)
    assert row["endpoint"] == "/predict"
    assert row["customer_id"] == csv_records[5]["customerID"]
    assert row["churn_probability"] == body["churn_probability"]
    assert row["churn"] == body["churn"]
    assert json.loads(row["record"])["Contract"] == csv_records[5]["Contract"]


@pytest.mark.parametrize(
    ("change", "field", "status"),
    [
        ({"Contract": "Weekly"}, "Contract", 422),
        ({"tenure": "-1"}, "tenure", 422),
        ({"MonthlyCharges": "abc"}, "MonthlyCharges", 422),
        ({"TotalCharges": "-5"}, "TotalCharges", 422),
        ({"SeniorCitizen": 2}, "SeniorCitizen", 422),
        ({"favourite_colour": "blue"}, "favourite_colour", 422),
        ({"gender": None}, "gender", 422),
    ],
)
def test_a_bad_record_names_the_field(server: Server, csv_records, change, field, status) -> None:
    with server.client() as http:
        response = http.post("/predict", json={**csv_records[0], **change})
    assert response.status_code == status
    assert field in response.json()["message"]


def test_a_bad_row_in_a_batch_names_the_row_and_field(server: Server, csv_records) -> None:
    rows = [*csv_records[:3], {**csv_records[3], "InternetService": "Cable"}]
    with server.client() as http:
        response = http.post("/batch-predict", json=rows)
    assert response.status_code == 422
    assert "row 3, field InternetService" in response.json()["message"]


def test_malformed_bodies_get_clear_4xx_and_no_worker_dies(server: Server, csv_records) -> None:
    with server.client() as http:
        assert (
            http.post(
                "/predict", content="{not json", headers={"content-type": "application/json"}
            ).status_code
            == 422
        )
        assert http.post("/batch-predict", json=[]).status_code == 422
        assert (
            http.post("/predict", content="hello", headers={"content-type": "text/plain"}).status_code == 415
        )
        bad_csv = http.post("/batch-predict", content="a,b\n1,2,3\n", headers={"content-type": "text/csv"})
        assert bad_csv.status_code == 400
        assert http.post("/predict", json=[csv_records[0]]).status_code == 422
        assert http.get("/health").status_code == 200
        assert http.post("/predict", json=csv_records[0]).status_code == 200


def test_model_info_describes_the_served_model(server: Server) -> None:
    with server.client() as http:
        info = http.get("/model-info").json()
    assert info["name"] == MODEL_NAME and info["version"] == "1"
    assert info["test_metrics"]["test_roc_auc"] >= 0.83
    assert 0 < info["threshold"] < 1
    assert "tenure_months" in info["features"]
    assert info["data_version"] and info["run_id"] and info["trained_at"]
    assert info["alias"] == CHAMPION_ALIAS  # no challenger configured: none followed, none loaded
    assert (info["challenger_share"], info["shadow_challenger"], info["challenger"]) == (0, False, None)


def test_metrics_add_up_across_two_workers(server: Server, csv_records) -> None:
    with server.client() as http:
        before = http.get("/metrics").text
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda r: http.post("/predict", json=r).status_code, csv_records[:40]))
        http.post("/predict", json={**csv_records[0], "gender": "?"})
        after = http.get("/metrics").text
    assert statuses == [200] * 40
    delta = lambda name, **labels: metric(after, name, **labels) - metric(before, name, **labels)  # noqa: E731
    assert delta("churn_requests_total", endpoint="/predict", status="200") == 40
    assert delta("churn_requests_total", endpoint="/predict", status="422") == 1
    assert delta("churn_request_latency_seconds_count", endpoint="/predict") == 41
    assert delta("churn_batch_size_count") == 40
    assert delta("churn_prediction_probability_count") == 40
    assert delta("churn_predictions_total", alias=CHAMPION_ALIAS, shadow="false") == 40
    assert delta("churn_predictions_total", alias=CHALLENGER_ALIAS) == 0
    assert metric(after, "churn_model_version_info", version="1") == 4  # 2 workers x 2 APIs
    worker_pids = {
        line.split('pid="')[1].split('"')[0]
        for line in after.splitlines()
        if line.startswith("churn_model_version_info")
    }
    assert len(worker_pids) == 4


def test_hot_swap_under_load_fails_no_request(
    server: Server, materialized: Installation, csv_records
) -> None:
    client = MlflowClient(materialized.settings.mlflow_tracking_uri)
    v1 = client.get_model_version(MODEL_NAME, "1")
    v2 = client.create_model_version(MODEL_NAME, source=v1.source, run_id=v1.run_id, tags=dict(v1.tags))
    broken = client.create_model_version(
        MODEL_NAME, source=str(server.home / "no-such-model"), run_id=v1.run_id
    )
    stop = time.monotonic() + 1e9
    results: list[tuple[int, str]] = []

    def hammer() -> None:
        with server.client() as http:
            i = 0
            while time.monotonic() < stop:
                r = http.post("/predict", json=csv_records[i % 100])
                results.append((r.status_code, r.json().get("model_version", "")))
                i += 1

    try:
        with ThreadPoolExecutor(4) as pool:
            futures = [pool.submit(hammer) for _ in range(4)]
            time.sleep(2)
            client.set_registered_model_alias(MODEL_NAME, CHAMPION_ALIAS, v2.version)
            assert until(lambda: _served_versions(server) == {str(v2.version)}, 30)
            client.set_registered_model_alias(MODEL_NAME, CHAMPION_ALIAS, broken.version)
            assert until(lambda: _load_errors(server), 30)
            with server.client() as http:  # still serving v2, and saying the champion did not load
                health = http.get("/health")
            assert health.status_code == 200 and health.json()["status"] == "degraded"
            assert f"v{broken.version}" in health.json()["reason"]
            time.sleep(2)
            stop = time.monotonic()
            for f in futures:
                f.result()
    finally:
        client.set_registered_model_alias(MODEL_NAME, CHAMPION_ALIAS, "1")
    assert results and all(status == 200 for status, _ in results)
    versions = [v for _, v in results]
    assert "1" in versions and str(v2.version) in versions
    assert str(broken.version) not in versions  # the broken version was refused, v2 kept serving
    with server.client() as http:
        info = http.get("/model-info").json()
        assert any(f"v{broken.version}" in e for e in info["load_errors"])
        assert metric(http.get("/metrics").text, "churn_model_load_failures_total") >= 1
    assert until(lambda: _served_versions(server) == {"1"}, 30)  # rollback by alias
    assert until(lambda: not _load_errors(server), 30)  # the refusal is history once the champion serves
    with server.client() as http:
        assert http.get("/health").json() == {"status": "ok"}


def _served_versions(server: Server) -> set[str]:
    with server.client() as http:
        return set(http.get("/model-info").json()["versions_served"])


def _load_errors(server: Server) -> list[str]:
    with server.client() as http:
        return http.get("/model-info").json()["load_errors"]


def test_api_key_is_required_when_configured(materialized: Installation, csv_records, tmp_path: Path) -> None:
    with (
        running_server(
            materialized.settings.home,
            tmp_path,
            CHURN_API_KEY="s3cret-key",
            CHURN_SERVE_WORKERS="1",
            CHURN_BATCH_LIMIT="5",
        ) as secured,
        secured.client() as http,
    ):
        assert http.get("/health").status_code == 200  # stays open
        assert http.get("/model-info").status_code == 401
        assert http.get("/model-info", headers={"X-API-Key": "s3cret-key"}).status_code == 200
        assert http.post("/predict", json=csv_records[0]).status_code == 401
        assert http.post("/predict", json=csv_records[0], headers={"X-API-Key": "wrong"}).status_code == 403
        assert (
            http.post("/predict", json=csv_records[0], headers={"X-API-Key": "s3cret-key"}).status_code == 200
        )
        bearer = {"Authorization": "Bearer s3cret-key"}
        assert http.post("/batch-predict", json=csv_records[:5], headers=bearer).status_code == 200
        too_many = http.post("/batch-predict", json=csv_records[:6], headers=bearer)
        assert too_many.status_code == 413
        assert "limit of 5" in too_many.json()["detail"]
    assert "s3cret-key" not in secured.log_path.read_text()


def test_health_is_503_with_a_reason_before_a_model_exists(tmp_path: Path) -> None:
    with (
        running_server(tmp_path / "empty-home", tmp_path, ready=False, CHURN_SERVE_WORKERS="1") as bare,
        bare.client() as http,
    ):
        health = http.get("/health")
        assert health.status_code == 503
        assert f"{MODEL_NAME}@{CHAMPION_ALIAS}" in health.json()["reason"]
        assert http.get("/model-info").status_code == 503
        assert http.post("/predict", json={"gender": "Female"}).status_code == 422


def test_drift_report_reads_the_served_traffic(
    server: Server, materialized: Installation, csv_records
) -> None:
    """What the server logged feeds the drift asset: served real records do not drift from the training rows."""
    import dagster as dg

    from churn_assets.definitions import build_definitions
    from churn_assets.monitoring.assets import SERVED_DRIFT, served_drift

    with server.client() as http:  # more than the drift window, whatever other tests served before
        assert http.post("/batch-predict", json=csv_records).status_code == 200
    time.sleep(1.5)  # two flush intervals of the prediction log
    defs = build_definitions(materialized.settings)
    result = dg.materialize([served_drift], resources=defs.resources, instance=materialized.instance)
    checks = {c.check_name: c for c in result.get_asset_check_evaluations() if c.asset_key == SERVED_DRIFT}
    assert checks["served_drift_share_below_threshold"].passed
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key == SERVED_DRIFT]
    meta = event.materialization.metadata
    assert meta["current_rows"].value == 5000  # the window: the newest served records
    assert meta["drift_share"].value < 0.1
    assert Path(meta["report_html"].value).exists()
