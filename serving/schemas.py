"""Request and response models: the data set's own field names, so a CSV record can be posted as is."""

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


class Gender(StrEnum):
    female = "Female"
    male = "Male"


class YesNo(StrEnum):
    yes = "Yes"
    no = "No"


class PhoneLines(StrEnum):
    yes = "Yes"
    no = "No"
    no_phone = "No phone service"


class Internet(StrEnum):
    dsl = "DSL"
    fiber = "Fiber optic"
    no = "No"


class InternetAddon(StrEnum):
    yes = "Yes"
    no = "No"
    no_internet = "No internet service"


class Contract(StrEnum):
    monthly = "Month-to-month"
    one_year = "One year"
    two_year = "Two year"


class PaymentMethod(StrEnum):
    electronic_check = "Electronic check"
    mailed_check = "Mailed check"
    bank_transfer = "Bank transfer (automatic)"
    credit_card = "Credit card (automatic)"


def _blank_to_none(value: Any) -> Any:
    """The data set leaves TotalCharges blank for customers in their first month."""
    return None if isinstance(value, str) and not value.strip() else value


def _strip(value: Any) -> Any:
    if isinstance(value, str):
        value.encode("utf-8")  # lone surrogates from JSON escapes cannot be stored or logged
        return value.strip()
    return value


Text = Annotated[str, BeforeValidator(_strip)]

EXAMPLE = {
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


class CustomerRecord(BaseModel):
    """One customer as in the Telco CSV (Churn, the label, is not sent). Numbers may come as strings."""

    model_config = ConfigDict(extra="forbid", use_enum_values=True, json_schema_extra={"examples": [EXAMPLE]})

    customerID: Annotated[Text, Field(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")] | None = (
        None
    )
    gender: Gender
    SeniorCitizen: Annotated[int, Field(ge=0, le=1, description="1 for a senior citizen, else 0.")]
    Partner: YesNo
    Dependents: YesNo
    tenure: Annotated[int, Field(ge=0, le=1200)]
    PhoneService: YesNo
    MultipleLines: PhoneLines
    InternetService: Internet
    OnlineSecurity: InternetAddon
    OnlineBackup: InternetAddon
    DeviceProtection: InternetAddon
    TechSupport: InternetAddon
    StreamingTV: InternetAddon
    StreamingMovies: InternetAddon
    Contract: Contract
    PaperlessBilling: YesNo
    PaymentMethod: PaymentMethod
    MonthlyCharges: Annotated[float, Field(ge=0, le=100_000, allow_inf_nan=False)]
    TotalCharges: Annotated[
        Annotated[float, Field(ge=0, le=10_000_000, allow_inf_nan=False)] | None,
        BeforeValidator(_blank_to_none),
    ] = Field(None, description="Blank or null for a customer in the first month, as in the data set.")
    explain: bool = Field(
        False, description="Also return the top contributing features (same as ?explain=true)."
    )


class Contribution(BaseModel):
    feature: str
    value: float
    contribution: float = Field(description="Contribution to the model's log-odds of churn.")


class Prediction(BaseModel):
    customerID: str | None
    churn_probability: float
    churn: bool = Field(description="The decision at the model's threshold: contact this customer.")
    risk_band: Literal["low", "medium", "high"]
    model_version: str
    request_id: str
    top_features: list[Contribution] | None = None


class BatchPrediction(BaseModel):
    predictions: list[Prediction]
    model_version: str
    request_id: str
