"""The landed-file contract: the IBM Telco Customer Churn columns and the values each may take."""

from __future__ import annotations

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
# tenure is a whole number of months; the charges are dollar amounts.
INTEGER_COLUMNS = ("tenure",)
DECIMAL_COLUMNS = ("MonthlyCharges", "TotalCharges")
# The public file leaves TotalCharges blank (a single space) for its 11 tenure-0 customers.
BLANK_ALLOWED = ("TotalCharges",)

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
