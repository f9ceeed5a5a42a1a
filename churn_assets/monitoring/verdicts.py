"""Drift verdicts in the warehouse (`monitoring.drift_verdicts`): one row per evaluated batch or served window.

The batch and served-traffic drift assets write them; the training snapshot reads them to tell whether
anything drifted since the champion's data. Plain DuckDB, no Dagster.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import duckdb

from churn_assets.ingest.store import LANDED_FILES_TABLE
from churn_assets.monitoring.drift import SMALL_SAMPLE_ROWS

Kind = Literal["batch", "served"]

_DDL = """
create schema if not exists monitoring;
create table if not exists monitoring.drift_verdicts (
    kind varchar not null,             -- batch | served
    subject varchar not null,          -- batch id, or the served window
    champion_version varchar not null,
    drift_share double not null,
    drifted boolean not null,
    rows integer not null,
    evaluated_at timestamp not null
);
"""


def record_verdict(
    conn: duckdb.DuckDBPyConnection,
    kind: Kind,
    subject: str,
    champion_version: str,
    drift_share: float,
    drifted: bool,
    rows: int,
) -> None:
    conn.execute(_DDL)
    conn.execute(
        "insert into monitoring.drift_verdicts values (?, ?, ?, ?, ?, ?, ?)",
        [kind, subject, champion_version, drift_share, drifted, rows, datetime.now(UTC).replace(tzinfo=None)],
    )


def _exists(conn: duckdb.DuckDBPyConnection) -> bool:
    return bool(
        conn.execute(
            "select count(*) from information_schema.tables "
            "where table_schema = 'monitoring' and table_name = 'drift_verdicts'"
        ).fetchall()[0][0]
    )


def drifted_batches_after(conn: duckdb.DuckDBPyConnection, cutoff: datetime | None) -> list[str]:
    """Batches ingested after ``cutoff`` (all, if None) whose latest drift verdict was "drifted" on enough
    rows to mean it (see ``SMALL_SAMPLE_ROWS``: tiny batches "drift" by chance)."""
    if not _exists(conn):
        return []
    rows = conn.execute(
        f"""
        with latest as (
            select subject, arg_max(drifted and rows >= ?, evaluated_at) as drifted
            from monitoring.drift_verdicts where kind = 'batch' group by subject
        )
        select f.batch_id from latest
        join {LANDED_FILES_TABLE} f on f.batch_id = latest.subject
        where latest.drifted and (cast(? as timestamp) is null or f.ingested_at > cast(? as timestamp))
        order by f.ingested_at
        """,
        [SMALL_SAMPLE_ROWS, cutoff, cutoff],
    ).fetchall()
    return [batch for (batch,) in rows]


def served_drift_after(conn: duckdb.DuckDBPyConnection, since: datetime | None) -> bool:
    """Whether a served-traffic verdict after ``since`` (any, if None) was "drifted"."""
    if not _exists(conn):
        return False
    (drifted,) = conn.execute(
        "select coalesce(bool_or(drifted), false) from monitoring.drift_verdicts "
        "where kind = 'served' and rows >= ? "
        "and (cast(? as timestamp) is null or evaluated_at > cast(? as timestamp))",
        [SMALL_SAMPLE_ROWS, since, since],
    ).fetchall()[0]
    return bool(drifted)
