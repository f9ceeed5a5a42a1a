"""Monitoring assets: the data profile of the cleaned table (exploratory analysis as an asset)."""

import dagster as dg
from dagster_dbt import get_asset_key_for_model

from churn_assets.monitoring.profile import build_data_profile
from churn_assets.resources import StateDirs, Warehouse
from churn_assets.transform.assets import churn_dbt_models

STG_CUSTOMERS = get_asset_key_for_model([churn_dbt_models], "stg_customers")


@dg.asset(
    deps=[STG_CUSTOMERS],
    group_name="monitoring",
    kinds={"evidently", "html"},
    pool="duckdb",
    automation_condition=dg.AutomationCondition.eager(),
    description="Types, missing values, target balance, distributions and churn associations of stg_customers.",
)
def data_profile(
    context: dg.AssetExecutionContext, warehouse: Warehouse, state: StateDirs
) -> dg.MaterializeResult:
    with warehouse.connect(read_only=True) as conn:
        frame = conn.execute("select * from staging.stg_customers").df()
    profile = build_data_profile(frame, state.reports / "data_profile")
    context.log.info(f"data profile written to {profile.html_path}")
    return dg.MaterializeResult(
        metadata={
            "summary": dg.MetadataValue.md(profile.markdown),
            "report_html": dg.MetadataValue.path(str(profile.html_path)),
            "churn_associations_html": dg.MetadataValue.path(str(profile.association_html_path)),
            "report_json": dg.MetadataValue.path(str(profile.json_path)),
            "dagster/row_count": profile.n_rows,
            "churn_rate": profile.target_rate,
        }
    )
