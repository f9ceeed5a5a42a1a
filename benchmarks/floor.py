"""The in-process floor: what scoring costs with no HTTP, no JSON, no process hop.

Every path is timed call by call with `time.perf_counter()`; warm-up calls are discarded. The champion is
loaded once from the registry, exactly as the servers load it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa

from churn_assets.ml.pyfunc import REQUEST_RELATION


@dataclass
class FloorTiming:
    """Per-call latency of one in-process path, in milliseconds."""

    name: str
    rows: int
    calls: int
    p50_ms: float
    p99_ms: float
    mean_ms: float

    def summary(self) -> dict[str, Any]:
        return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


@dataclass
class Floor:
    timings: list[FloorTiming]
    expected_single: float  # churn probability of the single record
    expected_batch: np.ndarray  # churn probabilities of the batch, in order
    model_class: str
    features: int
    threshold: float

    def get(self, name: str) -> FloorTiming:
        return next(t for t in self.timings if t.name == name)


def time_calls(fn: Callable[[], object], calls: int, warmup: int) -> np.ndarray:
    """Seconds per call for `calls` calls after `warmup` discarded ones."""
    for _ in range(warmup):
        fn()
    out = np.empty(calls, dtype=np.float64)
    perf = time.perf_counter
    for i in range(calls):
        t0 = perf()
        fn()
        out[i] = perf() - t0
    return out


# Names used by the report (kept stable: the ratios refer to them).
PROBA_1 = "predict_proba, 1 prepared row"
PLAN_1 = "DuckDB planning only (EXPLAIN of the feature SQL)"
SQL_1 = "feature SQL planned per call (Arrow in, numpy out), 1 record"
PREP_1 = "feature SQL prepared once (EXECUTE with the values), 1 record"
FULL_1 = "full path, 1 record (prepared feature SQL + predict_proba)"
UNPREP_1 = "full path, 1 record, SQL planned per call"
CHURN_1 = "ChurnModel.predict, 1 record (pandas in, polars out)"
PYFUNC_1 = "mlflow pyfunc .predict, 1 record (+ schema enforcement)"
PROBA_N = "predict_proba, {n} prepared rows"
FULL_N = "full path, {n} records (prepared feature SQL + predict_proba)"
PYFUNC_N = "mlflow pyfunc .predict, {n} records"


def _literal(value: str | None) -> str:
    return "NULL" if value is None else "'" + str(value).replace("'", "''") + "'"


def measure_floor(
    model_uri: str, record: dict[str, str], batch: Sequence[dict[str, str]], calls: int, batch_calls: int
) -> Floor:
    """Load `model_uri` and time the in-process paths on `record` and on `batch`.

    The floor is the cheapest faithful path: the model's own feature SQL, planned once by DuckDB as a
    prepared statement (one record: its values as string literals of EXECUTE; a batch: an Arrow table of
    strings registered as `request_rows`), `fetchnumpy()` into a float matrix in `feature_columns` order,
    then `predict_proba`. Planning per call is timed too, to show what it costs. Every path is checked
    against the registered pyfunc's probabilities before anything is timed.
    """
    loaded = mlflow.pyfunc.load_model(model_uri)
    model = loaded.unwrap_python_model()
    estimator, sql, columns = model.estimator, model.feature_sql, list(model.feature_columns)
    raw_columns = list(getattr(model, "raw_columns", record.keys()))
    select = f"select {', '.join(columns)} from ({sql})"
    db = duckdb.connect()  # planned per call: a cursor per call, as in the pyfunc
    prepared = duckdb.connect()  # planned once
    params = ", ".join(f"${i}::varchar as {c}" for i, c in enumerate(raw_columns, start=1))
    prepared.execute(f"prepare one_row as with {REQUEST_RELATION} as (select {params}) {select}")

    def arrow(records: Sequence[dict[str, str]]) -> pa.Table:
        return pa.table({c: pa.array([r.get(c) for r in records], pa.string()) for c in raw_columns})

    prepared.register(REQUEST_RELATION, arrow([record]))
    prepared.execute(f"prepare many_rows as {select}")

    def matrix(result: dict[str, np.ndarray]) -> np.ndarray:
        return np.column_stack([np.asarray(result[c], dtype=np.float64) for c in columns])

    def planned(records: Sequence[dict[str, str]]) -> np.ndarray:
        cursor = db.cursor()
        try:
            cursor.register(REQUEST_RELATION, arrow(records))
            return matrix(cursor.execute(select).fetchnumpy())
        finally:
            cursor.close()

    def one(rec: dict[str, str]) -> np.ndarray:
        values = ", ".join(_literal(rec.get(c)) for c in raw_columns)
        return matrix(prepared.execute(f"execute one_row({values})").fetchnumpy())

    def many(records: Sequence[dict[str, str]]) -> np.ndarray:
        prepared.register(REQUEST_RELATION, arrow(records))
        return matrix(prepared.execute("execute many_rows").fetchnumpy())

    def proba(x: np.ndarray) -> np.ndarray:
        return estimator.predict_proba(x)[:, 1]

    n = len(batch)
    x1, xn = one(record), many(batch)
    expected_single = float(loaded.predict(pd.DataFrame([record]))["churn_probability"].iloc[0])
    expected_batch = loaded.predict(pd.DataFrame(list(batch)))["churn_probability"].to_numpy(dtype=np.float64)
    for got, want in (
        (proba(x1), expected_single),
        (proba(planned([record])), expected_single),
        (proba(xn), expected_batch),
        (proba(planned(batch)), expected_batch),
    ):
        if not np.allclose(got, want, atol=1e-9):
            raise RuntimeError("the floor's own path disagrees with the registered pyfunc")

    warm, warm_n = max(calls // 10, 20), max(batch_calls // 10, 3)
    paths: list[tuple[str, int, Callable[[], object], int, int]] = [
        (PROBA_1, 1, lambda: estimator.predict_proba(x1), calls, warm),
        (PLAN_1, 1, lambda: prepared.execute("explain " + select).fetchall(), calls, warm),
        (SQL_1, 1, lambda: planned([record]), calls, warm),
        (PREP_1, 1, lambda: one(record), calls, warm),
        (FULL_1, 1, lambda: proba(one(record)), calls, warm),
        (UNPREP_1, 1, lambda: proba(planned([record])), calls, warm),
        (CHURN_1, 1, lambda: model.predict(None, pd.DataFrame([record])), calls, warm),
        (PYFUNC_1, 1, lambda: loaded.predict(pd.DataFrame([record])), calls, warm),
        (PROBA_N.format(n=n), n, lambda: estimator.predict_proba(xn), batch_calls, warm_n),
        (FULL_N.format(n=n), n, lambda: proba(many(batch)), batch_calls, warm_n),
        (PYFUNC_N.format(n=n), n, lambda: loaded.predict(pd.DataFrame(list(batch))), batch_calls, warm_n),
    ]
    timings = []
    for name, rows, fn, count, warmup in paths:
        ms = time_calls(fn, count, warmup) * 1e3
        timings.append(
            FloorTiming(
                name=name,
                rows=rows,
                calls=count,
                p50_ms=float(np.percentile(ms, 50)),
                p99_ms=float(np.percentile(ms, 99)),
                mean_ms=float(ms.mean()),
            )
        )
    db.close()
    prepared.close()
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    return Floor(
        timings, expected_single, expected_batch, type(final).__name__, len(columns), float(model.threshold)
    )
