"""Append-only log of served predictions as Parquet files, written off the request path.

Each worker buffers what it served, one `Served` (a request's rows, column by column) per request and
model, and a background thread turns them into rows (the record and the features as JSON text, built
column-wise) and flushes them every `flush_s` seconds or `flush_rows` rows into `<dir>/date=YYYY-MM-DD/part-<host>-<pid>-<n>.parquet` (written to a temporary name, then renamed, so
readers never see half a file). A crash loses at most the unflushed buffer: `flush_s` seconds of traffic.
Date partitions older than `retention_days` are deleted (checked at most hourly, by every worker).
"""

import atexit
import itertools
import logging
import os
import shutil
import socket
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Served:
    """What one model answered (or shadow-scored) in one request, column by column."""

    request_id: str
    served_at: datetime
    endpoint: str
    model_name: str
    model_version: str
    model_alias: str
    shadow: bool
    records: dict[str, list[str | None]]  # the raw columns, as validated
    feature_columns: tuple[str, ...]
    features: np.ndarray
    probabilities: np.ndarray
    threshold: float

    @property
    def size(self) -> int:
        return len(self.probabilities)


REQUEST_FIELDS = (
    "request_id",
    "served_at",
    "endpoint",
    "model_name",
    "model_version",
    "model_alias",
    "shadow",
)


def log_frame(served: list[Served]) -> pl.DataFrame:
    """The log rows of these requests: one per record, `record` and `features` as JSON objects."""
    sizes = [s.size for s in served]
    frame = pl.DataFrame(
        {field: list(_repeat((getattr(s, field) for s in served), sizes)) for field in REQUEST_FIELDS},
        schema_overrides={"served_at": pl.Datetime("us", "UTC")},
    )
    columns = served[0].records.keys()
    records = pl.DataFrame(
        {c: list(itertools.chain.from_iterable(s.records[c] for s in served)) for c in columns},
        schema={c: pl.String for c in columns},
    )
    probabilities = np.concatenate([s.probabilities for s in served])
    threshold = np.repeat([s.threshold for s in served], sizes)
    return frame.with_columns(
        customer_id=records.get_column("customerID"),
        record=records.select(pl.struct(pl.all()).struct.json_encode()).to_series(),
        features=_features_json(served),
        churn_probability=pl.Series(probabilities, dtype=pl.Float64),
        churn=pl.Series(probabilities >= threshold, dtype=pl.Boolean),
    )


def _repeat(values, sizes: list[int]):
    return itertools.chain.from_iterable(itertools.repeat(v, n) for v, n in zip(values, sizes, strict=True))


def _features_json(served: list[Served]) -> pl.Series:
    """Each row's features as a JSON object, encoded per model (its own feature columns), in row order."""
    by_columns: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for i, s in enumerate(served):
        by_columns[s.feature_columns].append(i)
    offsets = np.cumsum([0] + [s.size for s in served])
    parts, positions = [], []
    for columns, members in by_columns.items():
        matrix = np.vstack([served[i].features for i in members])
        frame = pl.DataFrame(matrix, schema=list(columns), orient="row")
        parts.append(frame.select(pl.struct(pl.all()).struct.json_encode()).to_series())
        positions += [np.arange(offsets[i], offsets[i + 1]) for i in members]
    encoded = pl.concat(parts)
    if len(parts) == 1:
        return encoded
    return encoded.gather(np.argsort(np.concatenate(positions), kind="stable"))


class PredictionLog:
    def __init__(self, directory: Path, flush_s: float, flush_rows: int, retention_days: int) -> None:
        self.directory, self.flush_s, self.flush_rows = directory, flush_s, flush_rows
        self.retention_days = retention_days
        self._pruned_at = float("-inf")
        self._served: list[Served] = []
        self._buffered_rows = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._parts = 0
        threading.Thread(target=self._run, name="prediction-log", daemon=True).start()
        atexit.register(self.flush)  # a clean shutdown loses nothing

    def append(self, served: list[Served]) -> None:
        with self._lock:
            self._served.extend(served)
            self._buffered_rows += sum(s.size for s in served)
            full = self._buffered_rows >= self.flush_rows
        if full:
            self._wake.set()

    def flush(self) -> Path | None:
        with self._lock:
            served, self._served, self._buffered_rows = self._served, [], 0
        if not served:
            return None
        now = datetime.now(UTC)
        folder = self.directory / f"date={now:%Y-%m-%d}"
        folder.mkdir(parents=True, exist_ok=True)
        self._parts += 1
        # The host name too: replicas in containers share the log volume, and their pids can be equal.
        target = folder / f"part-{socket.gethostname()}-{os.getpid()}-{now:%H%M%S%f}-{self._parts}.parquet"
        partial = target.with_name("." + target.name + ".tmp")
        log_frame(served).write_parquet(partial)
        partial.replace(target)
        return target

    def prune(self, today: date | None = None) -> list[Path]:
        """Delete the date partitions older than the retention window; return what was deleted."""
        oldest_kept = (today or datetime.now(UTC).date()) - timedelta(days=self.retention_days - 1)
        expired = [
            folder
            for folder in self.directory.glob("date=*")
            if (day := _partition_date(folder)) is not None and day < oldest_kept
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
