import pickle
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import polars as pl
import pytest

from churn_assets.ml.families import build_estimator
from churn_assets.ml.matrix import feature_matrix
from churn_assets.ml.pyfunc import RAW_COLUMNS, ChurnModel, log_churn_model

FEATURE_SQL = """
select customerID as customer_id,
       cast(tenure as double) as tenure,
       cast(MonthlyCharges as double) as monthly_charges,
       coalesce(try_cast(TotalCharges as double), 0.0) as total_charges
from request_rows
"""
FEATURES = ["tenure", "monthly_charges", "total_charges"]


def _raw_records(n: int, seed: int) -> pd.DataFrame:
    """Raw Telco-shaped rows as the CSV spells them: every value a string, some TotalCharges blank."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 72, n)
    monthly = rng.uniform(18, 120, n).round(2)
    raw = pd.DataFrame({column: ["No"] * n for column in RAW_COLUMNS})
    raw["customerID"] = [f"{i:04d}-ABCDE" for i in range(n)]
    raw["SeniorCitizen"] = "0"
    raw["tenure"] = tenure.astype(str)
    raw["MonthlyCharges"] = monthly.astype(str)
    raw["TotalCharges"] = np.where(tenure == 0, " ", (tenure * monthly).round(2).astype(str))
    return raw


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    return _raw_records(300, seed=1)


@pytest.fixture(scope="module", params=["logistic_regression", "xgboost"])
def churn_model(request: pytest.FixtureRequest, raw: pd.DataFrame) -> ChurnModel:
    X = _features(raw)
    rng = np.random.default_rng(2)
    y = (rng.uniform(size=len(X)) < 1 / (1 + np.exp(0.08 * X[:, 0] - 0.02 * X[:, 1]))).astype(int)
    params = {"n_estimators": 20} if request.param == "xgboost" else {}
    estimator = build_estimator(request.param, params, seed=0, calibrate=True).fit(X, y)
    return ChurnModel(estimator, threshold=0.4, feature_sql=FEATURE_SQL, feature_columns=FEATURES)


def _features(raw: pd.DataFrame) -> np.ndarray:
    frame = pl.from_pandas(raw).select(
        pl.col("tenure").cast(pl.Float64),
        pl.col("MonthlyCharges").cast(pl.Float64).alias("monthly_charges"),
        pl.col("TotalCharges").cast(pl.Float64, strict=False).fill_null(0.0).alias("total_charges"),
    )
    return feature_matrix(frame, FEATURES)


@pytest.fixture
def tracking(tmp_path: Path) -> Iterator[str]:
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    try:
        yield mlflow.create_experiment("churn-unit", artifact_location=(tmp_path / "artifacts").as_uri())
    finally:
        mlflow.set_tracking_uri(previous)


def test_predict_scores_raw_records(churn_model: ChurnModel, raw: pd.DataFrame) -> None:
    out = churn_model.predict(None, raw)

    expected = churn_model.estimator.predict_proba(_features(raw))[:, 1]
    np.testing.assert_allclose(out["churn_probability"], expected, rtol=1e-12)
    np.testing.assert_array_equal(out["churn_prediction"], (expected >= 0.4).astype(int))
    assert out["customer_id"].tolist() == raw["customerID"].tolist()
    assert 0 < out["churn_prediction"].sum() < len(raw)


def test_missing_raw_column_is_named(churn_model: ChurnModel, raw: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"missing raw columns: \['tenure'\]"):
        churn_model.predict(None, raw.drop(columns="tenure"))


def test_feature_sql_must_keep_one_row_per_request(churn_model: ChurnModel, raw: pd.DataFrame) -> None:
    dropping = ChurnModel(
        churn_model.estimator, 0.4, FEATURE_SQL + " where cast(tenure as int) > 10", FEATURES
    )
    with pytest.raises(ValueError, match="rows for"):
        dropping.predict(None, raw)


def test_model_pickles_after_use(churn_model: ChurnModel, raw: pd.DataFrame) -> None:
    churn_model.predict(None, raw.head(2))  # opens the DuckDB connection
    restored = pickle.loads(pickle.dumps(churn_model))
    pd.testing.assert_frame_equal(restored.predict(None, raw.head(5)), churn_model.predict(None, raw.head(5)))


def test_round_trip_through_mlflow_registry(
    churn_model: ChurnModel, raw: pd.DataFrame, tracking: str
) -> None:
    with mlflow.start_run(experiment_id=tracking):
        info = log_churn_model(
            churn_model,
            raw.head(3),
            registered_model_name="churn-unit",
            pip_requirements=["mlflow", "scikit-learn", "xgboost-cpu", "duckdb", "polars"],
        )

    loaded = mlflow.pyfunc.load_model("models:/churn-unit/1")
    out = loaded.predict(raw)

    expected = churn_model.estimator.predict_proba(_features(raw))[:, 1]
    np.testing.assert_allclose(out["churn_probability"].to_numpy(), expected, rtol=1e-12)
    assert loaded.metadata.get_input_schema().input_names() == list(RAW_COLUMNS)
    assert "churn_probability" in loaded.metadata.get_output_schema().input_names()
    served = loaded.unwrap_python_model()
    assert (served.threshold, served.feature_columns, served.feature_sql) == (0.4, FEATURES, FEATURE_SQL)
    assert info.registered_model_version == 1
