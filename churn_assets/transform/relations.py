"""The dbt relations the Python side reads, by their warehouse names (`schema.model`).

dbt owns them (models/staging, models/marts; `generate_schema_name` keeps the custom schema as is); these
constants are their one home on the Python side, held to dbt's manifest by tests/unit/test_contracts.py.
"""

STG_CUSTOMERS_TABLE = "staging.stg_customers"
CUSTOMER_FEATURES_TABLE = "marts.customer_features"
TRAINING_SET_TABLE = "marts.training_set"
