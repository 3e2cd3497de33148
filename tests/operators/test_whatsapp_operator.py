"""WhatsAppBroadcastOperator against an in-memory Infobip that, like WhatsApp, has no logs to ask.

An unanswered request (a lost answer, a timeout, a crash between the ledger's intent and ack) is never
sent again blindly: ``on_unconfirmed`` decides, and nobody ever gets two messages unless the user
chose ``resend``.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from infobip_provider.engines.broadcast import BroadcastUnconfirmedError, broadcast_bulk_id
from infobip_provider.errors import InfobipServerError, InfobipTransportError
from infobip_provider.operators.whatsapp import WhatsAppBroadcastOperator
from infobip_provider.state import TargetState
from infobip_provider.whatsapp import WhatsAppConfigError
from tests.operators.test_sms_operator import Crash, FakeTI, crash_at, numbers

PLANS = ("free", "pro", "enterprise")


class FakeWhatsApp:
    """What the operator needs of InfobipHook for WhatsApp (no logs), with scripted faults:
    ``ok``, ``lost`` (committed, 500), ``500`` (not committed), ``timeout`` (committed),
    ``die_before`` / ``die_after``."""

    def __init__(self, state_uri: str) -> None:
        self.state_uri = state_uri
        self.key_fingerprint = self.state_scope = "fp-test"
        self.is_infobip_host = False
        self.defaults = {"sender": None, "application_id": None, "entity_id": "ent-conn"}
        self.messages: list[dict[str, Any]] = []
        self.bodies: list[dict[str, Any]] = []
        self.faults: list[str] = []
        self.calls: dict[str, int] = {}
        self.waited: dict[str, float] = {}

    def _send(
        self, endpoint: str, body: dict[str, Any], items: list[dict[str, Any]], bulk: str | None
    ) -> Any:
        self.calls[endpoint] = self.calls.get(endpoint, 0) + 1
        fault = self.faults.pop(0) if self.faults else "ok"
        if fault == "die_before":
            raise Crash("killed before the request left")
        if fault == "500":
            raise InfobipServerError("500", status=500)
        self.bodies.append(json.loads(json.dumps(body)))
        for item in items:
            self.messages.append({**item, "bulkId": bulk})
        if fault == "lost":
            raise InfobipServerError("500 after commit", status=500)
        if fault == "timeout":
            raise InfobipTransportError("timed out", sent=True)
        if fault == "die_after":
            raise Crash("killed after Infobip committed")
        answers = [
            {"to": i["to"], "messageId": i["messageId"], "status": {"groupName": "PENDING"}} for i in items
        ]
        return {"messages": answers, "bulkId": bulk} if bulk else answers[0]

    def send_whatsapp_template(self, body: dict[str, Any]) -> Any:
        return self._send("whatsapp.template", body, body["messages"], body["bulkId"])

    def send_whatsapp_text(self, body: dict[str, Any]) -> Any:
        return self._send("whatsapp.text", body, [body], None)

    def interval(self, endpoint: str) -> float:
        return 0.0

    def per_number(self) -> Counter[str]:
        return Counter(m["to"] for m in self.messages)


def name(i: int) -> str:
    return f"Name{i}" if i % 7 else ""  # every 7th has no first name: an empty placeholder


def write_cohort(path, n: int) -> str:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("phone,first_name,plan\n")
        for i, number in enumerate(numbers(n)):
            fh.write(f"+{number},{name(i)},{PLANS[i % 3]}\n")
    return str(path)


def sendable(n: int) -> list[str]:
    return [number for i, number in enumerate(numbers(n)) if i % 7]


@pytest.fixture
def fake(tmp_path):
    return FakeWhatsApp(str(tmp_path / "state"))


def make(fake: FakeWhatsApp, cohort: str, **kwargs: Any) -> WhatsAppBroadcastOperator:
    kwargs.setdefault("sender", "447860099299")
    if kwargs.get("mode") != "text":
        kwargs.setdefault("template_name", "plan_update")
        kwargs.setdefault("language", "en")
        kwargs.setdefault("placeholders", ["first_name", "plan"])
    op = WhatsAppBroadcastOperator(task_id="broadcast", cohort_path=cohort, **kwargs)
    op.hook = fake
    op._sleep = lambda seconds: None
    return op


def run(op: WhatsAppBroadcastOperator, run_id: str = "manual__1") -> dict[str, Any]:
    context = {"run_id": run_id, "ti": FakeTI(), "params": {}, "dag_run": None, "ds": "2026-03-02"}
    op.render_template_fields(context)
    result = op.execute(context)
    json.dumps(result)
    return result


def assert_at_most_once(fake: FakeWhatsApp) -> None:
    assert max(fake.per_number().values(), default=1) == 1, "nobody got two"


def assert_exactly_once(fake: FakeWhatsApp, n: int) -> None:
    assert_at_most_once(fake)
    assert set(fake.per_number()) == set(sendable(n))
    sent = {m["to"]: m["content"]["templateData"]["body"]["placeholders"] for m in fake.messages}
    assert all(sent[number] == [name(i), PLANS[i % 3]] for i, number in enumerate(numbers(n)) if i % 7)


# ------------------------------------------------------------------------------------------ happy path
def test_every_member_gets_one_template_message_with_its_placeholders(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 2100)
    summary = run(
        make(fake, cohort, batch_size=1000, notify_url="https://hooks.example/wa", callback_data="cb")
    )
    assert_exactly_once(fake, 2100)
    body = fake.bodies[0]
    assert body["bulkId"] == broadcast_bulk_id("adhoc_airflow", "manual__1", "broadcast")
    message = body["messages"][0]
    assert message["from"] == "447860099299" and message["content"]["templateName"] == "plan_update"
    assert message["content"]["language"] == "en" and message["entityId"] == "ent-conn"
    assert message["notifyUrl"] == "https://hooks.example/wa" and message["callbackData"] == "cb"
    assert summary["sent"] == summary["recipients"] == 1800 and summary["unconfirmed"] == 0
    assert summary["skipped_by_reason"] == {"empty placeholder {{1}} (first_name)": 300}
    rejects = (tmp_path / "state").rglob("*.csv")
    text = "".join(p.read_text() for p in rejects)
    assert text.count("empty placeholder {{1}} (first_name)") == 300


def test_unknown_column_and_bad_options_stop_the_run_before_any_call(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 5)
    with pytest.raises(WhatsAppConfigError, match="frist_name"):
        run(make(fake, cohort, placeholders=["frist_name"]))
    with pytest.raises(WhatsAppConfigError, match="template_name"):
        run(make(fake, cohort, template_name="Plan Update"))
    with pytest.raises(WhatsAppConfigError, match="failover"):
        run(make(fake, cohort, failover_sender="InfoSMS"))
    assert fake.calls == {}


def test_dry_run_previews_in_the_summary_only(fake, tmp_path, caplog):
    cohort = write_cohort(tmp_path / "c.csv", 30)
    summary = run(make(fake, cohort, dry_run=True, preview_rows=1, batch_size=10))
    assert fake.calls == {} and summary["requests_planned"] == 3
    assert summary["preview"] == [
        {"to": numbers(30)[1], "template": "plan_update", "placeholders": ["Name1", "pro"]}
    ]
    assert numbers(30)[1] not in caplog.text and "Name1" not in caplog.text


def test_text_mode_sends_one_message_per_request(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 4)
    summary = run(make(fake, cohort, mode="text", text="Hi {{first_name}}, {{plan}}"))
    assert fake.calls == {"whatsapp.text": 4} and summary["sent"] == 4
    assert fake.bodies[1]["content"] == {"text": "Hi Name1, pro", "previewUrl": False}
    assert "24-hour" in summary["plan"]["content"]


def test_an_sms_failover_is_rendered_per_member(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 3)
    run(make(fake, cohort, failover_sender="InfoSMS", failover_text="Your {{plan}} plan"))
    messages = fake.bodies[0]["messages"]
    assert [m["smsFailover"] for m in messages] == [
        {"from": "InfoSMS", "text": "Your pro plan"},
        {"from": "InfoSMS", "text": "Your enterprise plan"},
    ]


# ------------------------------------------------------------------------------------------ no logs
@pytest.mark.parametrize("fault", ["lost", "timeout"])
def test_a_lost_answer_is_never_resent_and_fails_naming_the_choices(fake, tmp_path, fault):
    cohort = write_cohort(tmp_path / "c.csv", 350)  # 300 sendable: 3 batches of 100
    fake.faults = ["ok", fault, "ok"]
    with pytest.raises(BroadcastUnconfirmedError) as failure:
        run(make(fake, cohort, batch_size=100))
    message = str(failure.value)
    assert "100 recipients" in message and 'on_unconfirmed="skip"' in message and "resend" in message
    assert str(tmp_path / "state") in message
    assert fake.calls == {"whatsapp.template": 3}, "the rest of the broadcast went out"
    assert_exactly_once(fake, 350)
    # A retry sends nothing more and fails again while the batch stays open.
    with pytest.raises(BroadcastUnconfirmedError):
        run(make(fake, cohort, batch_size=100))
    assert fake.calls == {"whatsapp.template": 3}
    # The user chooses skip: the members are recorded as unconfirmed, counted, never sent.
    summary = run(make(fake, cohort, batch_size=100, on_unconfirmed="skip"))
    assert summary["unconfirmed"] == 100 and summary["sent"] == 200 and fake.calls == {"whatsapp.template": 3}
    assert_exactly_once(fake, 350)


def test_resend_is_the_users_explicit_choice(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 140)  # 120 sendable
    fake.faults = ["500"]  # not committed: resending is right here, and the user said so
    summary = run(make(fake, cohort, batch_size=100, on_unconfirmed="resend"))
    assert summary["sent"] == 120 and summary["resent_after_lost_answer"] == 100
    assert_exactly_once(fake, 140)


def test_a_crash_after_commit_leaves_the_batch_unconfirmed_not_resent(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 350)
    fake.faults = ["ok", "die_after"]
    with pytest.raises(Crash):
        run(make(fake, cohort, batch_size=100))
    with pytest.raises(BroadcastUnconfirmedError, match="100 recipients"):
        run(make(fake, cohort, batch_size=100))
    assert_exactly_once(fake, 350)
    assert fake.calls == {"whatsapp.template": 3}


@pytest.mark.parametrize("when", ["before_write", "after_write"])
def test_a_crash_at_every_journal_write_never_duplicates_and_loses_nobody_silently(
    fake, tmp_path, monkeypatch, when
):
    cohort = write_cohort(tmp_path / "c.csv", 52)  # 44 sendable: 5 batches of 10
    original = TargetState.append_journal
    for point in range(1, 11):
        fake.messages.clear()
        run_id = f"manual__crash{point}"
        monkeypatch.setattr(TargetState, "append_journal", crash_at(point, when, original))
        with pytest.raises(Crash):
            run(make(fake, cohort, batch_size=10), run_id)
        monkeypatch.setattr(TargetState, "append_journal", original)
        summary = run(make(fake, cohort, batch_size=10, on_unconfirmed="skip"), run_id)
        assert_at_most_once(fake)
        got = set(fake.per_number())
        assert summary["sent"] + summary["unconfirmed"] == 44, (when, point)
        assert len(got) >= summary["sent"], (when, point)
