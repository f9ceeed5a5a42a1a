-- One row per customer with every engineered feature; the formulas live in the customer_features macro.
{{ customer_features(ref('stg_customers')) }}
