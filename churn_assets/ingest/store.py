"""Load parsed batches into the DuckDB ``raw`` schema, idempotently, one transaction per file.

``raw.landed_files`` logs every file ever seen and what became of it; a file whose sha256 is already
there is skipped, so landing the same file twice adds nothing, and a copy under another name is logged
in ``raw.duplicate_files`` with the file it repeats. A refused file is logged with its
reason and does not stop the files after it. Row counts are CSV records, not lines (see
:mod:`churn_assets.ingest.parse`): ``rows_in_file`` = ``rows_accepted`` + ``rows_rejected``, a record
spanning several lines counts once, blank lines not at all. ``_row_number`` is the line a record
starts on; ``raw_line`` holds a rejected record's whole raw text. A file is read and inserted block by
block (:class:`~churn_assets.ingest.parse.BatchReader`), so its size is not bounded by memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import duckdb

from churn_assets.ingest.parse import RAW_LINE, REASON, ROW_NUMBER, BatchChunk, BatchReader, FileRejected
from churn_assets.ingest.schema import COLUMNS

# The raw tables (dbt reads the first two as the `raw` source, dbt_project/models/staging/__sources.yml).
RAW_SCHEMA = "raw"
CUSTOMERS_TABLE = f"{RAW_SCHEMA}.customers"
REJECTED_TABLE = f"{RAW_SCHEMA}.rejected_rows"
LANDED_FILES_TABLE = f"{RAW_SCHEMA}.landed_files"
DUPLICATE_FILES_TABLE = f"{RAW_SCHEMA}.duplicate_files"
# Lineage of every stored row, accepted or rejected: which file (batch id, name, sha256), which line, when.
BATCH_ID, SOURCE_FILE, FILE_SHA256, INGESTED_AT = "_batch_id", "_source_file", "_file_sha256", "_ingested_at"
LINEAGE_COLUMNS = (BATCH_ID, SOURCE_FILE, FILE_SHA256, ROW_NUMBER, INGESTED_AT)

_FILE_LINEAGE = f"""
    {BATCH_ID} varchar not null,
    {SOURCE_FILE} varchar not null,
    {FILE_SHA256} varchar not null,
    {ROW_NUMBER} integer not null"""
_DDL = f"""
create schema if not exists {RAW_SCHEMA};
create table if not exists {CUSTOMERS_TABLE} (
    {", ".join(f'"{c}" varchar' for c in COLUMNS)},{_FILE_LINEAGE},
    {INGESTED_AT} timestamp not null
);
create table if not exists {REJECTED_TABLE} ({_FILE_LINEAGE},
    {RAW_LINE} varchar not null,
    {REASON} varchar not null,
    {INGESTED_AT} timestamp not null
);
create table if not exists {LANDED_FILES_TABLE} (
    batch_id varchar not null,
    source_file varchar not null,
    file_sha256 varchar primary key,
    status varchar not null,           -- loaded | rejected
    rows_in_file integer,
    rows_accepted integer,
    rows_rejected integer,
    reason varchar,
    ingested_at timestamp not null
);
create table if not exists {DUPLICATE_FILES_TABLE} (
    source_file varchar not null,
    file_sha256 varchar not null,
    duplicate_of varchar not null,     -- the file first loaded with this content
    seen_at timestamp not null
);
"""

Status = Literal["loaded", "rejected", "skipped", "duplicate"]


@dataclass(frozen=True)
class FileOutcome:
    source_file: str
    sha256: str
    status: Status
    rows_in_file: int = 0
    rows_accepted: int = 0
    rows_rejected: int = 0
    reason: str | None = None

    @property
    def batch_id(self) -> str:
        return batch_id_of(self.sha256)


def ensure_raw_tables(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(_DDL)


def landed_files(landing_dir: Path) -> list[Path]:
    """Files waiting in the landing zone, oldest name first; dotfiles and ``*.part`` downloads are not done."""
    return sorted(
        p
        for p in landing_dir.iterdir()
        if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".part")
    )


def path_sha256(path: Path) -> str:
    """sha256 of a file read in chunks (a landed file can be larger than memory allows twice)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def batch_id_of(sha256: str) -> str:
    """A landed file's batch id (and Dagster partition key): the first 16 hex digits of its sha256."""
    return sha256[:16]


def find_batch_file(landing_dir: Path, batch_id: str, hint: str | None = None) -> Path | None:
    """The landed file whose content is batch ``batch_id``; ``hint`` (a file name) is tried first."""
    candidates = landed_files(landing_dir)
    if hint:
        candidates.sort(key=lambda p: p.name != hint)
    return next((p for p in candidates if batch_id_of(path_sha256(p)) == batch_id), None)


def ingest_file(conn: duckdb.DuckDBPyConnection, path: Path) -> FileOutcome:
    """Load one landed file unless its content was seen before (then: skipped, or logged as a duplicate)."""
    ensure_raw_tables(conn)
    sha = path_sha256(path)
    seen_as = next(
        iter(
            conn.execute(
                f"select source_file from {LANDED_FILES_TABLE} where file_sha256 = ?", [sha]
            ).fetchall()
        ),
        None,
    )
    ingested_at = datetime.now(UTC).replace(tzinfo=None)
    if seen_as is not None:
        if seen_as[0] == path.name:
            return FileOutcome(path.name, sha, "skipped", reason="already ingested (same sha256)")
        conn.execute(
            f"insert into {DUPLICATE_FILES_TABLE} values (?, ?, ?, ?)",
            [path.name, sha, seen_as[0], ingested_at],
        )
        return FileOutcome(
            path.name, sha, "duplicate", reason=f"same content as {seen_as[0]}, already ingested"
        )
    lineage = [batch_id_of(sha), path.name, sha]
    accepted = rejected = 0
    reader = BatchReader(path)
    conn.begin()
    try:
        for chunk in _read_ahead(iter(reader)):
            _insert_rows(conn, chunk, lineage, ingested_at)
            accepted, rejected = accepted + chunk.accepted.height, rejected + chunk.rejected.height
        outcome = FileOutcome(path.name, sha, "loaded", reader.rows_in_file, accepted, rejected)
        _log_file(conn, outcome, ingested_at)
        conn.commit()
    except FileRejected as exc:  # found anywhere in the file: nothing of it stays, the refusal is logged
        conn.rollback()
        outcome = FileOutcome(path.name, sha, "rejected", reason=str(exc))
        _log_file(conn, outcome, ingested_at)
    except BaseException:
        conn.rollback()
        raise
    return outcome


def _read_ahead(chunks: Iterator[BatchChunk]) -> Iterator[BatchChunk]:
    """``chunks``, the next one read by a worker thread while the caller inserts the current one.

    Parsing (polars) and DuckDB's insert both release the GIL, so on two cores they overlap.
    """
    with ThreadPoolExecutor(1, thread_name_prefix="ingest-read") as pool:
        pending = pool.submit(next, chunks, None)
        while (chunk := pending.result()) is not None:
            pending = pool.submit(next, chunks, None)
            yield chunk


def _insert_rows(
    conn: duckdb.DuckDBPyConnection, chunk: BatchChunk, lineage: list[str], ingested_at: datetime
) -> None:
    accepted, rejected = chunk.accepted.to_arrow(), chunk.rejected.to_arrow()  # noqa: F841 (scanned by DuckDB)
    columns = ", ".join(f'"{c}"' for c in COLUMNS)
    conn.execute(
        f"insert into {CUSTOMERS_TABLE} select {columns}, ?, ?, ?, {ROW_NUMBER}, ? from accepted",
        [*lineage, ingested_at],
    )
    conn.execute(
        f"insert into {REJECTED_TABLE} select ?, ?, ?, {ROW_NUMBER}, {RAW_LINE}, {REASON}, ? from rejected",
        [*lineage, ingested_at],
    )


def _log_file(conn: duckdb.DuckDBPyConnection, outcome: FileOutcome, ingested_at: datetime) -> None:
    conn.execute(
        f"insert into {LANDED_FILES_TABLE} values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            outcome.batch_id,
            outcome.source_file,
            outcome.sha256,
            outcome.status,
            outcome.rows_in_file,
            outcome.rows_accepted,
            outcome.rows_rejected,
            outcome.reason,
            ingested_at,
        ],
    )


def row_count_mismatches(
    conn: duckdb.DuckDBPyConnection, sha256: str | None = None
) -> list[tuple[str, int, int, int]]:
    """Loaded files (all, or the one with ``sha256``) whose stored accepted + rejected rows differ from the
    records in the file."""
    return conn.execute(
        f"""
        with stored as (
            select f.source_file, f.rows_in_file,
                   (select count(*) from {CUSTOMERS_TABLE} c where c.{FILE_SHA256} = f.file_sha256) as accepted,
                   (select count(*) from {REJECTED_TABLE} r where r.{FILE_SHA256} = f.file_sha256) as rejected
            from {LANDED_FILES_TABLE} f
            where f.status = 'loaded' and (? is null or f.file_sha256 = ?)
        )
        select * from stored where rows_in_file <> accepted + rejected
        """,
        [sha256, sha256],
    ).fetchall()
