"""Upsert a cohort into Infobip People every hour and keep its audience tag in step.

Each member becomes a person (matched by email, else phone) with the mapped fields and carries the
tag while in the cohort; people who leave lose the tag and are never deleted. Only what changed since
the last confirmed run is sent. By default the cohort is ``include/sql/people_cohort.sql`` on the
embedded SQLite warehouse (connection ``warehouse_default``); point ``warehouse_conn_id`` at any
Airflow SQL connection (PostgreSQL, Snowflake, BigQuery ...) or give ``cohort_path`` for a file.
Try it with ``airflow dags test infobip_people_import`` or trigger it with ``dry_run`` on.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag

from infobip_provider.operators.people import PeopleImportOperator

#: The embedded warehouse's columns (include/warehouse/build_warehouse.py) → Infobip Person fields.
DEFAULT_FIELD_MAP = {
    "first_name": "firstName",
    "last_name": "lastName",
    "gender": "gender",
    "birth_date": "birthDate",
    "city": "city",
    "language": "preferredLanguage",
    "plan": "plan",
    "lifetime_value": "lifetimeValue",
}


@dag(
    dag_id="infobip_people_import",
    schedule="@hourly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    tags=["infobip", "people"],
    doc_md=__doc__,
    params={
        "cohort_sql": Param(
            "sql/people_cohort.sql",
            type="string",
            title="Cohort SQL",
            description="A query, or a .sql file under include/sql, run on the warehouse connection. "
            "Leave empty to read the cohort file instead.",
        ),
        "warehouse_conn_id": Param(
            "warehouse_default",
            type="string",
            title="Warehouse connection",
            description="Any Airflow SQL connection (SQLite, PostgreSQL, Snowflake, BigQuery ...) the cohort "
            "SQL runs on.",
        ),
        "cohort_path": Param(
            "",
            type="string",
            title="Cohort file",
            description="CSV, Parquet or JSON Lines: a path relative to include/ or a URI (file://, s3://, "
            "gs://), with the columns email, phone, country (to read national numbers) and those of the "
            "field map. Used only when the cohort SQL is empty.",
        ),
        "tag": Param(
            "",
            type="string",
            maxLength=256,
            title="Audience tag",
            description="The Infobip tag members carry (created when missing, at most 256 characters). "
            "Empty: infobip_people_import.import_people.",
        ),
        "person_type": Param(
            "CUSTOMER",
            enum=["CUSTOMER", "LEAD"],
            title="Person type",
            description="The Infobip type given to every imported person.",
        ),
        "field_map": Param(
            DEFAULT_FIELD_MAP,
            type="object",
            title="Field map",
            description="{cohort column: Infobip field}. Standard Person fields (firstName, lastName, "
            "middleName, gender, birthDate, address, city, country, preferredLanguage, externalId) go "
            "top-level; any other target is a custom attribute. Every column named must be in the cohort.",
        ),
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description="Compute and show the plan (upserts, tag additions and removals) without calling "
            "Infobip.",
        ),
    },
)
def infobip_people_import():
    PeopleImportOperator(
        task_id="import_people",
        tag="{{ params.tag }}",
        cohort_sql="{{ params.cohort_sql }}",
        cohort_conn_id="{{ params.warehouse_conn_id }}",
        cohort_path="{{ params.cohort_path }}",
        email_column="email",
        phone_column="phone",
        external_id_column="customer_id",
        country_column="country",
        person_type="{{ params.person_type }}",
        field_map="{{ params.field_map }}",
        dry_run="{{ params.dry_run }}",
    )


infobip_people_import()
