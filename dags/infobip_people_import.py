"""Upsert a cohort into Infobip People every hour and keep its audience tag in step.

Each member becomes a person (matched by email, else phone) with the mapped fields and carries the
tag while in the cohort; people who leave lose the tag and are never deleted. Only what changed since
the last confirmed run is sent. Give your own file (``cohort_path``) or a query on any Airflow SQL
connection (``cohort_sql``, e.g. ``sql/people_cohort.sql`` on the embedded warehouse); with neither,
the sample ``include/cohorts/customers.csv`` is used. Without a field map, the cohort's columns with
a standard Person field's name (first_name, last_name, city, language ...) are sent.
Try it with ``airflow dags test infobip_people_import`` or trigger it with ``dry_run`` on.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag

from infobip_provider.operators.people import PeopleImportOperator
from infobip_provider.params import (
    COHORT,
    COHORT_ARGS,
    TARGET,
    cohort_params,
    dry_run_param,
    optional_text,
)


@dag(
    dag_id="infobip_people_import",
    description="Upsert a cohort into Infobip People and keep its audience tag in step; never deletes",
    schedule="@hourly",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    tags=["infobip", "people"],
    doc_md=__doc__,
    params={
        **cohort_params("an email and/or phone column (E.164 with +, or national with a country column)"),
        "field_map": Param(
            None,
            type=["null", "object"],
            title="Field map",
            description='{"cohort column": "Infobip field"}, e.g. {"first_name": "firstName", "plan": '
            '"plan"}. Standard Person fields (firstName, lastName, middleName, nickName, gender, '
            "birthDate, address, city, country, preferredLanguage, externalId, profilePicture) go "
            "top-level; any other target is a custom attribute. Every column named must be in the cohort. "
            "Empty: the columns named like a standard field (first_name, last_name, city, language ...).",
            section=COHORT,
        ),
        "tag": optional_text(
            "Audience tag",
            "The Infobip tag members carry (created when missing, at most 256 characters). "
            "Empty: infobip_people_import.import_people.",
            TARGET,
            maxLength=256,
        ),
        "person_type": Param(
            "CUSTOMER",
            enum=["CUSTOMER", "LEAD"],
            title="Person type",
            description="The Infobip type given to every imported person.",
            section=TARGET,
        ),
        "dry_run": dry_run_param(
            False, "Show the plan (upserts, tag additions and removals) without calling Infobip."
        ),
    },
)
def infobip_people_import():
    PeopleImportOperator(
        task_id="import_people",
        tag="{{ params.tag }}",
        **COHORT_ARGS,
        email_column="email",
        phone_column="phone",
        country_column="country",
        person_type="{{ params.person_type }}",
        field_map="{{ params.field_map }}",
        dry_run="{{ params.dry_run }}",
    )


infobip_people_import()
