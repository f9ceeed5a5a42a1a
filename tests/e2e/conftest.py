"""Real servers: `python -m serving` subprocesses on free ports, real HTTP, one installation each."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import polars as pl
import pytest

from churn_assets.settings import REPO_ROOT
from tests.conftest import Installation


@dataclass
class Server:
    url: str
    home: Path
    process: subprocess.Popen
    log_path: Path

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(home: Path, log_dir: Path, *, ready: bool = True, **env: str) -> Iterator[Server]:
    port = _free_port()
    log_path = log_dir / f"server-{port}.log"
    environment = {
        **os.environ,
        "CHURN_HOME": str(home),
        "CHURN_SERVE_PORT": str(port),
        "CHURN_SERVE_WORKERS": "2",
        "CHURN_MODEL_POLL_S": "1",
        "CHURN_LOG_FLUSH_S": "0.5",
        **env,
    }
    environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "serving"],
            cwd=REPO_ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(f"http://127.0.0.1:{port}", home, process, log_path)
    try:
        _wait(server, ready)
        yield server
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def _wait(server: Server, ready: bool, timeout_s: float = 240) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"server exited with {server.process.returncode}:\n{server.log_path.read_text()[-3000:]}"
            )
        try:
            status = httpx.get(f"{server.url}/health", timeout=2).status_code
            if status == 200 or (not ready and status == 503):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"server not ready after {timeout_s}s:\n{server.log_path.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def server(materialized: Installation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Two workers per API, no API key, serving the champion of the materialized installation."""
    with running_server(materialized.settings.home, tmp_path_factory.mktemp("server-logs")) as running:
        yield running


@pytest.fixture(scope="session")
def csv_records(real_csv: Path) -> list[dict[str, str]]:
    """The real file's rows as a client would post them: strings as in the CSV, label dropped."""
    return pl.read_csv(real_csv, infer_schema=False).drop("Churn").to_dicts()


def logged_rows(server: Server, request_id: str, timeout_s: float = 15) -> pl.DataFrame:
    """The prediction-log rows of one request, once the workers have flushed them."""
    deadline = time.monotonic() + timeout_s
    folder = server.home / "serving" / "predictions"
    while time.monotonic() < deadline:
        files = sorted(folder.glob("date=*/part-*.parquet"))
        if files:
            frame = pl.concat([pl.read_parquet(f) for f in files], how="diagonal_relaxed")
            rows = frame.filter(pl.col("request_id") == request_id)
            if rows.height:
                return rows
        time.sleep(0.25)
    raise AssertionError(f"request {request_id} not in the prediction log after {timeout_s}s")


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of `name` with these labels (per-process gauges come one line per pid)."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith((f"{name} ", f"{name}{{")) and all(f'{k}="{v}"' in line for k, v in labels.items())
    )


def until(predicate, timeout_s: float, every_s: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(every_s)
    return False
