{#-
    Engines (issue 21, docs/engines.md): the `replace_customers` incremental strategy on Spark.

    dbt-spark accepts only its own strategies (append, merge, insert_overwrite, microbatch) and names no
    macro per strategy, so these two of its macros are taken over here (a root project's macro of the same
    name wins) and hand every other strategy back to dbt-spark's own.

    On Spark kizuna builds the replace_customers models whole every night (kizuna.engines.builds_incrementally
    is false there: the runner passes --full-refresh): the tables are Parquet, which has no DELETE; Delta
    (which has) needs jars that are not part of pyspark; and an `insert overwrite` of a Parquet table from a
    query that reads that same table is refused by Spark. An incremental run by hand stops with this reason.
-#}
{% macro dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format) %}
    {%- if raw_strategy == 'replace_customers' -%}
        {%- do return(raw_strategy) -%}
    {%- endif -%}
    {%- do return(spark.dbt_spark_validate_get_incremental_strategy(raw_strategy, file_format)) -%}
{% endmacro %}

{% macro dbt_spark_get_incremental_sql(strategy, source, target, existing, unique_key, incremental_predicates) %}
    {%- if strategy == 'replace_customers' -%}
        {%- do exceptions.raise_compiler_error(
            "On Spark the replace_customers models (" ~ target ~ ") are built whole: run dbt with --full-refresh "
            ~ "(kizuna does so on KIZUNA_ENGINE=spark). Parquet tables have no DELETE; docs/engines.md.") -%}
    {%- endif -%}
    {{- spark.dbt_spark_get_incremental_sql(strategy, source, target, existing, unique_key, incremental_predicates) -}}
{% endmacro %}
