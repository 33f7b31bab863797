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

{#- round(numerator / denominator, digits), the same on every engine, a floating-point result (null when the
    denominator is 0 or null): money and averages shown to a cent or a tenth of a thousandth.
    The quotient is rounded as a decimal, half away from zero, from its value to 8 decimal places: PostgreSQL
    and Spark divide decimals exactly, DuckDB divides them as doubles (4188.775 is 4188.77499999999963...
    there, which its round() on the double takes down to .77 where the others give .78). Eight places hold
    the double's error for any value below ten million and decide such a tie as the exact quotient does. -#}
{% macro round_ratio(numerator, denominator, digits) -%}
    cast(round(cast({{ safe_ratio(numerator, denominator) }} as decimal(38, 8)), {{ digits }}) as {{ type_double() }})
{%- endmacro %}
