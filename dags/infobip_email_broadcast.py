"""Send one email to every member of a cohort, exactly once, through Infobip.

Manual trigger only. The form starts as a **dry run**: it shows how many people would get an email,
in how many requests, and (in the task's summary) a preview of the first members' emails with their
placeholders filled. Put your own address in *Test recipients* to receive the first rows' emails;
clear it and turn *Dry run* off to send to the cohort. A retried or cleared task never sends anyone a
second email.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag

from infobip_provider.operators.email import EmailBroadcastOperator
from infobip_provider.params import (
    COHORT_ARGS,
    RESPECT_ARGS,
    SAFETY,
    SCHEDULE,
    TARGET,
    cohort_params,
    dry_run_param,
    optional_text,
    respect_params,
)

DEFAULT_SUBJECT = "{{first_name}}, your {{plan}} plan has news"
DEFAULT_TEXT = "Hi {{first_name}},\n\nyour {{plan}} plan now includes email alerts.\n"
DEFAULT_SENDER = "Airflow demo <no-reply@example.com>"


@dag(
    dag_id="infobip_email_broadcast",
    description="Send one email to each member of a cohort, exactly once (starts as a dry run)",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    tags=["infobip", "email"],
    doc_md=__doc__,
    params={
        **cohort_params("an email column"),
        "sender": Param(
            DEFAULT_SENDER,
            type=["null", "string"],
            title="Sender",
            description="'Name <address>' or an address of a sender domain verified in Infobip. May stay "
            "empty with a template that defines its sender.",
            section=TARGET,
        ),
        "template_id": optional_text(
            "Template id",
            "An Infobip email template. When given, leave Subject, HTML and Text empty.",
            TARGET,
        ),
        "subject": Param(
            DEFAULT_SUBJECT,
            type=["null", "string"],
            title="Subject",
            description="Inline subject (up to 1000 characters). {{column}} inserts the recipient's value "
            "of a cohort column; an unknown column stops the run before anything is sent.",
            section=TARGET,
        ),
        "html": optional_text(
            "HTML body",
            "Inline HTML body; {{column}} as in the subject. Give HTML, Text or both.",
            TARGET,
            format="multiline",
        ),
        "text": Param(
            DEFAULT_TEXT,
            type=["null", "string"],
            format="multiline",
            title="Text body",
            description="Inline plain-text body; {{column}} as in the subject.",
            section=TARGET,
        ),
        "placeholders": Param(
            None,
            type=["null", "object"],
            title="Placeholders",
            description='{"placeholder": "cohort column"}: values Infobip puts in the template\'s (or the '
            "inline content's) {{placeholder}}. Inline {{column}} tokens need no entry.",
            section=TARGET,
        ),
        "dry_run": dry_run_param(
            True,
            "Plan only: counts, requests and a preview of the first emails in the summary. Nothing is sent.",
        ),
        "test_recipients": Param(
            [],
            type=["null", "array"],
            items={"type": "string"},
            title="Test recipients",
            description="Email addresses, one per line. When given and Dry run is off, only these addresses "
            "get the emails of the first cohort rows; the cohort gets nothing.",
            section=SAFETY,
        ),
        "send_at": optional_text(
            "Send at",
            "When Infobip sends, ISO 8601 (e.g. 2026-06-01T09:00:00Z), at most 180 days ahead. Empty: now.",
            SCHEDULE,
        ),
        **respect_params(),
    },
)
def infobip_email_broadcast():
    EmailBroadcastOperator(
        task_id="broadcast",
        **COHORT_ARGS,
        **RESPECT_ARGS,
        email_column="email",
        sender="{{ params.sender }}",
        template_id="{{ params.template_id }}",
        subject="{{ params.subject }}",
        html="{{ params.html }}",
        text="{{ params.text }}",
        placeholders="{{ params.placeholders }}",
        dry_run="{{ params.dry_run }}",
        test_recipients="{{ params.test_recipients }}",
        send_at="{{ params.send_at }}",
    )


infobip_email_broadcast()
