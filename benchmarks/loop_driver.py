"""Drives the closed loop the way a user does — `make run`, `make ui`, `make serve`, drop a file — and reads
what happened from the Dagster instance, the MLflow registry and the prediction server.

Used by `benchmarks/closed_loop.py` (stage times) and `tests/e2e/test_closed_loop.py` (assertions). Every
process runs in its own session on free 127.0.0.1 ports in a separate CHURN_HOME, and is killed on exit.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import dagster as dg
import httpx
from mlflow.tracking import MlflowClient

from benchmarks.servers import DAGSTER_UI_READY_PATH, REPO_ROOT, SERVING_READY_PATH, ManagedServer, free_port
from churn_assets.ml.champion import MODEL_NAME

T = TypeVar("T")


@dataclass
class Loop:
    home: Path
    logs: Path
    source_csv: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    ui_port: int = field(default_factory=free_port)
    serve_port: int = field(default_factory=free_port)
    processes: list[ManagedServer] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        # Only this installation: drop any CHURN_*/DAGSTER_HOME/MLflow location of the calling shell.
        inherited = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("CHURN_")
            and k not in {"DAGSTER_HOME", "MLFLOW_TRACKING_URI", "PROMETHEUS_MULTIPROC_DIR"}
        }
        return {
            **inherited,
            "CHURN_HOME": str(self.home),
            "CHURN_SOURCE_CSV": str(self.source_csv),
            "CHURN_UI_PORT": str(self.ui_port),
            "CHURN_SERVE_PORT": str(self.serve_port),
            "CHURN_MODEL_POLL_S": "1",
            **self.extra_env,
        }

    # --- processes -------------------------------------------------------------------------------------
    def make(self, target: str, timeout_s: float = 1200) -> float:
        """Run `make TARGET` to completion; return its wall time."""
        started = time.monotonic()
        with (self.logs / f"make-{target}.log").open("wb") as log:
            done = subprocess.run(  # nosec B607 # `make` from PATH, as a person runs the project's Makefile
                ["make", target],
                cwd=REPO_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout_s,
            )
        if done.returncode:
            tail = (self.logs / f"make-{target}.log").read_text(errors="replace")[-4000:]
            raise RuntimeError(f"make {target} failed ({done.returncode}):\n{tail}")
        return time.monotonic() - started

    def start(self, target: str) -> ManagedServer:
        """`make ui` / `make serve` in the background, in its own process group (benchmarks/servers.py)."""
        port, ready_path = {
            "ui": (self.ui_port, DAGSTER_UI_READY_PATH),
            "serve": (self.serve_port, SERVING_READY_PATH),
        }[target]
        log = self.logs / f"make-{target}.log"
        server = ManagedServer(f"make {target}", ["make", target], self.env, port, ready_path, log, REPO_ROOT)
        server.start()
        self.processes.append(server)
        return server

    def stop(self) -> None:
        for server in reversed(self.processes):
            server.stop()
        self.processes.clear()

    def wait_for(self, what: str, probe: Callable[[], T | None], timeout_s: float, every_s: float = 0.5) -> T:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if (value := probe()) is not None:
                return value
            for server in self.processes:
                if server.proc is not None and server.proc.poll() is not None:
                    raise RuntimeError(f"{server.name} {server.exit_reason()} while waiting for {what}")
            time.sleep(every_s)
        logs = "\n".join(
            f"--- {p.name} ---\n{p.read_text(errors='replace')[-3000:]}" for p in self.logs.glob("*.log")
        )
        raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}\n{logs}")

    def ui_ready(self) -> bool | None:
        with contextlib.suppress(httpx.HTTPError):
            if (
                httpx.get(f"http://127.0.0.1:{self.ui_port}{DAGSTER_UI_READY_PATH}", timeout=2).status_code
                == 200
            ):
                return True
        return None

    def served_version(self, record: dict[str, str]) -> str | None:
        """The model version that answers /predict for ``record`` now (None while the server is not up)."""
        with contextlib.suppress(httpx.HTTPError):
            response = httpx.post(f"http://127.0.0.1:{self.serve_port}/predict", json=record, timeout=5)
            if response.status_code == 200:
                return str(response.json()["model_version"])
        return None

    # --- data ------------------------------------------------------------------------------------------
    def simulate(self, scenario: str, rows: int, seed: int) -> Path:
        churn = Path(sys.executable).parent / "churn"
        done = subprocess.run(
            [
                str(churn),
                "data",
                "simulate",
                "--rows",
                str(rows),
                "--scenario",
                scenario,
                "--seed",
                str(seed),
                "--land",
            ],
            cwd=REPO_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return Path(done.stdout.strip().rsplit(" to ", 1)[1])

    def land(self, name: str, data: bytes) -> Path:
        """Land like a downloader: a `.part` file (ignored by the sensor), renamed when complete."""
        landing = self.home / "landing"
        part = landing / f"{name}.part"
        part.write_bytes(data)
        return part.rename(landing / name)

    # --- what happened -----------------------------------------------------------------------------------
    def instance(self) -> dg.DagsterInstance:
        return dg.DagsterInstance.from_config(str(self.home / "dagster"))

    def registry(self) -> MlflowClient:
        return MlflowClient(tracking_uri=f"sqlite:///{self.home / 'mlflow' / 'mlflow.db'}")

    def versions(self) -> int:
        return len(self.registry().search_model_versions(f"name = '{MODEL_NAME}'"))

    @staticmethod
    def materialized_after(
        instance: dg.DagsterInstance, key: dg.AssetKey, after: float, partition: str | None = None
    ) -> dg.EventLogRecord | None:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(
                asset_key=key, asset_partitions=[partition] if partition else None, after_timestamp=after
            ),
            limit=1,
        ).records
        return records[0] if records else None

    def refused_outcome(self, path: Path, watch_s: float) -> dict:
        """For a file expected to change nothing: its recorded status, then — after ``watch_s`` seconds of
        automation ticks — the training snapshots, trained candidates and model versions since the drop."""
        from churn_assets.ingest.assets import LANDED_FILES
        from churn_assets.ingest.store import batch_id_of, path_sha256
        from churn_assets.ml.families import CANDIDATES
        from churn_assets.training.keys import TRAINING_SNAPSHOT, candidate_key

        versions = self.versions()
        dropped, batch = path.stat().st_mtime, batch_id_of(path_sha256(path))
        with self.instance() as instance:
            recorded = self.wait_for(
                f"{path.name} to be recorded",
                lambda: self.materialized_after(instance, LANDED_FILES, dropped, batch),
                180,
            )
            time.sleep(watch_s)
            snapshot = self.materialized_after(instance, TRAINING_SNAPSHOT, dropped)
            trained = [self.materialized_after(instance, candidate_key(c), dropped) for c in CANDIDATES]
            # Which runs trained after the drop, and when they were created (for a failing assertion's message).
            runs = {
                run_id: instance.get_run_record_by_id(run_id)
                for run_id in sorted({t.run_id for t in trained if t is not None})
            }
            training_runs = {
                run_id[:8]: {
                    "created_s": record.create_timestamp.timestamp() - dropped,
                    "sensor": record.dagster_run.tags.get("dagster/sensor_name"),
                    "status": record.dagster_run.status.value,
                }
                for run_id, record in runs.items()
                if record is not None
            }
        return {
            "file": path.name,
            "status": recorded.asset_materialization.metadata["status"].value,
            "recorded_s": recorded.timestamp - dropped,
            "training_snapshots": int(snapshot is not None),
            "candidates_trained": sum(t is not None for t in trained),
            "new_versions": self.versions() - versions,
            "training_runs": training_runs,
        }

    @staticmethod
    def checks_after(
        instance: dg.DagsterInstance, key: dg.AssetKey, after: float
    ) -> list[dg.AssetCheckEvaluation]:
        """Check evaluations on ``key`` in runs created after ``after`` (per run: see the alert sensor's note)."""
        runs = instance.get_run_records(filters=dg.RunsFilter(created_after=_utc(after)))
        found = []
        for record in runs:
            for event in instance.all_logs(
                record.dagster_run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
            ):
                evaluation = event.dagster_event.event_specific_data
                if evaluation.asset_key == key:
                    found.append(evaluation)
        return found


def _utc(timestamp: float):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(timestamp, UTC)
