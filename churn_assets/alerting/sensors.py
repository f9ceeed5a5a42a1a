"""The alert sensors: failed runs, failed asset checks, assets going stale (``ALERT_SENSORS``).

Each sensor turns what it finds into ``notify.Alert``s and hands them to ``notify.send_alert``: one log
line each, plus a POST to ``CHURN_ALERT_WEBHOOK_URL`` when it is set. The URL (and the UI port used for
links) is read from the settings at every evaluation, never at import.

Where each sensor reads, and why there (Dagster 1.13.27, checked in its source):

* ``run_failure_alert`` is Dagster's run-failure sensor; its cursor is Dagster's own.
* ``failed_check_alert``: the instance's default event log (``SqliteEventLogStorage``, what
  ``DAGSTER_HOME`` gets here) is sharded per run. ``ASSET_CHECK_EVALUATION`` storage ids are row
  numbers inside one run's shard (two runs both have an evaluation with id 13), and
  ``get_event_records`` with an integer ``after_cursor`` raises for that event type; there is no
  ``fetch_asset_check_evaluations``. Run-end events (success, failure, cancellation) do carry global
  storage ids (they are mirrored in the index shard; ``fetch_run_status_changes`` reads them there).
  So the cursor is the storage id of the last run-end event looked at, and the evaluations are read
  per ended run. A check failure is therefore alerted when the run that evaluated it ends.
* ``freshness_alert``: the freshness daemon (``freshness: enabled`` in dagster.yaml, run by ``dagster
  dev``) re-evaluates every asset with a ``FreshnessPolicy`` every 30 s and, only when an asset's state
  changes, writes a runless ``FRESHNESS_STATE_CHANGE`` event (previous and new state: PASS, WARN, FAIL,
  UNKNOWN). That event type is an asset event, mirrored in the index shard with a global storage id,
  so ``get_event_records`` after a storage id works on every storage. Each change to WARN or FAIL is
  alerted once (WARN then FAIL: two alerts); recoveries are not.

First tick (empty cursor): the two cursor sensors start at the newest event of their kind and alert
nothing, so turning a sensor on, or resetting its cursor, never replays the history as a flood of old
alerts. Dagster's run-failure sensor does the same on its own first tick.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import dagster as dg

from churn_assets.alerting.notify import Alert, Severity, send_alert
from churn_assets.settings import Settings, get_settings

# Not exported by `dagster`: the event-type literal its run-status filter takes, and the freshness event's data.
if TYPE_CHECKING:
    from dagster._core.definitions.freshness import FreshnessStateChange
    from dagster._core.event_api import RunStatusChangeEventType

RUN_END_EVENTS: tuple[RunStatusChangeEventType, ...] = (
    dg.DagsterEventType.RUN_SUCCESS,
    dg.DagsterEventType.RUN_FAILURE,
    dg.DagsterEventType.RUN_CANCELED,
)
"""A run's check evaluations are read once the run has ended, whichever way it ended."""

RUN_ENDS_PER_TICK = 25
"""Runs read per event type and tick; a backlog is worked off over the next ticks."""

FRESHNESS_CHANGES_PER_TICK = 100

FRESHNESS_SEVERITY: dict[str, Severity] = {"WARN": "warning", "FAIL": "error"}
"""The freshness states that are alerted (``FreshnessState`` values), and how loudly."""

_CHECK_SEVERITY: dict[str, Severity] = {"ERROR": "error", "WARN": "warning"}

# Dagster wraps a step's own exception in these; the wrapped one (the cause) is what to report.
_WRAPPER_ERRORS = ("DagsterExecution", "DagsterUserCodeExecutionError")

_MAX_VALUE_CHARS = 200


# --- run failures ----------------------------------------------------------------------------------


@dg.run_failure_sensor(
    name="run_failure_alert",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts on every failed run of this code location: jobs, the landing sensor's "
    "ingestion runs and the runs that declarative automation launches (`__ASSET_JOB`): no "
    "`monitored_jobs`, since that filter matches job names and would miss the automation runs. "
    "The alert names the job, the run and each failed step with its error.",
)
def run_failure_alert(context: dg.RunFailureSensorContext) -> None:
    settings = get_settings()
    alert = run_failure_to_alert(
        context.dagster_run, context.failure_event, context.get_step_failure_events(), _ui(settings)
    )
    send_alert(alert, settings.alert_webhook_url, context.log)


def run_failure_to_alert(
    run: dg.DagsterRun, failure: dg.DagsterEvent, step_failures: Sequence[dg.DagsterEvent], ui: str
) -> Alert:
    """Job, run, partition, each failed step with its error; the run's own reason when no step failed.

    A run fails without a failed step when its process died or run monitoring timed it out: then
    the failure event's message is all there is.
    """
    lines = [f"step {event.step_key}: {_error_text(event.event_specific_data)}" for event in step_failures]
    if not lines:
        lines = [_error_text(failure.event_specific_data) or failure.message or "no reason recorded"]
    if run.asset_selection:
        lines.append("assets: " + _keys(run.asset_selection))
    launched_by = run.tags.get("dagster/sensor_name") or run.tags.get("dagster/schedule_name")
    if launched_by:
        lines.append(f"launched by {launched_by}")
    partition = run.tags.get("dagster/partition")
    return Alert(
        kind="run_failure",
        title=f"{run.job_name} run {run.run_id[:8]} failed"
        + (f" (partition {partition})" if partition else ""),
        lines=tuple(lines),
        severity="error",
        link=f"{ui}/runs/{run.run_id}",
        run_id=run.run_id,
    )


def _error_text(event_data: Any) -> str:
    """The error of a step or run failure in one line, as ``ValueError: message``.

    Dagster wraps the step's own exception (``DagsterExecutionStepExecutionError: Error occurred while
    executing op ...``); the exception raised by the asset is its cause and says what went wrong.
    """
    error = getattr(event_data, "error", None)
    if error is None:
        return ""
    while error.cause is not None and error.cls_name.startswith(_WRAPPER_ERRORS):
        error = error.cause
    head, sep, rest = error.message.partition(": ")
    message = f"{error.cls_name}: {rest}" if sep and head.endswith(error.cls_name) else error.message
    return " ".join(message.split())


# --- failed asset checks ----------------------------------------------------------------------------


@dg.sensor(
    name="failed_check_alert",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts on every asset check evaluation that failed (drift beyond its threshold, a "
    "model refused by the floor checks, bad ingested rows, failed dbt tests), with the asset, the check, "
    "its severity and its metadata (drift share, detail, ...). Reads the runs that ended since its "
    "cursor (the storage id of the last run-end event); the first tick starts at the newest one and "
    "replays nothing.",
)
def failed_check_alert(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    instance = context.instance
    after = _int_cursor(context.cursor)
    if after is None:
        start = _latest_run_end_id(instance)
        return dg.SensorResult(
            cursor=str(start), skip_reason=f"first tick: watching runs that end after event {start}"
        )
    ended = _run_ends_after(instance, after, RUN_ENDS_PER_TICK)
    if not ended:
        return dg.SensorResult(cursor=str(after), skip_reason="no run ended")
    settings = get_settings()
    alerts = [
        failed_check_to_alert(evaluation, run_id, _ui(settings))
        for run_id in _unique_run_ids(ended)
        for evaluation in _failed_evaluations(instance, run_id)
    ]
    cursor = str(ended[-1].storage_id)
    if not alerts:
        return dg.SensorResult(cursor=cursor, skip_reason=f"{len(ended)} run(s) ended, no check failed")
    outcome = _send_all(alerts, settings, context.log)
    return dg.SensorResult(cursor=cursor, skip_reason=f"{len(ended)} run(s) ended: {outcome}")


def failed_check_to_alert(evaluation: dg.AssetCheckEvaluation, run_id: str, ui: str) -> Alert:
    """Asset, check, severity, then the evaluation's description and metadata, one fact per line."""
    severity = _CHECK_SEVERITY.get(evaluation.severity.value, "error")
    asset = evaluation.asset_key.to_user_string()
    partition = f" partition {evaluation.partition}" if evaluation.partition else ""
    lines = [evaluation.description] if evaluation.description else []
    lines += metadata_summary(evaluation.metadata)
    return Alert(
        kind="check_failed",
        title=f"check {asset}:{evaluation.check_name}{partition} failed ({evaluation.severity.value}) "
        f"in run {run_id[:8]}",
        lines=tuple(lines),
        severity=severity,
        link=f"{ui}/assets/{'/'.join(evaluation.asset_key.path)}?view=checks",
        run_id=run_id,
    )


def metadata_summary(metadata: Mapping[str, dg.MetadataValue]) -> list[str]:
    """``key=value`` for each metadata entry short enough for a line (numbers rounded, JSON inline).

    Markdown and tables (report summaries) are left out: they are long and rendered on the asset
    page the alert links to.
    """
    lines = []
    for key, entry in metadata.items():
        if isinstance(entry, dg.MarkdownMetadataValue | dg.TableMetadataValue):
            continue
        value = entry.value if isinstance(entry, dg.MetadataValue) else entry
        if isinstance(entry, dg.TimestampMetadataValue):
            text = datetime.fromtimestamp(entry.value, UTC).strftime("%Y-%m-%d %H:%M UTC")
        elif isinstance(value, float):
            text = f"{value:.4g}"
        elif isinstance(value, str | int | bool | list | dict):
            text = str(value)
        else:
            continue
        text = " ".join(text.split())
        lines.append(f"{key}={text if len(text) <= _MAX_VALUE_CHARS else text[: _MAX_VALUE_CHARS - 1] + '…'}")
    return lines


def _failed_evaluations(instance: dg.DagsterInstance, run_id: str) -> list[dg.AssetCheckEvaluation]:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    evaluations = [
        record.event_log_entry.get_dagster_event().asset_check_evaluation_data for record in records
    ]
    return [evaluation for evaluation in evaluations if not evaluation.passed]


def _run_ends_after(instance: dg.DagsterInstance, after: int, limit: int) -> list[dg.EventLogRecord]:
    """Run-end events with a storage id above ``after``, oldest first.

    One query per event type. When a type has more than ``limit`` new events, the events of the
    other types beyond its last returned one are kept for the next tick: the cursor (the last id
    returned) must not jump over an event not yet looked at.
    """
    records: list[dg.EventLogRecord] = []
    bound: int | None = None
    for event_type in RUN_END_EVENTS:
        result = instance.fetch_run_status_changes(
            dg.RunStatusChangeRecordsFilter(event_type=event_type, after_storage_id=after),
            limit=limit,
            ascending=True,
        )
        records += result.records
        if result.has_more and result.records:
            last = result.records[-1].storage_id
            bound = last if bound is None else min(bound, last)
    kept = (record for record in records if bound is None or record.storage_id <= bound)
    return sorted(kept, key=lambda record: record.storage_id)


def _latest_run_end_id(instance: dg.DagsterInstance) -> int:
    newest = [instance.fetch_run_status_changes(event_type, limit=1).records for event_type in RUN_END_EVENTS]
    return max((records[0].storage_id for records in newest if records), default=0)


def _unique_run_ids(records: Iterable[dg.EventLogRecord]) -> list[str]:
    return list(dict.fromkeys(record.run_id for record in records))


# --- freshness ---------------------------------------------------------------------------------------


@dg.sensor(
    name="freshness_alert",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Alerts when an asset's freshness policy state turns WARN or FAIL (the freshness daemon "
    "records each state change as a FRESHNESS_STATE_CHANGE event; this reads them after its cursor, "
    "the last event's storage id). One alert per change, none for recoveries; the first tick starts "
    "at the newest change and replays nothing.",
)
def freshness_alert(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    instance = context.instance
    after = _int_cursor(context.cursor)
    if after is None:
        start = _latest_freshness_change_id(instance)
        return dg.SensorResult(
            cursor=str(start), skip_reason=f"first tick: watching freshness changes after event {start}"
        )
    records = _freshness_changes_after(instance, after, FRESHNESS_CHANGES_PER_TICK)
    if not records:
        return dg.SensorResult(cursor=str(after), skip_reason="no freshness change")
    settings = get_settings()
    changes = (
        record.event_log_entry.get_dagster_event().asset_freshness_state_change_data for record in records
    )
    alerts = [
        freshness_to_alert(change, _last_materialized(instance, change.key), _ui(settings))
        for change in changes
        if change.new_state.value in FRESHNESS_SEVERITY
    ]
    cursor = str(records[-1].storage_id)
    if not alerts:
        return dg.SensorResult(cursor=cursor, skip_reason=f"{len(records)} change(s), none to WARN or FAIL")
    outcome = _send_all(alerts, settings, context.log)
    return dg.SensorResult(cursor=cursor, skip_reason=f"{len(records)} change(s): {outcome}")


def freshness_to_alert(change: FreshnessStateChange, last_materialized: float | None, ui: str) -> Alert:
    """``change`` is the daemon's state change (key, previous_state, new_state)."""
    new, previous = change.new_state.value, change.previous_state.value
    if last_materialized is None:
        detail = "never materialized"
    else:
        detail = f"last materialized {_age(time.time() - last_materialized)} ago"
    return Alert(
        kind="freshness",
        title=f"{change.key.to_user_string()} freshness {new} (was {previous})",
        lines=(detail,),
        severity=FRESHNESS_SEVERITY[new],
        link=f"{ui}/assets/{'/'.join(change.key.path)}",
    )


def _freshness_changes_after(instance: dg.DagsterInstance, after: int, limit: int) -> list[dg.EventLogRecord]:
    # `get_event_records` is marked deprecated for 2.0, but 1.13 has no `fetch_*` for this event type.
    return list(
        instance.get_event_records(
            dg.EventRecordsFilter(event_type=dg.DagsterEventType.FRESHNESS_STATE_CHANGE, after_cursor=after),
            limit=limit,
            ascending=True,
        )
    )


def _latest_freshness_change_id(instance: dg.DagsterInstance) -> int:
    newest = instance.get_event_records(
        dg.EventRecordsFilter(event_type=dg.DagsterEventType.FRESHNESS_STATE_CHANGE), limit=1
    )
    return newest[0].storage_id if newest else 0


def _last_materialized(instance: dg.DagsterInstance, key: dg.AssetKey) -> float | None:
    entry = instance.get_latest_materialization_event(key)
    return entry.timestamp if entry else None


def _age(seconds: float) -> str:
    minutes = max(int(seconds // 60), 0)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {minutes}m" if hours else f"{minutes}m"


# --- shared -------------------------------------------------------------------------------------------


def _send_all(alerts: Sequence[Alert], settings: Settings, logger: logging.Logger) -> str:
    """Send each alert; says what happened, for the tick's status line in the UI.

    The tick reports "skipped" (an alert sensor requests no runs); its message tells the alerts apart
    from quiet ticks.
    """
    delivered = sum(send_alert(alert, settings.alert_webhook_url, logger) for alert in alerts)
    if not settings.alert_webhook_url:
        return f"{len(alerts)} alert(s) logged (no CHURN_ALERT_WEBHOOK_URL)"
    return f"{len(alerts)} alert(s) logged, {delivered} delivered to the webhook"


def _ui(settings: Settings) -> str:
    """The Dagster UI's address for links (CHURN_UI_URL, else where `churn ui` listens)."""
    return settings.dagster_ui_url


def _int_cursor(cursor: str | None) -> int | None:
    """The storage id in the cursor; None (start afresh) when it is empty or not a number."""
    try:
        return int(cursor) if cursor else None
    except ValueError:
        return None


def _keys(keys: Iterable[dg.AssetKey], shown: int = 5) -> str:
    names = sorted(key.to_user_string() for key in keys)
    more = f" (+{len(names) - shown} more)" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


ALERT_SENSORS = [run_failure_alert, failed_check_alert, freshness_alert]
"""For ``Definitions(sensors=[..., *ALERT_SENSORS])``."""
