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

DEFAULT_TEXT = "Hi {{first_name}}, your {{plan}} plan now includes SMS alerts. Reply STOP to opt out."


@dag(
    dag_id="infobip_sms_broadcast",
    description="Send one personalised SMS to each member of a cohort, exactly once (starts as a dry run)",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    render_template_as_native_obj=True,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=1)},
    tags=["infobip", "sms"],
    doc_md=__doc__,
    params={
        **cohort_params("a phone column (E.164 with +, or national with a country column)"),
        "text": Param(
            DEFAULT_TEXT,
            type="string",
            format="multiline",
            minLength=1,
            title="Message",
            description="The SMS text. {{column}} inserts the recipient's value of a cohort column "
            "(empty when missing); an unknown column stops the run before anything is sent.",
            section=TARGET,
        ),
        "sender": optional_text(
            "Sender",
            "Alphanumeric sender (3-11 characters) or number (3-16 digits). Empty: the connection's "
            "Default SMS sender.",
            TARGET,
        ),
        "dry_run": dry_run_param(
            True, "Plan only: counts, encoding, SMS parts per message, cost. Nothing is sent."
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
        "delivery_window": Param(
            None,
            type=["null", "object"],
            title="Delivery window",
            description='When Infobip may deliver, in UTC, at least one hour long, e.g. {"days": '
            '["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY"], "from": "09:00", "to": "20:00"}. '
            "Empty: any time.",
            section=SCHEDULE,
        ),
        **respect_params(),
    },
)
def infobip_sms_broadcast():
    SmsBroadcastOperator(
        task_id="broadcast",
        text="{{ params.text }}",
        **COHORT_ARGS,
        **RESPECT_ARGS,
        phone_column="phone",
        country_column="country",
        sender="{{ params.sender }}",
        dry_run="{{ params.dry_run }}",
        test_recipients="{{ params.test_recipients }}",
        delivery_time_window="{{ params.delivery_window }}",
        max_segments=4,
        price_per_segment=0.01,
        currency="EUR",  # put your account's price per SMS part and its currency here
    )


infobip_sms_broadcast()
