"""The scale-out path: deploy/k8s manifests against the Kubernetes API schemas (kubernetes-validate, strict),
the Dagster chart values' keys and their agreement with the compose topology, and the dbt `prod` target.

Helm itself does not run here (no chart repository is reachable): the values are checked for the keys this
project relies on, not rendered by the chart."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = sorted((REPO / "deploy" / "k8s").glob("*.yaml"))
VALUES = REPO / "deploy" / "helm" / "dagster-values.yaml"
BIN = Path(sys.executable).parent


def validate(*paths: Path) -> subprocess.CompletedProcess[str]:
    cmd = [str(BIN / "kubernetes-validate"), "--strict", *map(str, paths)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def documents(path: Path) -> dict[str, dict[str, Any]]:
    return {doc["kind"]: doc for doc in yaml.safe_load_all(path.read_text()) if doc}


def compose_service(name: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"][name]


def test_manifests_pass_strict_validation() -> None:
    assert K8S, "no manifests in deploy/k8s"
    done = validate(*K8S)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("passed") == sum(len(documents(p)) for p in K8S)


def test_validator_rejects_broken_manifests(tmp_path: Path) -> None:
    text = (REPO / "deploy" / "k8s" / "serving.yaml").read_text()
    for bad in (
        text.replace("readinessProbe:", "readynessProbe:", 1),  # unknown field (strict)
        text.replace("replicas: 2", 'replicas: "two"', 1),  # wrong type
    ):
        broken = tmp_path / "broken.yaml"
        broken.write_text(bad)
        assert validate(broken).returncode != 0, "a broken manifest passed"


def test_serving_deployment_matches_compose_and_scales_on_cpu() -> None:
    docs = documents(REPO / "deploy" / "k8s" / "serving.yaml")
    deployment, service, hpa = docs["Deployment"], docs["Service"], docs["HorizontalPodAutoscaler"]
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    compose = compose_service("serving-1")
    assert container["command"] == compose["command"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["CHURN_SERVE_PORT"] == compose["environment"]["CHURN_SERVE_PORT"]
    assert "valueFrom" in next(e for e in container["env"] if e["name"] == "CHURN_API_KEY")
    (port,) = container["ports"]
    assert port["containerPort"] == int(env["CHURN_SERVE_PORT"])
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": port["name"]}
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["resources"]["requests"]["cpu"], "the HPA's utilization needs a CPU request"
    assert deployment["spec"]["replicas"] >= 2
    labels = pod["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] == deployment["spec"]["replicas"] < hpa["spec"]["maxReplicas"]
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"


def test_helm_values_use_the_k8s_run_launcher_on_our_code_location() -> None:
    values = yaml.safe_load(VALUES.read_text())
    launcher = values["runLauncher"]
    assert launcher["type"] == "K8sRunLauncher"
    assert set(launcher["config"]) == {"k8sRunLauncher"}
    (location,) = values["dagster-user-deployments"]["deployments"]
    assert values["dagster-user-deployments"]["enabled"] is True
    assert location["image"]["repository"].endswith("/churn-mlops")
    assert location["image"]["tag"] not in {"latest", None}, (
        "run pods need the exact image the location served"
    )
    code = compose_service("dagster-code")["command"]
    assert location["codeServerArgs"] == code[code.index("-m") :]
    assert location["port"] == int(code[code.index("-p") + 1])
    env = {e["name"]: e["value"] for e in location["env"]}
    assert env["CHURN_DBT_TARGET"] == "prod"
    postgres = values["postgresql"]
    assert postgres["enabled"] is False and postgres["postgresqlHost"]
    assert "postgresqlPassword" not in postgres and values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"


def test_dbt_prod_target_parses(tmp_path: Path) -> None:
    """The shared-warehouse target K8s runs select compiles the project (connecting needs the network)."""
    profiles = yaml.safe_load((REPO / "dbt_project" / "profiles.yml").read_text())["churn"]["outputs"]
    assert profiles["prod"]["path"].startswith("md:")
    cmd = [
        str(BIN / "dbt"),
        "parse",
        "--target",
        "prod",
        "--profiles-dir",
        ".",
        "--target-path",
        str(tmp_path / "target"),
        "--log-path",
        str(tmp_path / "logs"),
    ]
    env = {**os.environ, "CHURN_DBT_TARGET": "prod"}
    done = subprocess.run(
        cmd, cwd=REPO / "dbt_project", env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert (tmp_path / "target" / "manifest.json").stat().st_size > 0
