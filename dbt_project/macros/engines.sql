{#-
    Engines (issue 21, docs/engines.md): what one engine spells differently from another, dispatched
    (`adapter.dispatch`: `<engine>__name` when it exists, else `default__name`), so that every model is
    written once and the marts carry the same columns and types on every engine.
-#}

{#- An 8-byte floating-point column type (DuckDB DOUBLE, PostgreSQL double precision). Not
    dbt.type_float(): that is `float`, a 4-byte REAL on DuckDB. -#}
{% macro type_double() -%}
    {{ return(adapter.dispatch('type_double', 'kizuna')()) }}
{%- endmacro %}

{% macro default__type_double() -%}
    double precision
{%- endmacro %}

{% macro spark__type_double() -%}
    double
{%- endmacro %}

{#- round(expression, digits) of a floating-point expression, a floating-point result on every engine.
    PostgreSQL rounds to given digits only a numeric: there the value goes through numeric and back. -#}
{% macro round_double(expression, digits) -%}
    {{ return(adapter.dispatch('round_double', 'kizuna')(expression, digits)) }}
{%- endmacro %}

{% macro default__round_double(expression, digits) -%}
    round({{ expression }}, {{ digits }})
{%- endmacro %}

{% macro postgres__round_double(expression, digits) -%}
    cast(round(cast({{ expression }} as numeric), {{ digits }}) as double precision)
{%- endmacro %}
