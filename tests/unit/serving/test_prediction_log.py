"""The prediction log keeps `retention_days` of date partitions and writes whole files only."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl

from serving.prediction_log import PredictionLog


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


def test_flush_writes_the_buffered_rows_as_one_parquet_file(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path, flush_s=3600, flush_rows=10, retention_days=7)
    log.append([{"request_id": "a", "churn_probability": 0.5}, {"request_id": "b", "churn_probability": 0.1}])
    written = log.flush()
    assert written is not None and written.parent.name.startswith("date=")
    assert pl.read_parquet(written)["request_id"].to_list() == ["a", "b"]
    assert log.flush() is None  # nothing buffered: no empty file
    assert not list(tmp_path.rglob("*.tmp"))
