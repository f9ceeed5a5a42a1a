-- The staging of stg_customers (renamed, typed) applied to a relation named `request_rows` of raw Telco
-- records: how the drift report turns logged served traffic into the columns of the champion's
-- training reference. Compiled by dbt, never run by it.
select {{ staged_customer_columns() }} from request_rows
