"""Turn query results into Dagster metadata tables (previews shown on the asset page)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg
import duckdb


def table_metadata(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> dg.TableMetadataValue:
    schema = dg.TableSchema(columns=[dg.TableColumn(name=c, type="string") for c in columns])
    records = [dg.TableRecord({c: _scalar(v) for c, v in zip(columns, row, strict=True)}) for row in rows]
    return dg.MetadataValue.table(records=records, schema=schema)


def query_table(
    conn: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()
) -> dg.TableMetadataValue:
    cursor = conn.execute(sql, list(params))
    columns = [d[0] for d in cursor.description]
    return table_metadata(columns, cursor.fetchall())


def column_schema(conn: duckdb.DuckDBPyConnection, table: str) -> dg.TableSchema:
    schema, name = table.split(".")
    rows = conn.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = ? and table_name = ? order by ordinal_position",
        [schema, name],
    ).fetchall()
    return dg.TableSchema(columns=[dg.TableColumn(name=n, type=t) for n, t in rows])


def _scalar(value: Any) -> str | int | float | bool | None:
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)
