"""The landing sensor tick by tick: a new file → one partition and one run; the same file again, or after a
restart (empty cursor) → nothing; a copy → a duplicate-recording run; a batch whose run died → retried."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from churn_assets.ingest.assets import LANDED_FILES
from churn_assets.ingest.store import batch_id_of, path_sha256
from churn_assets.jobs import INGEST_JOB
from churn_assets.partitions import BATCHES, LANDED_FILE_TAG
from churn_assets.resources import StateDirs
from churn_assets.sensors import MAX_ATTEMPTS, landing_sensor
from tests.csv_fixtures import GOOD_ROWS, write_csv


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


def _tick(instance: dg.DagsterInstance, landing: Path, cursor: str | None):
    """One evaluation, applied to the instance the way the daemon would (partitions added)."""
    state = StateDirs(landing_dir=str(landing), reports_dir=str(landing.parent / "reports"))
    context = dg.build_sensor_context(cursor=cursor, resources={"state": state}, instance=instance)
    result = landing_sensor(context)
    if isinstance(result, dg.SensorResult):
        for request in result.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(BATCHES.name, list(request.partition_keys))
    return result


def _record(instance: dg.DagsterInstance, batch: str, name: str) -> None:
    """What a finished ingestion run leaves behind: a raw/landed_files materialization for the batch."""
    instance.report_runless_asset_event(
        dg.AssetMaterialization(LANDED_FILES, partition=batch, metadata={"source_file": name})
    )


def _run(instance: dg.DagsterInstance, batch: str, status: dg.DagsterRunStatus) -> None:
    instance.add_run(
        dg.DagsterRun(
            job_name=INGEST_JOB, run_id=str(uuid.uuid4()), status=status, tags={"dagster/partition": batch}
        )
    )


def test_a_new_file_becomes_one_partition_and_one_run(instance, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    path = write_csv(landing / "a.csv", GOOD_ROWS)
    write_csv(landing / "b.csv.part", GOOD_ROWS[:1])  # still downloading: not yet
    batch = batch_id_of(path_sha256(path))

    first = _tick(instance, landing, None)

    assert isinstance(first, dg.SensorResult)
    assert [r.partition_key for r in first.run_requests] == [batch]
    assert first.run_requests[0].tags[LANDED_FILE_TAG] == "a.csv"
    assert instance.get_dynamic_partitions(BATCHES.name) == [batch]


def test_the_same_file_again_or_after_a_restart_requests_nothing(instance, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    path = write_csv(landing / "a.csv", GOOD_ROWS)
    first = _tick(instance, landing, None)
    # while its run is queued, the next tick asks for the same run_key (Dagster keeps one run per key)
    queued = _tick(instance, landing, first.cursor)
    assert [r.run_key for r in queued.run_requests] == [r.run_key for r in first.run_requests]
    _run(instance, batch_id_of(path_sha256(path)), dg.DagsterRunStatus.STARTED)
    assert isinstance(_tick(instance, landing, first.cursor), dg.SkipReason)  # in flight: wait

    _record(instance, batch_id_of(path_sha256(path)), "a.csv")
    settled = _tick(instance, landing, first.cursor)
    assert not settled.run_requests
    assert isinstance(_tick(instance, landing, settled.cursor), dg.SkipReason)
    assert isinstance(_tick(instance, landing, None), dg.SensorResult)  # restart: looks, requests nothing
    assert not _tick(instance, landing, None).run_requests
    assert len(instance.get_dynamic_partitions(BATCHES.name)) == 1


def test_a_copy_under_another_name_gets_a_run_that_records_the_duplicate(instance, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    path = write_csv(landing / "a.csv", GOOD_ROWS)
    batch = batch_id_of(path_sha256(path))
    first = _tick(instance, landing, None)
    _record(instance, batch, "a.csv")
    settled = _tick(instance, landing, first.cursor)

    shutil.copy(path, landing / "a_copy.csv")
    copy = _tick(instance, landing, settled.cursor)

    assert [(r.partition_key, r.tags[LANDED_FILE_TAG]) for r in copy.run_requests] == [(batch, "a_copy.csv")]
    assert not copy.dynamic_partitions_requests
    assert isinstance(_tick(instance, landing, copy.cursor), dg.SkipReason)


def test_a_batch_whose_run_died_is_retried_a_bounded_number_of_times(instance, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    path = write_csv(landing / "a.csv", GOOD_ROWS)
    batch = batch_id_of(path_sha256(path))
    cursor = _tick(instance, landing, None).cursor
    keys = set()
    for _ in range(MAX_ATTEMPTS):
        _run(instance, batch, dg.DagsterRunStatus.FAILURE)
        retry = _tick(instance, landing, cursor)
        keys |= {r.run_key for r in retry.run_requests}
        cursor = retry.cursor
    assert len(keys) == MAX_ATTEMPTS - 1  # attempts 1 .. MAX-1 after the first; then it gives up
    assert isinstance(_tick(instance, landing, cursor), dg.SkipReason)  # given up: recorded in the cursor
