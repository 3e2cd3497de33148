"""Keep an Infobip list equal to a cohort, every day, sending only who entered and who left.

Trigger it from the UI to pick your own cohort file, a warehouse query or a dry run; try it with
``airflow tasks test infobip_cohort_to_list sync_list 2026-01-01``.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag

from infobip_provider.operators.lists import CohortToListOperator
from infobip_provider.params import COHORT, COHORT_ARGS, TARGET, cohort_params, dry_run_param


@dag(
    dag_id="infobip_cohort_to_list",
    description="Keep an Infobip list equal to a cohort (file or SQL): add who entered, remove who left",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    tags=["infobip", "lists"],
    doc_md=__doc__,
    params={
        **cohort_params("an email column"),
        "id_column": Param(
            "email",
            type="string",
            minLength=1,
            title="User id column",
            description="The cohort column holding each member's user id (an email).",
            section=COHORT,
        ),
        "diff_in_warehouse": Param(
            False,
            type="boolean",
            title="Diff in the warehouse",
            description="Only for a cohort SQL on SQLite or PostgreSQL: write the list's confirmed ids to "
            "a table in the warehouse (infobip_snapshot_<hash>, dropped after the run) and find who "
            "joined and who left there, so that only the changes travel; the plan is the same. The "
            "connection's user must be allowed to create tables; a cohort file stops the run.",
            section=COHORT,
        ),
        "list_name": Param(
            "Airflow demo customers",
            type="string",
            minLength=1,
            title="List name",
            description="The Infobip list kept equal to the cohort; created on the first run.",
            section=TARGET,
        ),
        "mode": Param(
            "mirror",
            enum=["mirror", "add_only"],
            title="Mode",
            description="mirror: add who entered and remove who left. add_only: never remove.",
            section=TARGET,
        ),
        "dry_run": dry_run_param(
            False, "Show the plan (who would be added and removed) without calling Infobip."
        ),
    },
)
def infobip_cohort_to_list():
    CohortToListOperator(
        task_id="sync_list",
        list_name="{{ params.list_name }}",
        **COHORT_ARGS,
        id_column="{{ params.id_column }}",
        mode="{{ params.mode }}",
        diff_in_warehouse="{{ params.diff_in_warehouse }}",
        dry_run="{{ params.dry_run }}",
    )


infobip_cohort_to_list()
