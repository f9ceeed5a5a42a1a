"""A killed ingestion run under `churn ui` does not block the pipeline: nothing to do by hand.

`churn ui` (dagster dev: webserver, daemon, code server) runs as users start it, in a temporary CHURN_HOME.
The landing sensor starts an ingestion run for a large file; while its step is ingesting, the run worker
(which executes the steps: in-process executor) is killed with SIGKILL. Then a second file lands, and the
test waits for the crashed run to end FAILURE (reported by the code server that launched it), for run
monitoring (dagster.yaml `run_monitoring.free_slots_after_run_end_seconds`) to free the `duckdb` pool slot
the dead run still held, for the second file's run, and for the sensor to retry the killed batch: both
files loaded, each exactly once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import sys
import time
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import TypeVar

import dagster as dg
import duckdb
import pytest
from dagster import DagsterEventType

from benchmarks.servers import DAGSTER_UI_READY_PATH, ManagedServer, free_port
from churn_assets.jobs import INGEST_JOB
from churn_assets.settings import REPO_ROOT, Settings
from tests.csv_fixtures import GOOD_ROWS, write_csv

STEP = "raw_batch"  # the ingestion multi-asset's step (raw/landed_files, raw/customers, raw/rejected_rows)
# Big enough that ingesting it takes seconds (≈5 s on the 2-core machine), so the kill lands mid-step.
BIG_ROWS = 200_000
KILL_AFTER_STEP_START_S = 0.5

T = TypeVar("T")


def _wait_for(what: str, probe: Callable[[], T | None], timeout: float, log: Path) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (value := probe()) is not None:
            return value
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-4000:] if log.exists() else ""
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n--- churn ui output (tail) ---\n{tail}")


def _rows(prefix: str, count: int) -> list[str]:
    """``count`` valid rows with unique customer ids (the fixture rows with a new id)."""
    return [f"{prefix}-{i:07d},{GOOD_ROWS[i % len(GOOD_ROWS)].split(',', 1)[1]}" for i in range(count)]


def _land(landing: Path, name: str, rows: list[str]) -> Path:
    """Land like `churn data fetch`: write ``*.part`` (ignored by the sensor), then rename when complete."""
    part = write_csv(landing / f"{name}.part", rows)
    return part.rename(landing / name)


def _ui_env(home: Path, port: int) -> dict[str, str]:
    # Only this installation's home: drop any CHURN_*/DAGSTER_HOME/MLflow location of the calling shell.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CHURN_") and k not in {"DAGSTER_HOME", "MLFLOW_TRACKING_URI"}
    }
    return {**env, "CHURN_HOME": str(home), "CHURN_UI_PORT": str(port)}


def _storages_stamped(dagster_home: Path) -> bool | None:
    """Whether the run and schedule databases exist with their alembic revision (read-only: no init)."""
    for db in (dagster_home / "history" / "runs.db", dagster_home / "schedules" / "schedules.db"):
        try:
            with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
                if not conn.execute("select version_num from alembic_version").fetchall():
                    return None
        except sqlite3.Error:  # not created yet, no table yet, or locked by the writer
            return None
    return True


def _pid(event: dg.EventLogEntry) -> int:
    return int(event.dagster_event.event_specific_data.metadata["pid"].value)


def _events(instance: dg.DagsterInstance, run_id: str, *types: DagsterEventType) -> list[dg.EventLogEntry]:
    return list(instance.all_logs(run_id, of_type=set(types)))


def _step_event(instance: dg.DagsterInstance, run_id: str, kind: DagsterEventType) -> dg.EventLogEntry | None:
    return next((e for e in _events(instance, run_id, kind) if e.step_key == STEP), None)


def _ingest_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return list(reversed(instance.get_runs(filters=dg.RunsFilter(job_name=INGEST_JOB))))


def _warehouse(settings: Settings, sql: str) -> list[tuple]:
    """Read the warehouse between two steps of the running job (retry while a writer holds the lock)."""
    for _ in range(50):
        try:
            with duckdb.connect(str(settings.duckdb_path), read_only=True) as conn:
                return conn.execute(sql).fetchall()
        except duckdb.IOException:
            time.sleep(0.1)
    pytest.fail(f"the warehouse stayed locked: {sql}")


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_a_killed_ingestion_run_frees_its_slot_and_the_next_file_loads(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")
    settings.landing_dir.mkdir(parents=True)
    big = _land(settings.landing_dir, "batch-1.csv", _rows("K", BIG_ROWS))
    log, port = tmp_path / "churn-ui.log", free_port()
    argv = [str(Path(sys.executable).parent / "churn"), "ui"]
    # Its own process group (dagster dev, code server, run and step workers), all stopped at the end.
    ui = ManagedServer(
        "churn ui", argv, _ui_env(settings.home, port), port, DAGSTER_UI_READY_PATH, log, REPO_ROOT
    )
    ui.start()
    assert ui.proc is not None
    started = time.monotonic()
    try:
        # Open the instance only once `churn ui` has created and stamped its SQLite storages: Dagster's run and
        # schedule storages do not survive a concurrent first init (UNIQUE constraint on alembic_version).
        _wait_for("the Dagster storages", lambda: _storages_stamped(settings.dagster_home), 120, log)
        with dg.DagsterInstance.from_config(str(settings.dagster_home)) as instance:
            # 1. The landing sensor (RUNNING by default) starts an ingestion run for the landed file.
            first = _wait_for(
                "the sensor's first ingestion run", lambda: next(iter(_ingest_runs(instance)), None), 240, log
            )
            step_start = _wait_for(
                "the ingestion step to start",
                lambda: _step_event(instance, first.run_id, DagsterEventType.STEP_START),
                240,
                log,
            )
            time.sleep(max(0.0, step_start.timestamp + KILL_AFTER_STEP_START_S - time.time()))

            # 2. kill -9 the run worker (child of the code server), found by the pid the run itself logged;
            #    it is the process ingesting the file (steps run in the run's process).
            (run_started,) = [
                e
                for e in _events(instance, first.run_id, DagsterEventType.ENGINE_EVENT)
                if (e.message or "").startswith("Started process for run")
            ]
            run_pid = _pid(run_started)
            assert os.getpgid(run_pid) == ui.proc.pid  # ours, not another test's
            os.kill(run_pid, signal.SIGKILL)
            killed = time.time()
            assert _step_event(instance, first.run_id, DagsterEventType.STEP_SUCCESS) is None, (
                "the ingestion step finished before the kill: make the file bigger"
            )
            claimed = instance.event_log_storage.get_concurrency_info("duckdb").claimed_slots
            assert [(s.run_id, s.step_key) for s in claimed] == [(first.run_id, STEP)]

            # 3. A second, different file lands; nobody touches Dagster.
            small = _land(settings.landing_dir, "batch-2.csv", _rows("N", 4))

            def finished() -> dg.RunRecord | None:
                record = instance.get_run_record_by_id(first.run_id)
                return record if record.dagster_run.is_finished else None

            crashed = _wait_for("the crashed run to be marked finished", finished, 240, log)
            failed_after = crashed.end_time - killed
            assert crashed.dagster_run.status == dg.DagsterRunStatus.FAILURE
            reporter = [
                (e.message or "").split(". ")[0]
                for e in _events(instance, first.run_id, DagsterEventType.ENGINE_EVENT)
                if e.timestamp >= killed
            ]

            def slot_free() -> bool | None:
                claimed = instance.event_log_storage.get_concurrency_info("duckdb").claimed_slots
                return True if all(s.run_id != first.run_id for s in claimed) else None

            _wait_for("run monitoring to free the dead run's duckdb slot", slot_free, 240, log)
            freed_after = time.time() - killed
            # Freed by the monitoring daemon, no earlier than dagster.yaml says.
            grace = instance.run_monitoring_settings["free_slots_after_run_end_seconds"]
            assert time.time() - crashed.end_time >= grace

            def both_loaded() -> list[dg.DagsterRun] | None:
                """The runs after the killed one, once a run for each file has ingested it."""
                later = [r for r in _ingest_runs(instance) if r.run_id != first.run_id]
                for run in later:
                    if (
                        failure := _step_event(instance, run.run_id, DagsterEventType.STEP_FAILURE)
                    ) is not None:
                        pytest.fail(f"ingestion run {run.run_id[:8]} failed: {failure.message}")
                done = [r for r in later if _step_event(instance, r.run_id, DagsterEventType.STEP_SUCCESS)]
                return done if len(done) >= 2 else None

            later = _wait_for(
                "a run for the second file and a retry of the killed one", both_loaded, 420, log
            )
            second = next(r for r in later if r.tags.get("churn/landed_file") == "batch-2.csv")
            retry = next(r for r in later if r.tags.get("churn/landed_file") == "batch-1.csv")
            queued_after = instance.get_run_record_by_id(second.run_id).create_timestamp.timestamp() - killed
            loaded_after = (
                _step_event(instance, second.run_id, DagsterEventType.STEP_SUCCESS).timestamp - killed
            )
            retried_after = (
                _step_event(instance, retry.run_id, DagsterEventType.STEP_SUCCESS).timestamp - killed
            )

            # 4. Both files are loaded in full, exactly once, whether or not the killed run got to commit.
            files = {
                name: rest
                for name, *rest in _warehouse(
                    settings,
                    "select source_file, status, rows_in_file, rows_accepted, ingested_at from raw.landed_files",
                )
            }
            counts = dict(
                _warehouse(settings, "select _source_file, count(*) from raw.customers group by all")
            )
            assert files.keys() == {big.name, small.name}
            assert tuple(files[small.name][:3]) == ("loaded", 4, 4)
            assert tuple(files[big.name][:3]) == ("loaded", BIG_ROWS, BIG_ROWS)
            assert counts == {big.name: BIG_ROWS, small.name: 4}
            assert _warehouse(settings, "select count(*) from raw.rejected_rows") == [(0,)]
            loaded_by_killed_run = files[big.name][3].replace(tzinfo=UTC).timestamp() < killed
            # 5. What `churn ui` and its runs wrote is owner-only (umask 077 from `churn`'s main).
            for path in (settings.home, settings.duckdb_path, settings.dagster_home / "history" / "runs.db"):
                assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"
    finally:
        ui.stop()

    print(
        f"\nkill -9 of run {first.run_id[:8]} {KILL_AFTER_STEP_START_S} s into its ingestion step;"
        f"\n  marked FAILURE after {failed_after:.1f} s by: {reporter}"
        f"\n  duckdb slot freed after {freed_after:.1f} s"
        f"\n  second file: run {second.run_id[:8]} requested by the sensor after {queued_after:.1f} s,"
        f" loaded after {loaded_after:.1f} s"
        f"\n  killed file: {'committed by the killed run' if loaded_by_killed_run else 'rolled back'}; retried by"
        f" the sensor (run {retry.run_id[:8]}), recorded after {retried_after:.1f} s"
        f"\n  whole test {time.monotonic() - started:.0f} s"
    )
