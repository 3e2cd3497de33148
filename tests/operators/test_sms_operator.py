"""SmsBroadcastOperator against an in-memory Infobip: plan, send, lost answers, crashes at every point.

The fake keeps what Infobip would keep (every accepted message, by bulk and message id) and can
lose answers, refuse requests or "die" (a BaseException, like a SIGKILL, that nothing catches)
before or after it committed a request. Like Infobip, its logs leave out messages it holds back
(scheduled, delivery window, speed limit) until :meth:`FakeInfobip.release`. The state store is
real (a temporary folder).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from infobip_provider.engines.broadcast import broadcast_bulk_id
from infobip_provider.errors import (
    InfobipRateLimitError,
    InfobipServerError,
    InfobipTransportError,
    InfobipValidationError,
)
from infobip_provider.operators.sms import (
    LOG_QUERY_IDS,
    BroadcastLedgerError,
    BroadcastReuseError,
    BroadcastUncertainError,
    SmsBroadcastOperator,
)
from infobip_provider.sms import TemplateError
from infobip_provider.state import TargetState

TEXT = "Hi {{first_name}}, your {{plan}} plan renews soon"


class Crash(BaseException):
    """The process died here (nothing catches a BaseException that is not an Exception)."""


class FakeInfobip:
    """What the operator needs of InfobipHook, with Infobip's memory and scripted faults.

    ``faults`` is consumed one per send: ``ok``, ``lost`` (committed, answer is a 500),
    ``500`` (not committed), ``timeout`` (committed, no answer), ``refused`` (never connected),
    ``400``, ``429`` (429s beyond the hook's retries), ``die_before`` / ``die_after`` (the process
    dies before the request leaves / after Infobip committed it).
    """

    def __init__(self, state_uri: str, sender: str | None = "InfoSMS") -> None:
        self.state_uri = state_uri
        self.key_fingerprint = self.state_scope = "fp-test"
        self.is_infobip_host = False
        self.defaults = {"sender": sender, "application_id": "app-conn", "entity_id": None}
        self.messages: list[dict[str, Any]] = []
        self.bodies: list[dict[str, Any]] = []
        self.faults: list[str] = []
        self.calls: dict[str, int] = {}
        self.waited: dict[str, float] = {}
        self.log_queries: list[list[str]] = []
        #: the logs answer nothing to this many more queries (a request still settling)
        self.blind_log_queries = 0

    def release(self) -> None:
        """The held-back messages leave: from now on the logs show them."""
        for message in self.messages:
            message["held"] = False

    def _count(self, endpoint: str) -> None:
        self.calls[endpoint] = self.calls.get(endpoint, 0) + 1

    def _commit(self, body: dict[str, Any]) -> dict[str, Any]:
        schedule = body["options"]["schedule"]
        bulk = schedule["bulkId"]
        answers = []
        for message in body["messages"]:
            window = (message.get("options") or {}).get("deliveryTimeWindow")
            held = bool(schedule.get("sendAt") or schedule.get("sendingSpeedLimit") or window)
            for dest in message["destinations"]:
                self.messages.append(
                    {
                        "bulkId": bulk,
                        "messageId": dest["messageId"],
                        "to": dest["to"],
                        "text": message["content"]["text"],
                        "held": held,
                    }
                )
                answers.append(
                    {
                        "messageId": dest["messageId"],
                        "destination": dest["to"],
                        "status": {"groupId": 1, "groupName": "PENDING"},
                        "details": {"messageCount": 1},
                    }
                )
        return {"bulkId": bulk, "messages": answers}

    def send_sms(self, body: dict[str, Any]) -> dict[str, Any]:
        self._count("sms.send")
        fault = self.faults.pop(0) if self.faults else "ok"
        if fault == "die_before":
            raise Crash("killed before the request left")
        if fault == "refused":
            raise InfobipTransportError("could not connect", sent=False)
        if fault == "500":
            raise InfobipServerError("500", status=500)
        if fault == "400":
            raise InfobipValidationError("400 bad request", status=400)
        if fault == "429":
            raise InfobipRateLimitError("429", status=429)
        self.bodies.append(json.loads(json.dumps(body)))
        answer = self._commit(body)
        if fault == "lost":
            raise InfobipServerError("500 after commit", status=500)
        if fault == "timeout":
            raise InfobipTransportError("timed out", sent=True)
        if fault == "die_after":
            raise Crash("killed after Infobip committed")
        return answer

    def interval(self, endpoint: str) -> float:
        return 0.0

    def sms_logs(self, *, bulk_id=None, message_ids=(), limit=1000) -> list[dict[str, Any]]:
        self._count("sms.logs")
        assert 0 < len(message_ids) <= LOG_QUERY_IDS, "logs are asked in chunks"
        assert len(",".join(message_ids)) <= 2048, "Infobip caps messageId at 2048 characters"
        self.log_queries.append(list(message_ids))
        if self.blind_log_queries > 0:
            self.blind_log_queries -= 1
            return []
        wanted = set(message_ids)
        return [
            {"bulkId": m["bulkId"], "messageId": m["messageId"], "status": {"groupName": "DELIVERED"}}
            for m in self.messages
            if m["bulkId"] == bulk_id and m["messageId"] in wanted and not m["held"]
        ]

    def per_number(self, bulk_id: str) -> Counter[str]:
        return Counter(m["to"] for m in self.messages if m["bulkId"] == bulk_id)


class FakeTI:
    def __init__(self, map_index: int = -1) -> None:
        self.map_index = map_index

    def xcom_push(self, key: str, value: Any) -> None:
        json.dumps(value)


def numbers(n: int) -> list[str]:
    return [f"4179{3000000 + i:07d}" for i in range(n)]


def write_cohort(path, n: int, *, extra: tuple[str, ...] = ()) -> str:
    plans = ("free", "pro", "enterprise")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("phone,first_name,plan\n")
        for i, number in enumerate(numbers(n)):
            name = f"Name{i}" if i % 7 else ""  # every 7th has no first name
            fh.write(f"+{number},{name},{plans[i % 3]}\n")
        for row in extra:
            fh.write(row + "\n")
    return str(path)


def expected_text(i: int) -> str:
    name = f"Name{i}" if i % 7 else ""
    return f"Hi {name}, your {('free', 'pro', 'enterprise')[i % 3]} plan renews soon"


@pytest.fixture
def fake(tmp_path):
    return FakeInfobip(str(tmp_path / "state"))


def make(fake: FakeInfobip, cohort: str, **kwargs: Any) -> SmsBroadcastOperator:
    kwargs.setdefault("text", TEXT)
    kwargs.setdefault("reconcile_delay", 0)
    op = SmsBroadcastOperator(task_id="broadcast", cohort_path=cohort, **kwargs)
    op.hook = fake
    op._sleep = lambda seconds: None
    return op


def run(op: SmsBroadcastOperator, run_id: str = "manual__1", map_index: int = -1) -> dict[str, Any]:
    context = {"run_id": run_id, "ti": FakeTI(map_index), "params": {}, "dag_run": None, "ds": "2026-03-02"}
    op.render_template_fields(context)
    result = op.execute(context)
    json.dumps(result)
    return result


def bulk(run_id: str = "manual__1", suffix: str = "") -> str:
    return broadcast_bulk_id("adhoc_airflow", run_id, "broadcast", suffix)


def assert_exactly_once(fake: FakeInfobip, n: int, run_id: str = "manual__1") -> None:
    got = fake.per_number(bulk(run_id))
    assert set(got) == set(numbers(n)), "every recipient got a message"
    assert max(got.values()) == 1, "nobody got two"
    texts = {m["to"]: m["text"] for m in fake.messages}
    assert all(texts[number] == expected_text(i) for i, number in enumerate(numbers(n)))


# ------------------------------------------------------------------------------------------ happy path
def test_every_recipient_gets_one_personalised_message(fake, tmp_path):
    cohort = write_cohort(
        tmp_path / "c.csv", 2300, extra=("not-a-number,X,pro", ",Nobody,free", "+41793000000,Dup,pro")
    )
    summary = run(make(fake, cohort, batch_size=1000, include_sms_count=True, price_per_segment=0.05))
    assert_exactly_once(fake, 2300)
    assert fake.calls == {"sms.send": 3}
    assert [sum(len(m["destinations"]) for m in b["messages"]) for b in fake.bodies] == [1000, 1000, 300]
    assert summary["sent"] == summary["sent_this_try"] == summary["recipients"] == 2300
    assert summary["skipped"] == 3 and summary["skipped_by_reason"] == {
        "invalid phone": 1,
        "missing identity": 1,
        "duplicate": 1,
    }
    assert summary["statuses"] == {"PENDING": 2300} and summary["rejected"] == 0
    assert summary["segments"] == summary["segments_reported"] == 2300
    assert summary["estimated_cost"] == pytest.approx(2300 * 0.05)
    assert summary["bulk_id"] == bulk() and summary["rejects_uri"].endswith(".csv")
    # Sender from the connection, application id from the connection extra.
    message = fake.bodies[0]["messages"][0]
    assert message["sender"] == "InfoSMS" and message["options"]["platform"] == {"applicationId": "app-conn"}


def test_a_rerun_of_a_finished_broadcast_sends_nothing(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 50)
    run(make(fake, cohort))
    again = run(make(fake, cohort))
    assert fake.calls == {"sms.send": 1}
    assert again["sent"] == again["already_sent"] == 50 and again["sent_this_try"] == 0


def test_another_run_is_another_broadcast(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 10)
    run(make(fake, cohort), "manual__1")
    run(make(fake, cohort), "manual__2")
    assert_exactly_once(fake, 10, "manual__1")
    assert_exactly_once(fake, 10, "manual__2")


def test_same_text_shares_one_message(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 30)
    run(make(fake, cohort, text="Sale today! {{plan}}"))
    (body,) = fake.bodies
    assert sorted(len(m["destinations"]) for m in body["messages"]) == [10, 10, 10]
    assert {m["content"]["text"] for m in body["messages"]} == {
        f"Sale today! {p}" for p in ("free", "pro", "enterprise")
    }


def test_airflow_templates_render_but_recipient_tokens_survive(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 3)
    run(make(fake, cohort, text="{{ ds }}: hi {{first_name}}"))
    assert {m["text"] for m in fake.messages} == {
        "2026-03-02: hi ",
        "2026-03-02: hi Name1",
        "2026-03-02: hi Name2",
    }


def test_the_phone_column_token_gives_the_normalised_number(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 2)
    run(make(fake, cohort, text="Your number {{phone}}"))
    assert {m["text"] for m in fake.messages} == {f"Your number {n}" for n in numbers(2)}


# ------------------------------------------------------------------------------------------ plan first
def test_dry_run_plans_and_calls_nothing(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 40)
    summary = run(
        make(
            fake,
            cohort,
            text="Merhaba {{first_name}}, {{plan}} ş " + "x" * 60,
            dry_run="true",
            price_per_segment=0.1,
        )
    )
    assert fake.calls == {} and fake.messages == []
    plan = summary["plan"]
    assert plan["messages"] == 40 and plan["messages_by_encoding"] == {"UCS-2": 40}
    assert plan["ucs2_characters"][0]["character"].startswith("'ş' U+015F")
    assert plan["total_segments"] == sum(int(k) * v for k, v in plan["messages_by_segments"].items())
    assert plan["estimated_cost"] == pytest.approx(plan["total_segments"] * 0.1)
    assert summary["requests_planned"] == 1 and summary["dry_run"] is True
    assert not (tmp_path / "state").exists(), "a dry run writes no state"


def test_max_segments_refuses_before_sending(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 10)
    long_text = "{{first_name}} " + "a" * 310
    plan = run(make(fake, cohort, text=long_text, max_segments=2, dry_run=True))["plan"]
    assert plan["too_long"] == {"messages": 10, "max_segments": 2} and plan["longest"]["segments"] == 3
    with pytest.raises(AirflowFailException, match="max_segments=2"):
        run(make(fake, cohort, text=long_text, max_segments=2))
    assert fake.calls == {}


def test_unknown_token_fails_before_any_call(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 10)
    with pytest.raises(TemplateError, match=r"\{\{frist_name\}\} \(did you mean \{\{first_name\}\}\?\)"):
        run(make(fake, cohort, text="Hi {{frist_name}}"))
    assert fake.calls == {}


def test_bad_sender_fails_before_any_call(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 10)
    with pytest.raises(AirflowFailException, match="sender"):
        run(make(fake, cohort, sender="X"))
    assert fake.calls == {}


def test_empty_messages_are_skipped_and_reported(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 14)
    summary = run(make(fake, cohort, text="{{first_name}}"))
    assert summary["skipped_by_reason"]["empty message"] == 2  # rows 0 and 7 have no name
    assert summary["sent"] == 12 and len(fake.messages) == 12


def test_test_recipients_get_the_first_rows_only(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 20)
    summary = run(
        make(fake, cohort, test_recipients=["+385 91 234 5678", "+41 79 111 22 33", "+385912345678"])
    )
    assert summary["test"] is True and summary["bulk_id"] == bulk(suffix=":test")
    assert Counter(m["to"] for m in fake.messages) == {"385912345678": 1, "41791112233": 1}
    assert [m["text"] for m in fake.messages] == [expected_text(0), expected_text(1)]
    assert not fake.per_number(bulk()), "the cohort itself got nothing"


def test_invalid_test_recipient_is_refused(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 2)
    with pytest.raises(AirflowFailException, match="test_recipients"):
        run(make(fake, cohort, test_recipients="+385912345678, 12"))


def test_numbers_and_texts_are_never_logged(fake, tmp_path, caplog, capfd):
    cohort = write_cohort(tmp_path / "c.csv", 30)
    fake.faults = ["lost"]
    with caplog.at_level("DEBUG"):
        run(make(fake, cohort, batch_size=10))
    out, err = capfd.readouterr()
    logged = caplog.text + out + err
    assert "Sending 30 messages" in logged  # the logs were captured
    for i, number in enumerate(numbers(30)):
        assert number[-7:] not in logged
        assert f"Name{i}," not in logged
    assert "renews soon" not in logged


# ------------------------------------------------------------------------------------------ lost answers
@pytest.mark.parametrize("fault", ["lost", "timeout"])
def test_a_lost_answer_is_reconciled_at_once_and_nothing_is_resent(fake, tmp_path, fault):
    cohort = write_cohort(tmp_path / "c.csv", 250)
    fake.faults = ["ok", fault, "ok"]
    slept: list[float] = []
    op = make(fake, cohort, batch_size=100, reconcile_delay=7)
    op._sleep = slept.append
    summary = run(op)
    assert_exactly_once(fake, 250)
    assert fake.calls["sms.send"] == 3 and fake.calls["sms.logs"] == math.ceil(100 / LOG_QUERY_IDS)
    assert summary["reconciled"] == 100 and summary["resent_after_lost_answer"] == 0
    assert summary["statuses"] == {"PENDING": 150, "DELIVERED": 100}
    assert len(slept) == 1 and 0 < slept[0] <= 7, "the lost request was given time to settle"


def test_a_500_before_commit_is_reconciled_then_resent_once(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 250)
    fake.faults = ["500", "500"]
    summary = run(make(fake, cohort, batch_size=200))
    assert_exactly_once(fake, 250)
    assert summary["resent_after_lost_answer"] == 400  # the first batch went three times, taken once
    # Each lost answer: the logs are asked twice (after settling, then reconcile_delay later).
    assert fake.calls["sms.logs"] == 2 * 2 * math.ceil(200 / LOG_QUERY_IDS)


def test_lost_answers_beyond_the_attempts_fail_the_try_and_the_retry_finishes(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 120)
    fake.faults = ["500", "500", "500"]
    with pytest.raises(InfobipServerError):
        run(make(fake, cohort, batch_size=100, max_send_attempts=3))
    assert fake.messages == []
    summary = run(make(fake, cohort, batch_size=100))
    assert_exactly_once(fake, 120)
    assert summary["sent_this_try"] == 120


@pytest.mark.parametrize(
    ("fault", "error"),
    [("refused", InfobipTransportError), ("400", InfobipValidationError), ("429", InfobipRateLimitError)],
)
def test_an_answer_proving_nothing_was_sent_needs_no_reconciliation(fake, tmp_path, fault, error):
    cohort = write_cohort(tmp_path / "c.csv", 30)
    fake.faults = [fault]
    with pytest.raises(error):
        run(make(fake, cohort))
    assert "sms.logs" not in fake.calls
    run(make(fake, cohort))
    assert "sms.logs" not in fake.calls, "the batch was closed as not sent: nothing to reconcile"
    assert_exactly_once(fake, 30)


# ------------------------------------------------------------------------------------------ crashes
def test_a_crash_after_commit_is_reconciled_on_the_next_try(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 300)
    fake.faults = ["ok", "die_after"]
    with pytest.raises(Crash):
        run(make(fake, cohort, batch_size=100))
    summary = run(make(fake, cohort, batch_size=100))
    assert_exactly_once(fake, 300)
    assert summary["reconciled"] == 100 and summary["sent_this_try"] == 100 and summary["already_sent"] == 200


def test_a_crash_before_the_request_left_resends_on_the_next_try(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 300)
    fake.faults = ["ok", "die_before"]
    with pytest.raises(Crash):
        run(make(fake, cohort, batch_size=100))
    summary = run(make(fake, cohort, batch_size=100))
    assert_exactly_once(fake, 300)
    assert summary["reconciled"] == 0 and summary["sent_this_try"] == 200


def _journal_writes(fake, cohort, batch_size):
    """How many journal records a clean broadcast writes (the crash points to try)."""
    calls = 0
    original = TargetState.append_journal

    def counting(self, record):
        nonlocal calls
        calls += 1
        original(self, record)

    TargetState.append_journal = counting
    try:
        run(make(fake, cohort, batch_size=batch_size), "manual__count")
    finally:
        TargetState.append_journal = original
    return calls


def crash_at(point: int, when: str, original):
    """``append_journal`` that kills the process at its ``point``-th call, before or after writing."""
    writes = 0

    def crashing(self, record):
        nonlocal writes
        writes += 1
        if writes == point and when == "before_write":
            raise Crash(f"killed before journal write {point}")
        original(self, record)
        if writes == point and when == "after_write":
            raise Crash(f"killed after journal write {point}")

    return crashing


@pytest.mark.parametrize("when", ["before_write", "after_write"])
def test_a_crash_at_every_journal_write_never_duplicates_nor_misses(fake, tmp_path, monkeypatch, when):
    cohort = write_cohort(tmp_path / "c.csv", 45)
    points = _journal_writes(fake, cohort, 10)
    assert points == 10  # 5 batches: intent + ack each
    original = TargetState.append_journal
    for point in range(1, points + 1):
        fake.messages.clear()
        fake.faults = ["lost"] if point % 3 == 0 else []  # some tries also lose an answer
        run_id = f"manual__crash{point}"
        crashing = crash_at(point, when, original)
        monkeypatch.setattr(TargetState, "append_journal", crashing)
        with pytest.raises(Crash):
            run(make(fake, cohort, batch_size=10), run_id)
        monkeypatch.setattr(TargetState, "append_journal", original)
        run(make(fake, cohort, batch_size=10), run_id)
        got = fake.per_number(bulk(run_id))
        assert set(got) == set(numbers(45)) and max(got.values()) == 1, (when, point)


def test_an_unconfirmed_batch_older_than_the_logs_window_stops_the_broadcast(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 20)
    fake.faults = ["die_after"]
    op = make(fake, cohort)
    op._clock = lambda: 1_000_000.0
    with pytest.raises(Crash):
        run(op)
    later = make(fake, cohort)
    later._clock = lambda: 1_000_000.0 + 48 * 3600
    with pytest.raises(BroadcastLedgerError, match="48 h"):
        run(later)
    assert len(fake.messages) == 20 and "sms.logs" not in fake.calls


def test_a_young_unconfirmed_batch_waits_for_the_settling_delay(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 20)
    fake.faults = ["die_after"]
    op = make(fake, cohort)
    op._clock = lambda: 5_000.0
    with pytest.raises(Crash):
        run(op)
    slept: list[float] = []
    later = make(fake, cohort, reconcile_delay=10)
    later._clock = lambda: 5_004.0
    later._sleep = slept.append
    summary = run(later)
    assert slept == [pytest.approx(6.0)] and summary["reconciled"] == 20
    assert_exactly_once(fake, 20)


def test_an_empty_cohort_sends_nothing(fake, tmp_path):
    cohort = tmp_path / "empty.csv"
    cohort.write_text("phone,first_name,plan\n")
    summary = run(make(fake, str(cohort)))
    assert summary["sent"] == summary["recipients"] == 0 and fake.calls == {}
    with pytest.raises(TemplateError):  # the columns are known even without rows
        run(make(fake, str(cohort), text="Hi {{nope}}"))


def test_bulk_id_override_and_bodies_carry_it(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 5)
    summary = run(make(fake, cohort, bulk_id="spring-campaign-2026"))
    assert summary["bulk_id"] == "spring-campaign-2026"
    assert fake.bodies[0]["options"]["schedule"]["bulkId"] == "spring-campaign-2026"
    assert all(
        re.fullmatch(r"[0-9a-f]{32}", d["messageId"]) for d in fake.bodies[0]["messages"][0]["destinations"]
    )


# ------------------------------------------------------------------------------------------ reconcile twice
def test_a_lost_answer_the_logs_show_late_is_found_on_the_second_look(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 250)
    fake.faults = ["ok", "lost"]
    fake_blind = math.ceil(100 / LOG_QUERY_IDS)
    slept: list[float] = []
    op = make(fake, cohort, batch_size=100, reconcile_delay=7)
    op._sleep = slept.append

    original = fake.send_sms

    def send_then_blind(body):
        try:
            return original(body)
        except InfobipServerError:
            fake.blind_log_queries = fake_blind  # the first look at the logs sees nothing yet
            raise

    fake.send_sms = send_then_blind
    summary = run(op)
    assert_exactly_once(fake, 250)
    assert summary["reconciled"] == 100 and summary["resent_after_lost_answer"] == 0
    assert fake.calls["sms.logs"] == 2 * fake_blind
    assert len(slept) == 2 and 0 < slept[0] <= 7 and slept[1] == 7, "two looks, reconcile_delay apart"


def test_a_crash_whose_batch_the_logs_show_late_is_not_resent(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 30)
    fake.faults = ["die_after"]
    with pytest.raises(Crash):
        run(make(fake, cohort))
    fake.blind_log_queries = 1
    summary = run(make(fake, cohort))
    assert_exactly_once(fake, 30)
    assert summary["reconciled"] == 30 and summary["sent_this_try"] == 0


# ------------------------------------------------------------------------------------------ held back
def _soon() -> str:
    return (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S")


HELD_BACK = {
    "send_at": lambda: {"send_at": _soon()},
    "delivery_time_window": lambda: {"delivery_time_window": {"from": "08:00", "to": "20:00"}},
    "sending_speed_limit": lambda: {"sending_speed_limit": 100},
}


@pytest.mark.parametrize("option", sorted(HELD_BACK))
@pytest.mark.parametrize("fault", ["lost", "timeout", "500"])
def test_a_held_back_broadcast_is_never_resent_after_a_lost_answer(fake, tmp_path, option, fault):
    cohort = write_cohort(tmp_path / "c.csv", 250)
    kwargs = HELD_BACK[option]()
    fake.faults = ["ok", fault]
    with pytest.raises(BroadcastUncertainError) as failure:
        run(make(fake, cohort, batch_size=100, **kwargs))
    message = str(failure.value)
    assert "100 recipients" in message and bulk() in message and option in message
    assert "portal" in message and "Nothing was sent again" in message
    got = fake.per_number(bulk())
    assert max(got.values()) == 1, "nobody got two"
    assert sum(got.values()) == (200 if fault != "500" else 100)
    assert fake.calls["sms.send"] == 2, "the uncertain batch was not sent again, nor the next one"
    # A later run refuses too, without sending anything.
    with pytest.raises(BroadcastUncertainError, match="100 recipients"):
        run(make(fake, cohort, batch_size=100, **kwargs))
    assert fake.calls["sms.send"] == 2 and fake.per_number(bulk()) == got


def test_a_held_back_crash_stops_every_later_try_until_the_logs_show_the_batch(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 300)
    kwargs = {"send_at": _soon()}
    fake.faults = ["ok", "die_after"]
    with pytest.raises(Crash):
        run(make(fake, cohort, batch_size=100, **kwargs))
    for _ in range(2):
        with pytest.raises(BroadcastUncertainError, match=r"100 recipients .* send_at"):
            run(make(fake, cohort, batch_size=100, **kwargs))
    assert fake.calls["sms.send"] == 2 and len(fake.messages) == 200
    fake.release()  # the scheduled time came: the logs show what Infobip took
    summary = run(make(fake, cohort, batch_size=100, **kwargs))
    assert_exactly_once(fake, 300)
    assert summary["reconciled"] == 100 and summary["sent_this_try"] == 100


def test_a_held_back_broadcast_without_faults_sends_once(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 120)
    summary = run(make(fake, cohort, batch_size=50, send_at=_soon(), sending_speed_limit=600))
    assert_exactly_once(fake, 120)
    assert summary["sent"] == 120 and "sms.logs" not in fake.calls


# ------------------------------------------------------------------------------------------ bulk ids
def test_mapped_instances_are_separate_broadcasts(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 10)
    texts = ("Hi {{first_name}}", "Hallo {{first_name}}")
    summaries = [run(make(fake, cohort, text=t), map_index=i) for i, t in enumerate(texts)]
    assert summaries[0]["bulk_id"] != summaries[1]["bulk_id"]
    assert summaries[0]["bulk_id"] == broadcast_bulk_id("adhoc_airflow", "manual__1", "broadcast", "", 0)
    assert [s["sent_this_try"] for s in summaries] == [10, 10], "the second instance sent its own"
    assert Counter(m["to"] for m in fake.messages) == {n: 2 for n in numbers(10)}


def test_an_explicit_bulk_id_of_another_run_is_refused(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 5)
    run(make(fake, cohort, bulk_id="spring"), "manual__1")
    again = run(make(fake, cohort, bulk_id="spring"), "manual__1")  # a retry of the same run is fine
    assert again["already_sent"] == 5
    with pytest.raises(BroadcastReuseError, match=r"spring .* manual__1.* manual__2.*allow_bulk_id_reuse"):
        run(make(fake, cohort, bulk_id="spring"), "manual__2")
    assert fake.calls["sms.send"] == 1
    allowed = run(make(fake, cohort, bulk_id="spring", allow_bulk_id_reuse="true"), "manual__2")
    assert allowed["already_sent"] == 5 and allowed["sent_this_try"] == 0
    derived = run(make(fake, cohort), "manual__2")  # derived ids are unique per run: no check needed
    assert derived["sent_this_try"] == 5


# ------------------------------------------------------------------------------------------ text values
@pytest.mark.parametrize("value", ["[]", "", "  ", "()"])
def test_empty_test_recipients_text_means_the_whole_cohort(fake, tmp_path, value):
    cohort = write_cohort(tmp_path / "c.csv", 4)
    summary = run(make(fake, cohort, test_recipients=value))
    assert summary["test"] is False and summary["bulk_id"] == bulk()
    assert_exactly_once(fake, 4)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("['+385 91 234 5678', '+41 79 111 22 33']", {"385912345678", "41791112233"}),
        ('["+385912345678", "+41791112233"]', {"385912345678", "41791112233"}),
        ("('+385912345678',)", {"385912345678"}),
    ],
)
def test_test_recipients_as_list_text(fake, tmp_path, value, expected):
    cohort = write_cohort(tmp_path / "c.csv", 4)
    summary = run(make(fake, cohort, test_recipients=value))
    assert summary["test"] is True and summary["recipients"] == len(expected)
    assert {m["to"] for m in fake.messages} == expected


def test_broken_list_text_is_refused(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 4)
    with pytest.raises(AirflowFailException, match="neither JSON nor a Python literal"):
        run(make(fake, cohort, test_recipients="['+385912345678'"))
    with pytest.raises(AirflowFailException, match="list of phone numbers"):
        run(make(fake, cohort, test_recipients='{"a": 1}'))
    assert fake.calls == {}


@pytest.mark.parametrize(
    "value",
    [
        '{"days": ["MONDAY", "FRIDAY"], "from": "08:00", "to": "18:00"}',
        "{'days': ['mon', 'fri'], 'from': {'hour': 8, 'minute': 0}, 'to': '18:00'}",
    ],
)
def test_delivery_time_window_as_text(fake, tmp_path, value):
    cohort = write_cohort(tmp_path / "c.csv", 3)
    run(make(fake, cohort, delivery_time_window=value))
    window = fake.bodies[0]["messages"][0]["options"]["deliveryTimeWindow"]
    assert window == {
        "days": ["MONDAY", "FRIDAY"],
        "from": {"hour": 8, "minute": 0},
        "to": {"hour": 18, "minute": 0},
    }


def test_empty_delivery_time_window_text_means_none(fake, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 3)
    run(make(fake, cohort, delivery_time_window="  "))
    assert "deliveryTimeWindow" not in (fake.bodies[0]["messages"][0].get("options") or {})


@pytest.mark.parametrize("given", [None, "", "None"], ids=["none", "blank", "rendered-none"])
def test_an_empty_sender_param_takes_the_connections_sender(fake, tmp_path, given):
    """A DAG rendered as text turns an empty param into "None": the connection's sender still applies."""
    op = make(fake, "unused.csv", sender=given, entity_id="None")
    options = op._options()
    assert options.sender == "InfoSMS"
    assert options.message_options["platform"] == {"applicationId": "app-conn"}
