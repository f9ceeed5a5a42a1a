"""Column-wise validation of a batch: every error found with its row and field, the same verdicts as the
documented request model (`CustomerRecord`), and the batch limit."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from churn_assets.ingest.schema import CATEGORIES
from churn_assets.ml.pyfunc import RAW_COLUMNS
from serving.payload import Refused
from serving.schemas import EXAMPLE, CustomerRecord
from serving.validation import AT_ONCE_FROM, validate


def _record(i: int) -> dict:
    return {**EXAMPLE, "customerID": f"{i:04d}-ABCDE", "tenure": str(i % 72 + 1), "TotalCharges": f"{i}.5"}


def _refusal(payload, single: bool = False, limit: int = 10_000) -> Refused:
    with pytest.raises(Refused) as caught:
        validate(payload, single=single, limit=limit)
    return caught.value


def test_every_bad_cell_is_found_with_its_row_and_field() -> None:
    rows = [_record(i) for i in range(100)]  # over AT_ONCE_FROM: the whole-column tests run first
    rows[3]["InternetService"] = "Cable"
    rows[3]["tenure"] = "-1"
    rows[10]["MonthlyCharges"] = float("nan")
    rows[11]["MonthlyCharges"] = "1e3"
    rows[12]["TotalCharges"] = " "  # blank, but tenure is not 0
    rows[13]["SeniorCitizen"] = True
    rows[14]["customerID"] = "bad\x00id"
    rows[15]["gender"] = ["Female"]
    rows[16]["tenure"] = 1_201
    rows[17]["explain"] = "yes"
    del rows[20]["Contract"]
    rows[21]["favourite_colour"] = "blue"
    rows[22] = "not a record"
    rows[23]["TotalCharges"] = 10_000_001
    refused = _refusal(rows)
    assert refused.status == 422
    found = {(d["loc"][1], d["loc"][2] if len(d["loc"]) > 2 else None, d["type"]) for d in refused.details}
    assert found == {
        (3, "InternetService", "literal_error"),
        (3, "tenure", "int_parsing"),
        (10, "MonthlyCharges", "finite_number"),
        (11, "MonthlyCharges", "float_parsing"),
        (12, "TotalCharges", "value_error"),
        (13, "SeniorCitizen", "value_error"),
        (14, "customerID", "string_pattern_mismatch"),
        (15, "gender", "literal_error"),
        (16, "tenure", "value_error"),
        (17, "explain", "bool_type"),
        (20, "Contract", "missing"),
        (21, "favourite_colour", "extra_forbidden"),
        (22, None, "model_type"),
        (23, "TotalCharges", "value_error"),
    }
    assert refused.message.startswith("row 3, field tenure: ") or refused.message.startswith(
        "row 3, field InternetService: "
    )
    assert "and 4 more" in refused.message  # ten shown, every one in `detail`


def test_a_single_record_names_the_field_without_a_row() -> None:
    refused = _refusal({**EXAMPLE, "Contract": "Weekly"}, single=True)
    assert [d["loc"] for d in refused.details] == [["body", "Contract"]]
    assert refused.message.startswith("field Contract: ")
    assert _refusal([EXAMPLE], single=True).details[0]["type"] == "model_type"
    assert _refusal(EXAMPLE).details[0]["type"] == "list_type"
    assert _refusal([]).details[0]["type"] == "too_short"


def test_a_batch_at_the_limit_is_accepted_and_one_more_is_a_413() -> None:
    rows = [_record(i) for i in range(10_000)]
    assert validate(rows, single=False, limit=10_000).size == 10_000
    refused = _refusal([*rows, _record(1)], limit=10_000)
    assert refused.status == 413 and "limit of 10000" in refused.message


def test_columns_hold_the_text_the_csv_would_hold() -> None:
    typed = {**EXAMPLE, "SeniorCitizen": 1, "tenure": 0, "MonthlyCharges": 29, "TotalCharges": None}
    spaced = {**EXAMPLE, "gender": " Male ", "tenure": " 7 ", "TotalCharges": " 100.5", "explain": True}
    batch = validate([typed, spaced] * AT_ONCE_FROM, single=False, limit=10_000)
    assert batch.columns["SeniorCitizen"][:2] == ["1", "0"]
    assert batch.columns["tenure"][:2] == ["0", "7"]
    assert batch.columns["MonthlyCharges"][:2] == ["29", "29.85"]
    assert batch.columns["TotalCharges"][:2] == [None, "100.5"]
    assert batch.columns["gender"][:2] == ["Female", "Male"]
    assert batch.explain[:2] == [False, True]
    assert batch.take([1, 0]).columns["gender"] == ["Male", "Female"]


# Values for any field: each field's own valid values, and what clients get wrong.
ODD_VALUES = st.sampled_from(
    [
        None,
        "",
        " ",
        "  Yes ",
        "No",
        "Yes",
        "0",
        "1",
        " 1",
        "12",
        "012",
        "-1",
        "1.5",
        "29.85",
        " 29.85 ",
        "1e3",
        "١٢",
        "abc",
        "\x00",
        "a\u2028b",
        "\ud800",
        0,
        1,
        2,
        -3,
        1_201,
        29.85,
        math.inf,
        math.nan,
        True,
        False,
        [],
        {},
        "Female",
        "Male",
        "DSL",
        "Fiber optic",
        "No internet service",
        "No phone service",
        "Month-to-month",
        "Two year",
        "Electronic check",
        "x" * 65,
    ]
)


GOOD_VALUES = {column: [*values, *(f" {v} " for v in values)] for column, values in CATEGORIES.items()} | {
    "SeniorCitizen": ["0", "1", 0, 1, " 1 "],
    "tenure": ["0", "12", "012", 0, 12, " 7 ", 1_200],
    "MonthlyCharges": ["29.85", 29.85, 29, "0", " 1.5 ", "100000"],
    "TotalCharges": [None, "", " ", "100.5", 100.5, 0, "007.50"],
    "customerID": ["A-1", " x ", "x" * 64, "Zoë-1"],
    "explain": [True, False],
}


def _value(column: str) -> st.SearchStrategy:
    return st.one_of(st.sampled_from(GOOD_VALUES[column]), ODD_VALUES)


@settings(max_examples=500, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(
    changes=st.sampled_from([*RAW_COLUMNS, "explain"])
    .flatmap(lambda first: st.tuples(st.just(first), _value(first)))
    .map(lambda pair: dict([pair]))
    | st.fixed_dictionaries({}, optional={c: _value(c) for c in [*RAW_COLUMNS, "explain"]}),
    dropped=st.sets(st.sampled_from(RAW_COLUMNS), max_size=1),
    copies=st.sampled_from([1, AT_ONCE_FROM + 3]),
)
def test_the_same_verdict_as_the_documented_request_model(changes, dropped, copies) -> None:
    record = {k: v for k, v in {**EXAMPLE, **changes}.items() if k not in dropped}
    try:
        model = CustomerRecord.model_validate(record)
    except ValidationError:
        model = None
    try:
        batch = validate([record] * copies, single=False, limit=10_000)
    except Refused as refused:
        assert model is None, f"refused what the model accepts: {refused.message}"
        return
    assert model is not None, f"accepted what the model refuses: {record}"
    for column in RAW_COLUMNS:
        value = getattr(model, column)
        expected = None if value is None else value if isinstance(value, str) else str(value)
        got = batch.columns[column][0]
        if isinstance(value, float):
            assert float(got) == value, column
        else:
            assert got == expected, column
    assert len(set(map(tuple, zip(*batch.columns.values(), strict=True)))) == 1  # every copy alike


def test_category_values_come_from_the_landed_file_contract() -> None:
    for column, values in CATEGORIES.items():
        if column in RAW_COLUMNS and column != "SeniorCitizen":
            batch = validate([{**EXAMPLE, column: v} for v in values], single=False, limit=10)
            assert batch.columns[column] == list(values)
