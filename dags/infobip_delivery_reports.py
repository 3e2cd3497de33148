"""Collect delivery reports and replies into warehouse tables every 15 minutes.

``collect_reports`` pulls Infobip's SMS and email delivery reports (each handed out once) and takes
the SMS, email and WhatsApp reports Infobip pushed to the receiver, into one row per message with
its status, error, price and a bounce class (delivered, soft_bounce, hard_bounce, spam_bounce,
dropped, pending; Synerise's mapping for email). ``collect_replies`` pulls inbound SMS (and takes
pushed SMS and WhatsApp messages) into a table where opt-out words (STOP, UNSUBSCRIBE, STOPALL,
CANCEL, END, QUIT and the DAG's ``opt_out_keywords``) are marked. Every page is landed in the state
store before it is inserted, and rows are upserted by message id: a killed task loses and
duplicates nothing. ``collect_seen`` takes the seen reports Infobip pushed to the receiver (who read
which message, when). Outputs: the Assets ``infobip://<account>/reports/<channel>``,
``infobip://<account>/replies/<channel>`` and ``infobip://<account>/seen/<channel>``.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag

from infobip_provider.outcomes import CHANNELS as REPORT_CHANNELS
from infobip_provider.outcomes import REPLY_CHANNELS
from infobip_provider.transfers.reports_to_sql import (
    InfobipRepliesToSqlOperator,
    InfobipReportsToSqlOperator,
    InfobipSeenToSqlOperator,
)

DESTINATION = "Destination"
REPLIES = "Replies"


@dag(
    dag_id="infobip_delivery_reports",
    description="Delivery reports (with bounce classes) and replies (opt-outs marked) into warehouse tables",
    schedule=timedelta(minutes=15),
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    default_args={"retries": 3, "retry_delay": timedelta(minutes=1)},
    tags=["infobip", "sms", "email", "reports"],
    doc_md=__doc__,
    params={
        "warehouse_conn_id": Param(
            "warehouse_default",
            type="string",
            minLength=1,
            title="Warehouse connection",
            description="The Airflow SQL connection the tables are on (SQLite, PostgreSQL ...).",
            section=DESTINATION,
        ),
        "reports_table": Param(
            "infobip_delivery_reports",
            type="string",
            minLength=1,
            title="Reports table",
            description="One row per message: status, error, price, bounce class (created when missing).",
            section=DESTINATION,
        ),
        "channels": Param(
            ["sms", "email", "whatsapp"],
            type="array",
            items={"type": "string", "enum": list(REPORT_CHANNELS)},
            title="Report channels",
            description="The channels whose delivery reports are collected (WhatsApp's: those the "
            "receiver got, see the README).",
            section=DESTINATION,
        ),
        "replies_table": Param(
            "infobip_replies",
            type="string",
            minLength=1,
            title="Replies table",
            description="One row per inbound SMS, opt-outs marked (created when missing).",
            section=DESTINATION,
        ),
        "seen_table": Param(
            "infobip_seen_reports",
            type="string",
            minLength=1,
            title="Seen reports table",
            description="One row per message read, from the seen reports Infobip pushed to the "
            "receiver (created when missing).",
            section=DESTINATION,
        ),
        "opt_out_keywords": Param(
            None,
            type=["null", "array"],
            items={"type": "string"},
            title="More opt-out words",
            description="Besides STOP, UNSUBSCRIBE, STOPALL, CANCEL, END and QUIT (any case).",
            section=REPLIES,
        ),
    },
)
def infobip_delivery_reports():
    InfobipReportsToSqlOperator(
        task_id="collect_reports",
        sql_conn_id="{{ params.warehouse_conn_id }}",
        table="{{ params.reports_table }}",
        channels="{{ params.channels }}",
    )
    InfobipRepliesToSqlOperator(
        task_id="collect_replies",
        sql_conn_id="{{ params.warehouse_conn_id }}",
        table="{{ params.replies_table }}",
        channels=list(REPLY_CHANNELS),
        opt_out_keywords="{{ params.opt_out_keywords }}",
    )
    InfobipSeenToSqlOperator(
        task_id="collect_seen",
        sql_conn_id="{{ params.warehouse_conn_id }}",
        table="{{ params.seen_table }}",
        channels="{{ params.channels }}",
    )


infobip_delivery_reports()
