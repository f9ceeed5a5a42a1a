"""The body parsing the workers do before validation: every failure a `Refused` with a 4xx."""

from __future__ import annotations

import json

import pytest

from serving.payload import Refused, csv_records, json_payload, parse_body
from serving.schemas import EXAMPLE

HEADER = ",".join(EXAMPLE)
ROW = ",".join(str(v) for v in EXAMPLE.values())


def refusal(call, *args) -> Refused:
    with pytest.raises(Refused) as caught:
        call(*args)
    return caught.value


def test_a_repeated_json_key_is_refused_with_row_and_field() -> None:
    record = json.dumps(EXAMPLE)
    refused = refusal(json_payload, f'[{record}, {record[:-1]}, "tenure": "5"}}]')
    assert refused.status == 422
    assert refused.details == [
        {"loc": ["body", 1, "tenure"], "msg": "key 'tenure' appears more than once", "type": "duplicate_key"}
    ]
    assert "row 1, field tenure" in refused.message


def test_a_repeated_key_of_a_single_record_names_the_field() -> None:
    refused = refusal(json_payload, '{"tenure": 1, "gender": "Male", "tenure": 2}')
    assert refused.status == 422 and "field tenure" in refused.message


@pytest.mark.parametrize("depth", [2_000, 10_000, 100_000])
def test_json_nested_too_deeply_is_a_422_not_a_crash(depth: int) -> None:
    refused = refusal(json_payload, "[" * depth + "]" * depth)
    assert refused.status == 422 and "nested too deeply" in refused.message


def test_invalid_json_is_a_422() -> None:
    assert refusal(json_payload, "{not json").status == 422


def test_valid_json_passes_through() -> None:
    assert json_payload(json.dumps([EXAMPLE, EXAMPLE])) == [EXAMPLE, EXAMPLE]


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
def test_csv_records_read_with_any_line_ending(ending: str) -> None:
    records = csv_records(ending.join([HEADER, ROW, ROW]) + ending)
    assert records == [{k: str(v) for k, v in EXAMPLE.items()}] * 2


def test_a_quoted_newline_in_a_csv_field_is_data() -> None:
    row = ROW.replace("0001-EXAMPLE", '"0001\nEXAMPLE"')
    (record,) = csv_records(f"{HEADER}\n{row}\n")
    assert record["customerID"] == "0001\nEXAMPLE"


def test_unicode_line_separators_do_not_split_a_csv_record() -> None:
    row = ROW.replace("0001-EXAMPLE", "0001\u2028\x85\x0c\x1eEXAMPLE")
    (record,) = csv_records(f"{HEADER}\n{row}\n")
    assert record["customerID"] == "0001\u2028\x85\x0c\x1eEXAMPLE"


def test_blank_lines_are_not_records_and_the_label_is_dropped() -> None:
    records = csv_records(f"{HEADER},Churn\n\n{ROW},Yes\n\n")
    assert records == [{k: str(v) for k, v in EXAMPLE.items()}]


def test_a_row_one_field_short_is_refused_by_its_number() -> None:
    short = ROW.rsplit(",", 1)[0]
    refused = refusal(csv_records, f"{HEADER}\n{ROW}\n{short}\n")
    assert refused.status == 400 and "row 1 has 19 fields, the header has 20" in refused.message


def test_a_repeated_csv_column_is_refused() -> None:
    refused = refusal(csv_records, f"{HEADER},tenure\n{ROW},5\n")
    assert refused.status == 422 and "tenure" in refused.message


def test_a_field_over_the_csv_reader_limit_is_a_400() -> None:
    refused = refusal(csv_records, f"{HEADER}\n{'x' * 140_000}{ROW}\n")
    assert refused.status == 400 and "field larger than field limit" in refused.message


def test_an_empty_csv_body_is_a_400() -> None:
    assert refusal(csv_records, "").status == 400


def test_csv_is_read_with_ingestions_rules() -> None:
    padded_header = ", ".join(EXAMPLE)  # header names with spaces around them
    records = csv_records(f"\n  \n{padded_header}\n   \n{ROW}\n\t\n")
    assert records == [{k: str(v) for k, v in EXAMPLE.items()}]
    refused = refusal(
        csv_records, f"{HEADER}\n{ROW.replace('0001-EXAMPLE', chr(34) + '0001' + chr(34) + 'X')}\n"
    )
    assert refused.status == 400 and "line 2" in refused.message  # text after a closing quote: strict


def test_rows_are_counted_as_records_not_lines() -> None:
    short = ROW.rsplit(",", 1)[0]
    refused = refusal(csv_records, f"{HEADER}\n\n{ROW}\n\n\n{short}\n")
    assert "row 1 has 19 fields" in refused.message


def test_a_repeated_key_with_a_lone_surrogate_is_answered_in_printable_text() -> None:
    refused = refusal(json_payload, '{"\\ud800": 1, "\\ud800": 2}')
    assert refused.status == 422
    refused.response()  # renders: no UnicodeEncodeError
    assert "\\ud800" in refused.message


@pytest.mark.parametrize(
    "body",
    [
        b'{"a": 1, "a": 2}',
        b'[{"a": 1}, {"b": "x", "b": "x"}]',
        b'{"a" : 1, "a":2}',  # space before the colon
        b'{"a": "\\u00e9", "a": 1}',  # an escape: the exact parser decides
    ],
)
def test_a_repeated_key_is_found_whichever_parser_reads_the_body(body: bytes) -> None:
    assert refusal(parse_body, body, "application/json").details[0]["type"] == "duplicate_key"


@pytest.mark.parametrize(
    "body",
    [
        json.dumps([EXAMPLE, EXAMPLE]).encode(),
        json.dumps(EXAMPLE, indent=2).encode(),
        b'{"a": "x:\\"y\\"", "b": [1, "a", {"c": null}]}',
        '{"name": "Zoë", "n": 1e3}'.encode(),
    ],
)
def test_json_bodies_parse_as_the_standard_parser_reads_them(body: bytes) -> None:
    assert parse_body(body, "application/json") == json.loads(body)


def test_a_body_the_fast_parser_refuses_gets_the_exact_parsers_answer() -> None:
    assert "nested too deeply" in refusal(parse_body, b"[" * 5_000 + b"]" * 5_000, "application/json").message
    assert refusal(parse_body, b"\xff{}", "application/json").status == 400  # not UTF-8
