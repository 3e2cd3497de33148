"""WhatsAppBroadcastOperator against the sandbox, which like Infobip has no WhatsApp logs to ask.

Whatever goes wrong (a 500 after the sandbox committed, a timeout whose request commits late, a
SIGKILL at random moments), no member gets two messages, and every member whose request got no
answer is reported as unconfirmed: none is silently lost.
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
from collections import Counter

import pytest

from infobip_provider.engines.broadcast import BroadcastUnconfirmedError, broadcast_bulk_id
from infobip_provider.operators.whatsapp import WhatsAppBroadcastOperator
from tests.integration.conftest import run_operator, total_429

pytestmark = pytest.mark.sandbox

PLANS = ("free", "pro", "enterprise")


def numbers(n: int) -> list[str]:
    return [f"4179{3000000 + i:07d}" for i in range(n)]


def write_cohort(path, n: int) -> str:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("phone,first_name,plan\n")
        for i, number in enumerate(numbers(n)):
            fh.write(f"+{number},Ana{i},{PLANS[i % 3]}\n")
        fh.write("+41793999999,,pro\n")  # an empty placeholder: rejected with the reason
    return str(path)


def broadcast(cohort: str, run_id: str = "manual__1", **kwargs) -> dict:
    operator = WhatsAppBroadcastOperator(
        task_id="broadcast",
        cohort_path=cohort,
        sender="447860099299",
        template_name="plan_update",
        language="en",
        placeholders=["first_name", "plan"],
        **kwargs,
    )
    return run_operator(operator, run_id)


def per_number(sandbox, bulk_id: str) -> dict[str, list[list[str]]]:
    out: dict[str, list[list[str]]] = {}
    for message in sandbox.state()["whatsapp"]:
        if message["bulkId"] == bulk_id:
            out.setdefault(message["to"], []).append(message["placeholders"])
    return out


def assert_never_twice(sandbox, bulk_id: str) -> dict[str, list[list[str]]]:
    got = per_number(sandbox, bulk_id)
    twice = [k for k, v in got.items() if len(v) > 1]
    assert not twice, f"{len(twice)} members got two messages"
    index = {number: i for i, number in enumerate(numbers(10_000))}
    wrong = [k for k, (v, *_) in got.items() if v != [f"Ana{index[k]}", PLANS[index[k] % 3]]]
    assert not wrong, f"{len(wrong)} members got wrong placeholders"
    return got


def requests_of(sandbox, endpoint: str) -> int:
    return int(sandbox.counters().get(endpoint, {}).get("requests", 0))


def test_every_member_gets_one_message_with_its_placeholders(sandbox, infobip_conn, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 2500)
    summary = broadcast(cohort)
    got = assert_never_twice(sandbox, summary["bulk_id"])
    assert set(got) == set(numbers(2500))
    assert summary["sent"] == 2500 and summary["unconfirmed"] == 0
    assert summary["skipped_by_reason"] == {"empty placeholder {{1}} (first_name)": 1}
    assert requests_of(sandbox, "whatsapp.template") == 3 and total_429(sandbox.counters()) == 0


def test_the_sandbox_refuses_an_empty_placeholder_and_a_bad_template_name(sandbox, infobip_conn):
    import requests

    message = {
        "from": "447860099299",
        "to": "41793026727",
        "content": {
            "templateName": "Plan Update",
            "templateData": {"body": {"placeholders": ["", "x"]}},
            "language": "en",
        },
    }
    answer = requests.post(
        sandbox.url("/whatsapp/1/message/template"),
        json={"messages": [message]},
        headers=sandbox.headers(),
        timeout=10,
    )
    assert answer.status_code == 400
    errors = answer.json()["requestError"]["serviceException"]["validationErrors"]
    assert set(errors) == {
        "messages[0].content.templateName",
        "messages[0].content.templateData.body.placeholders",
    }


def test_a_500_after_commit_is_unconfirmed_never_resent(sandbox, infobip_conn, tmp_path):
    cohort = write_cohort(tmp_path / "c.csv", 1200)
    sandbox.inject_fault("whatsapp.template", "commit_then_500", count=1)
    with pytest.raises(BroadcastUnconfirmedError, match="1000 recipients"):
        broadcast(cohort)
    bulk_id = broadcast_bulk_id("adhoc_airflow", "manual__1", "broadcast")
    assert set(assert_never_twice(sandbox, bulk_id)) == set(numbers(1200)), (
        "the batch arrived, the rest was sent"
    )
    assert requests_of(sandbox, "whatsapp.template") == 2
    summary = broadcast(cohort, on_unconfirmed="skip")
    assert summary["unconfirmed"] == 1000 and summary["sent"] == 200
    assert requests_of(sandbox, "whatsapp.template") == 2


def test_a_timeout_whose_request_commits_late_is_not_sent_twice(sandbox, infobip_conn, tmp_path, monkeypatch):
    extras = {"cooldown_scale": 0.01, "cooldown_backend": "file", "state_uri": str(infobip_conn["state"])}
    monkeypatch.setenv("AIRFLOW_CONN_INFOBIP_DEFAULT", sandbox.conn_json(timeout=0.5, **extras))
    cohort = write_cohort(tmp_path / "c.csv", 400)
    sandbox.inject_fault("whatsapp.template", "slow", count=1, delay=1.0)
    summary = broadcast(cohort, batch_size=200, on_unconfirmed="skip")
    time.sleep(1.0)  # the slow request commits after the client gave up
    assert set(assert_never_twice(sandbox, summary["bulk_id"])) == set(numbers(400))
    assert summary["unconfirmed"] == 200 and summary["sent"] == 200


def test_sigkill_at_random_moments_never_duplicates_and_reports_the_unanswered(
    sandbox, infobip_conn, tmp_path
):
    n, run_id, batch = 1500, "manual__kill", 50
    cohort = write_cohort(tmp_path / "c.csv", n)
    bulk_id = broadcast_bulk_id("adhoc_airflow", run_id, "broadcast")
    fork = multiprocessing.get_context("fork")
    rng = random.Random(23)
    for _ in range(10):
        aim = rng.randint(0, 2 * math.ceil(n / batch))
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
    summary = broadcast(cohort, run_id, batch_size=batch, on_unconfirmed="skip")
    got = assert_never_twice(sandbox, bulk_id)
    assert summary["sent"] + summary["unconfirmed"] == n, "nobody silently lost"
    assert summary["sent"] <= len(got) <= n
    assert Counter(len(v) for v in got.values()) == {1: len(got)}


def worker_main(cohort: str, run_id: str, writes=None) -> None:
    """One try of the broadcast (on_unconfirmed=fail), counting ledger writes so the test can aim."""
    from infobip_provider.state import TargetState

    original = TargetState.append_journal

    def counted(self, record):
        original(self, record)
        if writes is not None:
            with writes.get_lock():
                writes.value += 1

    TargetState.append_journal = counted
    operator = WhatsAppBroadcastOperator(
        task_id="broadcast",
        cohort_path=cohort,
        sender="447860099299",
        template_name="plan_update",
        language="en",
        placeholders=["first_name", "plan"],
        batch_size=50,
    )
    with contextlib.suppress(BroadcastUnconfirmedError):
        print(json.dumps(run_operator(operator, run_id)), flush=True)
