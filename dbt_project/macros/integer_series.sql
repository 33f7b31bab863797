{% macro integer_series(upper_bound=999) -%}
    {#- 0, 1, ..., upper_bound (at most 9999) as column `n`, from a cross join of digits (portable: no generate_series). -#}
    {%- set digits = 4 if upper_bound > 999 else (3 if upper_bound > 99 else 2) -%}
    select n from (
        select
            {% for i in range(digits) -%}
            d{{ i }}.digit * {{ 10 ** i }}{{ ' + ' if not loop.last }}
            {%- endfor %} as n
        from
            {% for i in range(digits) -%}
            (
                {% for d in range(10) -%}
                select {{ d }} as digit{{ ' union all ' if not loop.last }}
                {%- endfor %}
            ) as d{{ i }}{{ ',' if not loop.last }}
            {% endfor %}
    ) as integer_series
    where n <= {{ upper_bound }}
{%- endmacro %}

{% macro score_from_cut_points(expression, cut_points, descending=false) -%}
    {#- 1 + the number of cut points the value reaches (5 − that number when descending). -#}
    {%- set reached -%}
        {%- for cut in cut_points -%}
        case when {{ expression }} >= {{ cut }} then 1 else 0 end{{ ' + ' if not loop.last }}
        {%- endfor -%}
    {%- endset -%}
    {%- if descending -%}
    ({{ cut_points | length + 1 }} - ({{ reached }}))
    {%- else -%}
    (1 + {{ reached }})
    {%- endif -%}
{%- endmacro %}

{% macro safe_ratio(numerator, denominator) -%}
    {#- numerator / denominator as a floating-point number; null when the denominator is 0 or null.
        Divided as decimals, then cast to type_double(): DuckDB returns DOUBLE for the quotient itself,
        PostgreSQL and Spark a decimal; the cast gives every engine the same column type (engines, issue 21).
        round_ratio rounds such a quotient the same on every engine. -#}
    case
        when {{ denominator }} is null or {{ denominator }} = 0 then null
        else cast(cast({{ numerator }} as {{ dbt.type_numeric() }}) / {{ denominator }} as {{ type_double() }})
    end
{%- endmacro %}
