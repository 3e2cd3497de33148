"""SmsBroadcastOperator against the sandbox: exactly one message per recipient, whatever goes wrong.

Faults: a SIGKILL of the task's process at random moments (10 trials, then a resume), a 500
after the sandbox committed the send (a lost answer), a 500 before it, a timeout (the sandbox
answers after the client gave up, and commits then) and 429s. After every scenario the sandbox's
own store must hold exactly one message per recipient, with the recipient's text.

This module doubles as the worker the SIGKILL test starts:
``python -m tests.integration.test_sms_broadcast <cohort> <run_id>``.
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing
import os
import random
import signal
import sys
import time

import pytest

from infobip_provider.operators.sms import LOG_QUERY_IDS, BroadcastUncertainError, SmsBroadcastOperator
from tests.integration.conftest import run_operator, total_429

pytestmark = pytest.mark.sandbox

TEXT = "Hi {{first_name}}, your {{plan}} plan: {{offer}}"
PLANS = ("free", "pro", "enterprise")


def numbers(n: int) -> list[str]:
    return [f"4179{3000000 + i:07d}" for i in range(n)]


def expected(i: int) -> str:
    name = f"Ana{i}" if i % 5 else ""  # every 5th row has no first name: it renders empty
    offer = "20% off" if i % 2 else "free month €"
    return f"Hi {name}, your {PLANS[i % 3]} plan: {offer}"


def write_cohort(path, n: int) -> str:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("phone,first_name,plan,offer\n")
        for i, number in enumerate(numbers(n)):
            name = f"Ana{i}" if i % 5 else ""
            offer = "20% off" if i % 2 else "free month €"
            fh.write(f"+{number},{name},{PLANS[i % 3]},{offer}\n")
        fh.write("12,Broken,free,x\n")  # not a usable number: skipped and reported
    return str(path)


def broadcast(cohort: str, run_id: str = "manual__1", **kwargs) -> dict:
    kwargs.setdefault("reconcile_delay", 0.2)
    operator = SmsBroadcastOperator(task_id="broadcast", text=TEXT, cohort_path=cohort, **kwargs)
    return run_operator(operator, run_id)


def delivered(sandbox, bulk_id: str) -> dict[str, list[str]]:
    """Number -> texts of the messages the sandbox holds for the bulk."""
    out: dict[str, list[str]] = {}
    for message in sandbox.state()["messages"]:
        if message["bulkId"] == bulk_id:
            out.setdefault(message["destination"], []).append(message["text"])
    return out


def assert_exactly_once(sandbox, bulk_id: str, n: int) -> None:
    got = delivered(sandbox, bulk_id)
    missing = set(numbers(n)) - set(got)
    twice = {k: len(v) for k, v in got.items() if len(v) > 1}
    assert not missing, f"{len(missing)} recipients got nothing"
    assert not twice, f"{len(twice)} recipients got more than one message"
    assert set(got) == set(numbers(n))
    wrong = [i for i, number in enumerate(numbers(n)) if got[number] != [expected(i)]]
    assert not wrong, f"{len(wrong)} recipients got a wrong text"


def requests_of(sandbox, endpoint: str) -> int:
    return int(sandbox.counters().get(endpoint, {}).get("requests", 0))


# ------------------------------------------------------------------------------------------ plain run
def test_every_recipient_gets_one_message_with_its_text(sandbox, infobip_conn, tmp_path):
    from tests.test_sms import validate_with_official_model

    cohort = write_cohort(tmp_path / "c.csv", 2500)
    summary = broadcast(cohort, sender="InfoSMS", include_sms_count=True)
    assert_exactly_once(sandbox, summary["bulk_id"], 2500)
    assert summary["sent"] == 2500 and summary["skipped"] == 1 and summary["statuses"] == {"PENDING": 2500}
    assert summary["segments"] == summary["segments_reported"] == 2500
    bodies = [e["body"] for e in sandbox.journal(bodies=True, endpoint="sms.send")]
    assert len(bodies) == requests_of(sandbox, "sms.send") == 3
    for body in bodies:
        assert sum(len(m["destinations"]) for m in body["messages"]) <= 1000
        # The official model is slow (about 1 ms a message): check a slice of every request.
        validate_with_official_model({**body, "messages": body["messages"][:50]})
    assert total_429(sandbox.counters()) == 0


def test_every_option_is_accepted(sandbox, infobip_conn, tmp_path):
    from tests.test_sms import validate_with_official_model

    cohort = write_cohort(tmp_path / "c.csv", 30)
    summary = broadcast(
        cohort,
        sender="41793026727",
        validity_period="6h",
        delivery_time_window={"days": ["MONDAY", "FRIDAY"], "from": "08:00", "to": "18:00"},
        send_at=time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 3600)),
        sending_speed_limit=600,
        shorten_url=True,
        track_clicks=True,
        custom_domain="go.example.com",
        notify_url="https://hooks.example.com/dlr",
        intermediate_report=True,
        callback_data="spring",
        transliteration="NONE",
        language_code="NONE",
        flash=False,
        india_dlt_principal_entity_id="1201159",
        india_dlt_content_template_id="1207161",
        turkey_iys_brand_code=123456,
        turkey_iys_recipient_type="BIREYSEL",
        south_korea_reseller_code=123456789,
        south_korea_title="Notice",
        entity_id="entity-1",
        application_id="app-1",
        campaign_reference_id="spring-2026",
    )
    assert_exactly_once(sandbox, summary["bulk_id"], 30)
    (entry,) = sandbox.journal(bodies=True, endpoint="sms.send")
    validate_with_official_model(entry["body"])
    stored = [m for m in sandbox.state()["messages"] if m["bulkId"] == summary["bulk_id"]]
    assert {m["campaignReferenceId"] for m in stored} == {"spring-2026"}
    assert {m["callbackData"] for m in stored} == {"spring"}


def test_a_dry_run_sends_nothing(sandbox, infobip_conn, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 100)
    plan = broadcast(cohort, dry_run=True, price_per_segment=0.02)
    assert plan["plan"]["messages"] == 100 and plan["plan"]["estimated_cost"] == pytest.approx(2.0)
    assert sum(c["requests"] for c in sandbox.counters().values()) == 0


# ------------------------------------------------------------------------------------------ faults
def test_a_500_after_commit_is_reconciled_not_resent(sandbox, infobip_conn, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 1200)
    sandbox.inject_fault("sms.send", "commit_then_500", count=1)
    summary = broadcast(cohort)
    assert_exactly_once(sandbox, summary["bulk_id"], 1200)
    assert summary["reconciled"] == 1000 and summary["resent_after_lost_answer"] == 0
    assert requests_of(sandbox, "sms.send") == 2
    # one log query per LOG_QUERY_IDS ids; a second round only for ids the first answer did not show
    # yet (a busy sandbox may commit the last messages after the first query)
    rounds = requests_of(sandbox, "sms.logs") / math.ceil(1000 / LOG_QUERY_IDS)
    assert 1 <= rounds <= 2


def test_a_500_before_commit_is_reconciled_then_resent(sandbox, infobip_conn, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 300)
    sandbox.inject_fault("sms.send", "error_500", count=1)
    summary = broadcast(cohort)
    assert_exactly_once(sandbox, summary["bulk_id"], 300)
    assert summary["reconciled"] == 0 and summary["resent_after_lost_answer"] == 300
    assert requests_of(sandbox, "sms.send") == 2


def test_a_timeout_whose_request_commits_late_is_not_sent_twice(sandbox, infobip_conn, tmp_path, monkeypatch):
    extras = {"cooldown_scale": 0.01, "cooldown_backend": "file", "state_uri": str(infobip_conn["state"])}
    monkeypatch.setenv("AIRFLOW_CONN_INFOBIP_DEFAULT", sandbox.conn_json(timeout=0.5, **extras))
    cohort = write_cohort(tmp_path / "c.csv", 400)
    sandbox.inject_fault("sms.send", "slow", count=1, delay=1.0)  # answers (and commits) after 1 s
    summary = broadcast(cohort, reconcile_delay=1.5, batch_size=200)
    assert_exactly_once(sandbox, summary["bulk_id"], 400)
    assert summary["reconciled"] == 200 and summary["resent_after_lost_answer"] == 0


def test_a_scheduled_broadcast_is_never_resent_after_a_lost_answer(sandbox, infobip_conn, tmp_path):
    """The sandbox, like Infobip, leaves scheduled messages out of its logs until they leave: the
    batch whose answer was lost is not found there, and must not be sent again."""
    cohort = write_cohort(tmp_path / "c.csv", 300)
    send_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + 3600))
    sandbox.inject_fault("sms.send", "commit_then_500", count=1)
    with pytest.raises(BroadcastUncertainError) as failure:
        broadcast(cohort, send_at=send_at, batch_size=100)
    bulk_id = bulk_id_of("manual__1")
    assert "100 recipients" in str(failure.value) and bulk_id in str(failure.value)
    got = delivered(sandbox, bulk_id)
    assert len(got) == 100 and all(len(texts) == 1 for texts in got.values())
    assert requests_of(sandbox, "sms.send") == 1
    assert requests_of(sandbox, "sms.logs") == 2 * math.ceil(100 / LOG_QUERY_IDS), "asked twice, found none"
    with pytest.raises(BroadcastUncertainError, match="100 recipients"):  # a retry refuses as well
        broadcast(cohort, send_at=send_at, batch_size=100)
    assert requests_of(sandbox, "sms.send") == 1 and delivered(sandbox, bulk_id) == got


def test_429s_are_retried_without_reconciliation(sandbox, infobip_conn, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 300)
    sandbox.inject_fault("sms.send", "error_429", count=2)
    summary = broadcast(cohort)
    assert_exactly_once(sandbox, summary["bulk_id"], 300)
    assert requests_of(sandbox, "sms.send") == 3 and requests_of(sandbox, "sms.logs") == 0


def test_sigkill_at_random_moments_then_resume(sandbox, infobip_conn, tmp_path):
    """10 tries of one broadcast, each SIGKILLed at a random moment, then a try that finishes.

    The tries are forked from this process (everything is imported already, so a kill lands in the
    broadcast, not in Python's start-up) and killed with SIGKILL: no cleanup code runs. Each kill
    is aimed at a random point of the try's remaining work (after its k-th ledger write, plus a
    random few milliseconds, so it lands inside requests and writes as well as between them).
    """
    n, run_id, batch = 1500, "manual__kill", 50
    cohort = write_cohort(tmp_path / "c.csv", n)
    bulk_id = bulk_id_of(run_id)
    fork = multiprocessing.get_context("fork")
    rng = random.Random(8)
    progress = []
    for _ in range(10):
        remaining = n - sum(len(v) for v in delivered(sandbox, bulk_id).values())
        aim = rng.randint(0, max(0, 2 * math.ceil(remaining / batch) - 2))  # leave the last batch or so
        writes = fork.Value("i", 0)
        process = fork.Process(target=worker_main, args=(cohort, run_id, writes), daemon=True)
        process.start()
        deadline = time.monotonic() + 60
        while writes.value < aim and process.is_alive() and time.monotonic() < deadline:
            time.sleep(0.0005)
        time.sleep(rng.uniform(0.0, 0.005))
        with contextlib.suppress(ProcessLookupError):  # a try with nothing left may be over already
            os.kill(process.pid, signal.SIGKILL)
        process.join(30)
        progress.append(sum(len(v) for v in delivered(sandbox, bulk_id).values()))
    final = fork.Process(target=worker_main, args=(cohort, run_id, None))
    final.start()
    final.join(120)
    assert final.exitcode == 0
    assert_exactly_once(sandbox, bulk_id, n)
    assert progress == sorted(progress), progress
    assert sum(0 < p < n for p in progress) >= 3, f"too few kills landed mid-broadcast: {progress}"


def bulk_id_of(run_id: str) -> str:
    from infobip_provider.engines.broadcast import broadcast_bulk_id

    return broadcast_bulk_id("adhoc_airflow", run_id, "broadcast")


def worker_main(cohort: str, run_id: str, writes=None) -> None:
    """The SIGKILL test's task: one try of the broadcast, in batches of 50.

    :param writes: a shared counter of ledger writes, so the test can aim its kill.
    """
    if writes is not None:
        from infobip_provider.state import TargetState

        original = TargetState.append_journal

        def counted(self, record):
            original(self, record)
            with writes.get_lock():
                writes.value += 1

        TargetState.append_journal = counted
    operator = SmsBroadcastOperator(
        task_id="broadcast", text=TEXT, cohort_path=cohort, batch_size=50, reconcile_delay=1.0
    )
    print(json.dumps(run_operator(operator, run_id)), flush=True)


if __name__ == "__main__":  # a try by hand: python -m tests.integration.test_sms_broadcast <cohort> <run_id>
    worker_main(*sys.argv[1:3])
