"""EmailBroadcastOperator against an in-memory Infobip: plan, placeholders, lost answers, crashes.

The fake keeps every accepted email by bulk and message id and can lose answers or "die" before or
after it committed a request, like the SMS operator's fake; its logs leave out emails held back by
``send_at`` or a delivery window until :meth:`FakeEmail.release`. The state store is real.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any

import pytest

from infobip_provider.email import LOG_QUERY_IDS, EmailConfigError
from infobip_provider.engines.broadcast import BroadcastUncertainError, broadcast_bulk_id
from infobip_provider.errors import InfobipServerError, InfobipTransportError, InfobipValidationError
from infobip_provider.operators.email import EmailBroadcastOperator
from infobip_provider.state import TargetState
from tests.operators.test_sms_operator import Crash, FakeTI, crash_at

SUBJECT = "Your {{plan}} plan"
TEXT = "Hi {{first_name}}, your {{plan}} plan renews soon"


class FakeEmail:
    """What the operator needs of InfobipHook for email, with Infobip's memory and scripted faults
    (``ok``, ``lost``, ``500``, ``timeout``, ``refused``, ``400``, ``die_before``, ``die_after``)."""

    def __init__(self, state_uri: str) -> None:
        self.state_uri = state_uri
        self.key_fingerprint = self.state_scope = "fp-test"
        self.is_infobip_host = False
        self.defaults = {"sender": "InfoSMS", "application_id": "app-conn", "entity_id": None}
        self.emails: list[dict[str, Any]] = []
        self.bodies: list[dict[str, Any]] = []
        self.faults: list[str] = []
        self.calls: dict[str, int] = {}
        self.waited: dict[str, float] = {}

    def _count(self, endpoint: str) -> None:
        self.calls[endpoint] = self.calls.get(endpoint, 0) + 1

    def release(self) -> None:
        for email in self.emails:
            email["held"] = False

    def _commit(self, body: dict[str, Any]) -> dict[str, Any]:
        schedule = body["options"]["schedule"]
        answers = []
        for message in body["messages"]:
            held = bool(schedule.get("sendAt") or (message.get("options") or {}).get("deliveryTimeWindow"))
            for destination in message["destinations"]:
                for to in destination["to"]:
                    self.emails.append(
                        {
                            "bulkId": schedule["bulkId"],
                            "messageId": to["messageId"],
                            "to": to["destination"],
                            "placeholders": to.get("placeholders"),
                            "content": message["content"],
                            "held": held,
                        }
                    )
                    answers.append(
                        {
                            "messageId": to["messageId"],
                            "destination": to["destination"],
                            "status": {"groupId": 1, "groupName": "PENDING"},
                        }
                    )
        return {"bulkId": schedule["bulkId"], "messages": answers}

    def send_email(self, body: dict[str, Any]) -> dict[str, Any]:
        self._count("email.send")
        fault = self.faults.pop(0) if self.faults else "ok"
        if fault == "die_before":
            raise Crash("killed before the request left")
        if fault == "refused":
            raise InfobipTransportError("could not connect", sent=False)
        if fault == "500":
            raise InfobipServerError("500", status=500)
        if fault == "400":
            raise InfobipValidationError("400", status=400)
        self.bodies.append(json.loads(json.dumps(body)))
        answer = self._commit(body)
        if fault == "lost":
            raise InfobipServerError("500 after commit", status=500)
        if fault == "timeout":
            raise InfobipTransportError("timed out", sent=True)
        if fault == "die_after":
            raise Crash("killed after Infobip committed")
        return answer

    def email_logs(self, *, bulk_id=None, message_ids=(), limit=1000) -> list[dict[str, Any]]:
        self._count("email.logs")
        assert 0 < len(message_ids) <= LOG_QUERY_IDS
        wanted = set(message_ids)
        return [
            {"bulkId": e["bulkId"], "messageId": e["messageId"], "status": {"groupName": "DELIVERED"}}
            for e in self.emails
            if e["bulkId"] == bulk_id and e["messageId"] in wanted and not e["held"]
        ]

    def interval(self, endpoint: str) -> float:
        return 0.0

    def per_address(self, bulk_id: str) -> Counter[str]:
        return Counter(e["to"] for e in self.emails if e["bulkId"] == bulk_id)


def addresses(n: int) -> list[str]:
    return [f"member{i}@example.com" for i in range(n)]


def name(i: int) -> str:
    return f"Name{i}" if i % 7 else ""  # every 7th has no first name


def write_cohort(path, n: int, *, extra: tuple[str, ...] = ()) -> str:
    plans = ("free", "pro", "enterprise")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("email,first_name,plan\n")
        for i, address in enumerate(addresses(n)):
            fh.write(f"{address.upper() if i == 1 else address},{name(i)},{plans[i % 3]}\n")
        for row in extra:
            fh.write(row + "\n")
    return str(path)


def expected_placeholders(i: int) -> dict[str, str]:
    return {"plan": ("free", "pro", "enterprise")[i % 3], "first_name": name(i)}


@pytest.fixture
def fake(tmp_path):
    return FakeEmail(str(tmp_path / "state"))


def make(fake: FakeEmail, cohort: str, **kwargs: Any) -> EmailBroadcastOperator:
    if "template_id" not in kwargs:
        kwargs.setdefault("subject", SUBJECT)
        kwargs.setdefault("text", TEXT)
        kwargs.setdefault("sender", "Acme <no-reply@acme.example>")
    kwargs.setdefault("reconcile_delay", 0)
    op = EmailBroadcastOperator(task_id="broadcast", cohort_path=cohort, **kwargs)
    op.hook = fake
    op._sleep = lambda seconds: None
    return op


def run(op: EmailBroadcastOperator, run_id: str = "manual__1") -> dict[str, Any]:
    context = {"run_id": run_id, "ti": FakeTI(), "params": {}, "dag_run": None, "ds": "2026-03-02"}
    op.render_template_fields(context)
    result = op.execute(context)
    json.dumps(result)
    return result


def bulk(run_id: str = "manual__1", suffix: str = "") -> str:
    return broadcast_bulk_id("adhoc_airflow", run_id, "broadcast", suffix)


def assert_exactly_once(fake: FakeEmail, n: int, run_id: str = "manual__1") -> None:
    got = fake.per_address(bulk(run_id))
    assert set(got) == set(addresses(n)), "every recipient got an email"
    assert max(got.values()) == 1, "nobody got two"
    sent = {e["to"]: json.loads(e["placeholders"]) for e in fake.emails}
    assert all(sent[a] == expected_placeholders(i) for i, a in enumerate(addresses(n)))


# ------------------------------------------------------------------------------------------ happy path
def test_every_member_gets_one_email_with_placeholders_as_a_json_string(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 2300, extra=("not-an-address,X,pro", ",Nobody,free"))
    summary = run(make(fake, cohort, batch_size=1000))
    assert_exactly_once(fake, 2300)
    assert fake.calls == {"email.send": 3}
    body = fake.bodies[0]
    (message,) = body["messages"]
    assert message["sender"] == "Acme <no-reply@acme.example>"
    assert message["content"] == {"subject": SUBJECT, "text": TEXT}
    assert message["options"]["platform"] == {"applicationId": "app-conn"}
    to = message["destinations"][0]["to"][0]
    assert isinstance(to["placeholders"], str) and json.loads(to["placeholders"])["plan"] == "free"
    assert body["options"]["schedule"]["bulkId"] == bulk()
    assert [len(b["messages"][0]["destinations"]) for b in fake.bodies] == [1000, 1000, 300]
    assert summary["sent"] == summary["recipients"] == 2300 and summary["skipped"] == 2
    assert summary["statuses"] == {"PENDING": 2300}


def test_a_template_with_mapped_placeholders(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 5)
    run(make(fake, cohort, template_id="123", placeholders={"name": "first_name", "address": "email"}))
    message = fake.bodies[0]["messages"][0]
    assert message["content"] == {"templateId": "123"} and "sender" not in message
    sent = {e["to"]: json.loads(e["placeholders"]) for e in fake.emails}
    assert sent["member2@example.com"] == {"name": "Name2", "address": "member2@example.com"}


def test_a_rerun_of_a_finished_broadcast_sends_nothing(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 50)
    run(make(fake, cohort))
    again = run(make(fake, cohort))
    assert fake.calls == {"email.send": 1} and again["already_sent"] == 50 and again["sent_this_try"] == 0


# ------------------------------------------------------------------------------------------ plan first
def test_dry_run_previews_in_the_summary_and_logs_counts_only(fake, tmp_path, caplog):
    cohort = write_cohort(tmp_path / "c.csv", 40)
    summary = run(make(fake, cohort, dry_run=True, preview_rows=2, batch_size=15))
    assert fake.calls == {} and not (tmp_path / "state").exists()
    assert summary["requests_planned"] == 3 and summary["plan"]["messages"] == 40
    assert summary["preview"] == [
        {
            "to": "member0@example.com",
            "placeholders": {"plan": "free", "first_name": ""},
            "subject": "Your free plan",
            "text": "Hi , your free plan renews soon",
        },
        {
            "to": "member1@example.com",
            "placeholders": {"plan": "pro", "first_name": "Name1"},
            "subject": "Your pro plan",
            "text": "Hi Name1, your pro plan renews soon",
        },
    ]
    assert "@example.com" not in caplog.text and "Name1" not in caplog.text


def test_an_unknown_column_stops_the_run_at_plan_time(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 5)
    with pytest.raises(EmailConfigError, match="frist_name"):
        run(make(fake, cohort, placeholders={"first": "frist_name"}))
    with pytest.raises(EmailConfigError, match="coupon"):
        run(make(fake, cohort, text="Your code {{coupon}}"))
    assert fake.calls == {}


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"sender": "not an address"}, "sender", id="sender"),
        pytest.param({"sender": None}, "needs a sender", id="inline-without-sender"),
        pytest.param({"template_id": "1", "subject": "x"}, "not both", id="template-and-inline"),
        pytest.param({"subject": None}, "needs a subject", id="no-subject"),
        pytest.param({"reply_to": "nobody"}, "reply_to", id="reply-to"),
        pytest.param({"placeholders": "[1, 2]"}, "must be an object", id="placeholders-list"),
    ],
)
def test_bad_options_fail_before_any_call(fake, tmp_path, kwargs, match):
    cohort = write_cohort(tmp_path / "c.csv", 3)
    with pytest.raises(EmailConfigError, match=match):
        run(make(fake, cohort, **kwargs))
    assert fake.calls == {}


def test_test_recipients_get_the_first_rows_only(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 10)
    summary = run(make(fake, cohort, test_recipients="me@example.org, Boss@Example.org"))
    assert summary["test"] and summary["bulk_id"] == bulk(suffix=":test")
    assert [(e["to"], json.loads(e["placeholders"])["plan"]) for e in fake.emails] == [
        ("me@example.org", "free"),
        ("boss@example.org", "pro"),
    ]


# ------------------------------------------------------------------------------------------ lost answers
@pytest.mark.parametrize("fault", ["lost", "timeout"])
def test_a_lost_answer_is_reconciled_against_the_email_logs(fake, tmp_path, fault):
    cohort = write_cohort(tmp_path / "c.csv", 250)
    fake.faults = ["ok", fault, "ok"]
    summary = run(make(fake, cohort, batch_size=100))
    assert_exactly_once(fake, 250)
    assert fake.calls["email.send"] == 3 and fake.calls["email.logs"] == math.ceil(100 / LOG_QUERY_IDS)
    assert summary["reconciled"] == 100 and summary["resent_after_lost_answer"] == 0


def test_a_500_before_commit_is_resent_after_the_logs_say_nothing_arrived(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 120)
    fake.faults = ["500"]
    summary = run(make(fake, cohort, batch_size=100))
    assert_exactly_once(fake, 120)
    assert summary["resent_after_lost_answer"] == 100


def test_a_held_back_broadcast_is_never_resent_after_a_lost_answer(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 30)
    fake.faults = ["lost"]
    with pytest.raises(BroadcastUncertainError, match="send_at"):
        run(make(fake, cohort, send_at=_soon()))
    assert len(fake.emails) == 30
    fake.release()
    run(make(fake, cohort, send_at=_soon()))
    assert_exactly_once(fake, 30)


def _soon() -> str:
    from datetime import UTC, datetime, timedelta

    return (datetime.now(UTC) + timedelta(days=1)).isoformat()


# ------------------------------------------------------------------------------------------ crashes
def test_a_crash_after_commit_is_reconciled_on_the_next_try(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 300)
    fake.faults = ["ok", "die_after"]
    with pytest.raises(Crash):
        run(make(fake, cohort, batch_size=100))
    summary = run(make(fake, cohort, batch_size=100))
    assert_exactly_once(fake, 300)
    assert summary["reconciled"] == 100 and summary["already_sent"] == 200


def test_a_crash_before_the_request_left_resends_on_the_next_try(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 300)
    fake.faults = ["ok", "die_before"]
    with pytest.raises(Crash):
        run(make(fake, cohort, batch_size=100))
    summary = run(make(fake, cohort, batch_size=100))
    assert_exactly_once(fake, 300)
    assert summary["reconciled"] == 0 and summary["sent_this_try"] == 200


@pytest.mark.parametrize("when", ["before_write", "after_write"])
def test_a_crash_at_every_journal_write_never_duplicates_nor_misses(fake, tmp_path, monkeypatch, when):
    cohort = write_cohort(tmp_path / "c.csv", 45)
    original = TargetState.append_journal
    for point in range(1, 11):  # 5 batches: intent + ack each
        fake.emails.clear()
        fake.faults = ["lost"] if point % 3 == 0 else []
        run_id = f"manual__crash{point}"
        monkeypatch.setattr(TargetState, "append_journal", crash_at(point, when, original))
        with pytest.raises(Crash):
            run(make(fake, cohort, batch_size=10), run_id)
        monkeypatch.setattr(TargetState, "append_journal", original)
        run(make(fake, cohort, batch_size=10), run_id)
        got = fake.per_address(bulk(run_id))
        assert set(got) == set(addresses(45)) and max(got.values()) == 1, (when, point)
