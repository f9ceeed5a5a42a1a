import shutil
from pathlib import Path

import duckdb
import pytest

from churn_assets.ingest.store import FileOutcome, ingest_file, landed_files, row_count_mismatches
from tests.csv_fixtures import BLANK_TOTAL_ROW, GOOD_ROWS, with_field, write_csv


@pytest.fixture
def conn(tmp_path: Path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as connection:
        yield connection


def ingest_landing(conn: duckdb.DuckDBPyConnection, landing: Path) -> list[FileOutcome]:
    """Every landed file in name order, one batch at a time (as the landing sensor's runs do)."""
    return [ingest_file(conn, path) for path in landed_files(landing)]


def _count(conn: duckdb.DuckDBPyConnection, table: str) -> int:
    return conn.execute(f"select count(*) from {table}").fetchone()[0]


def test_same_file_landed_twice_adds_nothing(tmp_path: Path, conn) -> None:
    landing = tmp_path / "landing"
    first = write_csv(landing / "a.csv", [*GOOD_ROWS, BLANK_TOTAL_ROW])
    assert [o.status for o in ingest_landing(conn, landing)] == ["loaded"]
    shutil.copy(first, landing / "a_again.csv")
    outcomes = ingest_landing(conn, landing)
    assert [(o.source_file, o.status) for o in outcomes] == [
        ("a.csv", "skipped"),
        ("a_again.csv", "duplicate"),
    ]
    assert _count(conn, "raw.customers") == 5
    assert _count(conn, "raw.landed_files") == 1
    assert conn.execute("select source_file, duplicate_of from raw.duplicate_files").fetchall() == [
        ("a_again.csv", "a.csv")
    ]


def test_corrupted_file_keeps_good_rows_and_next_file_loads(tmp_path: Path, conn) -> None:
    landing = tmp_path / "landing"
    corrupted = [
        GOOD_ROWS[0],
        GOOD_ROWS[1][:30],  # truncated line
        with_field(GOOD_ROWS[2], "MonthlyCharges", "1O.5"),  # bad number
        GOOD_ROWS[3],
    ]
    write_csv(landing / "1_corrupted.csv", corrupted)
    (landing / "2_not_a_csv.csv").write_bytes(b"\x00\x01binary\xff")
    write_csv(landing / "3_good.csv", [BLANK_TOTAL_ROW])

    outcomes = {o.source_file: o for o in ingest_landing(conn, landing)}

    assert (outcomes["1_corrupted.csv"].rows_accepted, outcomes["1_corrupted.csv"].rows_rejected) == (2, 2)
    assert outcomes["2_not_a_csv.csv"].status == "rejected"
    assert "not UTF-8" in outcomes["2_not_a_csv.csv"].reason
    assert outcomes["3_good.csv"].status == "loaded"
    assert conn.execute("select customerID from raw.customers order by customerID").fetchall() == [
        ("T-0001",),
        ("T-0004",),
        ("T-0005",),
    ]
    rejected = conn.execute(
        "select _source_file, _row_number, reason from raw.rejected_rows order by _row_number"
    ).fetchall()
    assert rejected == [
        ("1_corrupted.csv", 3, "expected 21 fields, found 9"),
        ("1_corrupted.csv", 4, "MonthlyCharges: not a non-negative number '1O.5'"),
    ]
    assert row_count_mismatches(conn) == []
    # the refused file is logged once and not retried
    assert [o.status for o in ingest_landing(conn, landing)] == ["skipped"] * 3


def test_lineage_columns_identify_file_and_line(tmp_path: Path, conn) -> None:
    landing = tmp_path / "landing"
    write_csv(landing / "batch.csv", GOOD_ROWS[:2])
    (outcome,) = ingest_landing(conn, landing)
    rows = conn.execute(
        "select _batch_id, _source_file, _file_sha256, _row_number from raw.customers order by _row_number"
    ).fetchall()
    assert rows == [
        (outcome.sha256[:16], "batch.csv", outcome.sha256, 2),
        (outcome.sha256[:16], "batch.csv", outcome.sha256, 3),
    ]


def test_row_count_mismatch_is_detected(tmp_path: Path, conn) -> None:
    landing = tmp_path / "landing"
    write_csv(landing / "batch.csv", GOOD_ROWS)
    ingest_landing(conn, landing)
    conn.execute("delete from raw.customers where customerID = 'T-0002'")
    assert row_count_mismatches(conn) == [("batch.csv", 4, 3, 0)]


def test_partial_downloads_and_dotfiles_wait(tmp_path: Path, conn) -> None:
    landing = tmp_path / "landing"
    write_csv(landing / "x.csv.part", GOOD_ROWS)
    write_csv(landing / ".hidden.csv", GOOD_ROWS)
    assert ingest_landing(conn, landing) == []


def test_records_not_lines_are_accounted_for(tmp_path: Path, conn) -> None:
    """rows_in_file counts records: a quoted line break, a line separator and a blank line change nothing."""
    landing = tmp_path / "landing"
    multi = with_field(GOOD_ROWS[1], "customerID", '"T-\n0002"')  # lines 3-4
    separator = with_field(GOOD_ROWS[2], "customerID", "7590\u2028VHVEG")  # line 5
    nul = with_field(GOOD_ROWS[3], "customerID", "T-\x000004")  # line 7, after a blank line 6
    write_csv(landing / "a.csv", [GOOD_ROWS[0], multi, separator, "", nul, BLANK_TOTAL_ROW])

    (outcome,) = ingest_landing(conn, landing)

    assert (outcome.rows_in_file, outcome.rows_accepted, outcome.rows_rejected) == (5, 2, 3)
    assert conn.execute(
        "select rows_in_file, rows_accepted, rows_rejected from raw.landed_files"
    ).fetchall() == [(5, 2, 3)]
    assert row_count_mismatches(conn) == []
    assert conn.execute("select customerID, _row_number from raw.customers order by 2").fetchall() == [
        ("T-0001", 2),
        ("T-0005", 8),
    ]
    assert conn.execute("select _row_number, raw_line from raw.rejected_rows order by 1").fetchall() == [
        (3, multi),
        (5, separator),
        (7, nul),
    ]


def test_refused_header_only_and_open_quote_files_are_logged_and_the_next_file_loads(
    tmp_path: Path, conn
) -> None:
    landing = tmp_path / "landing"
    write_csv(landing / "1_header_only.csv", [])
    open_quote = with_field(GOOD_ROWS[1], "customerID", '"T-0002')
    write_csv(landing / "2_open_quote.csv", [GOOD_ROWS[0], open_quote, GOOD_ROWS[2]])
    write_csv(landing / "3_good.csv", [GOOD_ROWS[3]])

    outcomes = ingest_landing(conn, landing)

    assert [(o.source_file, o.status) for o in outcomes] == [
        ("1_header_only.csv", "rejected"),
        ("2_open_quote.csv", "rejected"),
        ("3_good.csv", "loaded"),
    ]
    logged = dict(
        conn.execute("select source_file, reason from raw.landed_files where status = 'rejected'").fetchall()
    )
    assert logged["1_header_only.csv"] == "1_header_only.csv: header only, no records"
    assert "a quote left open" in logged["2_open_quote.csv"]
    assert conn.execute("select customerID from raw.customers").fetchall() == [("T-0004",)]
    assert _count(conn, "raw.rejected_rows") == 0
    assert row_count_mismatches(conn) == []
