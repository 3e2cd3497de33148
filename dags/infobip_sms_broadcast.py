"""Send one personalised SMS to every member of a cohort, exactly once, through Infobip.

Manual trigger only. The form starts as a **dry run**: it shows how many people would get a message,
how many SMS parts each takes (GSM-7 or UCS-2, and which characters force UCS-2) and the total.
Put your own number in *Test recipients* to receive the first rows' messages; clear it and turn
*Dry run* off to send to the cohort. A retried or cleared task never sends anyone a second message.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag

from infobip_provider.operators.sms import SmsBroadcastOperator

DEFAULT_TEXT = "Hi {{first_name}}, your {{plan}} plan now includes SMS alerts. Reply STOP to opt out."


@dag(
    dag_id="infobip_sms_broadcast",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    tags=["infobip", "sms"],
    doc_md=__doc__,
    params={
        "cohort_path": Param(
            "cohorts/customers.csv",
            type="string",
            title="Cohort file",
            description="CSV, Parquet or JSON Lines with a phone column: a path relative to include/, or "
            "a URI (file://, s3://, gs://). Used when no SQL is given.",
        ),
        "cohort_sql": Param(
            "",
            type="string",
            title="Cohort SQL",
            description="A query (or a .sql file under include/sql, e.g. sql/active_customers.sql) run on "
            "the warehouse connection. When set, it is used instead of the file.",
        ),
        "warehouse_conn_id": Param(
            "warehouse_default",
            type="string",
            title="Warehouse connection",
            description="Any Airflow SQL connection (SQLite, PostgreSQL, Snowflake ...) for the cohort SQL.",
        ),
        "text": Param(
            DEFAULT_TEXT,
            type="string",
            format="multiline",
            minLength=1,
            title="Message",
            description="The SMS text. {{column}} inserts the recipient's value of a cohort column "
            "(empty when missing); an unknown column stops the run before anything is sent.",
        ),
        "sender": Param(
            "",
            type="string",
            title="Sender",
            description="Alphanumeric sender (3-11 characters) or number (3-16 digits). Empty: the "
            "connection's sender extra.",
        ),
        "dry_run": Param(
            True,
            type="boolean",
            title="Dry run",
            description="Plan only: counts, SMS parts per message, total parts. Nothing is sent.",
        ),
        "test_recipients": Param(
            [],
            type="array",
            items={"type": "string"},
            title="Test recipients",
            description="Phone numbers (E.164, one per line). When given and Dry run is off, only these "
            "numbers get the messages of the first cohort rows; the cohort gets nothing.",
        ),
        "delivery_window": Param(
            {},
            type="object",
            title="Delivery window",
            description='When Infobip may deliver, in UTC, at least one hour long, e.g. {"days": '
            '["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY"], "from": "09:00", "to": "20:00"}. '
            "Empty: any time.",
        ),
    },
)
def infobip_sms_broadcast():
    SmsBroadcastOperator(
        task_id="broadcast",
        text="{{ params.text }}",
        cohort_path="{{ params.cohort_path }}",
        cohort_sql="{{ params.cohort_sql }}",
        cohort_conn_id="{{ params.warehouse_conn_id }}",
        phone_column="phone",
        country_column="country",
        sender="{{ params.sender }}",
        dry_run="{{ params.dry_run }}",
        test_recipients="{{ params.test_recipients }}",
        delivery_time_window="{{ params.delivery_window }}",
        max_segments=4,
        price_per_segment=0.01,  # EUR per SMS part: put your account's price here
    )


infobip_sms_broadcast()
