{#-
  The one definition of every engineered feature, as a SELECT over a relation of staged customers
  (the columns of staged_customer_columns). The customer_features mart applies it to stg_customers;
  the serving_features analysis applies it to request rows, and its compiled SQL ships with the model.

  Categoricals are one-hot encoded here, so the model input is purely numeric and a served row needs no
  Python-side encoder. Columns marked `model_input` in marts/customer_features.yml are the model input.
-#}
{% macro customer_features(staged_relation) %}
select
    -- ids
    customer_id,

    -- tenure
    tenure_months,
    case
        when tenure_months < 12 then '0-12'
        when tenure_months < 24 then '12-24'
        when tenure_months < 48 then '24-48'
        else '48+'
    end as tenure_bucket,
    tenure_months < 12 as is_new_customer,
    tenure_months >= 12 and tenure_months < 24 as is_tenure_12_24,
    tenure_months >= 24 and tenure_months < 48 as is_tenure_24_48,
    tenure_months >= 48 as is_tenure_48_plus,

    -- charges
    monthly_charges,
    total_charges,
    avg_monthly_spend,
    monthly_charges - avg_monthly_spend as monthly_charge_increase,
    case
        when tenure_months > 0 and monthly_charges > 0
            then total_charges / (tenure_months * monthly_charges)
        else 1.0
    end as charge_ratio,
    total_charges_was_blank,

    -- services
    has_phone_service,
    multiple_lines = 'Yes' as has_multiple_lines,
    internet_service,
    internet_service = 'DSL' as is_dsl,
    internet_service = 'Fiber optic' as is_fiber_optic,
    internet_service = 'No' as has_no_internet,
    online_security = 'Yes' as has_online_security,
    online_backup = 'Yes' as has_online_backup,
    device_protection = 'Yes' as has_device_protection,
    tech_support = 'Yes' as has_tech_support,
    streaming_tv = 'Yes' as has_streaming_tv,
    streaming_movies = 'Yes' as has_streaming_movies,
    num_addon_services,
    num_addon_services
        + cast(has_phone_service as integer)
        + cast(internet_service <> 'No' as integer) as num_services,
    streaming_tv = 'Yes' and streaming_movies = 'Yes' as has_streaming_bundle,
    online_security = 'Yes' and online_backup = 'Yes'
        and device_protection = 'Yes' and tech_support = 'Yes' as has_protection_bundle,
    has_phone_service and internet_service <> 'No' as has_phone_and_internet,

    -- contract and payment
    contract,
    contract = 'Month-to-month' as is_month_to_month,
    contract = 'One year' as is_one_year_contract,
    contract = 'Two year' as is_two_year_contract,
    payment_method,
    payment_method = 'Electronic check' as pays_by_electronic_check,
    payment_method = 'Mailed check' as pays_by_mailed_check,
    payment_method = 'Bank transfer (automatic)' as pays_by_bank_transfer,
    payment_method = 'Credit card (automatic)' as pays_by_credit_card,
    payment_method like '%(automatic)' as has_automatic_payment,
    is_paperless_billing,

    -- risk flags
    contract = 'Month-to-month' and payment_method = 'Electronic check' as is_month_to_month_echeck,
    internet_service = 'Fiber optic'
        and online_security <> 'Yes' and tech_support <> 'Yes' as is_fiber_without_support,

    -- demographics
    gender = 'Female' as is_female,
    is_senior_citizen,
    has_partner,
    has_dependents,

    -- segments
    case
        when contract = 'Two year' then 'committed'
        when contract = 'One year' then 'annual'
        when tenure_months < 12 then 'new_flexible'
        else 'established_flexible'
    end as customer_segment

from (
    select
        *,
        case
            when tenure_months > 0 then total_charges / tenure_months
            else monthly_charges
        end as avg_monthly_spend,
        cast(online_security = 'Yes' as integer)
            + cast(online_backup = 'Yes' as integer)
            + cast(device_protection = 'Yes' as integer)
            + cast(tech_support = 'Yes' as integer)
            + cast(streaming_tv = 'Yes' as integer)
            + cast(streaming_movies = 'Yes' as integer) as num_addon_services
    from {{ staged_relation }}
) as staged
{% endmacro %}
