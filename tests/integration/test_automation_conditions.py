"""The automation conditions, evaluated by Dagster on a test instance (no runs: events are reported).

Each test starts from an installation where everything has been materialized once with passing checks
(what `make run` leaves), evaluates once (Dagster's `since_last_handled` conditions begin there), reports
what upstream runs would have written, and evaluates again with the cursor of the first evaluation.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from churn_assets.automation import data_automation, training_automation
from churn_assets.definitions import build_definitions
from churn_assets.ingest.assets import LANDED_FILES, RAW_CUSTOMERS
from churn_assets.monitoring.assets import BATCH_DRIFT, SERVED_DRIFT
from churn_assets.partitions import BATCHES
from churn_assets.settings import Settings
from churn_assets.training.keys import (
    CHAMPION_MODEL,
    PROMOTION_DECISION,
    REGISTERED_MODEL,
    TRAINING_CHAIN,
    TRAINING_SNAPSHOT,
    candidate_key,
)
from churn_assets.training.snapshot import TRAINING_SET

BATCH = "0123456789abcdef"
NEW_BATCH = "fedcba9876543210"
STG = dg.AssetKey(["staging", "stg_customers"])


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[dg.Definitions, dg.DagsterInstance]]:
    settings = Settings(home=tmp_path / "home")
    settings.ensure_dirs()
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(BATCHES.name, [BATCH])
        defs = build_definitions(settings)
        _settled(defs, instance)
        yield defs, instance


def _settled(defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
    """Every asset materialized once (each partition for the batch assets) and every check passed."""
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        partition = BATCH if graph.get(key).is_partitioned else None
        _materialized(instance, key, partition)
    for check in graph.asset_check_keys:
        partition = BATCH if graph.get(check.asset_key).is_partitioned else None
        _check(instance, check.asset_key, check.name, True, partition)


class Sensor:
    """Evaluations of one automation sensor's target, tick after tick (the daemon evaluates each apart)."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance, sensor) -> None:
        self.defs, self.instance, self.selection = defs, instance, sensor.asset_selection
        self.last = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, asset_selection=self.selection
        )
        assert self.last.total_requested == 0

    def tick(self) -> dg.EvaluateAutomationConditionsResult:
        self.last = dg.evaluate_automation_conditions(
            defs=self.defs, instance=self.instance, asset_selection=self.selection, cursor=self.last.cursor
        )
        return self.last


def _materialized(instance: dg.DagsterInstance, key: dg.AssetKey, partition: str | None = None) -> None:
    instance.report_runless_asset_event(dg.AssetMaterialization(key, partition=partition))


def _check(
    instance: dg.DagsterInstance, key: dg.AssetKey, name: str, passed: bool, partition: str | None = None
) -> None:
    instance.report_runless_asset_event(
        dg.AssetCheckEvaluation(asset_key=key, check_name=name, passed=passed, partition=partition)
    )


def test_a_loaded_batch_requests_dbt_and_its_drift_report(world) -> None:
    defs, instance = world
    instance.add_dynamic_partitions(BATCHES.name, [NEW_BATCH])
    sensor = Sensor(defs, instance, data_automation)
    _materialized(instance, LANDED_FILES, NEW_BATCH)
    _materialized(instance, RAW_CUSTOMERS, NEW_BATCH)
    _check(instance, RAW_CUSTOMERS, "rows_accounted_for", True, NEW_BATCH)
    result = sensor.tick()
    assert result.get_num_requested(STG) == 1
    assert result.get_num_requested(TRAINING_SET) == 1
    assert result.get_num_requested(BATCH_DRIFT) == 1  # (the landing sensor's run also includes it)


def test_a_refused_or_duplicate_file_requests_nothing_downstream(world) -> None:
    defs, instance = world
    instance.add_dynamic_partitions(BATCHES.name, [NEW_BATCH])
    sensor = Sensor(defs, instance, data_automation)
    _materialized(instance, LANDED_FILES, NEW_BATCH)  # all a refused or duplicate file's run materializes
    _check(instance, LANDED_FILES, "file_accepted", False, NEW_BATCH)
    assert sensor.tick().total_requested == 0


def test_a_drift_verdict_requests_the_training_snapshot_and_the_training_chain(world) -> None:
    defs, instance = world
    sensor = Sensor(defs, instance, training_automation)
    instance.add_dynamic_partitions(BATCHES.name, [NEW_BATCH])
    _materialized(instance, BATCH_DRIFT, NEW_BATCH)
    _check(instance, BATCH_DRIFT, "batch_drift_share_below_threshold", False, NEW_BATCH)
    result = sensor.tick()
    assert result.get_num_requested(TRAINING_SNAPSHOT) == 1
    # in the same run, skipped there unless the snapshot finds a reason and materializes
    for key in (candidate_key("xgboost"), REGISTERED_MODEL, PROMOTION_DECISION, CHAMPION_MODEL):
        assert result.get_num_requested(key) == 1, key


def test_new_training_data_requests_a_look_once(world) -> None:
    defs, instance = world
    sensor = Sensor(defs, instance, training_automation)
    _materialized(instance, TRAINING_SET)
    looked = sensor.tick()
    assert looked.get_num_requested(TRAINING_SNAPSHOT) == 1
    # nothing new since: no second look (the snapshot decided, by not materializing, that there is no reason)
    assert sensor.tick().get_num_requested(TRAINING_SNAPSHOT) == 0


def test_no_training_while_a_training_run_is_in_progress(world) -> None:
    defs, instance = world
    sensor = Sensor(defs, instance, training_automation)
    job = defs.resolve_implicit_global_asset_job_def()
    run = instance.create_run_for_job(
        job_def=job, asset_selection=frozenset({TRAINING_SNAPSHOT}), status=dg.DagsterRunStatus.STARTED
    )
    assert not run.is_finished
    _materialized(instance, TRAINING_SET)
    assert sensor.tick().get_num_requested(TRAINING_SNAPSHOT) == 0


def test_a_verdict_during_a_training_run_is_looked_at_once_the_run_ends(world) -> None:
    """The snapshot of a training run is written minutes before its chain ends: a served-drift verdict then
    must not start a second training (whose snapshot would still see the old champion), nor be lost."""
    defs, instance = world
    sensor = Sensor(defs, instance, training_automation)
    job = defs.resolve_implicit_global_asset_job_def()
    # The snapshot executed; candidates, evaluation, registration, decision and champion are still to come.
    run = instance.create_run_for_job(
        job_def=job, asset_selection=frozenset(TRAINING_CHAIN), status=dg.DagsterRunStatus.STARTED
    )
    _materialized(instance, SERVED_DRIFT)
    assert sensor.tick().get_num_requested(TRAINING_SNAPSHOT) == 0
    assert sensor.tick().get_num_requested(TRAINING_SNAPSHOT) == 0
    instance.report_run_failed(run)  # ended (how does not matter here)
    assert sensor.tick().get_num_requested(TRAINING_SNAPSHOT) == 1


def test_no_training_above_a_failed_blocking_check(world) -> None:
    defs, instance = world
    sensor = Sensor(defs, instance, training_automation)
    _materialized(instance, TRAINING_SET)
    _check(instance, TRAINING_SET, "not_null_training_set_churn", False)
    assert sensor.tick().get_num_requested(TRAINING_SNAPSHOT) == 0


def test_a_failed_blocking_check_on_the_registered_model_stops_the_decision(world) -> None:
    defs, instance = world
    sensor = Sensor(defs, instance, training_automation)
    _materialized(instance, REGISTERED_MODEL)
    _check(instance, REGISTERED_MODEL, "reproduces_test_predictions", False)
    result = sensor.tick()
    assert result.get_num_requested(PROMOTION_DECISION) == 0
    assert result.get_num_requested(CHAMPION_MODEL) == 0

    _check(instance, REGISTERED_MODEL, "reproduces_test_predictions", True)
    _materialized(instance, REGISTERED_MODEL)
    assert sensor.tick().get_num_requested(PROMOTION_DECISION) == 1
