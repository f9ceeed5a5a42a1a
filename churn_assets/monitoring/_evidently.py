"""Shared Evidently plumbing: explicit column typing, telemetry off and warning hygiene."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from evidently import Dataset
    from evidently.core.report import Snapshot


def as_category(series: pd.Series) -> pd.Series:
    """Values as strings with missing kept missing, so bools, ints and strings match across frames."""
    return series.astype(object).map(str, na_action="ignore").where(series.notna())


def to_dataset(
    frame: pd.DataFrame,
    *,
    numerical: Sequence[str],
    categorical: Sequence[str],
    id_column: str | None = None,
) -> Dataset:
    """Wrap `frame` with every column typed explicitly.

    Evidently's inference would call a unique string id "Text" and an int column with <= 10
    distinct values "Categorical"; the empty lists stop it from inferring anything at all.
    """
    from evidently import DataDefinition, Dataset

    telemetry_off()
    definition = DataDefinition(
        id_column=id_column,
        numerical_columns=list(numerical),
        categorical_columns=list(categorical),
        text_columns=[],
        datetime_columns=[],
        unknown_columns=[],
        list_columns=[],
    )
    return Dataset.from_pandas(frame, data_definition=definition)


def telemetry_off() -> None:
    """No report phones home: Evidently reads these when it would send usage data, not at import, and every
    report runs on datasets made by `to_dataset`, which calls this first (a user's own values are kept)."""
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("EVIDENTLY_DISABLE_TELEMETRY", "1")


@contextmanager
def quiet_degenerate_stats() -> Iterator[None]:
    """Mute the numpy/scipy RuntimeWarnings Evidently's internals raise on one-row or constant columns."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def save_html(snapshot: Snapshot, path: Path) -> Path:
    """Write the report; `Snapshot.save_html` silently writes nothing when given a `Path`, hence `str`."""
    with quiet_degenerate_stats():
        snapshot.save_html(str(path))
    return path
