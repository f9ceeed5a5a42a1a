"""The ingestion and dbt part of the graph on the real data set, materialized through Dagster in a temporary home."""

from __future__ import annotations

import dagster as dg
import duckdb

from churn_assets.ingest.assets import LANDED_FILES
from tests.conftest import Installation


def _query(inst: Installation, sql: str) -> list[tuple]:
    with duckdb.connect(str(inst.settings.duckdb_path), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def _materialization(result, key: dg.AssetKey) -> dg.AssetMaterialization:
    (event,) = [e for e in result.get_asset_materialization_events() if e.asset_key == key]
    return event.materialization


def test_dbt_build_on_real_data_passes_every_test(materialized: Installation) -> None:
    result = materialized.first_result
    assert result.success
    checks = result.get_asset_check_evaluations()
    failed = [(c.asset_key.to_user_string(), c.check_name) for c in checks if not c.passed]
    assert failed == []
    dbt_checks = [c for c in checks if c.asset_key.path[0] in ("staging", "marts")]
    assert len(dbt_checks) >= 60  # every data test of the three models ran as an asset check
    done = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {
        "raw/customers",
        "staging/stg_customers",
        "marts/customer_features",
        "marts/training_set",
        "data_profile",
    } <= done


def test_every_row_of_the_real_file_lands_and_one_feature_row_per_customer(
    materialized: Installation,
) -> None:
    meta = _materialization(materialized.first_result, LANDED_FILES).metadata
    assert (meta["status"].value, meta["rows_accepted"].value, meta["rows_rejected"].value) == (
        "loaded",
        7043,
        0,
    )
    assert _query(materialized, "select count(*) from raw.customers") == [(7043,)]
    assert _query(
        materialized, "select count(*), count(distinct customer_id) from marts.customer_features"
    ) == [(7043, 7043)]
    assert _query(
        materialized,
        "select count(*), max(tenure_months) from staging.stg_customers where total_charges_was_blank",
    ) == [(11, 0)]
    splits = dict(_query(materialized, "select split, count(*) from marts.training_set group by 1"))
    assert set(splits) == {"train", "validation", "test"} and sum(splits.values()) == 7043


def test_data_profile_is_written(materialized: Installation) -> None:
    meta = _materialization(materialized.first_result, dg.AssetKey("data_profile")).metadata
    assert meta["dagster/row_count"].value == 7043
    assert abs(meta["churn_rate"].value - 1869 / 7043) < 1e-9
    assert "7043" in meta["summary"].value.replace(",", "")
    assert (materialized.settings.reports_dir / "data_profile").is_dir()


def test_corrupted_batch_keeps_good_rows_and_next_file_loads(
    materialized_copy: Installation, real_csv
) -> None:
    """Batches made at test time from the real file: corrupted records, a non-CSV file, a good new batch."""
    lines = real_csv.read_text().splitlines()
    header, rows = lines[0], lines[1:]
    ids = [r.split(",", 1)[0] for r in rows]
    separated_id, broken_id = ids[5].replace("-", "\u2028"), ids[6].replace("-", "\n")
    corrupted = [
        rows[0],
        rows[1][:25],  # truncated
        rows[2].replace(rows[2].split(",")[18], "12x.4", 1),  # MonthlyCharges not a number
        rows[3]
        .replace("Month-to-month", "Fortnightly")
        .replace("One year", "Fortnightly")
        .replace("Two year", "Fortnightly"),
        rows[4],
        # the reported bug: a line separator in an id split the line and a customer "VHVEG" got in
        rows[5].replace(ids[5], separated_id, 1),
        rows[6].replace(ids[6], f'"{broken_id}"', 1),  # a quoted line break: the record is lines 8-9
    ]
    landing = materialized_copy.settings.landing_dir
    (landing / "b1_corrupted.csv").write_text("\n".join([header, *corrupted]) + "\n")
    (landing / "b2_report.pdf").write_bytes(b"%PDF-1.7\n\xe2\xe3\xcf\xd3 binary")
    renamed = [f"NEW-{i:04d}{r[r.index(',') :]}" for i, r in enumerate(rows[:20])]
    (landing / "b3_new_customers.csv").write_text("\n".join([header, *renamed]) + "\n")
    (landing / "b4_header_only.csv").write_text(header + "\n")

    results = materialized_copy.ingest()  # one run per landed file, as the landing sensor requests them

    assert all(r.success for r in results)
    files = {}
    for result in results:
        meta = _materialization(result, LANDED_FILES).metadata
        files[meta["source_file"].value] = (
            meta["status"].value,
            meta["rows_accepted"].value,
            meta["rows_rejected"].value,
        )
    assert files == {
        "b1_corrupted.csv": ("loaded", 2, 5),
        "b2_report.pdf": ("rejected", 0, 0),
        "b3_new_customers.csv": ("loaded", 20, 0),
        "b4_header_only.csv": ("rejected", 0, 0),
    }
    checks = {(r.run_id, c.check_name): c for r in results for c in r.get_asset_check_evaluations()}
    accepted = {run: c.passed for (run, name), c in checks.items() if name == "file_accepted"}
    assert sorted(accepted.values()) == [False, False, True, True]
    assert all(c.passed for (_, name), c in checks.items() if name == "rows_accounted_for")
    refused_runs = [r for r in results if not accepted[r.run_id]]
    for result in refused_runs:  # nothing downstream of a refused file: no raw rows, no drift report
        done = {e.asset_key for e in result.get_asset_materialization_events()}
        assert done == {LANDED_FILES}
    reasons = _query(
        materialized_copy,
        "select _row_number, reason from raw.rejected_rows where _source_file = 'b1_corrupted.csv' order by 1",
    )
    assert [n for n, _ in reasons] == [3, 4, 5, 7, 8]
    assert reasons[0][1].startswith("expected 21 fields")
    assert reasons[1][1] == "MonthlyCharges: not a non-negative number '12x.4'"
    assert reasons[2][1] == "Contract: unknown value 'Fortnightly'"
    unsafe_id = "customerID: contains a control or line-separator character"
    assert reasons[3][1] == f"{unsafe_id} '{separated_id.encode('unicode_escape').decode()}'"
    assert reasons[4][1] == f"{unsafe_id} '{broken_id.encode('unicode_escape').decode()}'"
    assert _query(
        materialized_copy,
        "select rows_in_file, rows_accepted, rows_rejected from raw.landed_files "
        "where source_file = 'b1_corrupted.csv'",
    ) == [(7, 2, 5)]
    assert _query(
        materialized_copy, "select count(*) from raw.customers where _source_file = 'b1_corrupted.csv'"
    ) == [(2,)]
    refused = dict(
        _query(
            materialized_copy, "select source_file, reason from raw.landed_files where status = 'rejected'"
        )
    )
    assert "not UTF-8" in refused["b2_report.pdf"]
    assert refused["b4_header_only.csv"] == "b4_header_only.csv: header only, no records"
    assert _query(materialized_copy, "select count(*) from marts.customer_features") == [(7043 + 20,)]

    assert materialized_copy.ingest() == []  # a re-scan requests nothing already recorded
    assert _query(materialized_copy, "select count(*) from raw.customers") == [(7043 + 22,)]
