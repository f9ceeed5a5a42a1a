"""docker-compose.yml: the compose specification's schema, a real `compose config` render, and the invariants
the stack relies on (healthchecks, ordered start-up, mounted files, secrets only from .env, identical
replicas, Prometheus targets that exist)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
PROMETHEUS = REPO / "deploy" / "prometheus" / "prometheus.yml"
WORKSPACE = REPO / "deploy" / "dagster" / "workspace.yaml"
BIN = Path(sys.executable).parent
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY")
VARIABLE = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)")
CONDITIONS = {"service_healthy", "service_completed_successfully"}


def tool(name: str) -> str:
    """A command from the project's environment (next to this Python), else from PATH; missing fails."""
    path = BIN / name if (BIN / name).exists() else shutil.which(name)
    assert path, f"{name} is not installed (it comes with the project's dev dependencies)"
    return str(path)


def env_example() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines() if re.match(r"\w+=", line))
    return {key: value for key, value in pairs}


def render(env_file: Path) -> subprocess.CompletedProcess[str]:
    cmd = [tool("podman-compose"), "-f", str(COMPOSE), "--env-file", str(env_file), "config"]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture(scope="module")
def rendered() -> dict[str, Any]:
    """`podman-compose config` with .env.example: anchors merged, ${VAR} interpolated."""
    done = render(ENV_EXAMPLE)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


@pytest.fixture(scope="module")
def services(rendered: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return rendered["services"]


def test_compose_spec_schema() -> None:
    cmd = [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_schema_rejects_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("restart: unless-stopped", "restart: [sometimes]", 1))
    cmd = [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(broken)]
    assert subprocess.run(cmd, capture_output=True, timeout=120, check=False).returncode != 0


def test_config_renders_the_topology(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == {
        "postgres",
        "mlflow",
        "dagster-code",
        "dagster-webserver",
        "dagster-daemon",
        "serving-1",
        "serving-2",
        "lb",
        "exporter",
        "prometheus",
        "alertmanager",
        "grafana",
    }
    env = env_example()
    uri = services["mlflow"]["environment"]["MLFLOW_BACKEND_STORE_URI"]
    assert (
        uri == f"postgresql+psycopg2://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@postgres:5432/mlflow"
    )
    assert services["serving-1"]["environment"]["CHURN_API_KEY"] == env["CHURN_API_KEY"]
    ours = [name for name, service in services.items() if "build" in service]
    assert {services[name]["image"] for name in ours} == {f"churn-mlops:{env['CHURN_IMAGE_TAG']}"}


def test_config_refuses_missing_secrets(tmp_path: Path) -> None:
    partial = tmp_path / ".env"
    partial.write_text("".join(f"{k}={v}\n" for k, v in env_example().items() if k != "POSTGRES_PASSWORD"))
    done = render(partial)
    assert done.returncode != 0
    assert "POSTGRES_PASSWORD" in done.stderr


def test_every_service_is_healthchecked_restarted_and_limited(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert service.get("restart") in {"unless-stopped", "always", "on-failure"}, name
        limits = service["deploy"]["resources"]["limits"]
        assert float(limits["cpus"]) > 0 and limits["memory"], name


def test_start_up_order_uses_conditions(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on without conditions"
        for dependency, spec in depends_on.items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            assert spec.get("condition") in CONDITIONS, f"{name} -> {dependency}: {spec}"


def test_mounted_files_exist(services: dict[str, dict[str, Any]]) -> None:
    named = set(yaml.safe_load(COMPOSE.read_text())["volumes"])
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in named, f"{name} uses undeclared volume {source}"


def test_variables_come_from_env_example() -> None:
    used = set(VARIABLE.findall(COMPOSE.read_text()))
    assert used, "the compose file interpolates nothing: where do its secrets come from?"
    assert used <= set(env_example()), f"not in .env.example: {sorted(used - set(env_example()))}"


def test_no_literal_secrets() -> None:
    """Every secret-looking setting is a ${VAR}; .env.example holds placeholders; .env itself is ignored."""

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if SECRET_NAME.search(str(key)) and isinstance(value, str):
                    assert VARIABLE.search(value), f"{key} has a literal value"
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    raw = yaml.safe_load(COMPOSE.read_text())
    walk(raw)
    uri = raw["services"]["mlflow"]["environment"]["MLFLOW_BACKEND_STORE_URI"]
    assert "${POSTGRES_PASSWORD" in uri
    for key, value in env_example().items():
        if SECRET_NAME.search(key):
            assert value.startswith("change-me"), f".env.example {key} looks like a real secret"
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=REPO, check=False)
    assert ignored.returncode == 0, ".env is not git-ignored"


def test_serving_replicas_are_identical(services: dict[str, dict[str, Any]]) -> None:
    assert services["serving-1"] == services["serving-2"]
    assert services["serving-1"]["command"] == ["python", "-m", "serving"]
    assert services["serving-1"]["environment"]["CHURN_SERVE_PORT"] == "8000"


def container_ports(service: dict[str, Any]) -> set[int]:
    ports = {int(str(p)) for p in service.get("expose", [])}
    return ports | {int(str(p).rsplit(":", 1)[-1]) for p in service.get("ports", [])}


def test_prometheus_targets_are_compose_services(services: dict[str, dict[str, Any]]) -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    targets = [
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    ]
    targets += [
        target
        for alerting in config.get("alerting", {}).get("alertmanagers", [])
        for static in alerting.get("static_configs", [])
        for target in static["targets"]
    ]
    assert {"serving-1:8000", "serving-2:8000", "exporter:9108", "alertmanager:9093"} <= set(targets)
    for target in targets:
        host, port = target.rsplit(":", 1)
        if host == "localhost":
            continue
        assert host in services, f"Prometheus target {target} is not a compose service"
        assert int(port) in container_ports(services[host]), f"{host} does not listen on {port}"


def test_workspace_points_at_the_code_server(services: dict[str, dict[str, Any]]) -> None:
    (location,) = yaml.safe_load(WORKSPACE.read_text())["load_from"]
    server = location["grpc_server"]
    command = services[server["host"]]["command"]
    assert command[:3] == ["dagster", "code-server", "start"]
    assert command[command.index("-p") + 1] == str(server["port"])
    assert server["port"] in container_ports(services[server["host"]])
    for role in ("dagster-webserver", "dagster-daemon"):
        assert "deploy/dagster/workspace.yaml" in services[role]["command"]
