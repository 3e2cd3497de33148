-- Active customers of the embedded warehouse (include/warehouse/build_warehouse.py), one row each.
-- Runs as is; optional Jinja params (from the DAG's params) narrow it down:
--   params.countries  list of ISO codes, e.g. ["HR", "DE"]
--   params.plans      list of plans, e.g. ["pro", "enterprise"]
--   params.updated_since  'YYYY-MM-DD' or 'YYYY-MM-DDTHH:MM:SS' (incremental runs)
SELECT
    customer_id,
    email,
    phone,
    first_name,
    last_name,
    country,
    city,
    language,
    gender,
    birth_date,
    plan,
    lifetime_value,
    updated_at
FROM customers
WHERE is_active = 1
{%- if params is defined and params.get("countries") %}
  AND country IN ({% for c in params["countries"] %}'{{ c | replace("'", "''") }}'{{ ", " if not loop.last }}{% endfor %})
{%- endif %}
{%- if params is defined and params.get("plans") %}
  AND plan IN ({% for p in params["plans"] %}'{{ p | replace("'", "''") }}'{{ ", " if not loop.last }}{% endfor %})
{%- endif %}
{%- if params is defined and params.get("updated_since") %}
  AND updated_at >= '{{ params["updated_since"] | replace("'", "''") }}'
{%- endif %}
ORDER BY customer_id
