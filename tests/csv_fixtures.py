"""Small hand-written Telco-schema CSVs for tests (the real data set never enters the repository)."""

from __future__ import annotations

from pathlib import Path

from churn_assets.ingest.schema import COLUMNS

HEADER = ",".join(COLUMNS)

GOOD_ROWS = [
    "T-0001,Female,0,Yes,No,1,No,No phone service,DSL,No,Yes,No,No,No,No,Month-to-month,Yes,Electronic check,29.85,29.85,No",
    "T-0002,Male,0,No,No,34,Yes,No,DSL,Yes,No,Yes,No,No,No,One year,No,Mailed check,56.95,1889.5,No",
    "T-0003,Male,1,No,No,2,Yes,Yes,Fiber optic,No,No,No,No,Yes,Yes,Month-to-month,Yes,Electronic check,99.65,199.3,Yes",
    "T-0004,Female,0,Yes,Yes,72,Yes,Yes,No,No internet service,No internet service,No internet service,"
    "No internet service,No internet service,No internet service,Two year,No,Credit card (automatic),25.1,1800.4,No",
]
# A tenure-0 customer: the public file leaves TotalCharges blank (a single space) for these.
BLANK_TOTAL_ROW = "T-0005,Female,0,Yes,Yes,0,Yes,No,DSL,Yes,No,Yes,Yes,Yes,No,Two year,No,Bank transfer (automatic),73.35, ,No"


def write_csv(path: Path, rows: list[str], header: str = HEADER) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def with_field(row: str, column: str, value: str) -> str:
    """``row`` with one field replaced (rows here have no quoted commas)."""
    fields = row.split(",")
    fields[COLUMNS.index(column)] = value
    return ",".join(fields)
