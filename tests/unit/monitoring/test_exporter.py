"""The pipeline exporter reads what the graph recorded, on a real materialized installation."""

from prometheus_client import CollectorRegistry

from churn_assets.ingest.assets import RAW_CUSTOMERS
from churn_assets.monitoring.assets import BATCH_DRIFT, SERVED_DRIFT
from churn_assets.monitoring.exporter import FRESHNESS_ASSETS, PipelineCollector
from churn_assets.settings import Settings
from churn_assets.training.keys import REGISTERED_MODEL


def _samples(instance) -> dict[tuple[str, tuple], float]:
    registry = CollectorRegistry()
    registry.register(PipelineCollector(instance))
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for m in registry.collect() for s in m.samples}


def test_exported_values_are_the_recorded_ones(materialized) -> None:
    import duckdb

    instance = materialized.instance
    samples = _samples(instance)
    settings: Settings = materialized.settings
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as conn:
        rows = conn.execute("select count(*) from raw.customers").fetchone()[0]
    assert samples[("churn_pipeline_rows_ingested", ())] == rows
    # One file landed (the 7,043 rows of the real data set): what was not loaded was rejected, 0 included.
    assert samples[("churn_pipeline_rows_rejected", ())] == 7043 - rows
    for key in FRESHNESS_ASSETS:
        event = instance.get_latest_materialization_event(key)
        label = (("asset", key.to_user_string()),)
        if event is None:
            assert ("churn_pipeline_last_materialization_timestamp_seconds", label) not in samples
        else:
            assert (
                samples[("churn_pipeline_last_materialization_timestamp_seconds", label)] == event.timestamp
            )
    for key in (BATCH_DRIFT, SERVED_DRIFT):  # a report without a reference records no share: no sample
        event = instance.get_latest_materialization_event(key)
        recorded = event.asset_materialization.metadata.get("drift_share") if event else None
        sample = samples.get(("churn_pipeline_drift_share", (("asset", key.to_user_string()),)))
        assert sample == (recorded.value if recorded is not None else None)
    run = instance.get_run_stats(instance.get_latest_materialization_event(REGISTERED_MODEL).run_id)
    assert samples[("churn_pipeline_training_run_duration_seconds", ())] == run.end_time - run.start_time > 0
    assert instance.get_latest_materialization_event(RAW_CUSTOMERS) is not None


def test_a_fresh_instance_exports_no_invented_values(installation) -> None:
    samples = _samples(installation.instance)
    assert not [name for name, _ in samples]
