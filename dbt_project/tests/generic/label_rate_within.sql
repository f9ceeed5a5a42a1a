{#-
  Groups of `group_by` whose mean of the 0/1 `column_name` differs from the overall mean by more than
  `tolerance`: guards that a hash-based split keeps the label balance of the whole table.
-#}
{% test label_rate_within(model, column_name, group_by, tolerance) %}
with overall as (
    select avg({{ column_name }}) as rate from {{ model }}
),
grouped as (
    select {{ group_by }} as grp, avg({{ column_name }}) as rate, count(*) as n
    from {{ model }}
    group by {{ group_by }}
)
select grouped.*
from grouped, overall
where abs(grouped.rate - overall.rate) > {{ tolerance }}
{% endtest %}
