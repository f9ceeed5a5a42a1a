import numpy as np
import polars as pl
import pytest

from churn_assets.ml.matrix import feature_matrix, labels, split_frames


@pytest.fixture
def frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            "churn": [0, 1, 0, 1],
            "split": ["train", "train", "validation", "test"],
            "tenure": [1, 24, 60, 5],
            "monthly_charges": [29.5, 80.25, 99.0, 70.0],
            "is_senior": [True, False, False, True],
        }
    )


def test_matrix_follows_requested_column_order_and_casts_booleans(frame: pl.DataFrame) -> None:
    X = feature_matrix(frame, ["is_senior", "monthly_charges", "tenure"])

    assert X.dtype == np.float64
    assert X.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(X[:, 0], [1.0, 0.0, 0.0, 1.0])
    np.testing.assert_array_equal(X[1], [0.0, 80.25, 24.0])


def test_missing_columns_are_named(frame: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"missing.*\['contract_two_year', 'gender_male'\]"):
        feature_matrix(frame, ["tenure", "contract_two_year", "gender_male"])


@pytest.mark.parametrize("bad", [None, float("nan")])
def test_nulls_and_nan_are_rejected_by_name(frame: pl.DataFrame, bad: float | None) -> None:
    broken = frame.with_columns(pl.Series("monthly_charges", [29.5, bad, 99.0, 70.0], dtype=pl.Float64))
    with pytest.raises(ValueError, match=r"nulls or NaN: \['monthly_charges'\]"):
        feature_matrix(broken, ["tenure", "monthly_charges"])


def test_non_numeric_feature_is_rejected(frame: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match="not numeric"):
        feature_matrix(frame, ["tenure", "customer_id"])


def test_duplicate_feature_columns_are_rejected(frame: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match="duplicates"):
        feature_matrix(frame, ["tenure", "tenure"])


def test_labels(frame: pl.DataFrame) -> None:
    y = labels(frame)
    np.testing.assert_array_equal(y, [0, 1, 0, 1])
    assert y.dtype == np.int64
    with pytest.raises(ValueError, match="0/1"):
        labels(frame.with_columns(pl.lit(2).alias("churn")))


def test_split_frames(frame: pl.DataFrame) -> None:
    splits = split_frames(frame)
    assert splits.train.get_column("customer_id").to_list() == ["a", "b"]
    assert splits.validation.height == 1
    assert splits.test.height == 1


def test_empty_or_unknown_split_is_an_error(frame: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"empty splits: \['test'\]"):
        split_frames(frame.filter(pl.col("split") != "test"))
    with pytest.raises(ValueError, match="unknown split values"):
        split_frames(frame.with_columns(pl.lit("holdout").alias("split")))
