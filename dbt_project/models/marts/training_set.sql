-- Features + label + a deterministic split. The split hashes the customer id (md5, salted), so a
-- customer keeps its split as data grows, and the label balance of each split follows the whole table's.
with

features as (

    select * from {{ ref('customer_features') }}

),

labels as (

    select
        customer_id,
        churn
    from {{ ref('stg_customers') }}

),

bucketed as (

    select
        features.*,
        labels.churn,
        cast(('0x' || left(md5('{{ var("split_salt") }}' || features.customer_id), 8)) as ubigint)
        % 100 as split_bucket
    from features
    inner join labels on features.customer_id = labels.customer_id

)

select
    *,
    case
        when split_bucket < {{ var("split_train_pct") }} then 'train'
        when split_bucket < {{ var("split_validation_pct") }} then 'validation'
        else 'test'
    end as split
from bucketed
