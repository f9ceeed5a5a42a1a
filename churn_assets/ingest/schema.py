"""The landed-file contract: the IBM Telco Customer Churn columns and the values each may take.

The one definition of the raw data. Ingestion (`churn_assets.ingest.parse`), the prediction server's
validation and request model (`serving.validation`, `serving.schemas`) and the registered model's input
signature (`churn_assets.ml.pyfunc`) are derived from it; what cannot be derived (dbt's `accepted_values`
and range tests, the feature macro's one-hot columns, the dbt source's lineage columns) is held to it by
`tests/unit/test_contracts.py`.
"""

from __future__ import annotations

import re
from typing import Literal

YES_NO = ("Yes", "No")
INTERNET_ADDON = ("Yes", "No", "No internet service")

CATEGORIES: dict[str, tuple[str, ...]] = {
    "gender": ("Female", "Male"),
    "SeniorCitizen": ("0", "1"),
    "Partner": YES_NO,
    "Dependents": YES_NO,
    "PhoneService": YES_NO,
    "MultipleLines": ("Yes", "No", "No phone service"),
    "InternetService": ("DSL", "Fiber optic", "No"),
    "OnlineSecurity": INTERNET_ADDON,
    "OnlineBackup": INTERNET_ADDON,
    "DeviceProtection": INTERNET_ADDON,
    "TechSupport": INTERNET_ADDON,
    "StreamingTV": INTERNET_ADDON,
    "StreamingMovies": INTERNET_ADDON,
    "Contract": ("Month-to-month", "One year", "Two year"),
    "PaperlessBilling": YES_NO,
    "PaymentMethod": (
        "Electronic check",
        "Mailed check",
        "Bank transfer (automatic)",
        "Credit card (automatic)",
    ),
    "Churn": YES_NO,
}

ID_COLUMN = "customerID"
# The label: in the landed file and the training data, never in what a client sends for scoring.
LABEL_COLUMN = "Churn"
# tenure is a whole number of months; the charges are dollar amounts.
INTEGER_COLUMNS = ("tenure",)
DECIMAL_COLUMNS = ("MonthlyCharges", "TotalCharges")
# The public file leaves TotalCharges blank (a single space) for its 11 tenure-0 customers.
BLANK_ALLOWED = ("TotalCharges",)
# ...and only for them: nothing has been billed in a customer's first month, so TotalCharges may be
# blank only when tenure is this; a blank TotalCharges with any other tenure is invalid.
BLANK_TOTAL_CHARGES_TENURE = 0
# The data set's number formats (after surrounding spaces): whole months, and dollar amounts with an
# optional decimal part. Nothing else: no sign, no exponent, no `1_000`.
WHOLE_NUMBER_PATTERN = r"^[0-9]+$"
AMOUNT_PATTERN = r"^[0-9]+(\.[0-9]+)?$"
# Plausible bounds (inclusive) of the numbers: 100 years of tenure, and charges far above the data set's
# (max monthly 118.75, total 8,684.8). Beyond them a value is an error, and tenure must fit dbt's integer.
RANGES: dict[str, tuple[int, int]] = {
    "tenure": (0, 1_200),
    "MonthlyCharges": (0, 100_000),
    "TotalCharges": (0, 10_000_000),
}
# customerID is free text but a key: at most this long, and without control characters (Unicode Cc) or
# line/paragraph separators (the inside of a regex character class, for Python and polars alike).
ID_MAX_LENGTH = 64
ID_FORBIDDEN_CHARACTERS = r"\x00-\x1f\x7f-\x9f\u2028\u2029"

COLUMNS: tuple[str, ...] = (
    "customerID",
    "gender",
    "SeniorCitizen",
    "Partner",
    "Dependents",
    "tenure",
    "PhoneService",
    "MultipleLines",
    "InternetService",
    "OnlineSecurity",
    "OnlineBackup",
    "DeviceProtection",
    "TechSupport",
    "StreamingTV",
    "StreamingMovies",
    "Contract",
    "PaperlessBilling",
    "PaymentMethod",
    "MonthlyCharges",
    "TotalCharges",
    "Churn",
)

ColumnKind = Literal["id", "category", "whole_number_category", "whole_number", "amount", "optional_amount"]


def column_kind(column: str) -> ColumnKind:
    """What a column holds, by the rules above: the key, a category (one whose values are all whole numbers,
    SeniorCitizen's 0/1, reads as numbers too), a whole number, an amount, or an amount that may be blank."""
    if column == ID_COLUMN:
        return "id"
    if column in CATEGORIES:
        whole = all(re.fullmatch(WHOLE_NUMBER_PATTERN, value) for value in CATEGORIES[column])
        return "whole_number_category" if whole else "category"
    if column in INTEGER_COLUMNS:
        return "whole_number"
    if column in DECIMAL_COLUMNS:
        return "optional_amount" if column in BLANK_ALLOWED else "amount"
    raise ValueError(f"the landed-file contract gives {column!r} no type")
