"""Append-only log of served predictions as Parquet files, written off the request path.

Each worker buffers rows and a background thread flushes them every `flush_s` seconds or `flush_rows`
rows into `<dir>/date=YYYY-MM-DD/part-<pid>-<n>.parquet` (written to a temporary name, then renamed, so
readers never see half a file). A crash loses at most the unflushed buffer: `flush_s` seconds of traffic.
Date partitions older than `retention_days` are deleted (checked at most hourly, by every worker).
"""

import atexit
import logging
import os
import shutil
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

log = logging.getLogger(__name__)


class PredictionLog:
    def __init__(self, directory: Path, flush_s: float, flush_rows: int, retention_days: int) -> None:
        self.directory, self.flush_s, self.flush_rows = directory, flush_s, flush_rows
        self.retention_days = retention_days
        self._pruned_at = float("-inf")
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

    def prune(self, today: date | None = None) -> list[Path]:
        """Delete the date partitions older than the retention window; return what was deleted."""
        oldest_kept = (today or datetime.now(UTC).date()) - timedelta(days=self.retention_days - 1)
        expired = [
            folder
            for folder in self.directory.glob("date=*")
            if _partition_date(folder) is not None and _partition_date(folder) < oldest_kept
        ]
        for folder in expired:
            shutil.rmtree(folder, ignore_errors=True)  # another worker may be deleting it too
        return expired

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_s)
            self._wake.clear()
            try:  # a failed write (disk full, a partition pruned at midnight) must not end the thread
                self.flush()
                if time.monotonic() - self._pruned_at > PRUNE_EVERY_S:
                    self._pruned_at = time.monotonic()
                    self.prune()
            except Exception:
                log.exception("prediction log: flush or prune failed; rows of this flush are lost")


PRUNE_EVERY_S = 3600


def _partition_date(folder: Path) -> date | None:
    try:
        return date.fromisoformat(folder.name.removeprefix("date="))
    except ValueError:
        return None
