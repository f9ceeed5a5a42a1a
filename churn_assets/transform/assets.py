"""dbt models as Dagster assets; dbt tests become asset checks on them."""

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, dbt_assets

from churn_assets.automation import BATCH_FRESHNESS, DBT_CONDITION
from churn_assets.resources import Dbt
from churn_assets.transform.project import dbt_project


class ChurnDbtTranslator(DagsterDbtTranslator):
    """dbt sources in the `ingestion` group, models in `transform`; models carry the batch freshness policy
    and rebuild when a batch added customers (``DBT_CONDITION``)."""

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "source":
            return "ingestion"
        return "transform"

    def get_asset_spec(self, manifest: Mapping[str, Any], unique_id: str, project: Any) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        if manifest["nodes"].get(unique_id, {}).get("resource_type") == "model":
            spec = spec.replace_attributes(freshness_policy=BATCH_FRESHNESS)
        return spec

    def get_automation_condition(
        self, dbt_resource_props: Mapping[str, Any]
    ) -> dg.AutomationCondition | None:
        return DBT_CONDITION


translator = ChurnDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_code_references=True))


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=translator,
    pool="duckdb",
)
def churn_dbt_models(context: dg.AssetExecutionContext, dbt: Dbt):
    yield from dbt.cli(["build"], context=context).stream()
