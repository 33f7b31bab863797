{#-
    The incremental strategy of the order- and customer-level models (config
    `incremental_strategy='replace_customers'`; docs/modelling.md): every row of a customer in
    `int_changed_customers` is deleted and the customer's rows computed tonight are inserted.

    Not dbt's delete+insert on `customer_id`: that deletes only the customers present in the new
    rows, so a customer whose only counted order was cancelled tonight would keep it. With no
    `changed_after` (a build by hand) every row is replaced.
-#}
{% macro get_incremental_replace_customers_sql(arg_dict) %}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    delete from {{ target }}
    {%- if (var('changed_after') | string | trim) != '' %}
    where customer_id in (select customer_id from {{ ref('int_changed_customers') }})
    {%- endif %};
    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ arg_dict['temp_relation'] }}
{% endmacro %}


{#- The rows of customers whose orders changed tonight, on an incremental run (see above). -#}
{% macro only_changed_customers(column='customer_id') -%}
    {%- if is_incremental() -%}
    where {{ column }} in (select customer_id from {{ ref('int_changed_customers') }})
    {%- endif -%}
{%- endmacro %}
