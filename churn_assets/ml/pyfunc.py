"""The registered artifact: raw Telco records in, churn probability and decision out.

Feature engineering travels with the model as the same DuckDB SQL used in training, so serving
cannot drift from it. The fitted estimator is pickled inside the python model (cloudpickle, by
MLflow); loading therefore needs this package importable, so training logs it with the model
(`code_paths`).

What a plain MLflow user can send (`mlflow.pyfunc.load_model(uri).predict(frame)`, or a JSON body to
`mlflow models serve`): the Telco records as they hold them. The input signature is built by
:func:`input_schema` from the raw-file contract (`churn_assets.ingest.schema`); its docstring says why
the number columns are declared `Any`. The `Churn` label is not an input: MLflow drops columns the
signature does not name (with a warning), so a frame read from the whole CSV scores as it is.
"""

import functools
import re
import warnings
from collections.abc import Sequence
from typing import Any

import duckdb
import mlflow
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from mlflow.models import ModelSignature, infer_signature
from mlflow.models.model import ModelInfo
from mlflow.pyfunc import PythonModel
from mlflow.types.schema import AnyType, ColSpec, DataType, Schema

from churn_assets.ingest.schema import (
    BLANK_ALLOWED,
    CATEGORIES,
    COLUMNS,
    DECIMAL_COLUMNS,
    INTEGER_COLUMNS,
    LABEL_COLUMN,
    WHOLE_NUMBER_PATTERN,
)
from churn_assets.ml.matrix import feature_matrix
from churn_assets.ml.metrics import predict_at

REQUEST_RELATION = "request_rows"
RAW_COLUMNS = tuple(c for c in COLUMNS if c != LABEL_COLUMN)  # what a client sends: no label
# Columns a reader of the CSV gets as numbers (pandas.read_csv parses them): the whole-number and amount
# columns of the contract, and the categories whose every value is a whole number (SeniorCitizen's 0/1).
INTEGER_INPUTS = tuple(
    c
    for c in RAW_COLUMNS
    if c in INTEGER_COLUMNS
    or (c in CATEGORIES and all(re.fullmatch(WHOLE_NUMBER_PATTERN, v) for v in CATEGORIES[c]))
)
NUMBER_INPUTS = (*INTEGER_INPUTS, *DECIMAL_COLUMNS)
_ROWS_SHOWN = 5  # rows named in an error message


def input_schema() -> Schema:
    """The model's input signature: every raw column required, text columns `string`, numbers `Any`.

    What MLflow 3.17's schema enforcement (`mlflow.models.utils._enforce_schema`) does with a column,
    by declared type, for the three ways people hold these records, and why the numbers are `Any`:

    * `long` / `double` accept int64 / float64 columns (`pd.read_csv`, typed JSON) but refuse an
      object column of text ("Can not safely convert object to int64"): the all-string records of
      `pd.read_csv(path, dtype=str, keep_default_na=False)` would fail in-process. (`mlflow models
      serve` would cast JSON text with `astype` before enforcing, so only the in-process call fails.)
    * `string` accepts any object column, but refuses int64/float64 ("Can not safely convert int64 to
      <U0"): that is the error a `pd.read_csv` frame met when the signature was inferred from text.
    * `TotalCharges` has no single type either way: `pd.read_csv` gives text (the file's blank is " "),
      typed JSON gives float64 with NaN for null.
    * `Any` (`AnyType`) is passed through as each value is (`mlflow models serve` does not cast it);
      in-process MLflow rebuilds the column from its values, so int64 stays int64, text stays text.

    So the number columns (:data:`NUMBER_INPUTS`) are `Any` and :meth:`ChurnModel.predict` turns
    whatever arrives into the CSV's own text column by column, refusing what the CSV could not hold
    (a fractional tenure, a missing value outside `TotalCharges`, a non-finite amount). The types
    people send are shown by the logged input example (integers, doubles, `TotalCharges` a double or
    null). Every column is required, `TotalCharges` too: its value may be null or blank (a first-month
    customer), but a missing column would score every customer as never billed, a silent wrong answer
    (MLflow's `required=False` means "the column may be left out").
    """
    return Schema([ColSpec(AnyType() if c in NUMBER_INPUTS else DataType.string, c) for c in RAW_COLUMNS])


def request_table(records: pd.DataFrame, columns: Sequence[str] = RAW_COLUMNS) -> pa.Table:
    """`columns` of `records` as the CSV writes them, all text: what the feature SQL reads.

    Column by column, in Arrow: numbers become their shortest round-trip text (29.85 → '29.85', so the
    SQL's cast gives back the same double; 20.0 → '20'), whole floats in integer columns become digits
    (a JSON integer column with a null arrives as floats), a null `TotalCharges` becomes blank, text is
    kept as it is (the SQL trims and casts it, as in training). Raises ValueError naming the column, the
    rows (positions from 0) and the reason for what the CSV could not hold: a missing value outside
    `TotalCharges`, a fractional whole number, a non-finite number.
    """
    return pa.table({c: _as_text(c, records[c]) for c in columns})


def _typed(raw: pd.DataFrame) -> pd.DataFrame:
    """Text records with the number columns as JSON holds them: int64, float64, a blank amount NaN."""
    text = {c: raw[c].str.strip(" ") for c in NUMBER_INPUTS}
    return raw.assign(**{c: pd.to_numeric(t.mask(t == "")) for c, t in text.items()})


def _as_text(column: str, values: pd.Series) -> pa.Array:
    try:
        array = pa.array(values, from_pandas=True)  # NaN and None become null
    except (pa.ArrowTypeError, pa.ArrowInvalid):  # an object column mixing text and numbers
        array = pa.array(values.astype(str).where(values.notna()), pa.string(), from_pandas=True)
    if pa.types.is_floating(array.type):
        _refuse(column, values, pc.invert(pc.is_finite(array)), "not a finite number")
        if column in INTEGER_INPUTS:
            _refuse(column, values, pc.not_equal(pc.floor(array), array), "not a whole number")
            array = array.cast(pa.int64())
    text = array.cast(pa.string())
    if column in BLANK_ALLOWED:
        return pc.fill_null(text, "")
    _refuse(column, values, text.is_null(), "missing")
    return text


def _refuse(column: str, values: pd.Series, bad: pa.Array, reason: str) -> None:
    bad = pc.fill_null(bad, False)  # a null is not finite-or-not, whole-or-not: "missing" reports it
    if not pc.any(bad).as_py():
        return
    rows = np.flatnonzero(bad.to_numpy(zero_copy_only=False))
    first = rows[:_ROWS_SHOWN]
    shown = ", ".join(f"{r} ({v!r})" for r, v in zip(first, values.iloc[first].tolist(), strict=True))
    more = f" and {rows.size - _ROWS_SHOWN} more" if rows.size > _ROWS_SHOWN else ""
    raise ValueError(f"{column}: {reason} in row(s) {shown}{more}")


class ChurnModel(PythonModel):
    """Scores raw records: `feature_sql` over `request_rows` → matrix in `feature_columns` order → model.

    `threshold`, `feature_sql`, `feature_columns` and `raw_columns` are public so a server can read
    them from `loaded.unwrap_python_model()`. `request_rows` holds the records as text (see
    :func:`request_table`), whatever types they arrived with.
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
        rows = request_table(model_input, self.raw_columns)
        # One cursor per call: its registered view is private to it, so concurrent requests can't collide.
        cursor = self._db.cursor()
        try:
            cursor.register(REQUEST_RELATION, rows)
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
    """Log `model` to the active MLflow run with the signature of :func:`input_schema`.

    `raw_example` holds a few records as the CSV spells them (text); the logged input example is their
    typed form (integers, doubles, a blank amount null), which shows clients the types to send and which
    MLflow runs through `mlflow models serve`'s parsing when it logs the model (it warns if that fails).
    The output signature is inferred from the model's answer to it. `pip_requirements` defaults to MLflow's own inference;
    `code_paths` ships source with the model.
    """
    example = _typed(raw_example.loc[:, list(model.raw_columns)])
    with warnings.catch_warnings():
        # The 0/1 churn_prediction column is an integer by design; MLflow's hint about NaN-able ints is noise.
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        outputs = infer_signature(model_output=model.predict(None, example)).outputs
    return mlflow.pyfunc.log_model(
        name=name,
        python_model=model,
        signature=ModelSignature(inputs=input_schema(), outputs=outputs),
        input_example=example,
        registered_model_name=registered_model_name,
        pip_requirements=list(pip_requirements) if pip_requirements is not None else None,
        code_paths=list(code_paths) if code_paths is not None else None,
    )
