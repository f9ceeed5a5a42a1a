"""The container image (Dockerfile), linted, built for real and run: the prediction server from the image.

No image registry is reachable here, so the base is made from Debian's own packages
(deploy/image/build-base.sh, kept while its inputs are unchanged) and passed as the BASE_IMAGE build argument;
podman builds with chroot isolation and its layer cache (a code change rebuilds only the code layers). Podman
cannot run containers on this machine (rlimits), so the server runs through buildah: a working container
from the image, `buildah run` on the host network, with the module's installation mounted at its own path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import polars as pl
import pytest

from benchmarks.servers import SERVING_READY_PATH, ManagedServer, free_port
from churn_assets.settings import REPO_ROOT
from tests.conftest import Installation

IMAGE = "localhost/churn-mlops:latest"  # the Makefile's IMAGE
BUILD_IMAGE = "make image"  # docs/deployment.md's command, run verbatim
APP_UID = 10001


def run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, cwd=REPO_ROOT).stdout


@pytest.fixture(scope="module")
def image() -> str:
    """The image built from the working tree on the local Debian base (both steps cached when unchanged)."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    subprocess.run(["bash", "-c", BUILD_IMAGE], check=True, capture_output=True, cwd=REPO_ROOT, env=env)
    return IMAGE


@pytest.fixture(scope="module")
def config(image: str) -> dict:
    return json.loads(run("podman", "image", "inspect", image))[0]


@pytest.fixture(scope="module")
def container(image: str) -> Iterator[str]:
    """A buildah working container of the image, removed afterwards."""
    name = run("buildah", "from", "--name", f"churn-image-test-{uuid.uuid4().hex[:8]}", image).strip()
    yield name
    subprocess.run(["buildah", "rm", name], check=False, capture_output=True)


def test_hadolint_has_no_findings() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    result = subprocess.run([hadolint, "Dockerfile"], capture_output=True, text=True, cwd=REPO_ROOT)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_image_runs_as_non_root_with_a_healthcheck(config: dict) -> None:
    assert config["Config"]["User"] == str(APP_UID)
    check = config["Healthcheck"]["Test"]
    assert check[0] == "CMD" and "/health" in check[-1]
    assert config["Config"]["Cmd"] == ["python", "-m", "serving"]
    env = dict(item.split("=", 1) for item in config["Config"]["Env"])
    assert env["CHURN_HOME"] == "/var/lib/churn" and env["CHURN_SERVE_HOST"] == "0.0.0.0"


def test_dbt_manifest_is_prepared_in_the_image(container: str) -> None:
    manifest = "/app/dbt_project/target/manifest.json"
    script = f"import json; print(len(json.load(open('{manifest}'))['nodes']))"
    assert int(run("buildah", "run", "--isolation", "chroot", container, "--", "python", "-c", script)) > 0


def test_prediction_server_from_the_image(
    container: str, materialized: Installation, real_csv: Path, tmp_path: Path
) -> None:
    """/health answers 200 and /predict scores a real customer from the champion of the mounted registry."""
    home = materialized.settings.home
    # The image's user owns its state volume, as in the compose stack (CHURN_HOME is owner-only).
    for path in [home, *home.rglob("*")]:
        os.chown(path, APP_UID, APP_UID, follow_symlinks=False)
    port = free_port()
    env = {
        "CHURN_HOME": str(home),
        "CHURN_MLFLOW_TRACKING_URI": materialized.settings.mlflow_tracking_uri,
        "CHURN_DAGSTER_YAML": str(materialized.settings.dagster_home / "dagster.yaml"),
        "CHURN_SERVE_PORT": str(port),
        "CHURN_SERVE_WORKERS": "1",
    }
    argv = ["buildah", "run", "--isolation", "chroot", "--network", "host", "--volume", f"{home}:{home}"]
    argv += [f"--env={key}={value}" for key, value in env.items()]
    argv += [container, "--", "python", "-m", "serving"]
    with ManagedServer(
        "serving (image)", argv, dict(os.environ), port, SERVING_READY_PATH, tmp_path / "log"
    ) as server:
        server.wait_ready(240)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            assert http.get("/health").status_code == 200
            record = pl.read_csv(real_csv, infer_schema=False).drop("Churn").row(0, named=True)
            response = http.post("/predict", json=record)
    assert response.status_code == 200, response.text
    assert 0 <= response.json()["churn_probability"] <= 1
