-- One typed, snake_case record per customer: the latest landed version across batches.
with

source as (

    select * from {{ source('raw', 'customers') }}

),

latest as (

    select *
    from source
    qualify row_number() over (
        partition by trim(customerID)
        order by _ingested_at desc, _batch_id desc, _row_number desc
    ) = 1

),

renamed as (

    select
        {{ staged_customer_columns() }},
        -- label
        case trim(Churn) when 'Yes' then 1 when 'No' then 0 end as churn,
        -- lineage
        _batch_id as batch_id,
        _source_file as source_file,
        _ingested_at as ingested_at

    from latest

)

select * from renamed
