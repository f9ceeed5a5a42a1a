"""Ingestion: landed CSV batches → raw.customers and raw.rejected_rows in DuckDB."""

import dagster as dg

from churn_assets.ingest.store import ingest_landing, row_count_mismatches
from churn_assets.metadata import column_schema, query_table, table_metadata
from churn_assets.resources import StateDirs, Warehouse

RAW_CUSTOMERS = dg.AssetKey(["raw", "customers"])
RAW_REJECTED = dg.AssetKey(["raw", "rejected_rows"])


class IngestConfig(dg.Config):
    max_rejected_share: float = 0.05
    """Share of rejected rows in this run above which the `rejected_share` check warns."""


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            RAW_CUSTOMERS,
            description="Every accepted row of every landed Telco CSV batch, text as landed, with lineage.",
            group_name="ingestion",
            kinds={"duckdb", "polars"},
        ),
        dg.AssetSpec(
            RAW_REJECTED,
            description="Records that failed validation: file, first line number, raw text, every reason.",
            group_name="ingestion",
            kinds={"duckdb"},
        ),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            "rows_accounted_for",
            asset=RAW_CUSTOMERS,
            blocking=True,
            description="For every loaded file, accepted + rejected rows == CSV records in the file.",
        ),
        dg.AssetCheckSpec(
            "no_refused_files", asset=RAW_CUSTOMERS, description="No landed file was refused as a whole."
        ),
        dg.AssetCheckSpec(
            "rejected_share", asset=RAW_REJECTED, description="Rejected rows stay under a configured share."
        ),
    ],
    pool="duckdb",
)
def raw_customers(
    context: dg.AssetExecutionContext, config: IngestConfig, warehouse: Warehouse, state: StateDirs
):
    with warehouse.connect() as conn:
        outcomes = ingest_landing(conn, state.landing)
        mismatches = row_count_mismatches(conn)
        total_rows, total_rejected = conn.execute(
            "select (select count(*) from raw.customers), (select count(*) from raw.rejected_rows)"
        ).fetchone()
        new_batches = [o.batch_id for o in outcomes if o.status == "loaded"]
        marks = ", ".join("?" * len(new_batches)) or "null"
        preview = query_table(
            conn, f"select * from raw.customers where _batch_id in ({marks}) limit 10", new_batches
        )
        reasons = query_table(
            conn,
            "select _source_file, _row_number, reason, raw_line from raw.rejected_rows "
            f"where _batch_id in ({marks}) order by _source_file, _row_number limit 50",
            new_batches,
        )
        customers_schema = column_schema(conn, "raw.customers")
        rejected_schema = column_schema(conn, "raw.rejected_rows")

    for o in outcomes:
        log = context.log.warning if o.status == "rejected" else context.log.info
        log(
            f"{o.source_file}: {o.status} ({o.rows_accepted} accepted, {o.rows_rejected} rejected) {o.reason or ''}"
        )

    accepted = sum(o.rows_accepted for o in outcomes)
    rejected = sum(o.rows_rejected for o in outcomes)
    refused = [o for o in outcomes if o.status == "rejected"]
    files = table_metadata(
        ["file", "batch_id", "status", "rows", "accepted", "rejected", "reason"],
        [
            (o.source_file, o.batch_id, o.status, o.rows_in_file, o.rows_accepted, o.rows_rejected, o.reason)
            for o in outcomes
        ],
    )
    share = rejected / (accepted + rejected) if accepted + rejected else 0.0

    yield dg.MaterializeResult(
        asset_key=RAW_CUSTOMERS,
        metadata={
            "rows_accepted": accepted,
            "rows_rejected": rejected,
            "files_loaded": len(new_batches),
            "files_skipped": sum(o.status == "skipped" for o in outcomes),
            "files_refused": len(refused),
            "files": files,
            "preview": preview,
            "dagster/row_count": total_rows,
            "dagster/column_schema": customers_schema,
            "warehouse": dg.MetadataValue.path(warehouse.path),
            "landing_dir": dg.MetadataValue.path(str(state.landing)),
        },
    )
    yield dg.MaterializeResult(
        asset_key=RAW_REJECTED,
        metadata={
            "rows_rejected": rejected,
            "rejected_share": share,
            "reasons": reasons,
            "dagster/row_count": total_rejected,
            "dagster/column_schema": rejected_schema,
        },
    )
    yield dg.AssetCheckResult(
        check_name="rows_accounted_for",
        asset_key=RAW_CUSTOMERS,
        passed=not mismatches,
        metadata={
            "mismatched_files": table_metadata(["file", "rows_in_file", "accepted", "rejected"], mismatches)
        },
    )
    yield dg.AssetCheckResult(
        check_name="no_refused_files",
        asset_key=RAW_CUSTOMERS,
        passed=not refused,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"refused": dg.MetadataValue.json({o.source_file: o.reason for o in refused})},
    )
    yield dg.AssetCheckResult(
        check_name="rejected_share",
        asset_key=RAW_REJECTED,
        passed=share <= config.max_rejected_share,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"rejected_share": share, "max_rejected_share": config.max_rejected_share},
    )
