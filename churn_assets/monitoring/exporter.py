"""Pipeline metrics for Prometheus, read from the Dagster instance at each scrape (`churn exporter`).

A custom collector: every scrape reads the latest materializations of the key assets and exports only what
they recorded (an asset never materialized, or a value never recorded, exports no sample):

* ``churn_pipeline_last_materialization_timestamp_seconds{asset}``: data and training freshness;
* ``churn_pipeline_rows_ingested`` / ``churn_pipeline_rows_rejected``: ``rows_accepted`` and ``rows_rejected``
  of the latest landed file (raw/landed_files records both for every file, 0 included; raw/rejected_rows
  materializes only when a file has rejects, so it would report an older file's);
* ``churn_pipeline_drift_share{asset}``: the ``drift_share`` of the latest batch and served drift reports;
* ``churn_pipeline_training_run_duration_seconds``: wall time of the run that registered the latest model;
* ``churn_pipeline_last_promotion_timestamp_seconds``: when ``ml/champion_model`` last moved the alias (it
  materializes only on a promotion).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator

import dagster as dg
from prometheus_client import start_http_server
from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector

from churn_assets.ingest.assets import LANDED_FILES, RAW_CUSTOMERS
from churn_assets.monitoring.assets import BATCH_DRIFT, SERVED_DRIFT
from churn_assets.training.keys import CHAMPION_MODEL, REGISTERED_MODEL, TRAINING_SNAPSHOT

FRESHNESS_ASSETS = (
    RAW_CUSTOMERS,
    BATCH_DRIFT,
    SERVED_DRIFT,
    TRAINING_SNAPSHOT,
    REGISTERED_MODEL,
    CHAMPION_MODEL,
)
DRIFT_ASSETS = (BATCH_DRIFT, SERVED_DRIFT)


def _latest(instance: dg.DagsterInstance, key: dg.AssetKey) -> dg.EventLogEntry | None:
    event = instance.get_latest_materialization_event(key)
    return event if event is not None and event.asset_materialization is not None else None


def _metadata_value(event: dg.EventLogEntry | None, name: str) -> float | None:
    if event is None or event.asset_materialization is None:
        return None
    entry = event.asset_materialization.metadata.get(name)
    return None if entry is None else float(entry.value)  # type: ignore[arg-type]


class PipelineCollector(Collector):
    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.instance = instance

    def collect(self) -> Iterator[GaugeMetricFamily]:
        latest = {key: _latest(self.instance, key) for key in (*FRESHNESS_ASSETS, LANDED_FILES)}
        fresh = GaugeMetricFamily(
            "churn_pipeline_last_materialization_timestamp_seconds",
            "Unix time of the latest materialization of a key asset",
            labels=["asset"],
        )
        for key in FRESHNESS_ASSETS:
            if (event := latest[key]) is not None:
                fresh.add_metric([key.to_user_string()], event.timestamp)
        yield fresh
        for name, field, doc in (
            ("churn_pipeline_rows_ingested", "rows_accepted", "Rows the latest landed file loaded"),
            ("churn_pipeline_rows_rejected", "rows_rejected", "Rows the latest landed file rejected"),
        ):
            if (value := _metadata_value(latest[LANDED_FILES], field)) is not None:
                yield GaugeMetricFamily(name, doc, value=value)
        drift = GaugeMetricFamily(
            "churn_pipeline_drift_share",
            "Share of drifted columns in the latest drift report",
            labels=["asset"],
        )
        for key in DRIFT_ASSETS:
            if (value := _metadata_value(latest[key], "drift_share")) is not None:
                drift.add_metric([key.to_user_string()], value)
        yield drift
        if (registered := latest[REGISTERED_MODEL]) is not None:
            stats = self.instance.get_run_stats(registered.run_id)
            if stats.start_time is not None and stats.end_time is not None:
                yield GaugeMetricFamily(
                    "churn_pipeline_training_run_duration_seconds",
                    "Wall time of the run that registered the latest model version",
                    value=stats.end_time - stats.start_time,
                )
        if (promoted := latest[CHAMPION_MODEL]) is not None:
            yield GaugeMetricFamily(
                "churn_pipeline_last_promotion_timestamp_seconds",
                "Unix time the champion alias last moved by a promotion decision",
                value=promoted.timestamp,
            )


def serve(host: str, port: int) -> int:
    """Expose the collector over HTTP until SIGTERM or SIGINT."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with dg.DagsterInstance.get() as instance:
        REGISTRY.register(PipelineCollector(instance))
        server, thread = start_http_server(port, addr=host)
        stop.wait()
        server.shutdown()
        thread.join()
    return 0
