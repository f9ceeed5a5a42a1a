"""Load parsed batches into the DuckDB ``raw`` schema, idempotently, one transaction per file.

``raw.landed_files`` logs every file ever seen and what became of it; a file whose sha256 is already
there is skipped, so landing the same file twice adds nothing. A refused file is logged with its
reason and does not stop the files after it. Row counts are CSV records, not lines (see
:mod:`churn_assets.ingest.parse`): ``rows_in_file`` = ``rows_accepted`` + ``rows_rejected``, a record
spanning several lines counts once, blank lines not at all. ``_row_number`` is the line a record
starts on; ``raw_line`` holds a rejected record's whole raw text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import duckdb

from churn_assets.ingest.parse import ROW_NUMBER, FileRejected, ParsedBatch, file_sha256, parse_batch
from churn_assets.ingest.schema import COLUMNS

_DDL = f"""
create schema if not exists raw;
create table if not exists raw.customers (
    {", ".join(f'"{c}" varchar' for c in COLUMNS)},
    _batch_id varchar not null,
    _source_file varchar not null,
    _file_sha256 varchar not null,
    _row_number integer not null,
    _ingested_at timestamp not null
);
create table if not exists raw.rejected_rows (
    _batch_id varchar not null,
    _source_file varchar not null,
    _file_sha256 varchar not null,
    _row_number integer not null,
    raw_line varchar not null,
    reason varchar not null,
    _ingested_at timestamp not null
);
create table if not exists raw.landed_files (
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
"""

Status = Literal["loaded", "rejected", "skipped"]


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
        return self.sha256[:16]


def ensure_raw_tables(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(_DDL)


def landed_files(landing_dir: Path) -> list[Path]:
    """Files waiting in the landing zone, oldest name first; dotfiles and ``*.part`` downloads are not done."""
    return sorted(
        p
        for p in landing_dir.iterdir()
        if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".part")
    )


def ingest_landing(conn: duckdb.DuckDBPyConnection, landing_dir: Path) -> list[FileOutcome]:
    """Load every landed file not loaded before; return what happened to each file."""
    ensure_raw_tables(conn)
    known = {row[0] for row in conn.execute("select file_sha256 from raw.landed_files").fetchall()}
    outcomes = []
    for path in landed_files(landing_dir):
        outcome = _ingest_file(conn, path, known)
        known.add(outcome.sha256)
        outcomes.append(outcome)
    return outcomes


def _ingest_file(conn: duckdb.DuckDBPyConnection, path: Path, known: set[str]) -> FileOutcome:
    sha = file_sha256(path.read_bytes())
    if sha in known:
        return FileOutcome(path.name, sha, "skipped", reason="already ingested (same sha256)")
    ingested_at = datetime.now(UTC).replace(tzinfo=None)
    try:
        batch = parse_batch(path)
    except FileRejected as exc:
        outcome = FileOutcome(path.name, sha, "rejected", reason=str(exc))
        _log_file(conn, outcome, ingested_at)
        return outcome
    outcome = FileOutcome(
        path.name, sha, "loaded", batch.rows_in_file, batch.accepted.height, batch.rejected.height
    )
    conn.begin()
    try:
        _insert_rows(conn, batch, ingested_at)
        _log_file(conn, outcome, ingested_at)
        conn.commit()
    except Exception:
        conn.rollback()
        raise
    return outcome


def _insert_rows(conn: duckdb.DuckDBPyConnection, batch: ParsedBatch, ingested_at: datetime) -> None:
    lineage = [batch.batch_id, batch.source_file, batch.sha256]
    accepted, rejected = batch.accepted.to_arrow(), batch.rejected.to_arrow()  # noqa: F841 (scanned by DuckDB)
    columns = ", ".join(f'"{c}"' for c in COLUMNS)
    conn.execute(
        f"insert into raw.customers select {columns}, ?, ?, ?, {ROW_NUMBER}, ? from accepted",
        [*lineage, ingested_at],
    )
    conn.execute(
        f"insert into raw.rejected_rows select ?, ?, ?, {ROW_NUMBER}, raw_line, reason, ? from rejected",
        [*lineage, ingested_at],
    )


def _log_file(conn: duckdb.DuckDBPyConnection, outcome: FileOutcome, ingested_at: datetime) -> None:
    conn.execute(
        "insert into raw.landed_files values (?, ?, ?, ?, ?, ?, ?, ?, ?)",
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


def row_count_mismatches(conn: duckdb.DuckDBPyConnection) -> list[tuple[str, int, int, int]]:
    """Loaded files whose stored accepted + rejected rows differ from the records in the file."""
    return conn.execute(
        """
        with stored as (
            select f.source_file, f.rows_in_file,
                   (select count(*) from raw.customers c where c._file_sha256 = f.file_sha256) as accepted,
                   (select count(*) from raw.rejected_rows r where r._file_sha256 = f.file_sha256) as rejected
            from raw.landed_files f
            where f.status = 'loaded'
        )
        select * from stored where rows_in_file <> accepted + rejected
        """
    ).fetchall()
