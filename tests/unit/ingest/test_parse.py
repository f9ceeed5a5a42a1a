from pathlib import Path

import pytest

from churn_assets.ingest.parse import FileRejected, parse_batch
from churn_assets.ingest.schema import COLUMNS
from tests.csv_fixtures import BLANK_TOTAL_ROW, GOOD_ROWS, HEADER, with_field, write_csv


def test_good_rows_are_accepted_as_landed(tmp_path: Path) -> None:
    batch = parse_batch(write_csv(tmp_path / "good.csv", GOOD_ROWS))
    assert batch.rows_in_file == 4
    assert batch.accepted.height == 4
    assert batch.rejected.height == 0
    assert batch.accepted.columns == [*COLUMNS, "_row_number"]
    assert batch.accepted["_row_number"].to_list() == [2, 3, 4, 5]
    assert batch.accepted.row(0)[: len(COLUMNS)] == tuple(GOOD_ROWS[0].split(","))


def test_blank_total_charges_is_accepted_and_kept_blank(tmp_path: Path) -> None:
    batch = parse_batch(write_csv(tmp_path / "blank.csv", [BLANK_TOTAL_ROW]))
    assert batch.rejected.height == 0
    assert batch.accepted["TotalCharges"].to_list() == [" "]


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("MonthlyCharges", "abc", "MonthlyCharges: not a non-negative number 'abc'"),
        ("MonthlyCharges", " ", "MonthlyCharges: not a non-negative number ' '"),
        ("TotalCharges", "12,5", None),  # an extra comma: wrong field count, checked below
        ("TotalCharges", "-3.0", "TotalCharges: not a non-negative number '-3.0'"),
        ("TotalCharges", "nan", "TotalCharges: not a non-negative number 'nan'"),
        ("tenure", "1.5", "tenure: not a whole number '1.5'"),
        ("Contract", "Weekly", "Contract: unknown value 'Weekly'"),
        ("SeniorCitizen", "2", "SeniorCitizen: unknown value '2'"),
        ("Churn", "Maybe", "Churn: unknown value 'Maybe'"),
        ("customerID", "", "customerID: empty"),
    ],
)
def test_each_rejection_reason_names_field_and_value(tmp_path: Path, column: str, value: str, reason) -> None:
    bad = with_field(GOOD_ROWS[1], column, value)
    batch = parse_batch(write_csv(tmp_path / "bad.csv", [GOOD_ROWS[0], bad]))
    assert batch.accepted["customerID"].to_list() == ["T-0001"]
    assert batch.rejected.height == 1
    row = batch.rejected.row(0, named=True)
    assert row["_row_number"] == 3
    assert row["raw_line"] == bad
    if reason is None:
        assert row["reason"] == f"expected {len(COLUMNS)} fields, found {len(COLUMNS) + 1}"
    else:
        assert row["reason"] == reason


def test_wrong_field_count_and_truncated_line(tmp_path: Path) -> None:
    truncated = GOOD_ROWS[2][:40]
    batch = parse_batch(write_csv(tmp_path / "t.csv", [GOOD_ROWS[0], truncated, GOOD_ROWS[1]]))
    assert batch.accepted.height == 2
    assert batch.rejected.to_dicts() == [
        {
            "_row_number": 3,
            "raw_line": truncated,
            "reason": f"expected 21 fields, found {truncated.count(',') + 1}",
        }
    ]


def test_all_reasons_of_a_row_are_reported(tmp_path: Path) -> None:
    bad = with_field(with_field(GOOD_ROWS[0], "gender", "X"), "tenure", "-1")
    batch = parse_batch(write_csv(tmp_path / "two.csv", [bad]))
    assert batch.rejected["reason"].to_list() == [
        "gender: unknown value 'X'; tenure: not a whole number '-1'"
    ]


def test_duplicate_customer_id_within_a_batch_keeps_the_first(tmp_path: Path) -> None:
    duplicate = with_field(GOOD_ROWS[1], "customerID", "T-0001")
    batch = parse_batch(write_csv(tmp_path / "dup.csv", [GOOD_ROWS[0], duplicate, GOOD_ROWS[2]]))
    assert batch.accepted["customerID"].to_list() == ["T-0001", "T-0003"]
    assert batch.rejected["reason"].to_list() == ["customerID: duplicate of line 2 in this file"]


def test_rows_are_never_lost(tmp_path: Path) -> None:
    rows = [*GOOD_ROWS, "garbage", "", with_field(GOOD_ROWS[0], "Partner", "y"), BLANK_TOTAL_ROW]
    batch = parse_batch(write_csv(tmp_path / "mixed.csv", rows))
    assert batch.rows_in_file == len(rows)
    assert batch.accepted.height + batch.rejected.height == len(rows)
    assert sorted([*batch.accepted["_row_number"], *batch.rejected["_row_number"]]) == list(
        range(2, len(rows) + 2)
    )


def test_columns_in_another_order_are_reordered(tmp_path: Path) -> None:
    order = list(reversed(COLUMNS))
    row = ",".join(reversed(GOOD_ROWS[0].split(",")))
    batch = parse_batch(write_csv(tmp_path / "rev.csv", [row], header=",".join(order)))
    assert batch.accepted.row(0)[: len(COLUMNS)] == tuple(GOOD_ROWS[0].split(","))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the file is empty"),
        (b"id,name\n1,a\n", "missing columns"),
        ((HEADER + ",extra\n").encode(), "unexpected columns ['extra']"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "not UTF-8 text"),
    ],
)
def test_a_file_that_is_not_a_telco_csv_is_refused_whole(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "notes.csv"
    path.write_bytes(content)
    with pytest.raises(FileRejected, match=r"notes\.csv") as info:
        parse_batch(path)
    assert message in str(info.value)
