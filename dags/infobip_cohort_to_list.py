"""Keep an Infobip list equal to a cohort, every day, sending only who entered and who left.

Trigger it from the UI to pick another cohort file, a warehouse query or a dry run; try it with
``airflow tasks test infobip_cohort_to_list sync_list 2026-01-01``.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag

from infobip_provider.operators.lists import CohortToListOperator


@dag(
    dag_id="infobip_cohort_to_list",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    tags=["infobip", "lists"],
    doc_md=__doc__,
    params={
        "cohort_path": Param(
            "cohorts/customers.csv",
            type="string",
            title="Cohort file",
            description="CSV, Parquet or JSON Lines: a path relative to include/, or a URI "
            "(file://, s3://, gs://). Used when no SQL is given.",
        ),
        "cohort_sql": Param(
            "",
            type="string",
            title="Cohort SQL",
            description="A query (or a .sql file under include/sql) run on the warehouse connection. "
            "When set, it is used instead of the file.",
        ),
        "warehouse_conn_id": Param(
            "warehouse_default",
            type="string",
            title="Warehouse connection",
            description="Any Airflow SQL connection (SQLite, PostgreSQL, Snowflake ...) for the cohort SQL.",
        ),
        "list_name": Param(
            "Airflow demo customers",
            type="string",
            minLength=1,
            title="List name",
            description="The Infobip list kept equal to the cohort; created on the first run.",
        ),
        "id_column": Param(
            "email",
            type="string",
            title="User id column",
            description="The cohort column holding each member's user id (an email).",
        ),
        "mode": Param(
            "mirror",
            enum=["mirror", "add_only"],
            title="Mode",
            description="mirror: add who entered and remove who left. add_only: never remove.",
        ),
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description="Compute and show the plan without calling Infobip.",
        ),
    },
)
def infobip_cohort_to_list():
    CohortToListOperator(
        task_id="sync_list",
        list_name="{{ params.list_name }}",
        cohort_path="{{ params.cohort_path }}",
        cohort_sql="{{ params.cohort_sql }}",
        cohort_conn_id="{{ params.warehouse_conn_id }}",
        id_column="{{ params.id_column }}",
        mode="{{ params.mode }}",
        dry_run="{{ params.dry_run }}",
    )


infobip_cohort_to_list()
