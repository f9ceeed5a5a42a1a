"""Append-only log of served predictions as Parquet files, written off the request path.

Each worker buffers rows and a background thread flushes them every `flush_s` seconds or `flush_rows`
rows into `<dir>/date=YYYY-MM-DD/part-<pid>-<n>.parquet` (written to a temporary name, then renamed, so
readers never see half a file). A crash loses at most the unflushed buffer: `flush_s` seconds of traffic.
"""

import atexit
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl


class PredictionLog:
    def __init__(self, directory: Path, flush_s: float, flush_rows: int) -> None:
        self.directory, self.flush_s, self.flush_rows = directory, flush_s, flush_rows
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._parts = 0
        threading.Thread(target=self._run, name="prediction-log", daemon=True).start()
        atexit.register(self.flush)  # a clean shutdown loses nothing

    def append(self, rows: list[dict[str, Any]]) -> None:
        with self._lock:
            self._rows.extend(rows)
            full = len(self._rows) >= self.flush_rows
        if full:
            self._wake.set()

    def flush(self) -> Path | None:
        with self._lock:
            rows, self._rows = self._rows, []
        if not rows:
            return None
        now = datetime.now(UTC)
        folder = self.directory / f"date={now:%Y-%m-%d}"
        folder.mkdir(parents=True, exist_ok=True)
        self._parts += 1
        target = folder / f"part-{os.getpid()}-{now:%H%M%S%f}-{self._parts}.parquet"
        partial = target.with_name("." + target.name + ".tmp")
        pl.DataFrame(rows, infer_schema_length=None).write_parquet(partial)
        partial.replace(target)
        return target

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_s)
            self._wake.clear()
            self.flush()
