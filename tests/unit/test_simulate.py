"""The batch simulator: the data set's contract and formats, ingestion, fresh ids, determinism, scenarios.

The real data set comes from the ``real_csv`` fixture (``CHURN_SOURCE_CSV`` or ../shared/data).
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from churn_assets.ingest.parse import parse_batch
from churn_assets.ingest.schema import BLANK_TOTAL_CHARGES_TENURE, CATEGORIES, COLUMNS, ID_COLUMN, RANGES
from churn_assets.simulate import SCENARIOS, batch_file_name, simulate_batch, write_batch

ROWS = 1500
# The real file's formats: ids like 7590-VHVEG; whole months; dollar amounts with at most two decimals
# and no trailing zero (20, 19.7, 29.85), all multiples of $0.05; a blank TotalCharges is one space.
ID_FORMAT = r"^[0-9]{4}-[A-Z]{5}$"
WHOLE = r"^(0|[1-9][0-9]*)$"
AMOUNT = r"^(0|[1-9][0-9]*)(\.[0-9]?[1-9])?$"


def read_real(path: Path) -> pl.DataFrame:
    return pl.read_csv(path, infer_schema=False)


def numbers(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(
        pl.col("tenure").cast(pl.Int64),
        pl.col("MonthlyCharges").cast(pl.Float64),
        pl.col("TotalCharges").str.strip_chars(" ").cast(pl.Float64, strict=False),
        (pl.col("Churn") == "Yes").alias("churned"),
        *(pl.col(c) for c in ("Contract", "InternetService", "OnlineSecurity", "TechSupport")),
    )


def format_problems(frame: pl.DataFrame) -> list[str]:
    """Every way ``frame`` differs from the real file's columns and formats (empty: none)."""
    problems = []
    if frame.columns != list(COLUMNS) or any(t != pl.String for t in frame.dtypes):
        problems.append(f"columns {frame.schema}")
        return problems
    if frame.null_count().sum_horizontal().item():
        problems.append("missing values")
    for column, allowed in CATEGORIES.items():
        if not frame[column].is_in(list(allowed)).all():
            problems.append(f"{column}: {sorted(set(frame[column]) - set(allowed))}")
    checks = {
        ID_COLUMN: frame[ID_COLUMN].str.contains(ID_FORMAT),
        "tenure": frame["tenure"].str.contains(WHOLE),
        "MonthlyCharges": frame["MonthlyCharges"].str.contains(AMOUNT),
        "TotalCharges": frame["TotalCharges"].str.contains(AMOUNT) | (frame["TotalCharges"] == " "),
    }
    problems += [f"{column}: bad format" for column, ok in checks.items() if not ok.all()]
    if problems:
        return problems
    n = numbers(frame)
    blank = frame["TotalCharges"] == " "
    if not (blank == (n["tenure"] == BLANK_TOTAL_CHARGES_TENURE)).all():
        problems.append("TotalCharges blank other than exactly for tenure 0")
    for column in ("MonthlyCharges", "TotalCharges"):
        cents = (n[column].drop_nulls() * 100).round()
        if not ((cents % 5) == 0).all():
            problems.append(f"{column}: not a multiple of $0.05")
    for column, (low, high) in RANGES.items():
        values = n[column].drop_nulls()
        if not values.is_between(low, high).all():
            problems.append(f"{column}: outside {low}..{high}")
    return problems


def consistency_ratio(frame: pl.DataFrame) -> pl.Series:
    """TotalCharges / (tenure x MonthlyCharges) of the customers billed so far."""
    n = numbers(frame).filter(pl.col("tenure") > 0)
    return n["TotalCharges"] / (n["tenure"] * n["MonthlyCharges"])


def churn_rate(frame: pl.DataFrame, where: pl.Expr | bool = True) -> float:
    return numbers(frame).filter(where)["churned"].mean()


def share(frame: pl.DataFrame, column: str, value: str) -> float:
    return (frame[column] == value).mean()


def test_the_format_checks_describe_the_real_file(real_csv: Path) -> None:
    assert format_problems(read_real(real_csv)) == []


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_columns_and_formats_are_the_real_files(real_csv: Path, scenario: str) -> None:
    frame = simulate_batch(real_csv, ROWS, scenario, seed=1)
    assert frame.height == ROWS
    assert format_problems(frame) == []
    ratio = consistency_ratio(frame)
    assert 0.95 < ratio.median() < 1.05
    assert ratio.is_between(0.5, 2.0).all()  # as in the real file: 0.69 to 1.57


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_ingestion_accepts_every_row(real_csv: Path, tmp_path: Path, scenario: str) -> None:
    frame = simulate_batch(real_csv, ROWS, scenario, seed=2)
    batch = parse_batch(write_batch(frame, tmp_path / batch_file_name(scenario, 2, ROWS)))
    assert batch.rejected.height == 0, batch.rejected.head(3)
    assert batch.rows_in_file == ROWS
    assert batch.accepted.select(COLUMNS).equals(frame)


def test_tenure_zero_customers_are_simulated_with_a_blank_total(real_csv: Path, tmp_path: Path) -> None:
    frame = simulate_batch(real_csv, 20_000, "none", seed=3)
    blank = frame.filter(pl.col("tenure") == str(BLANK_TOTAL_CHARGES_TENURE))
    assert blank.height > 0
    assert (blank["TotalCharges"] == " ").all()
    assert parse_batch(write_batch(frame, tmp_path / "big.csv")).rejected.height == 0


def test_ids_are_fresh_and_unique(real_csv: Path) -> None:
    source_ids = set(read_real(real_csv)[ID_COLUMN])
    ids = simulate_batch(real_csv, 5000, "fiber_growth", seed=4)[ID_COLUMN]
    assert ids.n_unique() == ids.len()
    assert ids.str.contains(ID_FORMAT).all()
    assert not source_ids & set(ids)


def test_the_same_seed_gives_the_same_batch(real_csv: Path) -> None:
    for scenario in SCENARIOS:
        assert simulate_batch(real_csv, 500, scenario, seed=5).equals(
            simulate_batch(real_csv, 500, scenario, seed=5)
        )


def test_another_seed_gives_other_ids_and_rows(real_csv: Path) -> None:
    first = simulate_batch(real_csv, 500, "none", seed=6)
    second = simulate_batch(real_csv, 500, "none", seed=7)
    assert not set(first[ID_COLUMN]) & set(second[ID_COLUMN])
    assert not first.drop(ID_COLUMN).equals(second.drop(ID_COLUMN))


def test_none_keeps_the_source_distribution(real_csv: Path) -> None:
    real, frame = read_real(real_csv), simulate_batch(real_csv, 5000, "none", seed=8)
    assert churn_rate(frame) == pytest.approx(churn_rate(real), abs=0.025)
    for column in ("Contract", "InternetService", "PaymentMethod", "gender"):
        for value in CATEGORIES[column]:
            assert share(frame, column, value) == pytest.approx(share(real, column, value), abs=0.025)
    real_n, sim_n = numbers(real), numbers(frame)
    assert sim_n["MonthlyCharges"].mean() == pytest.approx(real_n["MonthlyCharges"].mean(), rel=0.03)
    assert sim_n["tenure"].mean() == pytest.approx(real_n["tenure"].mean(), abs=1.5)
    assert sim_n["TotalCharges"].mean() == pytest.approx(real_n["TotalCharges"].mean(), rel=0.05)
    # The label relationship too: churn by contract as in the source.
    for contract in CATEGORIES["Contract"]:
        where = pl.col("Contract") == contract
        assert churn_rate(frame, where) == pytest.approx(churn_rate(real, where), abs=0.04)


def test_price_rise_raises_charges_and_churn(real_csv: Path) -> None:
    base = simulate_batch(real_csv, 3000, "none", seed=9)
    risen = simulate_batch(real_csv, 3000, "price_rise", seed=9)
    rise = numbers(risen)["MonthlyCharges"].mean() / numbers(base)["MonthlyCharges"].mean()
    assert 1.15 < rise < 1.30
    assert 0.95 < consistency_ratio(risen).median() < 1.05  # TotalCharges follows the new price
    assert churn_rate(risen) > churn_rate(base) + 0.05
    # Month-to-month customers, the most price-sensitive, react the most.
    m2m, two = pl.col("Contract") == "Month-to-month", pl.col("Contract") == "Two year"
    assert churn_rate(risen, m2m) - churn_rate(base, m2m) > churn_rate(risen, two) - churn_rate(base, two)


def test_month_to_month_moves_customers_to_month_to_month_billing(real_csv: Path) -> None:
    real, frame = read_real(real_csv), simulate_batch(real_csv, 3000, "month_to_month", seed=10)
    assert share(frame, "Contract", "Month-to-month") > share(real, "Contract", "Month-to-month") + 0.2
    assert share(frame, "PaperlessBilling", "Yes") > share(real, "PaperlessBilling", "Yes") + 0.1
    assert (
        share(frame, "PaymentMethod", "Electronic check")
        > share(real, "PaymentMethod", "Electronic check") + 0.15
    )
    # Covariate drift only: churn given the customer is the source's. Within each group of the
    # resampling's variables the batch churns as the source does, so the source's rates weighted by the
    # batch's mix of groups predict the batch's churn rate.
    groups = ["Contract", "PaperlessBilling", "PaymentMethod"]
    source_rates = real.group_by(groups).agg((pl.col("Churn") == "Yes").mean().alias("rate"))
    mix = frame.group_by(groups).agg(pl.len().alias("n")).join(source_rates, on=groups)
    expected = mix.select((pl.col("n") * pl.col("rate")).sum() / pl.col("n").sum()).item()
    assert churn_rate(frame) == pytest.approx(expected, abs=0.04)
    assert churn_rate(frame) > churn_rate(real) + 0.1  # the mix of customers is riskier


def test_fiber_growth_brings_more_fiber_customers(real_csv: Path) -> None:
    real, frame = read_real(real_csv), simulate_batch(real_csv, 3000, "fiber_growth", seed=11)
    assert (
        share(frame, "InternetService", "Fiber optic") > share(real, "InternetService", "Fiber optic") + 0.1
    )


def test_fiber_growth_changes_who_churns(real_csv: Path) -> None:
    """Concept drift: locked-in customers without support now churn, fiber customers with support stop."""
    real, frame = read_real(real_csv), simulate_batch(real_csv, 3000, "fiber_growth", seed=12)
    both_addons = (pl.col("OnlineSecurity") == "Yes") & (pl.col("TechSupport") == "Yes")
    locked_in_unsupported = (
        (pl.col("Contract") == "Two year")
        & (pl.col("tenure") >= 24)
        & (pl.col("InternetService") != "No")
        & ~both_addons
    )
    fiber_supported = (pl.col("InternetService") == "Fiber optic") & both_addons
    assert churn_rate(real, locked_in_unsupported) < 0.1
    assert churn_rate(frame, locked_in_unsupported) > 0.8
    assert churn_rate(real, fiber_supported) > 0.1
    assert churn_rate(frame, fiber_supported) < 0.03


def test_write_batch_writes_the_real_files_layout_atomically(
    real_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = simulate_batch(real_csv, 50, "none", seed=13)
    target = tmp_path / "landing" / batch_file_name("none", 13, 50)
    renames: list[tuple[Path, Path]] = []
    original_replace = Path.replace

    def recording_replace(self: Path, other: Path) -> Path:
        renames.append((self, Path(other)))
        return original_replace(self, other)

    monkeypatch.setattr(Path, "replace", recording_replace)
    assert write_batch(frame, target) == target
    assert renames == [(target.with_name(target.name + ".part"), target)]
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]
    text = target.read_text(encoding="utf-8")
    assert text.splitlines()[0] == real_csv.read_text(encoding="utf-8").splitlines()[0]
    assert text.endswith("\n") and "\r" not in text and '"' not in text
    assert len(text.splitlines()) == 51


def test_write_batch_replaces_an_older_file_and_refuses_a_frame_off_contract(
    real_csv: Path, tmp_path: Path
) -> None:
    target = tmp_path / "batch.csv"
    target.write_text("old\n")
    frame = simulate_batch(real_csv, 20, "none", seed=14)
    write_batch(frame, target)
    assert parse_batch(target).accepted.height == 20
    with pytest.raises(ValueError, match="columns"):
        write_batch(frame.drop("Churn"), tmp_path / "bad.csv")
    with pytest.raises(ValueError, match="columns"):
        write_batch(frame.with_columns(pl.col("tenure").cast(pl.Int64)), tmp_path / "bad.csv")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batch.csv"]


def test_batch_file_name() -> None:
    assert batch_file_name("fiber_growth", 7, 1500) == "sim-fiber_growth-s7-1500.csv"
    assert batch_file_name("none", 0, 1) == "sim-none-s0-1.csv"


@pytest.mark.parametrize(
    ("rows", "scenario", "seed", "message"),
    [(0, "none", 1, "rows"), (10, "inflation", 1, "scenario"), (10, "none", -1, "seed")],
)
def test_bad_arguments_are_refused(real_csv: Path, rows: int, scenario: str, seed: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        simulate_batch(real_csv, rows, scenario, seed)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=message):
        batch_file_name(scenario, seed, rows)  # type: ignore[arg-type]
