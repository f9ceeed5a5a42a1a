import numpy as np
import pytest
from sklearn.datasets import make_classification


@pytest.fixture(scope="session")
def churn_like() -> tuple[np.ndarray, np.ndarray]:
    """Small imbalanced binary problem (~27% positives, like Telco churn)."""
    X, y = make_classification(
        n_samples=400, n_features=6, n_informative=4, n_redundant=1, weights=[0.73], random_state=7
    )
    return X, y
