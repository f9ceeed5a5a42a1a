"""The in-process floor: what the server's own scoring code costs with no HTTP and no process hop.

Every path is timed call by call with `time.perf_counter()`; warm-up calls are discarded. The champion is
loaded once from the registry, exactly as the servers load it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import mlflow
import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

from churn_assets.ml.champion import CHAMPION_ALIAS
from churn_assets.ml.pyfunc import REQUEST_RELATION
from serving.model_store import LoadedModel
from serving.payload import parse_body
from serving.scoring import Arm, score
from serving.validation import validate


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
PREP_1 = "serving's feature SQL (prepared once), 1 record"
FULL_1 = "full path, 1 record (serving: validate + feature SQL + predict_proba)"
CHURN_1 = "ChurnModel.predict, 1 record (pandas in, polars out)"
PYFUNC_1 = "mlflow pyfunc .predict, 1 record (+ schema enforcement)"
WORKER_1 = "worker path, 1 record (serving: parse + validate + score + encode)"
PROBA_N = "predict_proba, {n} prepared rows"
PARSE_N = "serving: parse the JSON body, {n} records"
VALIDATE_N = "serving: validate column-wise, {n} records"
PREP_N = "serving's feature SQL (prepared once), {n} records"
FULL_N = "full path, {n} records (serving: validate + feature SQL + predict_proba)"
WORKER_N = "worker path, {n} records (serving: parse + validate + score + encode)"
PYFUNC_N = "mlflow pyfunc .predict, {n} records"


def measure_floor(
    model_uri: str, record: dict[str, str], batch: Sequence[dict[str, str]], calls: int, batch_calls: int
) -> Floor:
    """Load `model_uri` and time the in-process paths on `record` and on `batch`.

    The floor is the server's own code without HTTP or processes: `serving.validation` and
    `serving.model_store.LoadedModel` (the model's feature SQL prepared once, `predict_proba`), and the
    worker's whole path (`serving.payload` parse, validation, `serving.scoring`, the encoded answer). For
    attribution it also times DuckDB's planning alone (what the plan prepared once saves on every call)
    and the pyfunc, which plans the feature SQL on every call (`ChurnModel.predict`; MLflow's
    `pyfunc.predict`, which is what `mlflow models serve` runs). Every path is checked against the
    registered pyfunc's probabilities before anything is timed.
    """
    loaded = mlflow.pyfunc.load_model(model_uri)
    model = loaded.unwrap_python_model()
    served = LoadedModel("floor", "0", "", model, {})
    arm = Arm(served, CHAMPION_ALIAS)
    select = f"select {', '.join(model.feature_columns)} from ({model.feature_sql})"
    db = duckdb.connect()

    def full(records: Any, single: bool) -> np.ndarray:
        return served.probabilities(
            served.features(validate(records, single=single, limit=len(batch)).columns)
        )

    def worker(body: bytes, single: bool) -> bytes:
        checked = validate(parse_body(body, "application/json"), single=single, limit=len(batch))
        predictions, _ = score(
            checked,
            arm,
            None,
            share=0.0,
            shadow=False,
            request_id="floor",
            endpoint="/floor",
            served_at=datetime.now(UTC),
            batch_input=not single,
        )
        return orjson.dumps(predictions[0] if single else {"predictions": predictions})

    db.register(REQUEST_RELATION, pa.Table.from_pylist([record]))  # for EXPLAIN alone
    n = len(batch)
    one_body, batch_body = json.dumps(record).encode(), json.dumps(list(batch)).encode()
    checked_1, checked_n = (
        validate(record, single=True, limit=n),
        validate(list(batch), single=False, limit=n),
    )
    x1 = served.features(checked_1.columns)
    xn = served.features(checked_n.columns)
    expected_single = float(loaded.predict(pd.DataFrame([record]))["churn_probability"].iloc[0])
    expected_batch = loaded.predict(pd.DataFrame(list(batch)))["churn_probability"].to_numpy(dtype=np.float64)
    worker_batch = [p["churn_probability"] for p in json.loads(worker(batch_body, False))["predictions"]]
    for got, want in (
        (full(record, True), expected_single),
        (json.loads(worker(one_body, True))["churn_probability"], expected_single),
        (full(list(batch), False), expected_batch),
        (np.array(worker_batch), expected_batch),
    ):
        if not np.allclose(got, want, atol=1e-9):
            raise RuntimeError("the serving path disagrees with the registered pyfunc")

    warm, warm_n = max(calls // 10, 20), max(batch_calls // 10, 3)
    paths: list[tuple[str, int, Callable[[], object], int, int]] = [
        (PROBA_1, 1, lambda: served.probabilities(x1), calls, warm),
        (
            PLAN_1,
            1,
            lambda: db.execute("explain " + select).fetchall(),
            calls,
            warm,
        ),
        (PREP_1, 1, lambda: served.features(checked_1.columns), calls, warm),
        (FULL_1, 1, lambda: full(record, True), calls, warm),
        (WORKER_1, 1, lambda: worker(one_body, True), calls, warm),
        (CHURN_1, 1, lambda: model.predict(None, pd.DataFrame([record])), calls, warm),
        (PYFUNC_1, 1, lambda: loaded.predict(pd.DataFrame([record])), calls, warm),
        (PROBA_N.format(n=n), n, lambda: served.probabilities(xn), batch_calls, warm_n),
        (PARSE_N.format(n=n), n, lambda: parse_body(batch_body, "application/json"), batch_calls, warm_n),
        (
            VALIDATE_N.format(n=n),
            n,
            lambda: validate(list(batch), single=False, limit=n),
            batch_calls,
            warm_n,
        ),
        (PREP_N.format(n=n), n, lambda: served.features(checked_n.columns), batch_calls, warm_n),
        (FULL_N.format(n=n), n, lambda: full(list(batch), False), batch_calls, warm_n),
        (WORKER_N.format(n=n), n, lambda: worker(batch_body, False), batch_calls, warm_n),
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
    estimator = model.estimator
    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    return Floor(
        timings,
        expected_single,
        expected_batch,
        type(final).__name__,
        len(model.feature_columns),
        float(model.threshold),
    )
