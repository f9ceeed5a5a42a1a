"""The landing sensor: each landed file with new content becomes a partition and one ingestion run.

What it keeps in its cursor is only a shortcut (file name → size and mtime already looked at); whether a
file is new is decided by its content against the partitions that exist, so an empty cursor (first start
of `make ui` after `make run`, a reset) requests nothing already loaded:

* new content → add the partition, request its run;
* content of an existing partition under another name → a run that records the duplicate (and loads nothing);
* content of an existing partition under the same name → nothing, unless that partition never got loaded
  (its run died, or it landed while the UI was down and its run never started): then it is requested again,
  at most ``MAX_ATTEMPTS`` times.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import dagster as dg

from churn_assets.ingest.assets import LANDED_FILES
from churn_assets.ingest.store import batch_id_of, landed_files, path_sha256
from churn_assets.jobs import ingest_batch_job
from churn_assets.partitions import BATCHES, BATCHES_NAME, LANDED_FILE_TAG
from churn_assets.resources import StateDirs

MAX_ATTEMPTS = 3
"""Runs requested for a batch that never gets loaded (a file that crashes its run every time) before giving up."""


@dataclass(frozen=True)
class Landed:
    name: str
    batch_id: str


def _signature(stat: os.stat_result) -> str:
    return f"{stat.st_size}:{stat.st_mtime_ns}"


def _first_recorded(instance: dg.DagsterInstance, batch_id: str) -> str | None:
    """The file name the batch was first recorded under by an ingestion run (None: never recorded)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=LANDED_FILES, asset_partitions=[batch_id]), limit=1, ascending=True
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    source = records[0].asset_materialization.metadata.get("source_file")
    return None if source is None else str(source.value)


def _attempts(instance: dg.DagsterInstance, batch_id: str) -> tuple[int, bool]:
    """How many ingestion runs this batch had, and whether one is still queued or running."""
    runs = instance.get_runs(
        filters=dg.RunsFilter(job_name=ingest_batch_job.name, tags={"dagster/partition": batch_id})
    )
    return len(runs), any(not run.is_finished for run in runs)


def _request(landed: Landed, attempt: int | str) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=f"{landed.batch_id}:{landed.name}:{attempt}",
        partition_key=landed.batch_id,
        tags={LANDED_FILE_TAG: landed.name[:200]},
    )


@dg.sensor(
    job=ingest_batch_job,
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A file with new content in the landing directory becomes a `landed_batches` partition "
    "and one ingestion run; a copy of a loaded file gets a run that records the duplicate; a loaded file "
    "is never requested again (also after a restart).",
)
def landing_sensor(context: dg.SensorEvaluationContext, state: StateDirs):
    # The cursor holds only settled files (recorded by an ingestion run, or given up on): a file whose run
    # is queued, running or failed is looked at again on the next tick.
    cursor = _loads(context.cursor)
    instance = context.instance
    known = set(instance.get_dynamic_partitions(BATCHES_NAME))
    new_keys: list[str] = []
    requests: list[dg.RunRequest] = []
    for path in landed_files(state.landing):
        signature = _signature(path.stat())
        if cursor.get(path.name) == signature:
            continue
        landed = Landed(path.name, batch_id_of(path_sha256(path)))
        if landed.batch_id not in known:
            known.add(landed.batch_id)
            new_keys.append(landed.batch_id)
            requests.append(_request(landed, 0))
            continue
        first = _first_recorded(instance, landed.batch_id)
        if first is not None:
            cursor[path.name] = signature
            if first != path.name:  # a copy of a recorded batch: its run records the duplicate, loads nothing
                requests.append(_request(landed, f"duplicate-{signature}"))
            continue
        attempts, in_flight = _attempts(instance, landed.batch_id)
        if in_flight:
            continue
        if attempts < MAX_ATTEMPTS:
            requests.append(_request(landed, attempts))  # known but never recorded: its run died; again
        else:
            context.log.warning(f"{path.name}: batch {landed.batch_id} failed {attempts} runs; not retried")
            cursor[path.name] = signature
    if not requests and not new_keys and cursor == _loads(context.cursor):
        return dg.SkipReason(f"nothing new in {state.landing}")
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[BATCHES.build_add_request(new_keys)] if new_keys else [],
        cursor=json.dumps(cursor),
    )


def _loads(cursor: str | None) -> dict[str, str]:
    return json.loads(cursor) if cursor else {}
