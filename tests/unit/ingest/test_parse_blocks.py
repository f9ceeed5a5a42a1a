"""The block-wise reader gives what ``csv.reader`` over the whole file gives, whatever the block size.

The fast path splits simple lines column-wise and reads every other line with ``csv.reader``; blocks end
after a ``\\n``, and a record left open at a block's end is read again with the next block. The oracle
here is ``csv.reader`` (strict) over all physical lines of the file at once.
"""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from churn_assets.ingest import parse
from churn_assets.ingest.parse import (
    BatchReader,
    FileRejected,
    file_sha256,
    parse_batch,
    physical_lines,
    raw_text,
)
from churn_assets.ingest.store import ingest_file
from tests.csv_fixtures import GOOD_ROWS, HEADER, with_field, write_csv

BLOCK_SIZES = [1, 64, None]  # None: the default (the whole of a small file is one block)
NASTY = ['"', '""', ",", "\n", "\r", "\r\n", "\u2028", "\x85", "\x0c", "\x1e", "\x00", " ", "\t", "é"]


def as_csv_reads_it(text: str) -> list[tuple[int, str, list[str] | None]] | str:
    """(row number, raw text, fields or None if not valid CSV) of every non-blank record, the header
    first; "refused" when a record that is not valid CSV runs over several lines."""
    lines = physical_lines(text)
    reader = csv.reader(lines, strict=True)
    records, first = [], 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return records
        except csv.Error:
            if reader.line_num - first > 1:
                return "refused"
            fields = None
        raw = raw_text(lines[first : reader.line_num])
        if fields is None or len(fields) > 1 or raw.strip():
            records.append((first + 1, raw, fields))
        first = reader.line_num


def parse_batch_in_blocks(path: Path, block_bytes: int | None) -> tuple[int, list[tuple], list[tuple], str]:
    """rows_in_file, accepted and rejected rows, sha256, read ``block_bytes`` at a time."""
    reader = BatchReader(path, block_bytes)
    chunks = list(reader)
    accepted = [r for c in chunks for r in c.accepted.rows()]
    rejected = [r for c in chunks for r in c.rejected.rows()]
    return reader.rows_in_file, accepted, rejected, reader.sha256


@st.composite
def landed_text(draw: st.DrawFn) -> str:
    rows = [with_field(draw(st.sampled_from(GOOD_ROWS)), "customerID", f"T-{i:04d}") for i in range(8)]
    rows += draw(st.lists(st.sampled_from(["", "  ", "\t", '""', "x,y"]), max_size=3))
    rows = draw(st.permutations(rows))
    text = draw(st.sampled_from(["\n", "\r\n", "\r"])).join([HEADER, *rows])
    start = len(HEADER) + 2  # the header stays readable
    for _ in range(draw(st.integers(0, 5))):
        at = draw(st.integers(start, len(text)))
        text = text[:at] + draw(st.sampled_from(NASTY)) + text[at:]
    return text + draw(st.sampled_from(["", "\n", "\r\n", "\n\n"]))


@settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(text=landed_text())
def test_every_block_size_reads_the_records_csv_reads(tmp_path: Path, text: str) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(text.encode())
    expected = as_csv_reads_it(text)
    results = {size: read_in_blocks(path, size) for size in BLOCK_SIZES}
    if expected == "refused":
        assert set(results.values()) == {"refused"}
        return
    header, *records = expected
    assert header[2] == list(parse.COLUMNS)
    assert records, "every generated file has records"
    for size, result in results.items():
        rows_in_file, accepted, rejected, sha = result
        assert sha == file_sha256(path.read_bytes())
        assert rows_in_file == len(records), size
        got = sorted(
            [(r[-1], None, list(r[:-1])) for r in accepted] + [(n, raw, None) for n, raw, _ in rejected]
        )
        for (row, raw, fields), (got_row, got_raw, got_fields) in zip(records, got, strict=True):
            assert row == got_row, size
            if got_fields is None:  # rejected: its raw text as landed
                assert got_raw == raw, size
            else:  # accepted: exactly the fields csv reads
                assert got_fields == fields, size
    assert len({repr(r) for r in results.values()}) == 1  # and the same reasons whatever the block size


@pytest.mark.parametrize("block_bytes", [1, 200])
def test_a_quoted_line_break_across_a_block_boundary_is_one_record(tmp_path: Path, block_bytes: int) -> None:
    multi = with_field(GOOD_ROWS[1], "customerID", '"T-\n\n0002"')
    path = write_csv(tmp_path / "multi.csv", [GOOD_ROWS[0], multi, GOOD_ROWS[2]])
    rows_in_file, accepted, rejected, _ = parse_batch_in_blocks(path, block_bytes)
    assert rows_in_file == 3
    assert [r[-1] for r in accepted] == [2, 6]
    assert [(n, raw) for n, raw, _ in rejected] == [(3, multi)]


def test_a_customer_id_repeated_in_a_later_block_is_a_duplicate(tmp_path: Path) -> None:
    rows = [GOOD_ROWS[0], GOOD_ROWS[1], GOOD_ROWS[2], with_field(GOOD_ROWS[3], "customerID", " T-0001 ")]
    path = write_csv(tmp_path / "dup.csv", rows)
    assert path.stat().st_size > 3 * 100  # so with 100-byte reads the rows land in different blocks
    _, accepted, rejected, _ = parse_batch_in_blocks(path, 100)
    assert [r[0] for r in accepted] == ["T-0001", "T-0002", "T-0003"]
    assert rejected == [(5, rows[3], "customerID: duplicate of line 2 in this file")]


def test_not_utf8_is_the_reason_even_when_another_is_found_first(tmp_path: Path) -> None:
    open_quote = with_field(GOOD_ROWS[1], "customerID", '"T-0002')
    text = "\n".join([HEADER, GOOD_ROWS[0], open_quote, *GOOD_ROWS[2:]]) + "\n"
    path = tmp_path / "both.csv"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode() + b"T-9\xff\n")
    with pytest.raises(FileRejected) as info:
        parse_batch_in_blocks(path, 64)
    assert str(info.value) == f"both.csv: not UTF-8 text (byte {len(text.encode()) + 3}), so not a CSV batch"
    with pytest.raises(FileRejected, match="a quote left open"):  # the same file without the bad byte
        path.write_bytes(text.encode())
        parse_batch_in_blocks(path, 64)


def test_a_file_refused_in_a_later_block_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(parse, "BLOCK_BYTES", 200)  # the good rows are inserted before the refusal is found
    open_quote = with_field(GOOD_ROWS[1], "customerID", '"T-9999')
    path = write_csv(tmp_path / "late.csv", [*GOOD_ROWS, open_quote, "x", GOOD_ROWS[0]])
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        outcome = ingest_file(conn, path)
        assert outcome.status == "rejected"
        assert "record starting on line 6" in outcome.reason
        assert conn.execute("select count(*) from raw.customers").fetchone() == (0,)
        assert conn.execute("select count(*) from raw.rejected_rows").fetchone() == (0,)
        assert conn.execute("select status from raw.landed_files").fetchall() == [("rejected",)]


def read_in_blocks(path: Path, block_bytes: int | None) -> tuple[int, list[tuple], list[tuple], str] | str:
    try:
        return parse_batch_in_blocks(path, block_bytes)
    except FileRejected as exc:
        return "refused" if "a quote left open" in str(exc) else str(exc)


def test_ingesting_in_blocks_stores_what_parse_batch_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [*GOOD_ROWS, "garbage", with_field(GOOD_ROWS[0], "customerID", '"T-\r\n7"'), GOOD_ROWS[0]]
    path = write_csv(tmp_path / "mixed.csv", rows)
    whole = parse_batch(path)
    monkeypatch.setattr(parse, "BLOCK_BYTES", 64)
    with duckdb.connect(str(tmp_path / "w.duckdb")) as conn:
        outcome = ingest_file(conn, path)
        stored = conn.execute(
            "select * exclude (_batch_id, _source_file, _file_sha256, _ingested_at) "
            "from raw.customers order by _row_number"
        ).fetchall()
        stored_rejected = conn.execute(
            "select _row_number, raw_line, reason from raw.rejected_rows order by 1"
        ).fetchall()
    assert (outcome.rows_in_file, outcome.rows_accepted, outcome.rows_rejected) == (
        whole.rows_in_file,
        whole.accepted.height,
        whole.rejected.height,
    )
    assert stored == whole.accepted.rows()
    assert stored_rejected == whole.rejected.rows()
    assert outcome.sha256 == whole.sha256
