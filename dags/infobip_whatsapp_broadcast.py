"""Send one WhatsApp template message to every member of a cohort, never twice, through Infobip.

Manual trigger only. The form starts as a **dry run**: it shows how many people would get a message,
how many have an empty placeholder (Infobip refuses those; they are listed in the rejects file) and,
in the task's summary, a preview of the first members' placeholders. The template must be approved
by Meta in your Infobip account. WhatsApp keeps no logs Infobip could be asked about: when an answer
is lost, those members are never sent again blindly; the task fails and says what you may choose.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import Param, dag

from infobip_provider.operators.whatsapp import WhatsAppBroadcastOperator
from infobip_provider.params import (
    COHORT_ARGS,
    RESPECT_ARGS,
    SAFETY,
    TARGET,
    cohort_params,
    dry_run_param,
    respect_params,
)


@dag(
    dag_id="infobip_whatsapp_broadcast",
    description="Send one WhatsApp template message to each member of a cohort, never twice (starts as a dry run)",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    tags=["infobip", "whatsapp"],
    doc_md=__doc__,
    params={
        **cohort_params("a phone column (E.164 with +, or national with a country column)"),
        "sender": Param(
            "447860099299",
            type="string",
            minLength=3,
            title="Sender",
            description="Your registered WhatsApp sender number (digits, international form).",
            section=TARGET,
        ),
        "template_name": Param(
            "plan_update",
            type="string",
            pattern="^[a-z0-9_]+$",
            title="Template name",
            description="The approved template's name: lowercase letters, digits and underscores.",
            section=TARGET,
        ),
        "language": Param(
            "en",
            type="string",
            minLength=2,
            title="Language",
            description="The template's language code as registered (e.g. en, en_GB, pt_BR).",
            section=TARGET,
        ),
        "placeholders": Param(
            ["first_name", "plan"],
            type=["null", "array"],
            items={"type": "string"},
            title="Placeholders",
            description="Cohort columns that fill the template body's {{1}}, {{2}} ... in order, one per "
            "line. A member whose value is empty is not sent (Infobip refuses it) and is listed in the "
            "rejects file; an unknown column stops the run before anything is sent.",
            section=TARGET,
        ),
        "on_unconfirmed": Param(
            "fail",
            type="string",
            enum=["fail", "skip", "resend"],
            title="When an answer is lost",
            description="WhatsApp has no logs to ask. fail: send the rest, then fail naming the members "
            "left unconfirmed; skip: record them as unconfirmed and never send them; resend: send them "
            "again (some may get two).",
            section=SAFETY,
        ),
        "dry_run": dry_run_param(
            True,
            "Plan only: counts, requests and a preview of the first messages in the summary. Nothing is sent.",
        ),
        "test_recipients": Param(
            [],
            type=["null", "array"],
            items={"type": "string"},
            title="Test recipients",
            description="Phone numbers (E.164, one per line). When given and Dry run is off, only these "
            "numbers get the messages of the first cohort rows; the cohort gets nothing.",
            section=SAFETY,
        ),
        **respect_params(),
    },
)
def infobip_whatsapp_broadcast():
    WhatsAppBroadcastOperator(
        task_id="broadcast",
        **COHORT_ARGS,
        **RESPECT_ARGS,
        phone_column="phone",
        country_column="country",
        sender="{{ params.sender }}",
        template_name="{{ params.template_name }}",
        language="{{ params.language }}",
        placeholders="{{ params.placeholders }}",
        on_unconfirmed="{{ params.on_unconfirmed }}",
        dry_run="{{ params.dry_run }}",
        test_recipients="{{ params.test_recipients }}",
    )


infobip_whatsapp_broadcast()
