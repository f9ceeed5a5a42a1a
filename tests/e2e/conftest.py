"""Real servers: `python -m serving` subprocesses on free ports, real HTTP, one installation each."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import polars as pl
import pytest

from benchmarks.servers import ManagedServer, free_port, prediction_server
from tests.conftest import Installation


@dataclass
class Server:
    url: str
    home: Path
    managed: ManagedServer

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60, **kwargs)

    @property
    def port(self) -> int:
        return self.managed.port

    @property
    def process(self) -> subprocess.Popen:
        if self.managed.proc is None:
            raise RuntimeError("the server is stopped")
        return self.managed.proc

    @property
    def log_path(self) -> Path:
        return self.managed.log_path


@contextmanager
def running_server(home: Path, log_dir: Path, *, ready: bool = True, **env: str) -> Iterator[Server]:
    """`python -m serving` for `home` on a free port (benchmarks/servers.py starts and stops it). `ready`:
    wait until /health says 200; else a 503 (up, nothing to serve) will do."""
    port = free_port()
    environment = {
        **os.environ,
        "CHURN_HOME": str(home),
        "CHURN_SERVE_WORKERS": "2",
        "CHURN_MODEL_POLL_S": "1",
        "CHURN_LOG_FLUSH_S": "0.5",
        **env,
    }
    environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with prediction_server(port, log_dir / f"server-{port}.log", environment, "python -m serving") as managed:
        managed.wait_ready(240, ready=(200,) if ready else (200, 503))
        yield Server(f"http://127.0.0.1:{port}", home, managed)


@pytest.fixture(scope="module")
def server(materialized: Installation, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Two workers per API, no API key, serving the champion of the module's materialized installation."""
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
