"""The graph without a daemon (`make run`, tests): every landed batch the way the landing sensor would
request it, then the main job — all in this process, on the given instance."""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg

from churn_assets.jobs import INGEST_JOB, MAIN_JOB
from churn_assets.partitions import BATCHES_NAME
from churn_assets.sensors import landing_sensor


@dataclass
class HeadlessResult:
    batches: list[dg.ExecuteInProcessResult] = field(default_factory=list)
    main: dg.ExecuteInProcessResult | None = None

    @property
    def success(self) -> bool:
        return all(r.success for r in self.batches) and (self.main is None or self.main.success)

    @property
    def results(self) -> list[dg.ExecuteInProcessResult]:
        return [*self.batches, *([self.main] if self.main else [])]

    def get_asset_materialization_events(self) -> list[dg.DagsterEvent]:
        return [e for r in self.results for e in r.get_asset_materialization_events()]

    def get_asset_check_evaluations(self) -> list[dg.AssetCheckEvaluation]:
        return [e for r in self.results for e in r.get_asset_check_evaluations()]

    def get_asset_observations(self) -> list[dg.AssetObservation]:
        return [
            e.asset_observation_data.asset_observation
            for r in self.results
            for e in r.all_events
            if e.event_type_value == "ASSET_OBSERVATION"
        ]


def ingest_landed(
    defs: dg.Definitions, instance: dg.DagsterInstance, run_config: dict | None = None
) -> list[dg.ExecuteInProcessResult]:
    """Ask the landing sensor what to run (an empty cursor is safe: it decides by content), run it here."""
    if not defs.resources or "state" not in defs.resources:
        raise ValueError("the definitions have no `state` resource: the landing sensor needs it")
    context = dg.build_sensor_context(instance=instance, resources={"state": defs.resources["state"]})
    tick = landing_sensor(context)
    if not isinstance(tick, dg.SensorResult):
        return []
    for request in tick.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(BATCHES_NAME, list(request.partition_keys))
    job = defs.resolve_job_def(INGEST_JOB)
    return [
        job.execute_in_process(
            instance=instance,
            partition_key=request.partition_key,
            tags=request.tags,
            run_config=run_config,
            raise_on_error=False,
        )
        for request in tick.run_requests or []
    ]


def run_all(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    main_config: dict | None = None,
    batch_config: dict | None = None,
) -> HeadlessResult:
    result = HeadlessResult(batches=ingest_landed(defs, instance, batch_config))
    result.main = defs.resolve_job_def(MAIN_JOB).execute_in_process(
        instance=instance, run_config=main_config, raise_on_error=False
    )
    return result
