import csv
from pathlib import Path

import pytest

from churn_assets.ingest.parse import FileRejected, parse_batch
from churn_assets.ingest.schema import BLANK_TOTAL_CHARGES_TENURE, COLUMNS
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
    rows = [*GOOD_ROWS, "garbage", with_field(GOOD_ROWS[0], "Partner", "y"), BLANK_TOTAL_ROW]
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


def _write(path: Path, text: str) -> Path:
    """Write ``text`` byte for byte: no line-break translation, no final line break added."""
    path.write_bytes(text.encode())
    return path


def _unsafe_id_reason(shown: str) -> str:
    return f"customerID: contains a control or line-separator character '{shown}'"


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85"])
def test_a_line_separator_in_customer_id_rejects_one_record_and_splits_nothing(
    tmp_path: Path, separator: str
) -> None:
    """The reported bug: ``7590\u2028VHVEG,Female,0,...`` became a rejected row and a customer VHVEG."""
    bad = with_field(GOOD_ROWS[0], "customerID", f"7590{separator}VHVEG")
    batch = parse_batch(write_csv(tmp_path / "sep.csv", [bad, GOOD_ROWS[1]]))
    assert batch.rows_in_file == 2
    assert batch.accepted["customerID"].to_list() == ["T-0002"]
    assert batch.accepted["_row_number"].to_list() == [3]
    shown = repr(separator)[1:-1]  # e.g. \u2028 or \x0c, as text
    assert batch.rejected.rows() == [(2, bad, _unsafe_id_reason(f"7590{shown}VHVEG"))]


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("gender", "Female\u2028", r"gender: unknown value 'Female\u2028'"),
        ("PaymentMethod", "Electronic\x85check", r"PaymentMethod: unknown value 'Electronic\x85check'"),
        ("MonthlyCharges", "29.85\x0c", r"MonthlyCharges: not a non-negative number '29.85\x0c'"),
        ("tenure", "\x1e1", r"tenure: not a whole number '\x1e1'"),
        ("Churn", "\tNo", r"Churn: unknown value '\tNo'"),
        ("Partner", "Yes\u2029", r"Partner: unknown value 'Yes\u2029'"),
    ],
)
def test_a_control_character_in_any_field_rejects_the_record_naming_the_field(
    tmp_path: Path, column: str, value: str, reason: str
) -> None:
    """Only spaces around a value are ignored (as the staging model's trim does), never other whitespace."""
    bad = with_field(GOOD_ROWS[1], column, value)
    batch = parse_batch(write_csv(tmp_path / "ctl.csv", [GOOD_ROWS[0], bad]))
    assert batch.rows_in_file == 2
    assert batch.accepted["customerID"].to_list() == ["T-0001"]
    assert batch.rejected.rows() == [(3, bad, reason)]


def test_spaces_around_values_are_accepted_and_kept_as_landed(tmp_path: Path) -> None:
    row = with_field(with_field(GOOD_ROWS[1], "Contract", " One year "), "tenure", "34 ")
    batch = parse_batch(write_csv(tmp_path / "spaces.csv", [row]))
    assert batch.rejected.height == 0
    assert batch.accepted.select("Contract", "tenure").row(0) == (" One year ", "34 ")


def test_quoted_fields_are_read_as_csv(tmp_path: Path) -> None:
    # PaymentMethod first: with_field splits on every comma, so the quoted comma must come last
    row = with_field(
        with_field(GOOD_ROWS[0], "PaymentMethod", '"Mailed check"'), "customerID", '"T-""9"",0001"'
    )
    batch = parse_batch(write_csv(tmp_path / "quoted.csv", [row]))
    assert batch.rejected.height == 0
    assert batch.accepted.select("customerID", "PaymentMethod").row(0) == ('T-"9",0001', "Mailed check")


@pytest.mark.parametrize("line_break", ["\n", "\r\n", "\r"])
def test_a_quoted_line_break_is_data_so_the_record_is_one_row(tmp_path: Path, line_break: str) -> None:
    multi = with_field(GOOD_ROWS[1], "customerID", f'"T-{line_break}0002"')
    batch = parse_batch(write_csv(tmp_path / "multi.csv", [GOOD_ROWS[0], multi, GOOD_ROWS[2]]))
    assert batch.rows_in_file == 3
    assert batch.accepted["customerID"].to_list() == ["T-0001", "T-0003"]
    assert batch.accepted["_row_number"].to_list() == [2, 5]  # the quoted record takes lines 3 and 4
    shown = repr(line_break)[1:-1]
    assert batch.rejected.rows() == [(3, multi, _unsafe_id_reason(f"T-{shown}0002"))]


def test_a_record_over_several_lines_keeps_every_reason(tmp_path: Path) -> None:
    multi = with_field(with_field(GOOD_ROWS[1], "gender", '"Fe\nmale"'), "Churn", "Maybe")
    batch = parse_batch(write_csv(tmp_path / "multi.csv", [multi, GOOD_ROWS[2]]))
    assert batch.rejected.rows() == [
        (2, multi, r"gender: unknown value 'Fe\nmale'; Churn: unknown value 'Maybe'")
    ]
    assert batch.accepted["_row_number"].to_list() == [4]


@pytest.mark.parametrize("line_break", ["\n", "\r\n", "\r"])
def test_records_end_at_lf_crlf_or_cr_and_trailing_blank_lines_are_not_rows(
    tmp_path: Path, line_break: str
) -> None:
    truncated = GOOD_ROWS[1][:30]
    text = line_break.join([HEADER, GOOD_ROWS[0], truncated, GOOD_ROWS[2], "", ""]) + line_break
    batch = parse_batch(_write(tmp_path / "eol.csv", text))
    assert batch.rows_in_file == 3
    assert batch.accepted["_row_number"].to_list() == [2, 4]
    assert batch.accepted["MonthlyCharges"].to_list() == ["29.85", "99.65"]
    assert batch.accepted["Churn"].to_list() == ["No", "Yes"]  # no line break left on the last field
    assert batch.rejected.rows() == [(3, truncated, f"expected 21 fields, found {truncated.count(',') + 1}")]


def test_blank_lines_anywhere_are_not_rows(tmp_path: Path) -> None:
    truncated = GOOD_ROWS[1][:30]
    lines = ["", HEADER, GOOD_ROWS[0], "", "   ", truncated, "\t", GOOD_ROWS[2], " ", ""]
    batch = parse_batch(_write(tmp_path / "blanks.csv", "\n".join(lines) + "\n"))
    assert batch.rows_in_file == 3
    assert batch.accepted["_row_number"].to_list() == [3, 8]
    assert batch.rejected["_row_number"].to_list() == [6]


@pytest.mark.parametrize(
    "content",
    [HEADER, HEADER + "\n", HEADER + "\r\n\r\n", HEADER + "\n \n\t\n\n", "\n" + HEADER + "\n"],
)
def test_a_header_only_file_is_refused_whole(tmp_path: Path, content: str) -> None:
    with pytest.raises(FileRejected, match=r"^empty\.csv: header only, no records$"):
        parse_batch(_write(tmp_path / "empty.csv", content))


def test_a_field_over_the_csv_size_limit_rejects_only_its_record(tmp_path: Path) -> None:
    limit = csv.field_size_limit()
    huge = with_field(GOOD_ROWS[1], "customerID", "X" * (limit + 1))
    batch = parse_batch(write_csv(tmp_path / "huge.csv", [GOOD_ROWS[0], huge, GOOD_ROWS[2]]))
    assert batch.rows_in_file == 3
    assert batch.accepted["_row_number"].to_list() == [2, 4]
    assert batch.rejected.rows() == [(3, huge, f"not valid CSV: field larger than field limit ({limit})")]


def test_text_after_a_closing_quote_rejects_only_its_record(tmp_path: Path) -> None:
    bad = with_field(GOOD_ROWS[1], "customerID", '"T-0002"x')
    batch = parse_batch(write_csv(tmp_path / "quote.csv", [GOOD_ROWS[0], bad, GOOD_ROWS[2]]))
    assert batch.accepted["_row_number"].to_list() == [2, 4]
    assert batch.rejected.rows() == [(3, bad, "not valid CSV: ',' expected after '\"'")]


def test_a_quote_left_open_on_the_last_line_rejects_that_record(tmp_path: Path) -> None:
    bad = with_field(GOOD_ROWS[1], "customerID", '"T-0002')
    batch = parse_batch(write_csv(tmp_path / "open.csv", [GOOD_ROWS[0], bad]))
    assert batch.accepted["_row_number"].to_list() == [2]
    assert batch.rejected.rows() == [(3, bad, "not valid CSV: unexpected end of data")]


def test_a_quote_left_open_over_several_lines_refuses_the_file(tmp_path: Path) -> None:
    bad = with_field(GOOD_ROWS[1], "customerID", '"T-0002')
    path = write_csv(tmp_path / "open.csv", [GOOD_ROWS[0], bad, GOOD_ROWS[2], GOOD_ROWS[3]])
    with pytest.raises(FileRejected) as info:
        parse_batch(path)
    message = str(info.value)
    assert message.startswith("open.csv: not valid CSV: unexpected end of data")
    assert "record starting on line 3, which runs over 3 lines (a quote left open?)" in message


def test_a_nul_character_rejects_only_its_record(tmp_path: Path) -> None:
    bad = with_field(GOOD_ROWS[1], "customerID", "T-\x000002")
    batch = parse_batch(write_csv(tmp_path / "nul.csv", [GOOD_ROWS[0], bad, GOOD_ROWS[2]]))
    assert batch.accepted["_row_number"].to_list() == [2, 4]
    assert batch.rejected.rows() == [(3, bad, _unsafe_id_reason(r"T-\x000002"))]


def test_a_header_that_is_not_valid_csv_refuses_the_file(tmp_path: Path) -> None:
    with pytest.raises(FileRejected, match=r"^bad\.csv: the header is not valid CSV: ',' expected"):
        parse_batch(write_csv(tmp_path / "bad.csv", GOOD_ROWS[:1], header='"customerID"x,' + HEADER))


@pytest.mark.parametrize(
    ("tenure", "total", "reason"),
    [
        ("0", " ", None),
        ("0", "", None),
        (" 0 ", "  ", None),
        ("34", " ", "TotalCharges: blank, but tenure is '34' (blank only when tenure is 0)"),
        ("1", "", "TotalCharges: blank, but tenure is '1' (blank only when tenure is 0)"),
        (
            "",
            " ",
            "tenure: not a whole number ''; TotalCharges: blank, but tenure is '' (blank only when tenure is 0)",
        ),
        ("34", "\t", "TotalCharges: not a non-negative number '\\t'"),
    ],
)
def test_blank_total_charges_only_when_tenure_is_zero(
    tmp_path: Path, tenure: str, total: str, reason: str | None
) -> None:
    assert BLANK_TOTAL_CHARGES_TENURE == 0
    row = with_field(with_field(BLANK_TOTAL_ROW, "tenure", tenure), "TotalCharges", total)
    batch = parse_batch(write_csv(tmp_path / "blank.csv", [row]))
    if reason is None:
        assert batch.rejected.height == 0
        assert batch.accepted["TotalCharges"].to_list() == [total]
    else:
        assert batch.accepted.height == 0
        assert batch.rejected.rows() == [(2, row, reason)]


def test_a_file_of_only_malformed_records_is_all_rejected(tmp_path: Path) -> None:
    rows = ["garbage", '"T-0001"x,Female', GOOD_ROWS[0][:40]]
    batch = parse_batch(write_csv(tmp_path / "junk.csv", rows))
    assert batch.rows_in_file == 3
    assert batch.accepted.height == 0
    assert batch.accepted.columns == [*COLUMNS, "_row_number"]
    assert batch.rejected["_row_number"].to_list() == [2, 3, 4]
    assert batch.rejected["raw_line"].to_list() == rows


def test_a_quote_left_open_up_to_the_field_size_limit_refuses_the_file(tmp_path: Path) -> None:
    """The open field swallows lines until it outgrows the csv module's limit, mid-file."""
    bad = with_field(GOOD_ROWS[1], "customerID", '"T-0002')
    following = [with_field(GOOD_ROWS[0], "customerID", f"T-{i:05d}") for i in range(2_000)]
    assert sum(len(r) + 1 for r in following) > csv.field_size_limit()
    with pytest.raises(FileRejected) as info:
        parse_batch(write_csv(tmp_path / "open.csv", [GOOD_ROWS[0], bad, *following]))
    message = str(info.value)
    assert message.startswith(
        f"open.csv: not valid CSV: field larger than field limit ({csv.field_size_limit()})"
    )
    assert "record starting on line 3" in message


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("tenure", "3000000000", "tenure: outside 0 to 1200 '3000000000'"),  # would break dbt's integer cast
        ("MonthlyCharges", "100000.01", "MonthlyCharges: outside 0 to 100000"),
        ("TotalCharges", "10000001", "TotalCharges: outside 0 to 10000000"),
        ("customerID", "X" * 65, "customerID: longer than 64 characters"),
        ("customerID", "7590\x9fVHVEG", "customerID: contains a control or line-separator character"),
    ],
)
def test_the_contracts_bounds_reject_the_record(tmp_path: Path, column: str, value: str, reason: str) -> None:
    batch = parse_batch(
        write_csv(tmp_path / "b.csv", [with_field(GOOD_ROWS[0], column, value), GOOD_ROWS[1]])
    )
    assert batch.accepted.height == 1
    (rejected,) = batch.rejected["reason"].to_list()
    assert rejected.startswith(reason)


def test_values_at_the_bounds_are_accepted(tmp_path: Path) -> None:
    row = with_field(with_field(GOOD_ROWS[0], "tenure", "1200"), "MonthlyCharges", "100000")
    row = with_field(with_field(row, "TotalCharges", "10000000"), "customerID", "X" * 64)
    assert parse_batch(write_csv(tmp_path / "b.csv", [row])).accepted.height == 1
