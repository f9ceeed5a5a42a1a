import numpy as np
import pandas as pd
import pytest

LINEAGE = {
    "batch_id": "batch-0001",
    "source_file": "synthetic.csv",
    "ingested_at": pd.Timestamp("2024-01-01"),
}


def make_customers(n: int = 2000, seed: int = 7) -> pd.DataFrame:
    """Synthetic frame with the stg_customers schema and a planted churn signal.

    Churn (~26%) rises with month-to-month contracts and monthly charges and falls with tenure.
    """
    rng = np.random.default_rng(seed)
    yes_no = np.array(["Yes", "No"])
    has_phone = rng.random(n) < 0.9
    internet = rng.choice(["DSL", "Fiber optic", "No"], n, p=[0.34, 0.44, 0.22])
    no_internet = internet == "No"

    def add_on() -> np.ndarray:
        return np.where(no_internet, "No internet service", rng.choice(yes_no, n))

    contract = rng.choice(["Month-to-month", "One year", "Two year"], n, p=[0.55, 0.21, 0.24])
    tenure = rng.integers(0, 73, n)
    tenure[:11] = 0
    base_charge = np.where(no_internet, 20.0, np.where(internet == "DSL", 55.0, 80.0))
    monthly = np.round(base_charge + rng.uniform(0, 35, n), 2)
    logit = -0.85 + 1.6 * (contract == "Month-to-month") - 0.045 * tenure + 0.02 * (monthly - 65)
    churn = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame(
        {
            "customer_id": [f"{i:04d}-SYNTH" for i in range(n)],
            "gender": rng.choice(["Female", "Male"], n),
            "is_senior_citizen": rng.random(n) < 0.16,
            "has_partner": rng.random(n) < 0.48,
            "has_dependents": rng.random(n) < 0.3,
            "tenure_months": tenure,
            "has_phone_service": has_phone,
            "multiple_lines": np.where(has_phone, rng.choice(yes_no, n), "No phone service"),
            "internet_service": internet,
            "online_security": add_on(),
            "online_backup": add_on(),
            "device_protection": add_on(),
            "tech_support": add_on(),
            "streaming_tv": add_on(),
            "streaming_movies": add_on(),
            "contract": contract,
            "is_paperless_billing": rng.random(n) < 0.59,
            "payment_method": rng.choice(
                ["Electronic check", "Mailed check", "Bank transfer (automatic)", "Credit card (automatic)"],
                n,
            ),
            "monthly_charges": monthly,
            "total_charges": np.round(monthly * tenure, 2),
            "total_charges_was_blank": tenure == 0,
            "churn": churn,
            **LINEAGE,
        }
    )


@pytest.fixture(scope="session")
def customers() -> pd.DataFrame:
    """Shared across tests: copy before mutating."""
    return make_customers()
