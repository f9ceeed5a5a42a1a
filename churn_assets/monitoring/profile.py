"""Data profile of the cleaned customer table: the exploratory analysis, rebuilt on every refresh.

Three outputs in `out_dir`:
- `data_profile.html`: Evidently `DataSummaryPreset` (per-column statistics, missing values, duplicates).
- `churn_association.html`: Evidently view of the target against every column: Cramér's V of the
  categoricals with the target, the target rate per category, numerical distributions per target value.
- `data_profile.json`: the summary below plus Evidently's raw metric values, for machines.

Column roles come from dtypes: bool, string and category columns are categorical, other numeric
columns numerical. Evidently renders the HTML; the numbers in the summary are computed here with
pandas/scipy so they do not depend on Evidently's internal result format. The JSON is byte-identical
for the same input; the HTML is not (Evidently embeds random element ids).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pandas as pd
from scipy import stats

from churn_assets.monitoring._evidently import as_category, quiet_degenerate_stats, save_html, to_dataset

if TYPE_CHECKING:
    import numpy as np
    from evidently.core.report import Snapshot

LINEAGE_COLUMNS = ("batch_id", "source_file", "ingested_at")
MISSING_CATEGORY = "(missing)"
TOP_ASSOCIATIONS = 10
TOP_CATEGORIES = 4

ColumnRole = Literal["id", "target", "numerical", "categorical"]


@dataclass(frozen=True)
class Association:
    """How strongly one column separates the binary target."""

    column: str
    kind: Literal["numerical", "categorical"]
    # Point-biserial r (signed) for numerical columns, Cramér's V (0..1, no sign) for categorical.
    method: Literal["point_biserial_r", "cramers_v"]
    # None when undefined: the column or the target is constant.
    statistic: float | None
    p_value: float | None
    # Categorical only (missing values form the "(missing)" category), keyed by category.
    target_rate_by_category: dict[str, float]
    count_by_category: dict[str, int]
    # Numerical only: the column's mean for each target value ("0", "1").
    mean_by_target: dict[str, float]

    @property
    def strength(self) -> float:
        """|r| or V, comparable across kinds (both equal |phi| for two binary variables)."""
        return 0.0 if self.statistic is None else abs(self.statistic)


@dataclass(frozen=True)
class DataProfile:
    """What the profile found, plus where its reports are; `markdown` is derived for Dagster."""

    html_path: Path
    association_html_path: Path
    json_path: Path
    n_rows: int
    # Profiled columns: id, features and target (excluded lineage columns not counted).
    n_columns: int
    column_types: dict[str, ColumnRole]
    missing_values: dict[str, int]
    target: str
    target_counts: dict[str, int]
    # Share of rows with target == 1.
    target_rate: float
    # Strongest first.
    associations: list[Association]

    @property
    def markdown(self) -> str:
        """Compact summary for Dagster materialization metadata."""
        return _markdown(self)


def build_data_profile(
    df: pd.DataFrame,
    out_dir: Path,
    *,
    target: str = "churn",
    id_column: str | None = "customer_id",
    exclude: Sequence[str] = LINEAGE_COLUMNS,
) -> DataProfile:
    """Profile `df` into `out_dir` (created if needed).

    `target` must be 0/1 (or bool) without missing values. Columns in `exclude` are dropped when
    present. Raises ValueError for a missing target/id column or a column whose dtype is neither
    numeric, bool, string nor category (exclude datetimes).
    """
    frame = df.drop(columns=[c for c in exclude if c in df.columns])
    roles = _column_roles(frame, target, id_column)
    numerical = [c for c, role in roles.items() if role == "numerical"]
    categorical = [c for c, role in roles.items() if role == "categorical"]
    y = frame[target].astype(int)

    out_dir.mkdir(parents=True, exist_ok=True)
    summary_snapshot = _summary_report(frame, y, numerical, categorical, target, id_column)
    html_path = save_html(summary_snapshot, out_dir / "data_profile.html")
    association_html_path = save_html(
        _association_report(frame, y, numerical, categorical, target), out_dir / "churn_association.html"
    )

    counts = y.value_counts()
    profile = DataProfile(
        html_path=html_path,
        association_html_path=association_html_path,
        json_path=out_dir / "data_profile.json",
        n_rows=len(frame),
        n_columns=frame.shape[1],
        column_types=roles,
        missing_values={str(c): int(n) for c, n in frame.isna().sum().items()},
        target=target,
        target_counts={str(v): int(counts.get(v, 0)) for v in (0, 1)},
        target_rate=float(y.mean()),
        associations=sorted(
            [_numerical_association(frame[c], y) for c in numerical]
            + [_categorical_association(frame[c], y) for c in categorical],
            key=lambda a: (-a.strength, a.column),
        ),
    )
    summary = {k: v for k, v in asdict(profile).items() if not k.endswith("_path")}
    summary["evidently_summary"] = json.loads(summary_snapshot.json())
    profile.json_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return profile


def _column_roles(frame: pd.DataFrame, target: str, id_column: str | None) -> dict[str, ColumnRole]:
    for name, column in (("target", target), ("id", id_column)):
        if column is not None and column not in frame.columns:
            raise ValueError(f"{name} column {column!r} not in the data frame")
    labels = frame[target]
    if labels.isna().any() or not set(labels.unique()) <= {0, 1}:
        raise ValueError(f"target {target!r} must be 0/1 without missing values")

    roles: dict[str, ColumnRole] = {}
    for label, dtype in frame.dtypes.items():
        column = str(label)
        if column in (id_column, target):
            roles[column] = "id" if column == id_column else "target"
        elif pd.api.types.is_bool_dtype(dtype) or _is_text_like(dtype):
            roles[column] = "categorical"
        elif pd.api.types.is_numeric_dtype(dtype):
            roles[column] = "numerical"
        else:
            raise ValueError(f"column {column!r} has dtype {dtype}; exclude it or cast it before profiling")
    return roles


def _is_text_like(dtype: np.dtype | pd.api.extensions.ExtensionDtype) -> bool:
    return (
        pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
        or isinstance(dtype, pd.CategoricalDtype)
    )


def _summary_report(
    frame: pd.DataFrame,
    y: pd.Series,
    numerical: list[str],
    categorical: list[str],
    target: str,
    id_column: str | None,
) -> Snapshot:
    from evidently import Report
    from evidently.presets import DataSummaryPreset

    data = frame.assign(**{c: as_category(frame[c]) for c in categorical}, **{target: y})
    dataset = to_dataset(data, numerical=numerical, categorical=[*categorical, target], id_column=id_column)
    with quiet_degenerate_stats():
        return Report([DataSummaryPreset()]).run(dataset, None)


def _association_report(
    frame: pd.DataFrame, y: pd.Series, numerical: list[str], categorical: list[str], target: str
) -> Snapshot:
    """Target vs every column, built only from Evidently metrics (no hand-made HTML)."""
    from evidently import Report
    from evidently.metrics import ColumnCorrelations, GroupBy, MeanValue

    data = pd.DataFrame(
        {c: frame[c] for c in numerical}
        | {c: as_category(frame[c]).fillna(MISSING_CATEGORY) for c in categorical}
        | {target: y}
    )
    metrics = [
        ColumnCorrelations(column_name=target),
        *(GroupBy(MeanValue(column=target), c) for c in categorical),
        *(GroupBy(MeanValue(column=c), target) for c in numerical),
    ]
    dataset = to_dataset(data, numerical=numerical, categorical=[*categorical, target])
    with quiet_degenerate_stats():
        return Report(metrics).run(dataset, None)


def _numerical_association(x: pd.Series, y: pd.Series) -> Association:
    known = x.notna()
    xs, ys = x[known].astype(float), y[known]
    statistic = p_value = None
    if xs.nunique() > 1 and ys.nunique() > 1:
        result = stats.pointbiserialr(ys, xs)
        statistic, p_value = float(result.statistic), float(result.pvalue)
    return Association(
        column=str(x.name),
        kind="numerical",
        method="point_biserial_r",
        statistic=statistic,
        p_value=p_value,
        target_rate_by_category={},
        count_by_category={},
        mean_by_target={str(k): float(v) for k, v in xs.groupby(ys).mean().items()},
    )


def _categorical_association(x: pd.Series, y: pd.Series) -> Association:
    categories = as_category(x).fillna(MISSING_CATEGORY)
    table = pd.crosstab(categories, y)
    statistic = p_value = None
    if min(table.shape) > 1:
        # Uncorrected chi-square, as Evidently's own Cramér's V in the association report.
        result = stats.chi2_contingency(table.to_numpy(), correction=False)
        statistic = math.sqrt(result.statistic / (len(y) * (min(table.shape) - 1)))
        p_value = float(result.pvalue)
    grouped = y.groupby(categories)
    return Association(
        column=str(x.name),
        kind="categorical",
        method="cramers_v",
        statistic=statistic,
        p_value=p_value,
        target_rate_by_category={str(k): float(v) for k, v in grouped.mean().items()},
        count_by_category={str(k): int(v) for k, v in grouped.size().items()},
        mean_by_target={},
    )


def _markdown(profile: DataProfile) -> str:
    roles = list(profile.column_types.values())
    target = profile.target
    lines = [
        f"**{profile.n_rows:,} rows × {profile.n_columns} columns** "
        f"({roles.count('numerical')} numerical, {roles.count('categorical')} categorical, "
        f"target `{target}`)",
        "",
        f"**Target `{target}`:** {profile.target_rate:.1%} positive "
        f"({profile.target_counts['1']:,} of {profile.n_rows:,}; {profile.target_counts['0']:,} negative)",
        "",
        f"**Strongest associations with `{target}`**",
        "",
        "| column | measure | value | detail |",
        "|---|---|---:|---|",
    ]
    lines += [_association_row(a, target) for a in profile.associations[:TOP_ASSOCIATIONS]]
    missing = {c: n for c, n in profile.missing_values.items() if n}
    lines += [
        "",
        "**Missing values:** "
        + (", ".join(f"`{c}` {n:,} ({n / profile.n_rows:.1%})" for c, n in missing.items()) or "none"),
        "",
        f"Reports: [data profile]({profile.html_path.resolve().as_uri()}) · "
        f"[churn association]({profile.association_html_path.resolve().as_uri()})",
    ]
    return "\n".join(lines)


def _association_row(a: Association, target: str) -> str:
    if a.kind == "numerical":
        value = "n/a" if a.statistic is None else f"{a.statistic:+.3f}"
        means = a.mean_by_target
        detail = " vs ".join(f"mean {means[k]:,.1f} if {target}={k}" for k in ("1", "0") if k in means)
        return f"| `{a.column}` | point-biserial r | {value} | {detail} |"
    value = "n/a" if a.statistic is None else f"{a.statistic:.3f}"
    rates = a.target_rate_by_category
    by_rate = sorted(rates, key=lambda k: (-rates[k], k))
    detail = " · ".join(
        f"{k} {rates[k]:.1%} (n={a.count_by_category[k]:,})" for k in by_rate[:TOP_CATEGORIES]
    )
    if len(by_rate) > TOP_CATEGORIES:
        detail += f" · … {len(by_rate) - TOP_CATEGORIES} more"
    return f"| `{a.column}` | Cramér's V | {value} | {detail} |"
