"""Request and response models: the data set's own field names, so a CSV record can be posted as is.

They document the API (OpenAPI); the workers validate requests column-wise with the same rules
(`serving.validation`), and a test holds the two to the same verdict on every record.

The request model's fields are built from the landed-file contract (`churn_assets.ingest.schema`): one
per raw column but the label, in the file's order, typed by what the contract says the column holds (its
category values, its number format and range), so the server and ingestion accept exactly the same
records. Every field is required: a missing `TotalCharges` would otherwise be scored as a new customer's
blank charge, a silent wrong answer. Numbers are accepted as JSON numbers or in the data set's own text
formats (digits, optionally one decimal point), nothing else: no `1_000`, no `1e3`, no booleans.
"""

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    create_model,
    model_validator,
)
from pydantic_core import CoreSchema, core_schema

from churn_assets.ingest.schema import (
    AMOUNT_PATTERN,
    BLANK_TOTAL_CHARGES_TENURE,
    CATEGORIES,
    ID_FORBIDDEN_CHARACTERS,
    ID_MAX_LENGTH,
    RANGES,
    WHOLE_NUMBER_PATTERN,
    column_kind,
)
from churn_assets.ml.pyfunc import RAW_COLUMNS

WHOLE_NUMBER, AMOUNT = re.compile(WHOLE_NUMBER_PATTERN), re.compile(AMOUNT_PATTERN)


def _strip(value: Any) -> Any:
    """Surrounding spaces (only spaces, as ingestion and the dbt staging model's `trim`) removed."""
    if isinstance(value, str):
        value.encode("utf-8")  # lone surrogates from JSON escapes cannot be stored or logged
        return value.strip(" ")
    return value


def _whole_number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be a whole number (a JSON integer or digits such as '12')")
    if isinstance(value, str) and not WHOLE_NUMBER.fullmatch(value := value.strip(" ")):
        raise ValueError(f"must be a whole number written with digits only, got {value!r}")
    return int(value)


def _amount(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("must be an amount (a JSON number or text such as '29.85')")
    if isinstance(value, str) and not AMOUNT.fullmatch(value := value.strip(" ")):
        raise ValueError(f"must be an amount written as digits with an optional decimal part, got {value!r}")
    return float(value)


def _optional_amount(value: Any) -> Any:
    if value is None or (isinstance(value, str) and not value.strip(" ")):
        return None
    return _amount(value)


@dataclass(frozen=True)
class OneOf:
    """`Annotated[str, OneOf(column)]`: exactly one of the column's category values, after surrounding spaces
    (validated and documented as a literal: an `enum` in the OpenAPI schema)."""

    column: str

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        literal = core_schema.literal_schema(list(CATEGORIES[self.column]))
        return core_schema.no_info_before_validator_function(_strip, literal)


Text = Annotated[str, BeforeValidator(_strip)]
WholeNumber = Annotated[int, BeforeValidator(_whole_number)]
Amount = Annotated[float, BeforeValidator(_amount), Field(allow_inf_nan=False)]

EXAMPLE: dict[str, Any] = {
    "customerID": "0001-EXAMPLE",
    "gender": "Female",
    "SeniorCitizen": 0,
    "Partner": "Yes",
    "Dependents": "No",
    "tenure": 1,
    "PhoneService": "No",
    "MultipleLines": "No phone service",
    "InternetService": "DSL",
    "OnlineSecurity": "No",
    "OnlineBackup": "Yes",
    "DeviceProtection": "No",
    "TechSupport": "No",
    "StreamingTV": "No",
    "StreamingMovies": "No",
    "Contract": "Month-to-month",
    "PaperlessBilling": "Yes",
    "PaymentMethod": "Electronic check",
    "MonthlyCharges": 29.85,
    "TotalCharges": "29.85",
}


def _whole_category(column: str) -> BeforeValidator:
    """A category whose values are whole numbers (SeniorCitizen's 0/1), as ingestion reads it: exactly one
    of the values as text, or that JSON integer."""
    allowed = CATEGORIES[column]

    def check(value: Any) -> Any:
        if isinstance(value, str) and value.strip(" ") in allowed:
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool) and str(value) in allowed:
            return value
        raise ValueError(f"must be one of {list(allowed)} (text or integer), got {value!r}")

    return BeforeValidator(check)


def _in_range(column: str) -> Any:
    low, high = RANGES[column]
    return Field(ge=low, le=high)


DESCRIPTIONS = {
    "SeniorCitizen": "1 for a senior, else 0.",
    "tenure": "Months with the company.",
    "TotalCharges": f"Required; blank or null only for a customer in the first month "
    f"(tenure {BLANK_TOTAL_CHARGES_TENURE}), as in the data set.",
}


def _field(column: str) -> Any:
    """A raw column's request field, from what the landed-file contract says the column holds."""
    kind: Any
    match column_kind(column):
        case "id":
            pattern = f"^[^{ID_FORBIDDEN_CHARACTERS}]+$"
            kind = Annotated[Text, Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=pattern)]
        case "category":
            kind = Annotated[str, OneOf(column)]
        case "whole_number_category":
            kind = Annotated[int, _whole_category(column)]
        case "whole_number":
            kind = Annotated[WholeNumber, _in_range(column)]
        case "amount":
            kind = Annotated[Amount, _in_range(column)]
        case "optional_amount":
            amount = Annotated[float, _in_range(column), Field(allow_inf_nan=False)]
            kind = Annotated[amount | None, BeforeValidator(_optional_amount)]
    if column in DESCRIPTIONS:
        kind = Annotated[kind, Field(description=DESCRIPTIONS[column])]
    return (kind, ...)


def _blank_total_only_for_new_customers(record: Any) -> Any:
    if record.TotalCharges is None and record.tenure != BLANK_TOTAL_CHARGES_TENURE:
        raise ValueError(
            f"TotalCharges is blank or null but tenure is {record.tenure}: "
            f"only a customer with tenure {BLANK_TOTAL_CHARGES_TENURE} has no total yet"
        )
    return record


_RECORD_VALIDATORS: dict[str, Any] = {
    "blank_total_only_for_new_customers": model_validator(mode="after")(_blank_total_only_for_new_customers)
}
# Every raw column but the label, in the file's order and each required, then `explain`: built from the
# landed-file contract, named by the class below (which the API documents).
_RecordFields: Any = create_model(
    "CustomerRecord",
    __validators__=_RECORD_VALIDATORS,
    **{column: _field(column) for column in RAW_COLUMNS},
    explain=(
        bool,
        Field(
            False,
            strict=True,
            description="Also return the top contributing features (same as ?explain=true): true or false.",
        ),
    ),
)


class CustomerRecord(_RecordFields):
    """One customer as in the Telco CSV (Churn, the label, is not sent). Every field must be present."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE]})


class Contribution(BaseModel):
    feature: str
    value: float
    contribution: float = Field(description="Contribution to the model's log-odds of churn.")


class Prediction(BaseModel):
    customerID: str | None
    churn_probability: float
    churn: bool = Field(description="The decision at the model's threshold: contact this customer.")
    risk_band: Literal["low", "medium", "high"]
    model_version: str = Field(description="The registered version that answered this record.")
    model_alias: str = Field(
        description="The registry alias it answered under: `champion`, or `challenger` for the customers "
        "of the challenger's share (CHURN_CHALLENGER_SHARE)."
    )
    request_id: str
    top_features: list[Contribution] | None = None


class BatchPrediction(BaseModel):
    predictions: list[Prediction]
    model_version: str = Field(
        description="The champion's version. With a challenger share a batch may mix both models: each "
        "prediction names the version that answered it."
    )
    request_id: str
