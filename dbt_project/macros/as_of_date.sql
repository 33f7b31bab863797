{% macro as_of_date(run_date) -%}
    {%- if run_date is none or (run_date | string | trim) == '' -%}
        {%- set zone = modules.pytz.timezone(var('shop_timezone', 'Asia/Tokyo')) -%}
        {%- set iso_date = run_started_at.astimezone(zone).strftime('%Y-%m-%d') -%}
    {%- else -%}
        {%- set iso_date = run_date | string | trim -%}
        {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', iso_date) -%}
            {{ exceptions.raise_compiler_error("var('run_date') must be a date as YYYY-MM-DD, got: " ~ iso_date) }}
        {%- endif -%}
    {%- endif -%}
    cast('{{ iso_date }}' as date)
{%- endmacro %}
