-- The People import's cohort: active customers of the embedded warehouse (include/warehouse), one row
-- per person with the identities Infobip matches on (email, else phone), the country used to read
-- national phone numbers, and the columns the DAG's field_map sends to Infobip People.
-- Plain ANSI SQL: runs unchanged on SQLite and PostgreSQL (Snowflake, BigQuery: same columns).
SELECT
    customer_id,
    email,
    phone,
    country,
    first_name,
    last_name,
    gender,
    birth_date,
    city,
    language,
    plan,
    lifetime_value
FROM customers
WHERE is_active = 1
ORDER BY customer_id
