"""Trigger-form params every example DAG shares, and the operator arguments that read them.

The cohort is chosen the same way on every DAG: the param the user set wins; a file *and* a query is
a clear error (see :func:`~infobip_provider.operators.common.cohort_source_for`); neither uses the
DAG's sample file. Optional params are nullable (``["null", "string"]``): Airflow's trigger form
treats a param whose type excludes null as required and would not let a user trigger with defaults.

Cheap to import: DAG files use it at parse time.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param

COHORT = "Cohort"
TARGET = "Infobip target"
SAFETY = "Safety"
SCHEDULE = "Schedule"

#: The sample cohort under ``include/`` a DAG reads when the user names no cohort.
SAMPLE_COHORT = "cohorts/customers.csv"


def optional_text(title: str, description: str, section: str, **schema: Any) -> Param:
    """A text param that may stay empty in the trigger form."""
    return Param(
        None, type=["null", "string"], title=title, description=description, section=section, **schema
    )


def cohort_params(columns: str) -> dict[str, Param]:
    """``cohort_path``, ``cohort_sql`` and ``warehouse_conn_id``; ``columns`` says what the cohort needs."""
    return {
        "cohort_path": optional_text(
            "Cohort file",
            f"CSV, Parquet or JSON Lines with {columns}: a path relative to include/, or a URI (file://, "
            f"s3://, gs://). Leave this and the SQL empty to use the sample {SAMPLE_COHORT}.",
            COHORT,
        ),
        "cohort_sql": optional_text(
            "Cohort SQL",
            "Instead of a file: a query, or a .sql file under include/sql (e.g. sql/active_customers.sql), "
            "run on the warehouse connection. Give a file or a query, not both.",
            COHORT,
            format="multiline",
        ),
        "warehouse_conn_id": Param(
            "warehouse_default",
            type="string",
            minLength=1,
            title="Warehouse connection",
            description="The Airflow SQL connection the cohort SQL runs on (SQLite, PostgreSQL, Snowflake, "
            "BigQuery ...). Not used for a file.",
            section=COHORT,
        ),
    }


def dry_run_param(default: bool, description: str) -> Param:
    return Param(default, type="boolean", title="Dry run", description=description, section=SAFETY)


#: Operator arguments reading :func:`cohort_params`: the file the user named; else nothing when a
#: query was given; else the sample. Blank text counts as not given.
COHORT_ARGS = {
    "cohort_path": "{{ (params.cohort_path or '') | trim or ('' if (params.cohort_sql or '') | trim else '"
    + SAMPLE_COHORT
    + "') }}",
    "cohort_sql": "{{ params.cohort_sql }}",
    "cohort_conn_id": "{{ params.warehouse_conn_id }}",
}


def respect_params() -> dict[str, Param]:
    """The broadcasts' params that respect the recipients: quiet hours in local time, a frequency cap
    and the account's suppression list (see :mod:`infobip_provider.respect`)."""
    return {
        "quiet_hours": Param(
            None,
            type=["null", "object"],
            title="Quiet hours (local time)",
            description='No messages between these hours in each member\'s own time zone, e.g. {"from": '
            '"21:00", "to": "09:00"} (send 09:00-21:00 local), optionally with "days": ["MONDAY", ...]. '
            "The zone comes from a timezone column, else the phone number, else the default zone. Empty: "
            "any time.",
            section=SCHEDULE,
        ),
        "default_timezone": Param(
            "UTC",
            type="string",
            minLength=1,
            title="Default time zone",
            description="Used only with quiet hours: the zone (e.g. Europe/London) of members whose row and "
            "number name none.",
            section=SCHEDULE,
        ),
        "max_per_person": Param(
            None,
            type=["null", "object"],
            title="Frequency cap",
            description='At most this many messages per person on this channel, e.g. {"count": 1, '
            '"hours": 24}: members who already got them from this library\'s broadcasts are skipped '
            "(frequency_cap). Empty: no cap.",
            section=SAFETY,
        ),
        "respect_suppression": Param(
            True,
            type="boolean",
            title="Respect the suppression list",
            description="Skip members who opted out (STOP replies), hard or spam bounced, or are on your "
            "suppression file (reason: suppressed). Untick only to send to them on purpose.",
            section=SAFETY,
        ),
        "suppression_path": optional_text(
            "Suppression file",
            "Your own do-not-contact list (CSV, Parquet or JSON Lines with a phone or email column): added "
            "to the account's suppression list; giving the file again replaces what it listed before.",
            SAFETY,
        ),
        "reports_table": Param(
            "infobip_delivery_reports",
            type=["null", "string"],
            title="Bounces table (from infobip_delivery_reports)",
            description="The infobip_delivery_reports DAG's reports table on the warehouse connection: "
            "its hard and spam bounces feed the suppression list. Use the same name as that DAG; empty: "
            "not read (on purpose). A table that cannot be read stops the broadcast before it sends.",
            section=SAFETY,
        ),
        "replies_table": Param(
            "infobip_replies",
            type=["null", "string"],
            title="Opt-outs table (from infobip_delivery_reports)",
            description="The infobip_delivery_reports DAG's replies table on the warehouse connection: "
            "its opt-outs (STOP ...) feed the suppression list. Use the same name as that DAG; empty: "
            "not read (on purpose). A table that cannot be read stops the broadcast before it sends.",
            section=SAFETY,
        ),
    }


#: Operator arguments reading :func:`respect_params`; the outcomes tables are on the warehouse.
RESPECT_ARGS = {
    "quiet_hours": "{{ params.quiet_hours }}",
    "default_timezone": "{{ params.default_timezone }}",
    "max_per_person": "{{ params.max_per_person }}",
    "respect_suppression": "{{ params.respect_suppression }}",
    "suppression_path": "{{ params.suppression_path }}",
    "outcomes_conn_id": "{{ params.warehouse_conn_id }}",
    "reports_table": "{{ params.reports_table }}",
    "replies_table": "{{ params.replies_table }}",
}
