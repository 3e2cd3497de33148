"""A WhatsApp broadcast whose answer was lost ends confirmed once its delivery reports reach the
receiver: the sandbox pushes them over HTTP to the plugin's receiver, and a later run of the same
broadcast counts those members sent without sending anyone a second message."""

from __future__ import annotations

from collections import Counter

import pytest

from infobip_provider.engines.broadcast import BroadcastUnconfirmedError, broadcast_bulk_id
from infobip_provider.operators.whatsapp import WhatsAppBroadcastOperator
from infobip_provider.transfers.reports_to_sql import InfobipReportsToSqlOperator
from tests.integration.conftest import run_operator
from tests.transfers.conftest import PUSH_SECRET, records

pytestmark = pytest.mark.sandbox
SECRET = PUSH_SECRET


def write_cohort(path, n: int) -> list[str]:
    numbers = [f"4179{5000000 + i:07d}" for i in range(n)]
    path.write_text("phone,first_name\n" + "".join(f"+{p},Ana{i}\n" for i, p in enumerate(numbers)))
    return numbers


def broadcast(cohort, notify_url: str, **kwargs) -> dict:
    operator = WhatsAppBroadcastOperator(
        task_id="broadcast",
        cohort_path=str(cohort),
        sender="447860099299",
        template_name="plan_update",
        language="en",
        placeholders=["first_name"],
        notify_url=notify_url,
        **kwargs,
    )
    return run_operator(operator, "manual__wa")


def sends(sandbox, bulk_id: str) -> Counter[str]:
    return Counter(m["to"] for m in sandbox.state()["whatsapp"] if m["bulkId"] == bulk_id)


def template_requests(sandbox) -> int:
    return int(sandbox.counters().get("whatsapp.template", {}).get("requests", 0))


def test_a_lost_answer_ends_confirmed_once_its_reports_arrive(
    sandbox, pushing_conn, receiver, warehouse, tmp_path
):
    numbers = write_cohort(tmp_path / "c.csv", 1200)
    notify = f"{receiver}/infobip_default/reports/whatsapp?secret={SECRET}"
    bulk_id = broadcast_bulk_id("adhoc_airflow", "manual__wa", "broadcast")
    sandbox.inject_fault("whatsapp.template", "commit_then_500", count=1)
    with pytest.raises(BroadcastUnconfirmedError, match="1000 recipients"):
        broadcast(tmp_path / "c.csv", notify)
    assert template_requests(sandbox) == 2
    with pytest.raises(BroadcastUnconfirmedError, match="1000 recipients"):  # no report yet: still open
        broadcast(tmp_path / "c.csv", notify)
    assert template_requests(sandbox) == 2
    # Infobip delivers the messages and pushes their reports to notifyUrl (the receiver)
    stored = sandbox.state()["whatsapp"]
    assert {m["notifyUrl"] for m in stored} == {notify}
    pushed = sandbox.push_webhook(notify, channel="whatsapp", bulk_id=bulk_id, batch=300)
    assert set(pushed["statuses"]) == {200} and pushed["items"] == 1200
    summary = broadcast(tmp_path / "c.csv", notify)
    assert summary["sent"] == 1200 and summary["unconfirmed"] == 0
    assert summary["confirmed_by_reports"] == 1000 and summary["sent_this_try"] == 0
    assert template_requests(sandbox) == 2, "nobody was sent a second message"
    assert sends(sandbox, bulk_id) == Counter({n: 1 for n in numbers})
    # the same pushes are the reports table's WhatsApp rows
    collected = run_operator(
        InfobipReportsToSqlOperator(
            task_id="collect_reports",
            sql_conn_id=warehouse["conn_id"],
            table=warehouse["reports"],
            channels=["whatsapp"],
        )
    )["channels"]["whatsapp"]
    assert collected["rows"] == 1200
    count = records(warehouse["conn_id"], f"SELECT count(DISTINCT message_id) FROM {warehouse['reports']}")
    assert count == [(1200,)]


def test_skipped_and_partly_reported_members(sandbox, pushing_conn, receiver, tmp_path):
    write_cohort(tmp_path / "c.csv", 900)
    notify = f"{receiver}/infobip_default/reports/whatsapp?secret={SECRET}"
    bulk_id = broadcast_bulk_id("adhoc_airflow", "manual__wa", "broadcast")
    sandbox.inject_fault("whatsapp.template", "commit_then_500", count=2)
    first = broadcast(tmp_path / "c.csv", notify, batch_size=300, on_unconfirmed="skip")
    assert first["unconfirmed"] == 600 and first["sent"] == 300
    lost = [m["messageId"] for m in sandbox.state()["whatsapp"]][:600]
    # reports for the whole first lost batch and a third of the second
    sandbox.push_webhook(notify, channel="whatsapp", message_ids=lost[:400])
    second = broadcast(tmp_path / "c.csv", notify, batch_size=300, on_unconfirmed="skip")
    assert second["confirmed_by_reports"] == 400 and second["unconfirmed"] == 200
    assert second["sent"] == 700 and second["sent_this_try"] == 0
    third = broadcast(tmp_path / "c.csv", notify, batch_size=300, on_unconfirmed="skip")
    assert third["unconfirmed"] == 200 and third["sent"] == 700 and third["confirmed_by_reports"] == 0
    assert template_requests(sandbox) == 3
    assert max(sends(sandbox, bulk_id).values()) == 1
