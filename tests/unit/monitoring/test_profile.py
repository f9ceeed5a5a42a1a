import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from churn_assets.monitoring.profile import LINEAGE_COLUMNS, DataProfile, build_data_profile


@pytest.fixture(scope="module")
def profile(customers: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> DataProfile:
    return build_data_profile(customers, tmp_path_factory.mktemp("profile"))


def _association(profile: DataProfile, column: str):
    (found,) = [a for a in profile.associations if a.column == column]
    return found


def test_writes_html_reports_and_json(profile: DataProfile) -> None:
    for path in (profile.html_path, profile.association_html_path):
        html = path.read_text(encoding="utf-8").strip().lower()
        assert html.startswith("<!doctype html") and html.endswith("</html>")
    summary = json.loads(profile.json_path.read_text(encoding="utf-8"))
    assert summary["n_rows"] == 2000
    assert summary["target_counts"] == profile.target_counts
    assert [a["column"] for a in summary["associations"]] == [a.column for a in profile.associations]
    metric_names = {m["metric_name"] for m in summary["evidently_summary"]["metrics"]}
    assert "RowCount()" in metric_names


def test_target_balance(profile: DataProfile, customers: pd.DataFrame) -> None:
    positives = int(customers["churn"].sum())
    assert profile.target_counts == {"0": 2000 - positives, "1": positives}
    assert profile.target_rate == pytest.approx(positives / 2000)
    assert 0.2 < profile.target_rate < 0.33


def test_markdown_mentions_row_count_and_churn_rate(profile: DataProfile) -> None:
    assert "2,000 rows" in profile.markdown
    assert f"{profile.target_rate:.1%}" in profile.markdown
    assert "`contract`" in profile.markdown
    assert "**Missing values:** none" in profile.markdown


def test_planted_relationships_have_the_right_sign(profile: DataProfile) -> None:
    tenure, charges = _association(profile, "tenure_months"), _association(profile, "monthly_charges")
    assert tenure.method == "point_biserial_r"
    assert tenure.statistic < -0.15 and tenure.p_value < 1e-6
    assert charges.statistic > 0.1
    assert tenure.mean_by_target["1"] < tenure.mean_by_target["0"]

    contract, gender = _association(profile, "contract"), _association(profile, "gender")
    assert contract.method == "cramers_v"
    assert contract.statistic > 0.2 > gender.statistic
    rates = contract.target_rate_by_category
    assert max(rates, key=rates.__getitem__) == "Month-to-month"
    assert sum(contract.count_by_category.values()) == 2000
    strengths = [a.strength for a in profile.associations]
    assert strengths == sorted(strengths, reverse=True)


def test_column_roles_and_exclusions(profile: DataProfile) -> None:
    assert profile.n_columns == 22
    assert profile.column_types["customer_id"] == "id"
    assert profile.column_types["churn"] == "target"
    assert profile.column_types["is_senior_citizen"] == "categorical"
    assert profile.column_types["tenure_months"] == "numerical"
    for excluded in LINEAGE_COLUMNS:
        assert excluded not in profile.column_types
        assert excluded not in profile.missing_values
        assert excluded not in profile.json_path.read_text(encoding="utf-8")
    assert {a.column for a in profile.associations} == set(profile.column_types) - {"customer_id", "churn"}


def test_json_is_deterministic(profile: DataProfile, customers: pd.DataFrame, tmp_path: Path) -> None:
    again = build_data_profile(customers, tmp_path)
    assert again.json_path.read_bytes() == profile.json_path.read_bytes()


def test_missing_values_are_counted_and_kept_as_a_category(customers: pd.DataFrame, tmp_path: Path) -> None:
    frame = customers.copy()
    frame.loc[:49, "total_charges"] = np.nan
    frame["gender"] = frame["gender"].astype(object)
    frame.loc[:9, "gender"] = None

    profile = build_data_profile(frame, tmp_path)

    assert profile.missing_values["total_charges"] == 50
    assert profile.missing_values["gender"] == 10
    assert "`total_charges` 50 (2.5%)" in profile.markdown
    assert _association(profile, "gender").count_by_category["(missing)"] == 10
    assert _association(profile, "total_charges").statistic is not None


def test_rejects_a_non_binary_target(customers: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="churn"):
        build_data_profile(customers.assign(churn=customers["churn"] * 2), tmp_path)


def test_rejects_unexcluded_datetime_columns(customers: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="ingested_at"):
        build_data_profile(customers, tmp_path, exclude=())
