import json
import pickle
from collections.abc import Iterator
from pathlib import Path

import duckdb
import mlflow
import numpy as np
import pandas as pd
import polars as pl
import pytest
from mlflow.types.schema import AnyType, DataType

from churn_assets.ml.families import build_estimator
from churn_assets.ml.matrix import feature_matrix
from churn_assets.ml.pyfunc import RAW_COLUMNS, REQUEST_RELATION, ChurnModel, log_churn_model, request_table

FEATURE_SQL = f"""
select customerID as customer_id,
       cast(tenure as double) as tenure,
       cast(MonthlyCharges as double) as monthly_charges,
       coalesce(try_cast(TotalCharges as double), 0.0) as total_charges
from {REQUEST_RELATION}
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


# --- what a plain MLflow user holds: the three forms of the same records --------------------------------


def _typed_json(raw: pd.DataFrame) -> pd.DataFrame:
    """The records as typed JSON carries them (ints, floats, a blank TotalCharges null), parsed back."""
    typed = raw.assign(
        SeniorCitizen=raw["SeniorCitizen"].astype(int),
        tenure=raw["tenure"].astype(int),
        MonthlyCharges=raw["MonthlyCharges"].astype(float),
        TotalCharges=pd.to_numeric(raw["TotalCharges"], errors="coerce"),
    )
    records = json.loads(typed.to_json(orient="records"))
    assert records[0]["tenure"] == int(raw["tenure"].iloc[0])  # a JSON number, not text
    return pd.DataFrame(records)


def _read_csv(raw: pd.DataFrame, tmp_path: Path) -> pd.DataFrame:
    """The records written as the data set's CSV (with its Churn label) and read back with plain read_csv."""
    path = tmp_path / "records.csv"
    raw.assign(Churn="No").to_csv(path, index=False)
    return pd.read_csv(path)


def _sql_features(sql: str, frame: pd.DataFrame) -> pl.DataFrame:
    with duckdb.connect() as db:
        db.register(REQUEST_RELATION, request_table(frame))
        return db.sql(sql).pl()


@pytest.fixture(scope="module")
def registered(churn_model: ChurnModel, raw: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory):
    """`churn_model` logged with `log_churn_model` and loaded back through MLflow's public API."""
    home = tmp_path_factory.mktemp("registered")
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{home}/mlflow.db")
    try:
        experiment = mlflow.create_experiment("interop", artifact_location=(home / "artifacts").as_uri())
        with mlflow.start_run(experiment_id=experiment):
            info = log_churn_model(churn_model, raw.head(5), pip_requirements=["mlflow"])
        yield info.model_uri, mlflow.pyfunc.load_model(info.model_uri)
    finally:
        mlflow.set_tracking_uri(previous)


def test_read_csv_dtypes_are_what_the_interop_tests_claim(raw: pd.DataFrame, tmp_path: Path) -> None:
    dtypes = _read_csv(raw, tmp_path).dtypes
    assert [str(dtypes[c]) for c in ("SeniorCitizen", "tenure", "MonthlyCharges", "TotalCharges")] == [
        "int64",
        "int64",
        "float64",
        "object",  # the blank " " of tenure-0 customers keeps it text
    ]
    typed = _typed_json(raw).dtypes
    assert (str(typed["TotalCharges"]), str(typed["tenure"])) == ("float64", "int64")


def test_signature_is_the_raw_contract_with_numbers_as_any(registered) -> None:
    _, loaded = registered
    schema = loaded.metadata.get_input_schema()
    assert schema.input_names() == list(RAW_COLUMNS)
    assert schema.optional_input_names() == []  # TotalCharges' values may be blank, the column must be there
    types = dict(zip(schema.input_names(), schema.input_types(), strict=True))
    numbers = {"SeniorCitizen", "tenure", "MonthlyCharges", "TotalCharges"}
    assert {c for c, t in types.items() if isinstance(t, AnyType)} == numbers
    assert all(t == DataType.string for c, t in types.items() if c not in numbers)


def test_logged_input_example_is_typed(registered) -> None:
    _, loaded = registered
    example = loaded.input_example
    assert example["tenure"].dtype == np.int64 and example["SeniorCitizen"].dtype == np.int64
    assert example["MonthlyCharges"].dtype == np.float64 and example["TotalCharges"].dtype == np.float64


@pytest.mark.parametrize("form", ["read_csv", "typed_json", "all_strings"])
def test_mlflow_predict_accepts_each_form_and_agrees(
    registered, churn_model: ChurnModel, raw: pd.DataFrame, tmp_path: Path, form: str
) -> None:
    frame = {
        "read_csv": lambda: _read_csv(raw, tmp_path),
        "typed_json": lambda: _typed_json(raw),
        "all_strings": lambda: raw,
    }[form]()
    _, loaded = registered

    out = loaded.predict(frame)  # MLflow's schema enforcement runs first

    pd.testing.assert_frame_equal(out, churn_model.predict(None, raw))  # identical to the CSV's text


@pytest.mark.parametrize("orient", ["dataframe_records", "dataframe_split"])
@pytest.mark.parametrize("form", ["typed_json", "all_strings"])
def test_serving_payloads_of_each_form_agree(
    registered, churn_model: ChurnModel, raw: pd.DataFrame, tmp_path: Path, form: str, orient: str
) -> None:
    frame = _typed_json(raw) if form == "typed_json" else raw
    records = frame.to_json(orient="records" if orient == "dataframe_records" else "split", index=False)
    model_uri, _ = registered
    body, answer = tmp_path / "body.json", tmp_path / "predictions.json"
    body.write_text(json.dumps({orient: json.loads(records)}))

    # The scoring server's own parsing and enforcement of a JSON body (`mlflow models predict`), in process.
    mlflow.models.predict(
        model_uri, input_path=str(body), content_type="json", output_path=str(answer), env_manager="local"
    )

    out = pd.DataFrame(json.loads(answer.read_text())["predictions"])
    pd.testing.assert_frame_equal(out, churn_model.predict(None, raw))


TYPED_FORMS = {
    # JSON numbers; tenure as whole floats, as a JSON integer column with a null arrives in pandas.
    "json_numbers": {
        "SeniorCitizen": [1, 0, 0],
        "tenure": [2.0, 0.0, 72.0],
        "MonthlyCharges": [29.85, 20.05, 118.75],
        "TotalCharges": [59.7, None, 8684.8],
    },
    # pandas' nullable dtypes.
    "nullable_dtypes": {
        "SeniorCitizen": pd.array([1, 0, 0], dtype="Int64"),
        "tenure": pd.array([2, 0, 72], dtype="Int64"),
        "MonthlyCharges": pd.array([29.85, 20.05, 118.75], dtype="Float64"),
        "TotalCharges": pd.array([59.7, None, 8684.8], dtype="Float64"),
    },
    # One column mixing numbers and text, as JSON records written by different clients would.
    "mixed_objects": {
        "MonthlyCharges": pd.array([29.85, "20.05", 118.75], dtype=object),
        "TotalCharges": pd.array([59.7, " ", "8684.8"], dtype=object),
    },
}


@pytest.mark.parametrize("form", TYPED_FORMS)
def test_typed_numbers_give_the_features_of_their_text(form: str) -> None:
    text = pd.DataFrame({c: ["No"] * 3 for c in RAW_COLUMNS}).assign(
        customerID=["a", "b", "c"],
        SeniorCitizen=["1", "0", "0"],
        tenure=["2", "0", "72"],
        MonthlyCharges=["29.85", "20.05", "118.75"],
        TotalCharges=["59.7", " ", "8684.8"],
    )
    typed = text.assign(**TYPED_FORMS[form])
    sql = FEATURE_SQL.replace("customerID as customer_id", "customerID as customer_id, SeniorCitizen")
    got, want = _sql_features(sql, typed), _sql_features(sql, text)
    assert got.equals(want), (got, want)
    assert got["SeniorCitizen"].to_list() == ["1", "0", "0"]  # the CSV's 0/1, not '1.0' or 'true'
    assert got["monthly_charges"].to_list() == [29.85, 20.05, 118.75]
    assert got["total_charges"].to_list() == [59.7, 0.0, 8684.8]


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("tenure", [1, 1.5, 2, 2.25], r"tenure: not a whole number in row\(s\) 1 \(1\.5\), 3 \(2\.25\)"),
        ("MonthlyCharges", [29.85, None, 1.0, 2.0], r"MonthlyCharges: missing in row\(s\) 1 "),
        (
            "MonthlyCharges",
            [29.85, float("inf"), 1.0, 2.0],
            r"MonthlyCharges: not a finite number in row\(s\) 1 ",
        ),
        ("gender", ["Female", None, "Male", "Male"], r"gender: missing in row\(s\) 1 "),
    ],
)
def test_values_the_csv_cannot_hold_are_refused_by_column_and_row(
    churn_model: ChurnModel, raw: pd.DataFrame, column: str, values: list, message: str
) -> None:
    frame = raw.head(4).assign(**{column: values})
    with pytest.raises(ValueError, match=message):
        churn_model.predict(None, frame)


def test_null_total_charges_scores_as_the_csv_blank(churn_model: ChurnModel, raw: pd.DataFrame) -> None:
    first_month = raw[raw["TotalCharges"] == " "]
    assert len(first_month) >= 2
    as_null = churn_model.predict(None, first_month.assign(TotalCharges=None))
    pd.testing.assert_frame_equal(as_null, churn_model.predict(None, first_month))
