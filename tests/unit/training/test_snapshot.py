"""The training set's data version: computed streamed, the same value the one-string SQL gives."""

from __future__ import annotations

import duckdb

from churn_assets.training.snapshot import _data_version


def test_the_streamed_data_version_equals_md5_of_the_whole_table_as_one_string() -> None:
    conn = duckdb.connect()
    conn.execute("create schema marts")
    conn.execute(
        "create table marts.training_set as select * from (values "
        "('b-2', 3, null, 'x|y'), ('a-1', 1, 29.85::double, 'it''s'), ('c-3', 0, 0.0::double, '') "
        ") as t(customer_id, tenure_months, total_charges, note)"
    )
    conn.execute("insert into marts.training_set select 'd-' || i, i, i * 1.5, 'n' from range(250000) r(i)")
    (whole,) = conn.execute(
        "select md5(string_agg(t::varchar, '|' order by customer_id)) from marts.training_set t"
    ).fetchall()[0]
    assert _data_version(conn) == whole
