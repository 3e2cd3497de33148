"""Respecting the recipients against the sandbox: a STOP reply collected by the replies operator keeps
the number out of the next SMS broadcast; a hard bounce collected by the reports operator keeps an
address out of the next email broadcast; a second broadcast with max_per_person 1/24 h sends to
nobody who got the first, and its dry run said so; quiet hours reach the sandbox as windows."""

from __future__ import annotations

import json

import pytest

from infobip_provider.operators.email import EmailBroadcastOperator
from infobip_provider.operators.sms import SmsBroadcastOperator
from infobip_provider.transfers.reports_to_sql import InfobipRepliesToSqlOperator, InfobipReportsToSqlOperator
from tests.integration.conftest import run_operator

pytestmark = pytest.mark.sandbox


@pytest.fixture
def warehouse(tmp_path, monkeypatch):
    """``warehouse_default`` on SQLite: where the outcomes operators land replies and reports."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_WAREHOUSE_DEFAULT",
        json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "dwh.db")}),
    )
    return "warehouse_default"


def numbers(n: int) -> list[str]:
    return [f"4179{4000000 + i:07d}" for i in range(n)]


def phone_cohort(path, phones) -> str:
    path.write_text("phone,first_name\n" + "".join(f"+{p},Ana{i}\n" for i, p in enumerate(phones)))
    return str(path)


def sms(cohort: str, run_id: str, **kwargs) -> dict:
    kwargs.setdefault("reconcile_delay", 0.2)
    operator = SmsBroadcastOperator(
        task_id="broadcast",
        text="Hi {{first_name}}, reply STOP to opt out",
        cohort_path=cohort,
        sender="InfoSMS",
        outcomes_conn_id="warehouse_default",
        **kwargs,
    )
    return run_operator(operator, run_id)


def sent_to(sandbox, bulk_id: str, kind: str = "messages") -> list[str]:
    return [m["destination"] for m in sandbox.state()[kind] if m["bulkId"] == bulk_id]


def test_a_stop_reply_keeps_that_member_out_of_the_next_sms_broadcast(
    sandbox, infobip_conn, warehouse, tmp_path
):
    phones = numbers(12)
    cohort = phone_cohort(tmp_path / "c.csv", phones)
    first = sms(cohort, "manual__1")
    assert sorted(sent_to(sandbox, first["bulk_id"])) == sorted(phones)
    # the member answers STOP; the replies operator collects it into the warehouse
    sandbox.inject_inbound([{"from": phones[4], "to": "447860000000", "text": "STOP"}])
    replies = InfobipRepliesToSqlOperator(
        task_id="collect_replies", sql_conn_id=warehouse, table="infobip_replies"
    )
    assert run_operator(replies)["channels"]["sms"]["by_class"] == {"opt_out": 1}
    plan = sms(cohort, "manual__2", dry_run=True)
    assert plan["recipients"] == 11 and plan["skipped_by_reason"]["suppressed"] == 1
    second = sms(cohort, "manual__2")
    got = sent_to(sandbox, second["bulk_id"])
    assert sorted(got) == sorted(set(phones) - {phones[4]}) and len(got) == 11
    assert second["skipped_by_reason"]["suppressed"] == 1
    listing = infobip_conn["state"].glob("*/suppression/suppression.csv")
    (csv_file,) = list(listing)
    assert phones[4] in csv_file.read_text() and "opt_out" in csv_file.read_text()
    # turned off explicitly, the next broadcast reaches the member again
    third = sms(cohort, "manual__3", respect_suppression=False)
    assert phones[4] in sent_to(sandbox, third["bulk_id"])


def test_a_hard_bounce_keeps_an_address_out_of_the_next_email_broadcast(
    sandbox, infobip_conn, warehouse, tmp_path
):
    sandbox.set_email_outcomes({"bo-": "bounced", "sd-": "spam_detected", "sb-": "soft_bounce"})
    addresses = ["bo-ana@x.example", "sd-bob@x.example", "sb-cy@x.example", "ok-dee@x.example"]
    cohort = tmp_path / "e.csv"
    cohort.write_text("email,first_name\n" + "".join(f"{a},N\n" for a in addresses))

    def email(run_id: str) -> dict:
        operator = EmailBroadcastOperator(
            task_id="broadcast",
            cohort_path=str(cohort),
            sender="Acme <no-reply@acme.example>",
            subject="Hi {{first_name}}",
            text="News",
            reconcile_delay=0.2,
            outcomes_conn_id="warehouse_default",
        )
        return run_operator(operator, run_id)

    first = email("manual__1")
    assert sorted(sent_to(sandbox, first["bulk_id"], "emails")) == sorted(addresses)
    reports = InfobipReportsToSqlOperator(
        task_id="collect_reports", sql_conn_id=warehouse, table="infobip_delivery_reports", channels=["email"]
    )
    collected = run_operator(reports)["channels"]["email"]
    assert collected["by_class"] == {"delivered": 1, "hard_bounce": 1, "soft_bounce": 1, "spam_bounce": 1}
    second = email("manual__2")
    # the hard and the spam bounce are suppressed; a soft bounce may get through next time
    assert sorted(sent_to(sandbox, second["bulk_id"], "emails")) == ["ok-dee@x.example", "sb-cy@x.example"]
    assert second["skipped_by_reason"]["suppressed"] == 2


def test_a_second_broadcast_with_a_cap_sends_to_nobody_who_got_the_first(
    sandbox, infobip_conn, warehouse, tmp_path
):
    phones = numbers(30)
    cap = {"count": 1, "hours": 24}
    first = sms(phone_cohort(tmp_path / "a.csv", phones[:20]), "manual__1", max_per_person=cap)
    assert first["sent"] == 20
    bigger = phone_cohort(tmp_path / "b.csv", phones)
    plan = sms(bigger, "manual__2", max_per_person=cap, dry_run=True)
    assert plan["recipients"] == 10 and plan["skipped_by_reason"]["frequency_cap"] == 20
    assert plan["plan"]["respect"]["frequency_cap"]["broadcasts_in_window"] == 1
    second = sms(bigger, "manual__2", max_per_person=cap)
    got = set(sent_to(sandbox, second["bulk_id"]))
    assert got == set(phones[20:])
    assert not got & set(sent_to(sandbox, first["bulk_id"]))
    assert second["skipped_by_reason"]["frequency_cap"] == 20


def test_quiet_hours_reach_infobip_as_each_zones_window(sandbox, infobip_conn, warehouse, tmp_path):
    cohort = tmp_path / "z.csv"
    cohort.write_text("phone,first_name\n+14155550100,Ana\n+919812345600,Raj\n+9779812345600,Sita\n")
    summary = sms(str(cohort), "manual__1", quiet_hours={"from": "21:00", "to": "09:00"})
    assert summary["sent"] == 3
    zones = summary["plan"]["respect"]["quiet_hours"]["zones"]
    assert set(zones) == {"America/Los_Angeles", "Asia/Calcutta", "Asia/Katmandu"}
    kathmandu = zones["Asia/Katmandu"]["delivery_time_window"]
    assert (kathmandu["from"], kathmandu["to"]) == ({"hour": 3, "minute": 15}, {"hour": 15, "minute": 15})
    # the sandbox took the three zone groups in three requests, each with its own window
    sends = sandbox.journal(bodies=True, endpoint="sms.send")
    windows = []
    for entry in sends:
        body = entry["body"] if isinstance(entry["body"], dict) else json.loads(entry["body"])
        windows += [m["options"]["deliveryTimeWindow"]["from"]["minute"] for m in body["messages"]]
    assert len(sends) == 3 and sorted(windows) == [0, 15, 30]
