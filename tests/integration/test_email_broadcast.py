"""EmailBroadcastOperator against the sandbox: exactly one email per member, whatever goes wrong.

Faults: a 500 after the sandbox committed the send (a lost answer), a 500 before it, a timeout (the
sandbox answers after the client gave up, and commits then) and a SIGKILL of the task's process at
random moments (10 trials, then a resume). After every scenario the sandbox's own store must hold
exactly one email per member, with the member's placeholders. Request bodies are checked against
the official client's email models, refusing any key they do not declare.
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing
import os
import random
import signal
import time

import pytest

from infobip_provider.email import LOG_QUERY_IDS
from infobip_provider.engines.broadcast import broadcast_bulk_id
from infobip_provider.operators.email import EmailBroadcastOperator
from tests.integration.conftest import run_operator, total_429

pytestmark = pytest.mark.sandbox

SUBJECT = "{{first_name}}, your {{plan}} plan"
HTML = "<p>Hi {{first_name}}, enjoy {{offer}}</p>"
PLANS = ("free", "pro", "enterprise")


def addresses(n: int) -> list[str]:
    return [f"member{i}@example.com" for i in range(n)]


def expected(i: int) -> dict[str, str]:
    return {
        "first_name": f"Ana{i}" if i % 5 else "",  # every 5th row has no first name: it goes empty
        "plan": PLANS[i % 3],
        "offer": "20% off" if i % 2 else 'a "free" month €',
    }


def write_cohort(path, n: int) -> str:
    import csv

    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["email", "first_name", "plan", "offer"])
        for i, address in enumerate(addresses(n)):
            values = expected(i)
            writer.writerow([address, values["first_name"], values["plan"], values["offer"]])
        writer.writerow(["broken-address", "X", "free", "x"])  # not usable: skipped and reported
    return str(path)


def broadcast(cohort: str, run_id: str = "manual__1", **kwargs) -> dict:
    kwargs.setdefault("reconcile_delay", 0.2)
    kwargs.setdefault("sender", "Acme <no-reply@acme.example>")
    if "template_id" not in kwargs:
        kwargs.setdefault("subject", SUBJECT)
        kwargs.setdefault("html", HTML)
    operator = EmailBroadcastOperator(task_id="broadcast", cohort_path=cohort, **kwargs)
    return run_operator(operator, run_id)


def bulk_id_of(run_id: str) -> str:
    return broadcast_bulk_id("adhoc_airflow", run_id, "broadcast")


def delivered(sandbox, bulk_id: str) -> dict[str, list[dict]]:
    """Address -> placeholders of the emails the sandbox holds for the bulk."""
    out: dict[str, list[dict]] = {}
    for email in sandbox.state()["emails"]:
        if email["bulkId"] == bulk_id:
            out.setdefault(email["destination"], []).append(json.loads(email["placeholders"] or "{}"))
    return out


def assert_exactly_once(sandbox, bulk_id: str, n: int) -> None:
    got = delivered(sandbox, bulk_id)
    missing = set(addresses(n)) - set(got)
    twice = {k: len(v) for k, v in got.items() if len(v) > 1}
    assert not missing, f"{len(missing)} members got nothing"
    assert not twice, f"{len(twice)} members got more than one email"
    assert set(got) == set(addresses(n))
    wrong = [i for i, a in enumerate(addresses(n)) if got[a] != [expected(i)]]
    assert not wrong, f"{len(wrong)} members got wrong placeholders"


def requests_of(sandbox, endpoint: str) -> int:
    """Requests the sandbox accepted on ``endpoint`` (a 429 on a busy machine is retried, not counted)."""
    counters = sandbox.counters().get(endpoint, {})
    return int(counters.get("requests", 0)) - int(counters.get("429s", 0))


def validate_with_official_model(body: dict) -> None:
    """Parse with infobip-api-python-client's EmailRequest and refuse any key it does not declare."""
    from infobip_api_client.models.email_request import EmailRequest

    from tests.test_api_conformance import conform

    assert conform(EmailRequest, body) == []


# ------------------------------------------------------------------------------------------ plain run
def test_every_member_gets_one_email_with_its_placeholders(sandbox, infobip_conn, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 2500)
    summary = broadcast(cohort)
    assert_exactly_once(sandbox, summary["bulk_id"], 2500)
    assert summary["sent"] == 2500 and summary["skipped"] == 1 and summary["statuses"] == {"PENDING": 2500}
    bodies = [e["body"] for e in sandbox.journal(bodies=True, endpoint="email.send")]
    assert len(bodies) == requests_of(sandbox, "email.send") == 3
    for body in bodies:
        validate_with_official_model(
            {
                **body,
                "messages": [
                    {**body["messages"][0], "destinations": body["messages"][0]["destinations"][:50]}
                ],
            }
        )
        assert isinstance(body["messages"][0]["destinations"][0]["to"][0]["placeholders"], str)
    assert total_429(sandbox.counters()) == 0


def test_every_option_is_accepted(sandbox, infobip_conn, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 30)
    summary = broadcast(
        cohort,
        text="Hi {{first_name}}",
        reply_to="help@acme.example",
        validity_period="6h",
        track_opens=True,
        track_clicks=True,
        tracking_url="https://track.example/x",
        notify_url="https://hooks.example.com/dlr",
        intermediate_report=True,
        callback_data="spring",
        entity_id="entity-1",
        application_id="app-1",
        campaign_reference_id="spring-2026",
    )
    assert_exactly_once(sandbox, summary["bulk_id"], 30)
    (entry,) = sandbox.journal(bodies=True, endpoint="email.send")
    validate_with_official_model(entry["body"])
    stored = [e for e in sandbox.state()["emails"] if e["bulkId"] == summary["bulk_id"]]
    assert {e["campaignReferenceId"] for e in stored} == {"spring-2026"}
    assert {e["callbackData"] for e in stored} == {"spring"}


def test_a_template_broadcast(sandbox, infobip_conn, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 20)
    summary = broadcast(
        cohort,
        template_id="7301",
        sender=None,
        placeholders={"first_name": "first_name", "plan": "plan", "offer": "offer"},
    )
    assert_exactly_once(sandbox, summary["bulk_id"], 20)
    (entry,) = sandbox.journal(bodies=True, endpoint="email.send")
    validate_with_official_model(entry["body"])


def test_the_sandbox_refuses_placeholders_as_an_object(sandbox, infobip_conn):
    import requests

    body = {
        "messages": [
            {
                "sender": "a@acme.example",
                "destinations": [{"to": [{"destination": "b@x.example", "placeholders": {"a": "b"}}]}],
                "content": {"subject": "s", "text": "t"},
            }
        ]
    }
    answer = requests.post(sandbox.url("/email/4/messages"), json=body, headers=sandbox.headers(), timeout=10)
    assert answer.status_code == 400
    (violation,) = answer.json()["violations"]
    assert violation["property"].endswith("placeholders") and "JSON string" in violation["violation"]


def test_a_dry_run_sends_nothing(sandbox, infobip_conn, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 100)
    plan = broadcast(cohort, dry_run=True)
    assert plan["plan"]["messages"] == 100 and plan["requests_planned"] == 1
    assert plan["preview"][1]["subject"] == "Ana1, your pro plan"
    assert sum(c["requests"] for c in sandbox.counters().values()) == 0


# ------------------------------------------------------------------------------------------ faults
def test_a_500_after_commit_is_reconciled_not_resent(sandbox, infobip_conn, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 1200)
    sandbox.inject_fault("email.send", "commit_then_500", count=1)
    summary = broadcast(cohort)
    assert_exactly_once(sandbox, summary["bulk_id"], 1200)
    assert summary["reconciled"] == 1000 and summary["resent_after_lost_answer"] == 0
    assert requests_of(sandbox, "email.send") == 2
    # one log query per LOG_QUERY_IDS ids; a second round only for ids the first answer did not show
    # yet (a busy sandbox may commit the last messages after the first query)
    rounds = requests_of(sandbox, "email.logs") / math.ceil(1000 / LOG_QUERY_IDS)
    assert 1 <= rounds <= 2


def test_a_500_before_commit_is_reconciled_then_resent(sandbox, infobip_conn, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 300)
    sandbox.inject_fault("email.send", "error_500", count=1)
    summary = broadcast(cohort)
    assert_exactly_once(sandbox, summary["bulk_id"], 300)
    assert summary["reconciled"] == 0 and summary["resent_after_lost_answer"] == 300


def test_a_timeout_whose_request_commits_late_is_not_sent_twice(sandbox, infobip_conn, tmp_path, monkeypatch):
    extras = {"cooldown_scale": 0.01, "cooldown_backend": "file", "state_uri": str(infobip_conn["state"])}
    monkeypatch.setenv("AIRFLOW_CONN_INFOBIP_DEFAULT", sandbox.conn_json(timeout=0.5, **extras))
    cohort = write_cohort(tmp_path / "c.csv", 400)
    sandbox.inject_fault("email.send", "slow", count=1, delay=1.0)  # answers (and commits) after 1 s
    summary = broadcast(cohort, reconcile_delay=1.5, batch_size=200)
    assert_exactly_once(sandbox, summary["bulk_id"], 400)
    assert summary["reconciled"] == 200 and summary["resent_after_lost_answer"] == 0


def test_sigkill_at_random_moments_then_resume(sandbox, infobip_conn, tmp_path):
    """10 tries of one broadcast, each SIGKILLed at a random point (after its k-th ledger write plus
    a few random milliseconds), then a try that finishes: nobody missing, nobody twice."""
    n, run_id, batch = 1500, "manual__kill", 50
    cohort = write_cohort(tmp_path / "c.csv", n)
    bulk_id = bulk_id_of(run_id)
    fork = multiprocessing.get_context("fork")
    rng = random.Random(16)
    progress = []
    for _ in range(10):
        remaining = n - sum(len(v) for v in delivered(sandbox, bulk_id).values())
        aim = rng.randint(0, max(0, 2 * math.ceil(remaining / batch) - 2))
        writes = fork.Value("i", 0)
        process = fork.Process(target=worker_main, args=(cohort, run_id, writes), daemon=True)
        process.start()
        deadline = time.monotonic() + 60
        while writes.value < aim and process.is_alive() and time.monotonic() < deadline:
            time.sleep(0.0005)
        time.sleep(rng.uniform(0.0, 0.005))
        with contextlib.suppress(ProcessLookupError):
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


def worker_main(cohort: str, run_id: str, writes=None) -> None:
    """The SIGKILL test's task: one try of the broadcast, in batches of 50."""
    if writes is not None:
        from infobip_provider.state import TargetState

        original = TargetState.append_journal

        def counted(self, record):
            original(self, record)
            with writes.get_lock():
                writes.value += 1

        TargetState.append_journal = counted
    operator = EmailBroadcastOperator(
        task_id="broadcast",
        cohort_path=cohort,
        sender="Acme <no-reply@acme.example>",
        subject=SUBJECT,
        html=HTML,
        batch_size=50,
        reconcile_delay=1.0,
    )
    print(json.dumps(run_operator(operator, run_id)), flush=True)


def test_the_hook_pages_email_logs_by_cursor_and_reports_are_handed_out_once(sandbox, infobip_conn, tmp_path):
    from infobip_provider.hooks.infobip import InfobipHook

    cohort = write_cohort(tmp_path / "c.csv", 25)
    summary = broadcast(cohort)
    hook = InfobipHook()
    logs = hook.email_logs(bulk_id=summary["bulk_id"], limit=10)
    assert len(logs) == 25 and {item["destination"] for item in logs} == set(addresses(25))
    counted = sandbox.counters()["email.logs"]
    assert counted["requests"] - counted.get("429s", 0) == 3, "three pages of 10, 10 and 5"
    reports = hook.email_reports_page(bulk_id=summary["bulk_id"])
    assert {r["to"] for r in reports} == set(addresses(25))
    assert {r["status"]["groupName"] for r in reports} == {"DELIVERED"}
    assert hook.email_reports_page(bulk_id=summary["bulk_id"]) == [], "each report is handed out once"
    from infobip_api_client.models.email_log import EmailLog
    from infobip_api_client.models.email_report import EmailReport

    from tests.test_api_conformance import conform

    assert conform(EmailLog, logs[0]) == [] and conform(EmailReport, reports[0]) == []
