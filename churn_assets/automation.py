"""Declarative automation: the conditions that close the loop from a landed file to a served model, and the
two named sensors that evaluate them — both RUNNING by default, so `make ui` needs no click.

The path of a new batch, tick by tick:
1. `landing_sensor` (``churn_assets.sensors``) adds the batch's partition and runs its ingestion.
2. `data_automation` sees `raw/customers` updated: dbt rebuilds the staging and mart tables
   (:data:`DBT_CONDITION`) and the batch's drift report runs against the champion (``eager``).
3. `training_automation` sees new training data or a new drift verdict: the training snapshot looks for
   a reason to train (:data:`TRAINING_LOOK`); when it finds one, tuning, evaluation, registration, the
   promotion decision and the champion alias follow in the same run (``eager`` downstream).
A refused, empty or duplicate file never materializes `raw/customers`, so step 2 and 3 never start.
"""

import functools
import operator
from datetime import timedelta

import dagster as dg

from churn_assets.training.keys import TRAINING_CHAIN

AC = dg.AutomationCondition

WEEKLY_CRON = "0 3 * * 1"
"""Mondays 03:00 UTC: the training snapshot looks again, so an ageing champion is refreshed with new labels."""

DBT_CONDITION = (
    # Rebuild when a batch added customers (or a model is new). Unlike `eager()`, a dependency partition that
    # never materialized (a refused file's batch) does not hold the tables back forever.
    (AC.newly_missing() | AC.any_deps_updated()).since_last_handled()
    & ~AC.any_deps_in_progress()
    & ~AC.in_progress()
    & AC.all_deps_blocking_checks_passed()
).with_label("rebuild after new customers")

TRAINING_RUNNING = functools.reduce(
    # A training run (snapshot → candidates → … → champion, one run) that has not finished its chain. The
    # snapshot's own `in_progress()` ends as soon as the snapshot is written, minutes before the run has
    # registered and decided: a drift verdict arriving then would start a second training on the same data,
    # whose snapshot still sees the old champion (found by the closed-loop test: the hourly served-drift
    # report landed mid-training).
    operator.or_,
    [AC.asset_matches(key, AC.in_progress()) for key in TRAINING_CHAIN],
).with_label("a training run is in progress")

TRAINING_LOOK = (
    # When to look for a reason to train: training data rebuilt, a batch or served-traffic drift verdict, or
    # the weekly tick. What the look finds is decided from the data by the snapshot itself
    # (`churn_assets.ml.retraining`): it materializes only with a reason and never on data already trained on.
    # (`type: ignore`: dagster types `since_last_handled` for asset-or-check conditions only, and the `|`
    # with `cron_tick_passed`, whose free key type resolves to AssetKey, is an asset condition; valid at runtime.)
    (AC.any_deps_updated() | AC.cron_tick_passed(WEEKLY_CRON)).since_last_handled()  # type: ignore[misc]
    # Not while its inputs are being written, not while a training run is in progress (its snapshot or the
    # rest of its chain: a trigger meanwhile is kept, and looked at once the run ends), and never above a
    # failed blocking check (dbt tests on the training set).
    & ~AC.any_deps_in_progress()
    & ~AC.in_progress()
    & ~TRAINING_RUNNING
    & AC.all_deps_blocking_checks_passed()
).with_label("new data, drift verdict or weekly tick; not while training")

BATCH_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(days=14), warn_window=timedelta(days=7)
)
"""A batch a week is the expected cadence: the raw and dbt tables and the batch drift report warn after a week
without one, and fail after two."""

DATA_SELECTION = dg.AssetSelection.groups("ingestion", "transform", "monitoring")
TRAINING_SELECTION = dg.AssetSelection.groups("ml")

data_automation = dg.AutomationConditionSensorDefinition(
    "data_automation",
    target=DATA_SELECTION,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=10,
    description="dbt tables after each loaded batch, the batch's drift report, the data profile, and the "
    "hourly drift report of served traffic.",
)
training_automation = dg.AutomationConditionSensorDefinition(
    "training_automation",
    target=TRAINING_SELECTION,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=10,
    description="The training snapshot when there is new data or a drift verdict (or weekly), and — only "
    "when it finds a reason — tuning, evaluation, registration, the promotion decision and the champion.",
)

AUTOMATION_SENSORS = [data_automation, training_automation]
