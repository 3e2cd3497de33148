"""Pushed reports and inbound messages, end to end: the sandbox POSTs Infobip's shapes to the
receiver (served over HTTP as the api-server mounts it), which lands them in the state store; the
reports and replies operators collect them like pulled ones."""

from __future__ import annotations

import time

import pytest
import requests

from infobip_provider.hooks.infobip import InfobipHook
from infobip_provider.transfers.reports_to_sql import (
    InfobipRepliesToSqlOperator,
    InfobipReportsToSqlOperator,
    InfobipSeenToSqlOperator,
)
from tests.integration.conftest import run_operator
from tests.transfers.conftest import PUSH_SECRET, records

pytestmark = pytest.mark.sandbox
SECRET = PUSH_SECRET


def send_whatsapp(count: int, bulk_id: str) -> list[str]:
    hook = InfobipHook()
    ids = [f"{bulk_id}-{i}" for i in range(count)]
    for start in range(0, count, 1000):
        messages = [
            {
                "from": "447860099299",
                "to": f"4179{4000000 + i:07d}",
                "messageId": ids[i],
                "content": {
                    "templateName": "plan_update",
                    "templateData": {"body": {"placeholders": ["Ana"]}},
                    "language": "en",
                },
            }
            for i in range(start, min(count, start + 1000))
        ]
        hook.send_whatsapp_template({"messages": messages, "bulkId": bulk_id})
    return ids


def test_pushed_whatsapp_and_sms_reports_reach_the_table_once(sandbox, pushing_conn, warehouse, receiver):
    ids = send_whatsapp(1200, "wa-bulk-1")
    target = f"{receiver}/infobip_default/reports/whatsapp?secret={SECRET}"
    pushed = sandbox.push_webhook(target, channel="whatsapp", bulk_id="wa-bulk-1", batch=250)
    assert pushed["statuses"] == [200] * 5 and pushed["items"] == 1200
    # Infobip pushes again when an answer is lost: the same reports twice are still one row each
    sandbox.push_webhook(target, channel="whatsapp", message_ids=ids[:10])
    refused = sandbox.push_webhook(
        f"{receiver}/infobip_default/reports/whatsapp?secret=wrong", channel="whatsapp", message_ids=ids[:5]
    )
    assert refused["statuses"] == [401]
    seen = sandbox.push_webhook(
        f"{receiver}/infobip_default/seen/whatsapp?secret={SECRET}",
        channel="whatsapp",
        kind="seen",
        message_ids=ids[:3],
    )
    assert seen["statuses"] == [200]
    operator = InfobipReportsToSqlOperator(
        task_id="collect_reports",
        sql_conn_id=warehouse["conn_id"],
        table=warehouse["reports"],
        channels=["whatsapp"],
        page_size=500,
    )
    summary = run_operator(operator)["channels"]["whatsapp"]
    assert summary["pages"] == 0 and summary["pushes"] == 6 and summary["rows"] == 1210
    assert summary["pruned_reports"] == 0  # the broadcasts' index keeps 30 days of reports
    assert summary["asset"].endswith("/reports/whatsapp")
    rows = records(
        warehouse["conn_id"],
        f"SELECT message_id, bounce_class, source, price FROM {warehouse['reports']} WHERE channel = 'whatsapp'",
    )
    assert sorted(r[0] for r in rows) == sorted(ids)
    assert {(r[1], r[2], r[3]) for r in rows} == {("delivered", "push", 0.005)}
    assert run_operator(operator)["channels"]["whatsapp"]["rows"] == 0  # taken once
    # the seen reports went to their own inbox: their own table, one row per message read
    seen_task = InfobipSeenToSqlOperator(
        task_id="collect_seen",
        sql_conn_id=warehouse["conn_id"],
        table=warehouse["seen"],
        channels=["whatsapp"],
    )
    taken = run_operator(seen_task)["channels"]["whatsapp"]
    assert (taken["pages"], taken["pushes"], taken["rows"]) == (0, 1, 3)
    assert taken["asset"].endswith("/seen/whatsapp")
    read = records(
        warehouse["conn_id"], f"SELECT message_id, recipient, seen_at, sent_at FROM {warehouse['seen']}"
    )
    assert sorted(r[0] for r in read) == sorted(ids[:3])
    assert all(r[1] and str(r[2]) > str(r[3]) for r in read)  # read after it was sent
    assert run_operator(seen_task)["channels"]["whatsapp"]["rows"] == 0

    # SMS sent with a webhook: its reports are pushed, not pulled (Infobip sends each report one way)
    hook = InfobipHook()
    hook.send_sms(
        {
            "messages": [
                {
                    "sender": "InfoSMS",
                    "destinations": [{"to": "41793026700", "messageId": "sms-push-1"}],
                    "content": {"text": "Hi"},
                }
            ]
        }
    )
    time.sleep(0.05)
    sandbox.push_webhook(
        f"{receiver}/infobip_default/reports/sms",
        channel="sms",
        message_ids=["sms-push-1"],
        headers={"X-Webhook-Secret": SECRET},
    )
    operator.channels = ["sms"]
    sms = run_operator(operator)["channels"]["sms"]
    assert sms["rows"] == 1 and sms["pushes"] == 1
    assert records(
        warehouse["conn_id"], f"SELECT source FROM {warehouse['reports']} WHERE message_id = 'sms-push-1'"
    ) == [("push",)]


def test_pushed_inbound_whatsapp_messages_are_replies_with_opt_outs(
    sandbox, pushing_conn, warehouse, receiver
):
    inbound = [
        {
            "from": "41793026727",
            "to": "447860099299",
            "integrationType": "WHATSAPP",
            "receivedAt": "2026-11-30T09:00:00.000+0000",
            "messageId": f"wa-in-{i}",
            "message": {"text": text, "type": "TEXT"},
            "contact": {"name": "Ana"},
            "price": {"pricePerMessage": 0, "currency": "EUR"},
        }
        for i, text in enumerate(["Stop", "Thanks!", "unsubscribe me"])
    ]
    pushed = sandbox.push_webhook(
        f"{receiver}/infobip_default/inbound/whatsapp?secret={SECRET}", results=inbound
    )
    assert pushed["statuses"] == [200]
    operator = InfobipRepliesToSqlOperator(
        task_id="collect_replies",
        sql_conn_id=warehouse["conn_id"],
        table=warehouse["replies"],
        channels=["sms", "whatsapp"],
    )
    summary = run_operator(operator)["channels"]
    assert summary["whatsapp"]["rows"] == 3 and summary["whatsapp"]["by_class"] == {"opt_out": 2, "reply": 1}
    rows = records(
        warehouse["conn_id"],
        f"SELECT message_id, text, opt_out_word FROM {warehouse['replies']} WHERE channel = 'whatsapp'",
    )
    assert sorted(rows) == [
        ("wa-in-0", "Stop", "STOP"),
        ("wa-in-1", "Thanks!", None),
        ("wa-in-2", "unsubscribe me", "UNSUBSCRIBE"),
    ]


def test_the_receiver_refuses_a_push_without_the_secret_over_http(pushing_conn, receiver):
    answer = requests.post(f"{receiver}/infobip_default/reports/whatsapp", json={"results": []}, timeout=10)
    assert answer.status_code == 401
