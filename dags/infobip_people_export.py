"""Copy Infobip People into a warehouse table every hour: the first run takes everyone, later runs
only the people modified since the last one.

One row per person (id, external id, type, standard fields, emails, phones, tags, custom attributes
as JSON, created and modified times), upserted by person id through the warehouse connection's own
SQL hook; the table is created when missing. Or give ``output_uri`` for Parquet files instead.
The task's output is the Asset ``infobip://<account>/people``: schedule a DAG on it to model the
table after each export. Try it with ``airflow dags test infobip_people_export``.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag

from infobip_provider.transfers.people_to_sql import InfobipPeopleToSqlOperator

SOURCE = "Source"
DESTINATION = "Destination"


@dag(
    dag_id="infobip_people_export",
    description="Infobip People into a warehouse table (upsert by person id) or Parquet files, incrementally",
    schedule="@hourly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    tags=["infobip", "people", "export"],
    doc_md=__doc__,
    params={
        "tags": Param(
            None,
            type=["null", "array"],
            items={"type": "string"},
            title="Tags",
            description="Export only people carrying any of these Infobip tags. Empty: everyone.",
            section=SOURCE,
        ),
        "warehouse_conn_id": Param(
            "warehouse_default",
            type=["null", "string"],
            title="Warehouse connection",
            description="The Airflow SQL connection the table is on (SQLite, PostgreSQL ...). "
            "Not used with an output URI.",
            section=DESTINATION,
        ),
        "table": Param(
            "infobip_people",
            type=["null", "string"],
            title="Table",
            description="The table people are upserted into (created when missing), optionally "
            "schema-qualified. Leave empty to write files to the output URI instead.",
            section=DESTINATION,
        ),
        "output_uri": Param(
            None,
            type=["null", "string"],
            title="Output URI",
            description="Instead of a table: a folder or object-store URI (file:///data/people, "
            "s3://bucket/infobip/people) that gets Parquet files. Give this or a table, not both.",
            section=DESTINATION,
        ),
    },
)
def infobip_people_export():
    InfobipPeopleToSqlOperator(
        task_id="export_people",
        sql_conn_id="{{ None if params.output_uri else params.warehouse_conn_id }}",
        table="{{ None if params.output_uri else params.table }}",
        output_uri="{{ params.output_uri }}",
        tags="{{ params.tags }}",
    )


infobip_people_export()
