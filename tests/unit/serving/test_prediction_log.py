"""The prediction log keeps `retention_days` of date partitions and writes whole files only."""

from __future__ import annotations

import json
import os
import socket
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import polars as pl

from churn_assets.ml.champion import CHAMPION_ALIAS, MODEL_NAME
from serving.prediction_log import PredictionLog, Served, log_frame


def test_partitions_older_than_the_retention_window_are_deleted(tmp_path: Path) -> None:
    for day in ("2026-11-01", "2026-11-20", "2026-11-21", "2026-11-27"):
        (tmp_path / f"date={day}").mkdir()
        (tmp_path / f"date={day}" / "part-1.parquet").write_bytes(b"x")
    (tmp_path / "date=not-a-date").mkdir()
    log = PredictionLog(tmp_path, flush_s=3600, flush_rows=10, retention_days=7)
    deleted = log.prune(today=date(2026, 11, 27))
    assert sorted(p.name for p in deleted) == ["date=2026-11-01", "date=2026-11-20"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "date=2026-11-21",
        "date=2026-11-27",
        "date=not-a-date",
    ]


def _served(request_id: str, ids: list[str], columns: tuple[str, ...], *, shadow: bool = False) -> Served:
    n = len(ids)
    return Served(
        request_id=request_id,
        served_at=datetime(2026, 11, 27, 12, 0, tzinfo=UTC),
        endpoint="/batch-predict",
        model_name=MODEL_NAME,
        model_version="1" if columns == ("a", "b") else "2",
        model_alias=CHAMPION_ALIAS,
        shadow=shadow,
        records={"customerID": ids, "TotalCharges": [None] * n},
        feature_columns=columns,
        features=np.arange(n * len(columns), dtype=np.float64).reshape(n, len(columns)) + 0.5,
        probabilities=np.linspace(0.1, 0.9, n),
        threshold=0.5,
    )


def test_flush_writes_the_buffered_rows_as_one_parquet_file(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, flush_s=3600, flush_rows=10, retention_days=7)
    log.append([_served("a", ["c1"], ("a", "b")), _served("b", ["c2"], ("a", "b"))])
    written = log.flush()
    assert written is not None and written.parent.name.startswith("date=")
    # Replicas share the log volume: the file names the host as well as the process.
    assert written.name.startswith(f"part-{socket.gethostname()}-{os.getpid()}-")
    assert pl.read_parquet(written)["request_id"].to_list() == ["a", "b"]
    assert log.flush() is None  # nothing buffered: no empty file
    assert not list(tmp_path.rglob("*.tmp"))


def test_rows_keep_their_order_and_each_models_own_features() -> None:
    served = [
        _served("r1", ["c1", "c2"], ("a", "b")),
        _served("r1", ["c3"], ("x", "y", "z"), shadow=True),
        _served("r2", ["c4", "c5", "c6"], ("a", "b")),
    ]
    frame = log_frame(served)
    assert frame["customer_id"].to_list() == ["c1", "c2", "c3", "c4", "c5", "c6"]
    assert frame["request_id"].to_list() == ["r1", "r1", "r1", "r2", "r2", "r2"]
    assert frame["shadow"].to_list() == [False, False, True, False, False, False]
    features = [json.loads(f) for f in frame["features"]]
    assert features[0] == {"a": 0.5, "b": 1.5} and features[2] == {"x": 0.5, "y": 1.5, "z": 2.5}
    assert features[5] == {"a": 4.5, "b": 5.5}
    assert json.loads(frame["record"][0]) == {"customerID": "c1", "TotalCharges": None}
    assert frame["churn"].to_list() == [False, True, False, False, True, True]  # p >= threshold 0.5
    assert frame.schema["served_at"] == pl.Datetime("us", "UTC")
