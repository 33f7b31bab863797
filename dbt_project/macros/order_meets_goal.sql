{#- True when an order (alias `o`, a marts.fct_orders row) is the goal `goal` of a scenario:
    second_order: the customer's second counted purchase; subscription_start: the first delivery
    of a subscription; new_order: any counted order. -#}
{% macro order_meets_goal(goal, o='o') -%}
    case {{ goal }}
        when 'second_order' then {{ o }}.purchase_sequence_number = 2
        when 'subscription_start' then {{ o }}.order_kind = 'subscription' and {{ o }}.delivery_number = 1
        else true
    end
{%- endmacro %}
