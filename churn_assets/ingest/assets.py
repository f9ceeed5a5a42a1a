"""Ingestion: one landed CSV batch (a partition) → raw.customers and raw.rejected_rows in DuckDB.

Every file gets a `raw/landed_files` materialization recording what became of it (loaded, refused, a
duplicate of an earlier file, or already loaded). Only a file that added customers materializes
`raw/customers`, so a refused, empty or duplicate file changes nothing downstream: no dbt build, no
drift report, no training.
"""

import dagster as dg

from churn_assets.automation import BATCH_FRESHNESS
from churn_assets.ingest.parse import RAW_LINE, REASON, ROW_NUMBER
from churn_assets.ingest.store import (
    BATCH_ID,
    CUSTOMERS_TABLE,
    REJECTED_TABLE,
    FileOutcome,
    find_batch_file,
    ingest_file,
    row_count_mismatches,
)
from churn_assets.metadata import column_schema, query_table
from churn_assets.partitions import BATCHES, LANDED_FILE_TAG
from churn_assets.resources import StateDirs, Warehouse

RAW_CUSTOMERS = dg.AssetKey(["raw", "customers"])
RAW_REJECTED = dg.AssetKey(["raw", "rejected_rows"])
LANDED_FILES = dg.AssetKey(["raw", "landed_files"])


class IngestConfig(dg.Config):
    max_rejected_share: float = 0.05
    """Share of rejected rows in this batch above which the `rejected_share` check warns."""


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            LANDED_FILES,
            description="What became of each landed file: loaded (with row counts), refused as a whole "
            "(with the reason), a duplicate of an earlier file, or already loaded.",
            group_name="ingestion",
            kinds={"duckdb"},
        ),
        dg.AssetSpec(
            RAW_CUSTOMERS,
            description="Every accepted row of every landed Telco CSV batch, text as landed, with lineage.",
            group_name="ingestion",
            kinds={"duckdb", "polars"},
            skippable=True,
            freshness_policy=BATCH_FRESHNESS,
        ),
        dg.AssetSpec(
            RAW_REJECTED,
            description="Records that failed validation: file, first line number, raw text, every reason.",
            group_name="ingestion",
            kinds={"duckdb"},
            skippable=True,
        ),
    ],
    check_specs=[
        dg.AssetCheckSpec(
            "file_accepted",
            asset=LANDED_FILES,
            description="The file was loaded: not refused as a whole, not a copy of an earlier file.",
        ),
        dg.AssetCheckSpec(
            "rows_accounted_for",
            asset=RAW_CUSTOMERS,
            blocking=True,
            description="For this batch, accepted + rejected rows == CSV records in the file.",
        ),
        dg.AssetCheckSpec(
            "rejected_share", asset=RAW_REJECTED, description="Rejected rows stay under a configured share."
        ),
    ],
    partitions_def=BATCHES,
    pool="duckdb",
    can_subset=True,
)
def raw_batch(
    context: dg.AssetExecutionContext, config: IngestConfig, warehouse: Warehouse, state: StateDirs
):
    batch_id = context.partition_key
    path = find_batch_file(state.landing, batch_id, context.run.tags.get(LANDED_FILE_TAG))
    if path is None:
        raise dg.Failure(f"no file in {state.landing} has the content of batch {batch_id} any more")
    with warehouse.connect() as conn:
        outcome = ingest_file(conn, path)
        mismatches = row_count_mismatches(conn, outcome.sha256)
        lineage = [batch_id]
        preview = query_table(conn, f"select * from {CUSTOMERS_TABLE} where {BATCH_ID} = ? limit 10", lineage)
        reasons = query_table(
            conn,
            f"select {ROW_NUMBER}, {REASON}, {RAW_LINE} from {REJECTED_TABLE} "
            f"where {BATCH_ID} = ? order by {ROW_NUMBER} limit 50",
            lineage,
        )
        customers_schema = column_schema(conn, CUSTOMERS_TABLE)
        rejected_schema = column_schema(conn, REJECTED_TABLE)

    log = context.log.info if outcome.status == "loaded" else context.log.warning
    log(
        f"{outcome.source_file} (batch {batch_id}): {outcome.status} "
        f"({outcome.rows_accepted} accepted, {outcome.rows_rejected} rejected) {outcome.reason or ''}"
    )
    yield dg.MaterializeResult(asset_key=LANDED_FILES, metadata=_file_metadata(outcome, state))
    yield dg.AssetCheckResult(
        check_name="file_accepted",
        asset_key=LANDED_FILES,
        passed=outcome.status in ("loaded", "skipped"),
        metadata={"status": outcome.status, "reason": outcome.reason or ""},
    )
    if outcome.status != "loaded":
        return
    share = outcome.rows_rejected / outcome.rows_in_file
    if outcome.rows_accepted:
        yield dg.MaterializeResult(
            asset_key=RAW_CUSTOMERS,
            metadata={
                "rows_accepted": outcome.rows_accepted,
                "source_file": outcome.source_file,
                "preview": preview,
                "dagster/row_count": outcome.rows_accepted,
                "dagster/column_schema": customers_schema,
            },
        )
        yield dg.AssetCheckResult(
            check_name="rows_accounted_for",
            asset_key=RAW_CUSTOMERS,
            passed=not mismatches,
            metadata={"rows_in_file": outcome.rows_in_file, "mismatches": str(mismatches)},
        )
    if outcome.rows_rejected:
        yield dg.MaterializeResult(
            asset_key=RAW_REJECTED,
            metadata={
                "rows_rejected": outcome.rows_rejected,
                "rejected_share": share,
                "reasons": reasons,
                "dagster/row_count": outcome.rows_rejected,
                "dagster/column_schema": rejected_schema,
            },
        )
        yield dg.AssetCheckResult(
            check_name="rejected_share",
            asset_key=RAW_REJECTED,
            passed=share <= config.max_rejected_share,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={"rejected_share": share, "max_rejected_share": config.max_rejected_share},
        )


def _file_metadata(outcome: FileOutcome, state: StateDirs) -> dict:
    return {
        "source_file": outcome.source_file,
        "sha256": outcome.sha256,
        "status": outcome.status,
        "reason": outcome.reason or "",
        "rows_in_file": outcome.rows_in_file,
        "rows_accepted": outcome.rows_accepted,
        "rows_rejected": outcome.rows_rejected,
        "landing_dir": dg.MetadataValue.path(str(state.landing)),
    }
