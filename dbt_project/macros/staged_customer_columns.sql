{#-
  Rename and cast one raw Telco record (the data set's own column names) into typed, snake_case columns.
  Applied to the landed raw table by stg_customers and to request rows by the serving path, so it accepts
  values as text (as landed) or already typed (as posted as JSON).

  TotalCharges is blank for the 11 customers in their first month (tenure 0): nothing has been billed yet,
  so total_charges is 0.0 and total_charges_was_blank records that it was missing.
-#}
{% macro staged_customer_columns() %}
    -- ids
    trim(cast(customerID as varchar)) as customer_id,
    -- demographics
    trim(cast(gender as varchar)) as gender,
    cast(trim(cast(SeniorCitizen as varchar)) as integer) = 1 as is_senior_citizen,
    trim(cast(Partner as varchar)) = 'Yes' as has_partner,
    trim(cast(Dependents as varchar)) = 'Yes' as has_dependents,
    -- account
    cast(trim(cast(tenure as varchar)) as integer) as tenure_months,
    trim(cast(Contract as varchar)) as contract,
    trim(cast(PaperlessBilling as varchar)) = 'Yes' as is_paperless_billing,
    trim(cast(PaymentMethod as varchar)) as payment_method,
    -- services
    trim(cast(PhoneService as varchar)) = 'Yes' as has_phone_service,
    trim(cast(MultipleLines as varchar)) as multiple_lines,
    trim(cast(InternetService as varchar)) as internet_service,
    trim(cast(OnlineSecurity as varchar)) as online_security,
    trim(cast(OnlineBackup as varchar)) as online_backup,
    trim(cast(DeviceProtection as varchar)) as device_protection,
    trim(cast(TechSupport as varchar)) as tech_support,
    trim(cast(StreamingTV as varchar)) as streaming_tv,
    trim(cast(StreamingMovies as varchar)) as streaming_movies,
    -- charges
    cast(trim(cast(MonthlyCharges as varchar)) as double) as monthly_charges,
    coalesce(cast(nullif(trim(cast(TotalCharges as varchar)), '') as double), 0.0) as total_charges,
    nullif(trim(coalesce(cast(TotalCharges as varchar), '')), '') is null as total_charges_was_blank
{% endmacro %}
