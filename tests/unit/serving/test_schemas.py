"""The request contract: complete, unambiguous records in the data set's own formats."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from churn_assets.ingest.schema import CATEGORIES
from serving.schemas import EXAMPLE, CustomerRecord


def errors(record: dict) -> str:
    with pytest.raises(ValidationError) as caught:
        CustomerRecord.model_validate(record)
    return str(caught.value)


@pytest.mark.parametrize("field", list(EXAMPLE))
def test_every_field_is_required(field: str) -> None:
    record = {k: v for k, v in EXAMPLE.items() if k != field}
    assert field in errors(record)


@pytest.mark.parametrize("blank", [None, "", " "])
def test_total_charges_may_be_blank_for_a_new_customer(blank) -> None:
    assert CustomerRecord.model_validate({**EXAMPLE, "tenure": 0, "TotalCharges": blank}).TotalCharges is None


@pytest.mark.parametrize("blank", [None, "", " "])
def test_total_charges_blank_with_tenure_is_refused(blank) -> None:
    message = errors({**EXAMPLE, "tenure": 8, "TotalCharges": blank})
    assert "TotalCharges is blank or null but tenure is 8" in message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tenure", "1_000"),
        ("tenure", "1e3"),
        ("tenure", 12.0),
        ("tenure", True),
        ("tenure", "-1"),
        ("SeniorCitizen", True),
        ("SeniorCitizen", "2"),
        ("MonthlyCharges", "1_000.5"),
        ("MonthlyCharges", "1e3"),
        ("MonthlyCharges", "NaN"),
        ("MonthlyCharges", float("inf")),
        ("MonthlyCharges", False),
        ("TotalCharges", "0x10"),
        ("TotalCharges", "-5"),
    ],
)
def test_numbers_only_in_the_data_sets_formats(field: str, value) -> None:
    assert field in errors({**EXAMPLE, field: value})


@pytest.mark.parametrize(
    ("field", "value", "parsed"),
    [
        ("tenure", "12", 12),
        ("tenure", 12, 12),
        ("MonthlyCharges", "29.85", 29.85),
        ("MonthlyCharges", 30, 30.0),
    ],
)
def test_numbers_as_json_or_as_the_csv_writes_them(field: str, value, parsed) -> None:
    assert getattr(CustomerRecord.model_validate({**EXAMPLE, field: value}), field) == parsed


def test_category_values_are_the_ingestion_contracts() -> None:
    schema = CustomerRecord.model_json_schema()["properties"]
    for column, allowed in CATEGORIES.items():
        if column in schema and column != "SeniorCitizen":
            assert schema[column]["enum"] == list(allowed), column
