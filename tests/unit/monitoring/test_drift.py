import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churn_assets.monitoring.drift import DRIFT_CATEGORICAL, DRIFT_NUMERICAL, build_drift_report


def _split(frame: pd.DataFrame, n_reference: int = 1400) -> tuple[pd.DataFrame, pd.DataFrame]:
    shuffled = frame.iloc[np.random.default_rng(0).permutation(len(frame))]
    return shuffled.iloc[:n_reference].copy(), shuffled.iloc[n_reference:].copy()


def _shifted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(monthly_charges=frame["monthly_charges"] * 1.5, contract="Month-to-month")


def test_default_columns_cover_the_features(customers: pd.DataFrame) -> None:
    analysis = set(customers.columns) - {"customer_id", "churn", "batch_id", "source_file", "ingested_at"}
    assert set(DRIFT_NUMERICAL) | set(DRIFT_CATEGORICAL) == analysis
    assert not set(DRIFT_NUMERICAL) & set(DRIFT_CATEGORICAL)


def test_random_split_does_not_drift(customers: pd.DataFrame, tmp_path: Path) -> None:
    reference, current = _split(customers)
    result = build_drift_report(reference, current, tmp_path)

    assert not result.drift_detected
    assert result.drift_share < result.drift_share_threshold
    assert (result.n_reference, result.n_current, result.n_columns) == (1400, 600, 20)
    assert {c.method for c in result.columns} == {"Wasserstein distance (normed)", "Jensen-Shannon distance"}
    assert "drift not detected" in result.markdown
    assert result.html_path == tmp_path / "drift_report.html" and result.html_path.stat().st_size > 0
    summary = json.loads(result.json_path.read_text(encoding="utf-8"))
    assert summary["drift_detected"] is False
    assert summary["drifted_columns"] == result.drifted_columns


def test_shifted_columns_are_flagged(customers: pd.DataFrame, tmp_path: Path) -> None:
    reference, current = _split(customers)
    result = build_drift_report(reference, _shifted(current), tmp_path)

    assert {"monthly_charges", "contract"} <= set(result.drifted_columns)
    assert result.n_drifted == len(result.drifted_columns)
    assert result.drift_share == pytest.approx(result.n_drifted / 20)
    assert "`monthly_charges`" in result.markdown


def test_shift_in_a_share_of_columns_above_threshold_is_dataset_drift(
    customers: pd.DataFrame, tmp_path: Path
) -> None:
    reference, current = _split(customers)
    result = build_drift_report(
        reference,
        _shifted(current),
        tmp_path,
        numerical=["tenure_months", "monthly_charges"],
        categorical=["gender", "contract"],
        name="subset",
    )

    assert result.drift_detected
    assert result.drifted_columns == ["monthly_charges", "contract"]
    assert result.drift_share == 0.5
    assert result.json_path == tmp_path / "subset.json"
    assert "drift detected" in result.markdown


def test_small_reference_switches_to_p_value_tests(customers: pd.DataFrame, tmp_path: Path) -> None:
    reference, current = _split(customers, n_reference=800)
    result = build_drift_report(reference, _shifted(current), tmp_path)

    assert all("p_value" in c.method for c in result.columns)
    flagged = {c.column: c for c in result.columns if c.drifted}
    assert {"monthly_charges", "contract"} <= set(flagged)
    assert all(c.score < c.threshold for c in flagged.values())


@pytest.mark.parametrize("n_current", [1, 50])
def test_tiny_current_frame(customers: pd.DataFrame, tmp_path: Path, n_current: int) -> None:
    reference, current = _split(customers)
    result = build_drift_report(reference, current.iloc[:n_current], tmp_path)

    assert result.n_current == n_current
    assert result.n_columns == 20
    assert "fewer than 200 rows" in result.markdown


def test_bools_constants_and_missing_values(customers: pd.DataFrame, tmp_path: Path) -> None:
    reference, current = _split(customers)
    # DuckDB hands a bool column with NULLs over as object dtype.
    current["has_partner"] = current["has_partner"].astype(object)
    current.iloc[:20, current.columns.get_loc("has_partner")] = None
    current["gender"] = "Male"
    current.iloc[:30, current.columns.get_loc("monthly_charges")] = np.nan

    result = build_drift_report(reference, current, tmp_path)

    assert result.n_columns == 20 and not result.untested_columns
    assert "gender" in result.drifted_columns
    assert "has_partner" not in result.drifted_columns
    assert "monthly_charges" not in result.drifted_columns


def test_column_without_values_is_untested(customers: pd.DataFrame, tmp_path: Path) -> None:
    reference, current = _split(customers)
    current["total_charges"] = np.nan

    result = build_drift_report(reference, current, tmp_path)

    assert result.untested_columns == ["total_charges"]
    assert result.n_columns == 19
    assert "Untested" in result.markdown


@pytest.mark.parametrize("frame", ["reference", "current"])
def test_missing_declared_column_is_named(customers: pd.DataFrame, tmp_path: Path, frame: str) -> None:
    reference, current = _split(customers)
    frames = {"reference": reference, "current": current}
    frames[frame] = frames[frame].drop(columns=["contract"])

    with pytest.raises(ValueError, match=rf"{frame}: \['contract'\]"):
        build_drift_report(frames["reference"], frames["current"], tmp_path)
    assert not list(tmp_path.iterdir())


def test_rejects_ambiguous_declarations(customers: pd.DataFrame, tmp_path: Path) -> None:
    reference, current = _split(customers)
    with pytest.raises(ValueError, match="more than once"):
        build_drift_report(
            reference, current, tmp_path, numerical=["tenure_months"], categorical=["tenure_months"]
        )
    with pytest.raises(ValueError, match="id column"):
        build_drift_report(
            reference, current, tmp_path, numerical=["tenure_months"], categorical=["customer_id"]
        )
