"""The deployed topology without containers (`make stack`, deploy/stack.py), started once for the module on a
new installation: Postgres-backed Dagster, the MLflow server, two replicas behind nginx, the exporter,
Prometheus and Alertmanager — and what it must prove (docs/deployment.md runs these commands through here)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import polars as pl
import psycopg2
import pytest
import yaml

from benchmarks.servers import free_port
from churn_assets.ingest.schema import LABEL_COLUMN
from churn_assets.ml.champion import CHAMPION_ALIAS, MODEL_NAME
from churn_assets.settings import REPO_ROOT, Settings
from deploy.stack import SERVICES, Ports, Stack, remap
from tests.deploy.test_monitoring import DASHBOARDS, _names, _panels, _rules

# The commands of docs/deployment.md's non-container section, run verbatim.
STACK_UP = "make stack"
STACK_STATUS = "python -m deploy.stack status"
STOP_REPLICA = "python -m deploy.stack stop serving-2"
STACK_DOWN = "make stack-down"


def sh(command: str, env: dict[str, str], timeout: float = 1500) -> str:
    done = subprocess.run(
        ["bash", "-c", command], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, (
        f"{command}: exit {done.returncode}\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    )
    return done.stdout


class Live:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.settings = Settings(home=Path(env["CHURN_HOME"]))
        self.ports = Ports(**{f"{s.replace('-', '_')}_port": int(env[port_var(s)]) for s in SERVICES})
        self.stack = Stack(self.settings, self.ports)
        self.key = self.stack.secrets()["CHURN_API_KEY"]

    def url(self, service: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports.of(service)}{path}"

    def get(self, service: str, path: str, **params: str) -> dict:
        response = httpx.get(
            self.url(service, path), params=params, headers={"X-API-Key": self.key}, timeout=30
        )
        response.raise_for_status()
        return response.json()

    def query(self, expr: str) -> list[dict]:
        answer = self.get("prometheus", "/api/v1/query", query=expr)
        assert answer["status"] == "success", answer
        return answer["data"]["result"]


def port_var(service: str) -> str:
    return f"CHURN_STACK_{service.replace('-', '_').upper()}_PORT"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, real_csv: Path) -> Iterator[Live]:
    env = {
        **os.environ,
        "CHURN_HOME": str(tmp_path_factory.mktemp("stack") / "home"),
        "CHURN_SOURCE_CSV": str(real_csv),
        **{port_var(service): str(free_port()) for service in SERVICES},
    }
    env.pop("MAKEFLAGS", None)
    env.pop("MAKELEVEL", None)
    try:
        sh(STACK_UP, env)
        yield Live(env)
    finally:
        sh(STACK_DOWN, env, timeout=300)
        stack = Stack(Settings(home=Path(env["CHURN_HOME"])), Ports())
        shutil.rmtree(stack.pg_data, ignore_errors=True)
        stack.pg_log.unlink(missing_ok=True)


def test_the_derived_configs_differ_from_the_compose_files_only_in_addresses(tmp_path: Path) -> None:
    stack = Stack(Settings(home=tmp_path / "home"), Ports())
    compose_prometheus = yaml.safe_load((REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    derived = stack.prometheus_config()
    assert derived["scrape_configs"][0]["static_configs"][0]["targets"] == [
        f"127.0.0.1:{stack.ports.serving_1_port}",
        f"127.0.0.1:{stack.ports.serving_2_port}",
    ]
    # Put the compose addresses back: what is left must be the compose file's config, rule files aside.
    back = {local: container for container, local in stack.addresses.items()}
    restored = yaml.safe_load(remap(yaml.safe_dump(derived), back, stack.settings.home))
    restored["rule_files"] = compose_prometheus["rule_files"]
    assert restored == compose_prometheus
    assert all(Path(rule).parent.is_dir() for rule in derived["rule_files"])
    # Every compose host:port of the nginx upstream is mapped (a third replica added there fails here).
    nginx = (REPO_ROOT / "deploy" / "nginx" / "nginx.conf").read_text()
    upstream = set(re.findall(r"^\s*server\s+([\w.-]+:\d+)", nginx, re.MULTILINE))
    assert upstream <= set(stack.addresses) and len(upstream) == 2


def test_the_graph_ran_on_postgres_and_registered_the_champion_through_the_mlflow_server(live: Live) -> None:
    env = live.stack.environment("dagster-code")
    with (
        psycopg2.connect(
            host="127.0.0.1",
            port=live.ports.postgres_port,
            user=env["DAGSTER_PG_USER"],
            password=env["DAGSTER_PG_PASSWORD"],
            dbname=env["DAGSTER_PG_DB"],
        ) as connection,
        connection.cursor() as cursor,
    ):
        cursor.execute("select status, count(*) from runs group by status")
        runs = dict(cursor.fetchall())
    assert runs.get("SUCCESS", 0) >= 2 and set(runs) == {"SUCCESS"}, runs  # the batch, then the main job
    champion = live.get(
        "mlflow", "/api/2.0/mlflow/registered-models/alias", name=MODEL_NAME, alias=CHAMPION_ALIAS
    )
    version = champion["model_version"]["version"]
    served = {replica: live.get(replica, "/model-info")["version"] for replica in ("serving-1", "serving-2")}
    assert served == {"serving-1": version, "serving-2": version}
    out = sh(STACK_STATUS, live.env)
    assert all(f"{service} " in out for service in SERVICES) and "stopped" not in out, out


def test_prometheus_sees_every_target_and_the_traffic_then_the_alert_when_a_replica_stops(
    live: Live, real_csv: Path
) -> None:
    def targets() -> list[dict]:
        return live.get("prometheus", "/api/v1/targets")["data"]["activeTargets"]

    deadline = time.monotonic() + 60  # a scrape interval or two after Prometheus started
    seen = targets()
    while (not seen or any(t["health"] != "up" for t in seen)) and time.monotonic() < deadline:
        time.sleep(2)
        seen = targets()
    assert {t["labels"]["job"] for t in seen} == {"serving", "pipeline", "prometheus"}
    assert len(seen) == 4 and all(t["health"] == "up" for t in seen), [
        (t["scrapeUrl"], t["lastError"]) for t in seen
    ]

    def predictions_seen() -> dict[str, float]:
        result = live.query('sum by (instance) (churn_requests_total{endpoint="/predict",status="200"})')
        return {r["metric"]["instance"]: float(r["value"][1]) for r in result}

    before = predictions_seen()
    records = pl.read_csv(real_csv, infer_schema=False).drop(LABEL_COLUMN).head(40).to_dicts()
    with httpx.Client(base_url=live.url("lb", ""), headers={"X-API-Key": live.key}, timeout=30) as client:
        for record in records:
            answer = client.post("/predict", json=record)
            assert answer.status_code == 200, answer.text
            assert 0 <= answer.json()["churn_probability"] <= 1
    deadline = time.monotonic() + 60
    after = predictions_seen()
    while sum(after.values()) < sum(before.values()) + len(records) and time.monotonic() < deadline:
        time.sleep(2)
        after = predictions_seen()
    assert sum(after.values()) - sum(before.values()) == len(records), (before, after)
    replicas = {f"127.0.0.1:{live.ports.serving_1_port}", f"127.0.0.1:{live.ports.serving_2_port}"}
    assert {i for i, n in after.items() if n > before.get(i, 0)} == replicas  # nginx used both

    check_every_dashboard_query(live)

    # The module's other tests need both replicas, in whatever order they run: `up` again restarts serving-2.
    try:
        sh(STOP_REPLICA, live.env, timeout=120)
        stopped = f"127.0.0.1:{live.ports.serving_2_port}"
        deadline = time.monotonic() + 150
        firing: list[dict] = []
        while not firing and time.monotonic() < deadline:
            time.sleep(5)
            alerts = live.get("prometheus", "/api/v1/alerts")["data"]["alerts"]
            firing = [
                a
                for a in alerts
                if a["labels"]["alertname"] == "ReplicaDown"
                and a["state"] == "firing"
                and a["labels"]["instance"] == stopped
            ]
        assert firing, "ReplicaDown did not fire within 150 s of stopping serving-2"
        # Prometheus handed it to Alertmanager.
        deadline = time.monotonic() + 60
        received: list[dict] = []
        while not received and time.monotonic() < deadline:
            received = [
                a
                for a in live.get("alertmanager", "/api/v2/alerts")
                if a["labels"]["alertname"] == "ReplicaDown"
            ]
            time.sleep(2)
        assert received and received[0]["labels"]["instance"] == stopped
        # The other replica still answers through the load balancer.
        answer = httpx.post(
            live.url("lb", "/predict"), json=records[0], headers={"X-API-Key": live.key}, timeout=30
        )
        assert answer.status_code == 200, answer.text
    finally:
        sh(STACK_UP, live.env)
    assert live.get("serving-2", "/model-info")["version"] == live.get("serving-1", "/model-info")["version"]


NOT_YET_RECORDED = {"churn_pipeline_drift_share"}
"""Series the exporter has only once the pipeline recorded them: this stack's one batch has no reference batch
to drift from, and no day of served predictions yet (the exporter's own test covers their values)."""


def check_every_dashboard_query(live: Live) -> None:
    """Every panel query of deploy/grafana/dashboards runs on the live Prometheus without error, and every metric
    name it uses is one this Prometheus has (exported by a target) or a recording rule of ours."""
    known = set(live.get("prometheus", "/api/v1/label/__name__/values")["data"])
    recorded = {rule["record"] for rule in _rules() if "record" in rule}
    unknown = {}
    for path in DASHBOARDS:
        for panel in _panels(json.loads(path.read_text())["panels"]):
            for target in panel.get("targets", []):
                live.query(target["expr"])  # asserts status success
                missing = _names(target["expr"]) - known - recorded - NOT_YET_RECORDED
                if missing:
                    unknown[f"{path.name}: {panel.get('title')}"] = sorted(missing)
    assert not unknown, f"metric names no target exports: {unknown}"
