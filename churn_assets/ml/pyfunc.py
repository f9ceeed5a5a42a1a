"""The registered artifact: raw Telco records in, churn probability and decision out.

Feature engineering travels with the model as the same DuckDB SQL used in training, so serving
cannot drift from it. The fitted estimator is pickled inside the python model (cloudpickle, by
MLflow); loading therefore needs this package importable, as it is in the serving image.
"""

import functools
import warnings
from collections.abc import Sequence
from typing import Any

import duckdb
import mlflow
import numpy as np
import pandas as pd
import polars as pl
from mlflow.models import infer_signature
from mlflow.models.model import ModelInfo

from churn_assets.ingest.schema import COLUMNS
from churn_assets.ml.matrix import feature_matrix
from churn_assets.ml.metrics import predict_at

REQUEST_RELATION = "request_rows"
RAW_COLUMNS = tuple(c for c in COLUMNS if c != "Churn")  # what a client sends: no label


class ChurnModel(mlflow.pyfunc.PythonModel):
    """Scores raw records: `feature_sql` over `request_rows` → matrix in `feature_columns` order → model.

    `threshold`, `feature_sql`, `feature_columns` and `raw_columns` are public so a server can read
    them from `loaded.unwrap_python_model()`.
    """

    def __init__(
        self,
        estimator: Any,
        threshold: float,
        feature_sql: str,
        feature_columns: Sequence[str],
        raw_columns: Sequence[str] = RAW_COLUMNS,
    ) -> None:
        self.estimator = estimator
        self.threshold = float(threshold)
        self.feature_sql = feature_sql
        self.feature_columns = list(feature_columns)
        self.raw_columns = list(raw_columns)

    @functools.cached_property
    def _db(self) -> duckdb.DuckDBPyConnection:
        return duckdb.connect()

    def __getstate__(self) -> dict[str, Any]:
        # A DuckDB connection cannot be pickled; it is reopened lazily after loading.
        state = self.__dict__.copy()
        state.pop("_db", None)
        return state

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        missing = [c for c in self.raw_columns if c not in model_input.columns]
        if missing:
            raise ValueError(f"request is missing raw columns: {missing}")
        # One cursor per call: its registered view is private to it, so concurrent requests can't collide.
        cursor = self._db.cursor()
        try:
            cursor.register(REQUEST_RELATION, model_input)
            # execute() plans the SQL once; sql(...).pl() binds a relation and then plans it again.
            features = pl.DataFrame(cursor.execute(self.feature_sql).fetchnumpy())
        finally:
            cursor.close()
        if features.height != len(model_input):
            raise ValueError(f"feature_sql returned {features.height} rows for {len(model_input)} inputs")
        proba = self.estimator.predict_proba(feature_matrix(features, self.feature_columns))[:, 1]
        return pd.DataFrame(
            {
                "customer_id": features.get_column("customer_id").to_list(),
                "churn_probability": proba.astype(np.float64),
                "churn_prediction": predict_at(proba, self.threshold),
            }
        )


def log_churn_model(
    model: ChurnModel,
    raw_example: pd.DataFrame,
    *,
    name: str = "model",
    registered_model_name: str | None = None,
    pip_requirements: Sequence[str] | None = None,
    code_paths: Sequence[str] | None = None,
) -> ModelInfo:
    """Log `model` to the active MLflow run; the signature is inferred from `raw_example` as given.

    Pass `raw_example` with the dtypes clients will send (e.g. all strings, as read from the CSV):
    MLflow enforces them when the model is called through `mlflow.pyfunc.load_model`.
    `pip_requirements` defaults to MLflow's own inference; `code_paths` ships source with the model.
    """
    with warnings.catch_warnings():
        # The 0/1 churn_prediction column is an integer by design; MLflow's hint about NaN-able ints is noise.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        signature = infer_signature(raw_example, model.predict(None, raw_example))
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=model,
        signature=signature,
        input_example=raw_example,
        registered_model_name=registered_model_name,
        pip_requirements=list(pip_requirements) if pip_requirements is not None else None,
        code_paths=list(code_paths) if code_paths is not None else None,
    )
