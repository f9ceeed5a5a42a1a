-- The feature SQL shipped with every registered model: the same two macros as stg_customers and
-- customer_features, applied to a relation named `request_rows` that holds raw Telco records
-- (the data set's own column names). Compiled by dbt, never run by it.
{{ customer_features('(select ' ~ staged_customer_columns() ~ ' from request_rows) as staged_request_rows') }}
