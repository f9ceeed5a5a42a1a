"""Every copy of the raw-data contract that cannot be derived from its owner, held to the owner.

The owner is `churn_assets.ingest.schema`: the columns, the label, the category values and the ranges.
Ingestion, the server's validation and the model's input signature are derived from it in Python. What
keeps its own text is compared with it here: dbt's YAML (`accepted_values`, `value_between`, the `raw`
source) and the feature and staging macros, run the way churn_assets runs them (dbt's compilation of the
analyses, on a DuckDB relation of raw records registered under the name the pyfunc and the server use),
the MLflow input signature and the request model's fields. A change made on one side only fails here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

import duckdb
import pyarrow as pa
import pytest
import yaml

from churn_assets.ingest.assets import RAW_CUSTOMERS, RAW_REJECTED
from churn_assets.ingest.schema import CATEGORIES, COLUMNS, ID_COLUMN, LABEL_COLUMN, RANGES
from churn_assets.ingest.store import (
    CUSTOMERS_TABLE,
    LINEAGE_COLUMNS,
    RAW_SCHEMA,
    REJECTED_TABLE,
    ensure_raw_tables,
)
from churn_assets.ml.pyfunc import REQUEST_RELATION, input_schema
from churn_assets.settings import DBT_PROJECT_DIR, Settings
from serving.schemas import EXAMPLE, CustomerRecord
from serving.validation import EXPLAIN, validate

INPUT_COLUMNS = [c for c in COLUMNS if c != LABEL_COLUMN]
INPUT_CATEGORIES = {c: values for c, values in CATEGORIES.items() if c != LABEL_COLUMN}
# The columns the feature macro one-hot encodes (README, *dbt project*): each of their values must have a
# model input of its own, true for that value and for no other.
ONE_HOT_ENCODED = ("InternetService", "Contract", "PaymentMethod")


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The serving and staging analyses as churn_assets compiles them (cached per version of the project)."""
    from churn_assets.definitions import build_definitions
    from churn_assets.transform.feature_sql import SERVING_ANALYSIS, STAGING_ANALYSIS, compile_analysis

    dbt = build_definitions(Settings(home=tmp_path_factory.mktemp("contracts") / "home")).resources["dbt"]
    return {name: compile_analysis(dbt, name) for name in (SERVING_ANALYSIS, STAGING_ANALYSIS)}


@pytest.fixture(scope="module")
def features_sql(compiled: dict[str, str]) -> str:
    from churn_assets.transform.feature_sql import SERVING_ANALYSIS

    return compiled[SERVING_ANALYSIS]


@pytest.fixture(scope="module")
def staging_sql(compiled: dict[str, str]) -> str:
    from churn_assets.transform.feature_sql import STAGING_ANALYSIS

    return compiled[STAGING_ANALYSIS]


def _run(sql: str, rows: Sequence[dict[str, str]]) -> dict[str, list[Any]]:
    """`sql` over `rows` (raw records as text) registered as the request relation; its result by column."""
    with duckdb.connect() as conn:
        conn.register(REQUEST_RELATION, pa.Table.from_pylist(list(rows)))
        cursor = conn.execute(sql)
        names, rows = [d[0] for d in cursor.description], cursor.fetchall()
    return {name: [row[i] for row in rows] for i, name in enumerate(names)}


def _varied(column: str, values: Sequence[str], base: dict[str, str] | None = None) -> list[dict[str, str]]:
    """A record once per value of `column`, every other field as in `base` (default: the API's example)."""
    base = base or {c: str(EXAMPLE[c]) for c in INPUT_COLUMNS}
    return [base | {ID_COLUMN: f"{column}-{i}", column: value} for i, value in enumerate(values)]


def _bases() -> list[dict[str, str]]:
    """Example records whose categories all take their first values, then all their second, ... (so a
    feature that also depends on another column cannot pass for a one-hot column in every one of them)."""
    example = {c: str(EXAMPLE[c]) for c in INPUT_COLUMNS}
    widest = max(map(len, INPUT_CATEGORIES.values()))
    return [example | {c: v[k % len(v)] for c, v in INPUT_CATEGORIES.items()} for k in range(widest)]


def _staged_text_columns(staging_sql: str) -> dict[str, str]:
    """Raw category column -> the staged column that carries its values as they are (found by running the
    staging SQL); a category staged as a flag (Partner -> has_partner) has none."""
    found = {}
    for column, values in INPUT_CATEGORIES.items():
        staged = _run(staging_sql, _varied(column, values))
        matches = [name for name, got in staged.items() if got == list(values)]
        if matches:
            (found[column],) = matches
    return found


def _dbt_columns(model: str) -> dict[str, dict]:
    """The columns a dbt YAML file under models/ declares for `model` (YAML anchors resolved)."""
    for path in sorted((DBT_PROJECT_DIR / "models").rglob("*.yml")):
        for declared in yaml.safe_load(path.read_text()).get("models", []):
            if declared["name"] == model:
                return {column["name"]: column for column in declared.get("columns", [])}
    raise AssertionError(f"no dbt YAML declares the model {model}")


def _tests(column: dict, name: str) -> Iterator[dict]:
    """The arguments of every `name` data test on a declared column."""
    for test in column.get("data_tests", []):
        if isinstance(test, dict) and name in test:
            yield test[name].get("arguments", test[name])


def test_every_staged_text_category_has_the_contracts_values_as_accepted_values(staging_sql: str) -> None:
    staged = _staged_text_columns(staging_sql)
    assert set(staged) >= set(ONE_HOT_ENCODED), staged  # the search found the text columns
    declared = _dbt_columns("stg_customers")
    for column, name in staged.items():
        accepted = [args["values"] for args in _tests(declared.get(name, {}), "accepted_values")]
        assert accepted == [list(CATEGORIES[column])], f"stg_customers.{name} (from {column})"


def test_dbt_range_tests_are_the_contracts_ranges(staging_sql: str) -> None:
    declared = _dbt_columns("stg_customers")
    for column, (low, high) in RANGES.items():
        staged = _run(staging_sql, _varied(column, [str(low), str(high)]))
        (name,) = [n for n, got in staged.items() if got == [low, high]]
        bounds = list(_tests(declared.get(name, {}), "value_between"))
        assert bounds == [{"min_value": low, "max_value": high}], f"stg_customers.{name} (from {column})"


def test_staging_compares_raw_columns_only_with_their_category_values(staging_sql: str) -> None:
    compared = re.findall(r"cast\((\w+) as varchar\)\)\s*(?:=|<>|!=)\s*'([^']*)'", staging_sql)
    assert compared, "the staging SQL compares no raw column with a value: the pattern is out of date"
    for column, value in compared:
        assert value in CATEGORIES[column], f"staging compares {column} with {value!r}"


def test_features_compare_staged_categories_only_with_their_values(
    features_sql: str, staging_sql: str
) -> None:
    raw_of = {staged: column for column, staged in _staged_text_columns(staging_sql).items()}
    compared = re.findall(r"\b(\w+)\s*(=|<>|!=|like)\s*'([^']*)'", features_sql, flags=re.IGNORECASE)
    checked = [(name, op, value) for name, op, value in compared if name in raw_of]
    assert checked, "the feature SQL compares no staged category with a value: the pattern is out of date"
    for name, op, value in checked:
        values = CATEGORIES[raw_of[name]]
        if op.lower() == "like":
            pattern = re.compile(re.escape(value).replace("%", ".*").replace("_", "."))
            assert any(pattern.fullmatch(v) for v in values), f"{name} like {value!r} matches no value"
        else:
            assert value in values, f"the feature macro compares {name} with {value!r}"


def test_one_hot_encoded_columns_have_a_model_input_per_value(features_sql: str) -> None:
    from churn_assets.training.snapshot import model_input_columns
    from churn_assets.transform.project import dbt_project

    inputs = model_input_columns(json.loads(dbt_project.manifest_path.read_text()))
    for column in ONE_HOT_ENCODED:
        values = CATEGORIES[column]
        by_base = [_run(features_sql, _varied(column, values, base)) for base in _bases()]
        for i, value in enumerate(values):
            alone = [j == i for j in range(len(values))]
            indicators = [name for name in inputs if all(features.get(name) == alone for features in by_base)]
            assert indicators, f"no model input is true for {column} = {value!r} alone, whatever the rest"


def test_every_input_category_reaches_the_features(features_sql: str) -> None:
    for column, values in INPUT_CATEGORIES.items():
        features = _run(features_sql, _varied(column, values))
        rows = {
            tuple(got[i] for name, got in features.items() if name != "customer_id")
            for i in range(len(values))
        }
        assert len(rows) > 1, f"the features do not change with {column}"


def test_the_model_signature_is_every_raw_column_but_the_label() -> None:
    schema = input_schema()
    assert schema.input_names() == INPUT_COLUMNS
    assert schema.optional_input_names() == []


def test_the_request_model_and_the_validation_take_exactly_the_input_columns() -> None:
    assert list(CustomerRecord.model_fields) == [*INPUT_COLUMNS, EXPLAIN]
    assert list(EXAMPLE) == INPUT_COLUMNS
    assert list(validate(dict(EXAMPLE), single=True, limit=1).columns) == INPUT_COLUMNS


def test_the_dbt_raw_source_is_what_ingestion_writes() -> None:
    with duckdb.connect() as conn:
        ensure_raw_tables(conn)
        written: dict[str, list[str]] = {}
        for schema, table, column in conn.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "order by table_schema, table_name, ordinal_position"
        ).fetchall():
            written.setdefault(f"{schema}.{table}", []).append(column)
    assert written[CUSTOMERS_TABLE] == [*COLUMNS, *LINEAGE_COLUMNS]
    asset_keys = {CUSTOMERS_TABLE: RAW_CUSTOMERS, REJECTED_TABLE: RAW_REJECTED}
    (source,) = yaml.safe_load((DBT_PROJECT_DIR / "models" / "staging" / "__sources.yml").read_text())[
        "sources"
    ]
    assert source["schema"] == RAW_SCHEMA
    for table in source["tables"]:
        relation = f"{source['schema']}.{table['name']}"
        assert relation in written, f"dbt reads {relation}, which ingestion does not write"
        declared = [column["name"] for column in table["columns"]]
        assert set(declared) <= set(written[relation]), f"{relation}: {declared}"
        assert [c for c in declared if c in LINEAGE_COLUMNS] == list(LINEAGE_COLUMNS), relation
        assert table["meta"]["dagster"]["asset_key"] == list(asset_keys[relation].path), relation


def test_the_relations_python_reads_are_dbt_models() -> None:
    from churn_assets.transform import relations
    from churn_assets.transform.project import dbt_project

    nodes = json.loads(dbt_project.manifest_path.read_text())["nodes"].values()
    models = {f"{n['schema']}.{n['alias']}" for n in nodes if n["resource_type"] == "model"}
    names = {value for name, value in vars(relations).items() if name.endswith("_TABLE")}
    assert names and names <= models, names - models
