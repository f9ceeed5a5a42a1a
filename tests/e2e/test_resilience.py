"""A server that survives its workers and its registry: killed workers come back, a broken champion at start
leaves the last good version serving, and /health says what is true at each moment."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import pytest
from mlflow import MlflowClient

from churn_assets.ml.champion import CHAMPION_ALIAS, MODEL_NAME
from serving.config import ServeSettings
from serving.workers import live_statuses
from tests.conftest import Installation
from tests.e2e.conftest import Server, running_server, until


def _workers(server: Server, api_path: str) -> list[int]:
    status_dir = ServeSettings(home=server.home, serve_port=server.port).status_dir
    return [s["pid"] for s in live_statuses(status_dir) if s["api_path"] == api_path]


def _non_200(metrics_text: str, endpoint: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics_text.splitlines()
        if line.startswith("churn_requests_total{")
        and f'endpoint="{endpoint}"' in line
        and 'status="200"' not in line
    )


@pytest.fixture
def two_workers(materialized: Installation, tmp_path: Path) -> Iterator[Server]:
    env = {"CHURN_SERVE_WORKERS": "2", "CHURN_REQUEST_TIMEOUT_S": "5"}
    with running_server(materialized.settings.home, tmp_path, **env) as running:
        yield running


@pytest.mark.timeout(600)
@pytest.mark.parametrize("api_path", ["/predict", "/batch-predict"])
def test_a_killed_worker_comes_back_under_load(two_workers: Server, csv_records, api_path: str) -> None:
    server = two_workers
    body = csv_records[0] if api_path == "/predict" else csv_records[:20]
    before = httpx.get(f"{server.url}/metrics").text
    results: list[int | str] = []
    stop = threading.Event()

    def client() -> None:
        with server.client() as http:
            while not stop.is_set():
                try:
                    results.append(http.post(api_path, json=body).status_code)
                except httpx.HTTPError as exc:
                    results.append(type(exc).__name__)

    clients = [threading.Thread(target=client) for _ in range(8)]
    for c in clients:
        c.start()
    try:
        time.sleep(2)
        victim, survivor = _workers(server, api_path)
        served_before_kill = len(results)
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        assert until(lambda: httpx.get(f"{server.url}/health").json().get("status") == "degraded", 10), (
            "/health did not report the dead worker"
        )
        reported = time.monotonic() - killed
        assert until(lambda: len(_workers(server, api_path)) == 2, 180), "the killed worker was not restarted"
        restarted = time.monotonic() - killed
        replacement = set(_workers(server, api_path)) - {survivor}
        assert replacement and victim not in replacement
        assert until(lambda: httpx.get(f"{server.url}/health").json() == {"status": "ok"}, 120)
        print(
            f"\n{api_path}: worker killed; /health degraded after {reported:.1f} s, replacement serving after "
            f"{restarted:.1f} s, ok after {time.monotonic() - killed:.1f} s"
        )
        time.sleep(2)
    finally:
        stop.set()
        for c in clients:
            c.join()
    assert server.process.poll() is None, "the server exited"
    failures = [r for r in results if r != 200]
    print(f"{api_path}: {len(results)} requests by 8 clients, failed: {failures}")
    assert len(results) > served_before_kill + 50  # traffic kept flowing
    assert len(failures) <= 8, failures  # at most the requests in flight on the killed worker
    assert set(failures) <= {504}, failures  # answered, not left hanging
    after = httpx.get(f"{server.url}/metrics").text
    assert _non_200(after, api_path) - _non_200(before, api_path) == len(failures)  # and counted


@pytest.mark.timeout(600)
def test_health_is_503_while_an_api_has_no_live_worker(materialized: Installation, tmp_path: Path) -> None:
    with running_server(materialized.settings.home, tmp_path, CHURN_SERVE_WORKERS="1") as server:
        (victim,) = _workers(server, "/predict")
        os.kill(victim, signal.SIGKILL)
        assert until(lambda: httpx.get(f"{server.url}/health").status_code == 503, 10)
        reason = httpx.get(f"{server.url}/health").json()
        assert reason["status"] == "not ready" and "/predict" in reason["reason"]
        assert until(lambda: httpx.get(f"{server.url}/health").status_code == 200, 180)
        assert server.process.poll() is None


@pytest.mark.timeout(600)
def test_a_restart_with_a_broken_champion_serves_the_last_good_version(
    server: Server, materialized: Installation, csv_records, tmp_path: Path
) -> None:
    """`server` has loaded v1 (so this home's cache holds it); the alias then moves to a version that cannot
    load, and a server started now serves v1, says why, and takes the champion once one loads."""
    client = MlflowClient(materialized.settings.mlflow_tracking_uri)
    # MLflow's SQL registry resolves a `models:/m-…` source with `MlflowClient()`, i.e. the process-wide tracking
    # URI: point it at this installation, or the lookup goes to whichever store an earlier test set.
    mlflow.set_tracking_uri(materialized.settings.mlflow_tracking_uri)
    v1 = client.get_model_version(MODEL_NAME, "1")
    broken = client.create_model_version(MODEL_NAME, source=str(tmp_path / "no-such-model"), run_id=v1.run_id)
    try:
        client.set_registered_model_alias(MODEL_NAME, CHAMPION_ALIAS, broken.version)
        with running_server(materialized.settings.home, tmp_path, CHURN_SERVE_WORKERS="1") as restarted:
            with restarted.client() as http:
                health = http.get("/health")
                info = http.get("/model-info").json()
                scored = http.post("/predict", json=csv_records[0]).json()
            assert health.status_code == 200 and health.json()["status"] == "degraded"
            assert f"v{broken.version}" in health.json()["reason"]
            assert info["version"] == "1" and info["champion_version"] == str(broken.version)
            assert any(f"refused {MODEL_NAME} v{broken.version}" in e for e in info["load_errors"])
            assert scored["model_version"] == "1"
            for text in (health.text, json.dumps(info)):
                assert str(tmp_path) not in text and str(materialized.settings.home) not in text

            fixed = client.create_model_version(
                MODEL_NAME, source=v1.source, run_id=v1.run_id, tags=dict(v1.tags)
            )
            client.set_registered_model_alias(MODEL_NAME, CHAMPION_ALIAS, fixed.version)
            assert until(lambda: _info(restarted)["versions_served"] == [str(fixed.version)], 60)
            assert _info(restarted)["load_errors"] == []
            assert until(lambda: httpx.get(f"{restarted.url}/health").json() == {"status": "ok"}, 30)
    finally:
        client.set_registered_model_alias(MODEL_NAME, CHAMPION_ALIAS, "1")
        assert until(lambda: _info(server)["versions_served"] == ["1"], 60)


def _info(server: Server) -> dict:
    return httpx.get(f"{server.url}/model-info", timeout=10).json()
