"""Sensors: new files in the landing zone start the ingestion job."""

import hashlib
import json

import dagster as dg

from churn_assets.ingest.store import landed_files
from churn_assets.jobs import ingest_job
from churn_assets.resources import StateDirs


@dg.sensor(
    job=ingest_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Starts ingestion when a file lands in (or changes in) the landing directory.",
)
def landing_sensor(context: dg.SensorEvaluationContext, state: StateDirs):
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    current = {}
    for path in landed_files(state.landing):
        stat = path.stat()
        current[path.name] = f"{stat.st_size}:{stat.st_mtime_ns}"
    changed = sorted(name for name, signature in current.items() if seen.get(name) != signature)
    if not changed:
        return dg.SkipReason(f"no new files in {state.landing}")
    run_key = hashlib.sha256(json.dumps({n: current[n] for n in changed}).encode()).hexdigest()[:16]
    return dg.SensorResult(
        run_requests=[dg.RunRequest(run_key=run_key, tags={"churn/landed_files": ",".join(changed)[:200]})],
        cursor=json.dumps(current),
    )
