"""The polars → numpy boundary: everything downstream of here sees plain float64 arrays."""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

LABEL_COLUMN = "churn"
SPLIT_COLUMN = "split"
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class Splits:
    train: pl.DataFrame
    validation: pl.DataFrame
    test: pl.DataFrame


def feature_matrix(df: pl.DataFrame, feature_columns: Sequence[str]) -> np.ndarray:
    """Model input in exactly `feature_columns` order, so training and serving cannot drift apart.

    Fails loudly instead of imputing: a null here means the SQL feature contract was broken upstream.
    """
    columns = list(feature_columns)
    if not columns:
        raise ValueError("feature_columns is empty")
    duplicates = sorted({c for c in columns if columns.count(c) > 1})
    if duplicates:
        raise ValueError(f"feature_columns has duplicates: {duplicates}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"feature columns missing from frame: {missing}")
    non_numeric = [c for c in columns if not (df.schema[c].is_numeric() or df.schema[c] == pl.Boolean)]
    if non_numeric:
        raise ValueError(f"feature columns are not numeric or boolean: {non_numeric}")

    numeric = df.select(pl.col(columns).cast(pl.Float64))
    invalid = numeric.select((pl.col(columns).is_null() | pl.col(columns).is_nan()).any()).row(0)
    with_nulls = [c for c, bad in zip(columns, invalid, strict=True) if bad]
    if with_nulls:
        raise ValueError(f"feature columns contain nulls or NaN: {with_nulls}")
    return np.ascontiguousarray(numeric.to_numpy(order="c"), dtype=np.float64)


def labels(df: pl.DataFrame) -> np.ndarray:
    """The 0/1 churn label as int64; anything else means the label SQL is wrong."""
    if LABEL_COLUMN not in df.columns:
        raise ValueError(f"label column {LABEL_COLUMN!r} missing from frame")
    y = df.get_column(LABEL_COLUMN)
    if y.null_count() or not y.is_in([0, 1]).all():
        raise ValueError(f"label column {LABEL_COLUMN!r} must be 0/1 without nulls")
    return y.cast(pl.Int64).to_numpy()


def split_frames(df: pl.DataFrame) -> Splits:
    """Rows per split as assigned upstream; an empty or unknown split signals a broken split step."""
    unknown = set(df.get_column(SPLIT_COLUMN).unique().to_list()) - set(SPLITS)
    if unknown:
        raise ValueError(f"unknown {SPLIT_COLUMN} values: {sorted(map(str, unknown))}")
    frames = {name: df.filter(pl.col(SPLIT_COLUMN) == name) for name in SPLITS}
    empty = [name for name, frame in frames.items() if frame.is_empty()]
    if empty:
        raise ValueError(f"empty splits: {empty}")
    return Splits(**frames)
