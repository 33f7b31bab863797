{#- Days after a send within which an order counts as its conversion (var `conversion_window_days`,
    which kizuna's runner sets from KIZUNA_CONVERSION_WINDOW_DAYS; default 30 in dbt_project.yml). -#}
{% macro conversion_window_days() -%}
    {{ var('conversion_window_days') | int }}
{%- endmacro %}
