"""The alert sensors, tick by tick, on a test instance, with a real webhook receiver on 127.0.0.1.

Tiny assets built here (not the project's Definitions): a failing check and a passing one, a failing
step, a blocking gate check, an asset with a freshness policy.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.freshness import FreshnessState, FreshnessStateChange
from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin

from churn_assets.alerting.sensors import (
    ALERT_SENSORS,
    failed_check_alert,
    freshness_alert,
    run_failure_alert,
)
from tests.unit.alerting.test_notify import Receiver


@dg.asset(
    check_specs=[
        dg.AssetCheckSpec("feature_drift", asset="scored_batch"),
        dg.AssetCheckSpec("row_count", asset="scored_batch"),
    ]
)
def scored_batch():
    yield dg.MaterializeResult()
    yield dg.AssetCheckResult(
        check_name="feature_drift",
        passed=False,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "drift_share": 0.43210987,
            "threshold": 0.3,
            "drifted_columns": dg.MetadataValue.json(["tenure", "MonthlyCharges"]),
            "summary": dg.MetadataValue.md("| long | table |\n|---|---|"),
        },
    )
    yield dg.AssetCheckResult(check_name="row_count", passed=True, metadata={"rows": 10})


@dg.asset(check_specs=[dg.AssetCheckSpec("roc_auc_floor", asset="candidate_model", blocking=True)])
def candidate_model():
    yield dg.MaterializeResult()
    yield dg.AssetCheckResult(
        check_name="roc_auc_floor", passed=False, metadata={"detail": "ROC AUC 0.61 < floor 0.80"}
    )


@dg.asset
def exploding_asset():
    raise ValueError("bad column 'tenure'\nin batch 7")


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """The webhook, configured the way an operator does: CHURN_ALERT_WEBHOOK_URL."""
    with Receiver() as running:
        monkeypatch.setenv("CHURN_ALERT_WEBHOOK_URL", running.url)
        yield running


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


def _tick(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, cursor: str | None):
    return sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor))


def test_alert_sensors_are_on_by_default_and_described() -> None:
    assert [sensor.name for sensor in ALERT_SENSORS] == [
        "run_failure_alert",
        "failed_check_alert",
        "freshness_alert",
    ]
    for sensor in ALERT_SENSORS:
        assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
        assert sensor.description and len(sensor.description) > 80


# --- failed checks --------------------------------------------------------------------------------------


def test_failed_check_alerts_once_and_advances_the_cursor(
    instance: dg.DagsterInstance, receiver: Receiver
) -> None:
    first = _tick(failed_check_alert, instance, None)
    assert first.cursor == "0" and "first tick" in first.skip_message

    dg.materialize([scored_batch], instance=instance)
    second = _tick(failed_check_alert, instance, first.cursor)
    assert len(receiver.posts) == 1
    text = receiver.texts[0]
    assert text.startswith("ALERT [check_failed] check scored_batch:feature_drift failed (WARN) in run ")
    assert "drift_share=0.4321" in text and "threshold=0.3" in text
    assert "drifted_columns=['tenure', 'MonthlyCharges']" in text
    assert "summary=" not in text  # markdown stays on the asset page
    assert "row_count" not in text  # the passing check is not alerted
    assert receiver.posts[0]["body"]["blocks"][0]["text"]["text"].startswith(":warning: ")
    assert int(second.cursor) > int(first.cursor)
    assert second.skip_message == "1 run(s) ended: 1 alert(s) logged, 1 delivered to the webhook"

    third = _tick(failed_check_alert, instance, second.cursor)
    assert len(receiver.posts) == 1
    assert third.cursor == second.cursor and third.skip_message == "no run ended"


def test_a_refused_gate_is_alerted_as_an_error_although_its_run_failed(
    instance: dg.DagsterInstance, receiver: Receiver
) -> None:
    cursor = _tick(failed_check_alert, instance, None).cursor
    result = dg.materialize([candidate_model], instance=instance, raise_on_error=False)
    assert not result.success  # a blocking check that fails fails its step and the run

    _tick(failed_check_alert, instance, cursor)
    assert len(receiver.posts) == 1
    assert receiver.texts[0].startswith(
        "ALERT [check_failed] check candidate_model:roc_auc_floor failed (ERROR)"
    )
    assert "detail=ROC AUC 0.61 &lt; floor 0.80" in receiver.texts[0]
    assert receiver.posts[0]["body"]["blocks"][0]["text"]["text"].startswith(":red_circle: ")


def test_an_empty_cursor_does_not_replay_history(instance: dg.DagsterInstance, receiver: Receiver) -> None:
    for _ in range(3):
        dg.materialize([scored_batch], instance=instance)

    first = _tick(failed_check_alert, instance, None)
    assert int(first.cursor) > 0
    assert _tick(failed_check_alert, instance, first.cursor).skip_message == "no run ended"
    assert receiver.posts == []

    dg.materialize([scored_batch], instance=instance)  # only what happens from now on is alerted
    _tick(failed_check_alert, instance, first.cursor)
    assert len(receiver.posts) == 1


def test_runs_without_a_failed_check_advance_the_cursor_quietly(
    instance: dg.DagsterInstance, receiver: Receiver
) -> None:
    cursor = _tick(failed_check_alert, instance, None).cursor
    dg.materialize([exploding_asset], instance=instance, raise_on_error=False)
    after = _tick(failed_check_alert, instance, cursor)
    assert int(after.cursor) > int(cursor)
    assert after.skip_message == "1 run(s) ended, no check failed"
    assert receiver.posts == []


def test_a_webhook_that_is_down_does_not_break_the_tick(
    instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Receiver() as gone:
        url = gone.url
    monkeypatch.setenv("CHURN_ALERT_WEBHOOK_URL", url)  # nobody listens there any more
    cursor = _tick(failed_check_alert, instance, None).cursor
    dg.materialize([scored_batch], instance=instance)
    after = _tick(failed_check_alert, instance, cursor)
    assert int(after.cursor) > int(cursor)  # the alert was logged; it is not retried on every tick
    assert after.skip_message == "1 run(s) ended: 1 alert(s) logged, 0 delivered to the webhook"


# --- failed runs -------------------------------------------------------------------------------------


def _failing_defs() -> dg.Definitions:
    return dg.Definitions(
        assets=[exploding_asset], jobs=[dg.define_asset_job("churn_main", selection=[exploding_asset])]
    )


def test_run_failure_alert_names_the_job_run_step_and_error(
    instance: dg.DagsterInstance, receiver: Receiver
) -> None:
    result = (
        _failing_defs()
        .resolve_job_def("churn_main")
        .execute_in_process(instance=instance, raise_on_error=False)
    )
    context = dg.build_run_status_sensor_context(
        sensor_name=run_failure_alert.name,
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
    )
    run_failure_alert(context)

    assert len(receiver.posts) == 1
    text = receiver.texts[0]
    run_id = result.dagster_run.run_id
    assert text.startswith(f"ALERT [run_failure] churn_main run {run_id[:8]} failed: ")
    assert "step exploding_asset: ValueError: bad column 'tenure' in batch 7" in text
    assert "assets:" not in text  # the whole job ran: no asset subset to name
    assert (
        f"/runs/{run_id}|open in Dagster>" in receiver.posts[0]["body"]["blocks"][-1]["elements"][0]["text"]
    )


def test_run_failure_alert_covers_runs_launched_by_automation(
    instance: dg.DagsterInstance, receiver: Receiver
) -> None:
    """Declarative automation launches `__ASSET_JOB` runs; the sensor has no `monitored_jobs`, so its
    own tick logic (not only the decorated function) must pick them up."""
    cursor = _tick(run_failure_alert, instance, None).cursor  # Dagster's first tick: start from now
    automation_tags = {
        "dagster/from_automation_condition": "true",
        "dagster/sensor_name": "default_automation_condition_sensor",
    }
    implicit_job = _failing_defs().resolve_implicit_global_asset_job_def()
    assert implicit_job.name == "__ASSET_JOB"
    implicit_job.execute_in_process(
        instance=instance, asset_selection=[exploding_asset.key], tags=automation_tags, raise_on_error=False
    )

    _tick(run_failure_alert, instance, cursor)
    assert len(receiver.posts) == 1
    text = receiver.texts[0]
    assert text.startswith("ALERT [run_failure] __ASSET_JOB run ")
    assert "step exploding_asset: ValueError: bad column 'tenure'" in text
    assert "assets: exploding_asset" in text
    assert "launched by default_automation_condition_sensor" in text


def _daemon_context(
    instance: dg.DagsterInstance, location: str, cursor: str | None
) -> dg.SensorEvaluationContext:
    """A sensor context as the sensor daemon builds it for a sensor of code location ``location``."""
    return dg.SensorEvaluationContext(
        instance_ref=None,
        instance=instance,
        cursor=cursor,
        repository_name="__repository__",
        code_location_origin=RegisteredCodeLocationOrigin(location),
    )


def test_automation_run_of_the_code_location_is_matched_by_origin(
    instance: dg.DagsterInstance, receiver: Receiver
) -> None:
    """In a deployment the automation daemon creates `__ASSET_JOB` runs with the code location's origin;
    the run-failure sensor matches runs by code location and repository, not by job name."""
    implicit_job = _failing_defs().resolve_implicit_global_asset_job_def()
    origin = RemoteJobOrigin(
        repository_origin=RemoteRepositoryOrigin(RegisteredCodeLocationOrigin("churn"), "__repository__"),
        job_name=implicit_job.name,
    )

    def tick(location: str, cursor: str | None):
        return run_failure_alert.evaluate_tick(_daemon_context(instance, location, cursor))

    churn_cursor, other_cursor = tick("churn", None).cursor, tick("other", None).cursor
    run = instance.create_run_for_job(
        implicit_job,
        remote_job_origin=origin,
        tags={"dagster/from_automation_condition": "true"},
        asset_selection=frozenset([exploding_asset.key]),
    )
    instance.report_run_failed(run)

    tick("other", other_cursor)
    assert receiver.posts == []  # a sensor of another code location leaves it alone
    tick("churn", churn_cursor)
    assert len(receiver.posts) == 1
    assert receiver.texts[0].startswith(f"ALERT [run_failure] __ASSET_JOB run {run.run_id[:8]} failed: ")
    assert "marked as failed" in receiver.texts[0]  # no failed step: the run's own reason


# --- freshness -----------------------------------------------------------------------------------------


def _change(key: str, previous: FreshnessState, new: FreshnessState) -> FreshnessStateChange:
    return FreshnessStateChange(
        key=dg.AssetKey(key), previous_state=previous, new_state=new, state_change_timestamp=time.time()
    )


def test_freshness_alerts_on_warn_and_fail_only(instance: dg.DagsterInstance, receiver: Receiver) -> None:
    instance.report_runless_asset_event(_change("old_news", FreshnessState.PASS, FreshnessState.FAIL))
    first = _tick(freshness_alert, instance, None)
    assert int(first.cursor) > 0  # the old change is not replayed
    assert _tick(freshness_alert, instance, first.cursor).skip_message == "no freshness change"

    instance.report_runless_asset_event(dg.AssetMaterialization("served_drift"))
    for previous, new in [
        (FreshnessState.UNKNOWN, FreshnessState.PASS),
        (FreshnessState.PASS, FreshnessState.WARN),
        (FreshnessState.WARN, FreshnessState.FAIL),
        (FreshnessState.FAIL, FreshnessState.PASS),
    ]:
        instance.report_runless_asset_event(_change("served_drift", previous, new))
    second = _tick(freshness_alert, instance, first.cursor)
    assert receiver.texts == [
        "ALERT [freshness] served_drift freshness WARN (was PASS): last materialized 0m ago",
        "ALERT [freshness] served_drift freshness FAIL (was WARN): last materialized 0m ago",
    ]
    assert [post["body"]["blocks"][0]["text"]["text"].split()[0] for post in receiver.posts] == [
        ":warning:",
        ":red_circle:",
    ]
    third = _tick(freshness_alert, instance, second.cursor)
    assert third.cursor == second.cursor and len(receiver.posts) == 2

    instance.report_runless_asset_event(_change("never_built", FreshnessState.UNKNOWN, FreshnessState.FAIL))
    _tick(freshness_alert, instance, third.cursor)
    assert (
        receiver.texts[-1] == "ALERT [freshness] never_built freshness FAIL (was UNKNOWN): never materialized"
    )


FRESH_DEFS = """
from datetime import timedelta

import dagster as dg


@dg.asset(
    freshness_policy=dg.FreshnessPolicy.time_window(
        fail_window=timedelta(minutes=2), warn_window=timedelta(minutes=1)
    )
)
def fresh_scores():
    return 1


defs = dg.Definitions(assets=[fresh_scores])
"""


def test_freshness_alert_reads_what_the_freshness_daemon_writes(
    instance: dg.DagsterInstance, receiver: Receiver, tmp_path: Path
) -> None:
    """The real FreshnessDaemon iteration (as `dagster dev` runs it every 30 s) on a time-window policy,
    with the clock moved past the warn and then the fail window."""
    from dagster._core.remote_origin import InProcessCodeLocationOrigin
    from dagster._core.test_utils import freeze_time
    from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
    from dagster._daemon.freshness import FreshnessDaemon

    (tmp_path / "fresh_defs.py").write_text(FRESH_DEFS)
    location = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(python_file=str(tmp_path / "fresh_defs.py"), attribute="defs"),
        location_name="churn",
    )
    cursor = _tick(freshness_alert, instance, None).cursor
    instance.report_runless_asset_event(dg.AssetMaterialization("fresh_scores"))
    start = time.time()
    with WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget([location])) as workspace:

        def daemon_iteration_at(seconds_later: float) -> None:
            with freeze_time(start + seconds_later):
                list(FreshnessDaemon().run_iteration(workspace))

        daemon_iteration_at(0)  # UNKNOWN -> PASS: nothing to alert
        cursor = _tick(freshness_alert, instance, cursor).cursor
        assert receiver.posts == []

        daemon_iteration_at(90)  # past the 1 min warn window
        cursor = _tick(freshness_alert, instance, cursor).cursor
        daemon_iteration_at(100)  # no state change, no event
        cursor = _tick(freshness_alert, instance, cursor).cursor
        daemon_iteration_at(150)  # past the 2 min fail window
        _tick(freshness_alert, instance, cursor)

    assert [text.split(":")[0] for text in receiver.texts] == [
        "ALERT [freshness] fresh_scores freshness WARN (was PASS)",
        "ALERT [freshness] fresh_scores freshness FAIL (was WARN)",
    ]
