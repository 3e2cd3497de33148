"""Delivery reports and replies into SQLite and PostgreSQL against the sandbox, killed at random points."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from infobip_provider.hooks.infobip import InfobipHook
from infobip_provider.sandbox.testing import SandboxProcess
from infobip_provider.transfers.reports_to_sql import InfobipRepliesToSqlOperator, InfobipReportsToSqlOperator
from tests.integration.conftest import run_operator
from tests.transfers.conftest import SCALE, records

pytestmark = pytest.mark.sandbox
ROOT = Path(__file__).resolve().parents[2]
DELAY = 1.5  # seconds a message stays PENDING in this module's sandbox: longer than sending 1,300 emails and 70 SMS takes on a slow run

#: number prefix -> (sandbox outcome, expected bounce class); other numbers are delivered.
OUTCOMES = {
    "4170": ("absent_subscriber", "soft_bounce"),
    "4171": ("unknown_subscriber", "hard_bounce"),
    "4172": ("rejected", "dropped"),
    "4173": ("expired", "soft_bounce"),
    "4174": ("barred", "hard_bounce"),
    "4175": ("operator_failure", "soft_bounce"),
    "4176": ("delivered", "delivered"),
}


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    """This module's sandbox: reports appear ``DELAY`` seconds after a send."""
    with SandboxProcess(
        api_key="reports-key", cooldown_scale=SCALE, extra_args=["--delivery-delay", str(DELAY)]
    ) as sb:
        yield sb


def send(sandbox: SandboxProcess, count: int) -> dict[str, str]:
    """Send ``count`` SMS spread over every outcome; message id -> expected bounce class."""
    sandbox.set_sms_outcomes({prefix: outcome for prefix, (outcome, _) in OUTCOMES.items()})
    hook = InfobipHook()
    expected: dict[str, str] = {}
    prefixes = list(OUTCOMES)
    batch = uuid.uuid4().hex[:8]
    for start in range(0, count, 1000):
        destinations = []
        for i in range(start, min(count, start + 1000)):
            prefix = prefixes[i % len(prefixes)]
            message_id = f"{batch}-{i}"
            destinations.append({"to": f"{prefix}{i:07d}", "messageId": message_id})
            expected[message_id] = OUTCOMES[prefix][1]
        hook.send_sms(
            {
                "messages": [
                    {
                        "sender": "InfoSMS",
                        "destinations": destinations,
                        "content": {"text": "Hi"},
                        "webhooks": {"callbackData": "cb"},
                    }
                ]
            }
        )
    return expected


#: address prefix -> (sandbox outcome, expected bounce class by Synerise's mapping); others delivered.
EMAIL_OUTCOMES = {
    "bo-": ("bounced", "hard_bounce"),
    "if-": ("inbox_full", "soft_bounce"),
    "sb-": ("soft_bounce", "soft_bounce"),
    "bs-": ("blocked_as_spam", "spam_bounce"),
    "ib-": ("ip_blacklisted", "spam_bounce"),
    "sd-": ("spam_detected", "spam_bounce"),
    "su-": ("suppressed_bounce", "spam_bounce"),
    "un-": ("suppressed_unsubscribe", "dropped"),
    "ia-": ("invalid_address", "hard_bounce"),
    "ue-": ("user_error", "hard_bounce"),
    "oe-": ("operator_error", "hard_bounce"),
    "rj-": ("rejected", "dropped"),
    "ok-": ("delivered", "delivered"),
}


def send_email(sandbox: SandboxProcess, count: int) -> dict[str, str]:
    """Send ``count`` emails spread over every outcome; message id -> expected bounce class."""
    sandbox.set_email_outcomes({prefix: outcome for prefix, (outcome, _) in EMAIL_OUTCOMES.items()})
    hook = InfobipHook()
    expected: dict[str, str] = {}
    prefixes = list(EMAIL_OUTCOMES)
    batch = uuid.uuid4().hex[:8]
    for start in range(0, count, 1000):
        to = []
        for i in range(start, min(count, start + 1000)):
            prefix = prefixes[i % len(prefixes)]
            message_id = f"e{batch}-{i}"
            to.append({"destination": f"{prefix}{batch}{i}@example.com", "messageId": message_id})
            expected[message_id] = EMAIL_OUTCOMES[prefix][1]
        hook.send_email(
            {
                "messages": [
                    {
                        "sender": "Acme <news@acme.example>",
                        "destinations": [{"to": to}],
                        "content": {"subject": "Hi", "text": "Hello"},
                        "webhooks": {"callbackData": "ecb"},
                    }
                ]
            }
        )
    return expected


def table_classes(warehouse, channel: str | None = None) -> dict[str, str]:
    where = f" WHERE channel = '{channel}'" if channel else ""
    rows = records(
        warehouse["conn_id"], f"SELECT message_id, bounce_class FROM {warehouse['reports']}{where}"
    )
    return {str(m): str(c) for m, c in rows}


def _collect(warehouse, **kwargs) -> dict:
    return run_operator(
        InfobipReportsToSqlOperator(
            task_id="collect_reports", sql_conn_id=warehouse["conn_id"], table=warehouse["reports"], **kwargs
        )
    )


def test_reports_appear_after_a_delay_and_land_once_with_their_bounce_class(sandbox, infobip_conn, warehouse):
    expected = send(sandbox, 2100)
    early = _collect(warehouse)
    assert early["channels"]["sms"]["rows"] == 0  # still PENDING: nothing handed out yet
    time.sleep(DELAY + 0.1)
    summary = _collect(warehouse)["channels"]["sms"]
    assert summary["rows"] == 2100 and summary["pages"] == 3  # 1000, 1000 and a short page
    assert summary["asset"].startswith("infobip://") and summary["asset"].endswith("/reports/sms")
    assert table_classes(warehouse) == expected
    assert set(expected.values()) == {"delivered", "soft_bounce", "hard_bounce", "dropped"}
    again = _collect(warehouse)["channels"]["sms"]
    assert again["rows"] == 0  # handed out once
    row = records(
        warehouse["conn_id"],
        f"SELECT recipient, status_group, error_name, error_permanent, price, currency, callback_data, source "
        f"FROM {warehouse['reports']} WHERE message_id = '{next(m for m, c in expected.items() if c == 'hard_bounce')}'",
    )[0]
    assert row[1:] == ("UNDELIVERABLE", "EC_UNKNOWN_SUBSCRIBER", True, 0.01, "EUR", "cb", "report")


def test_a_page_landed_before_a_crash_is_inserted_by_the_next_run(
    sandbox, infobip_conn, warehouse, monkeypatch
):
    expected = send(sandbox, 300)
    time.sleep(DELAY + 0.1)
    from infobip_provider.warehouse import SqlTable

    original = SqlTable.upsert

    def crash(self, rows):
        raise KeyboardInterrupt("killed between landing and inserting")

    monkeypatch.setattr(SqlTable, "upsert", crash)
    with pytest.raises(KeyboardInterrupt):
        _collect(warehouse)
    monkeypatch.setattr(SqlTable, "upsert", original)
    summary = _collect(warehouse)["channels"]["sms"]
    assert summary["recovered_pages"] == 1 and summary["reconciled"] == 0
    assert table_classes(warehouse) == expected


def test_a_lost_answer_is_rebuilt_from_the_logs(sandbox, infobip_conn, warehouse):
    expected = send(sandbox, 250)
    time.sleep(DELAY + 0.1)
    sandbox.inject_fault("sms.reports", "commit_then_500")  # handed out, answer lost
    from airflow.sdk.exceptions import AirflowException

    with pytest.raises(AirflowException):
        _collect(warehouse)
    assert table_classes(warehouse) == expected  # rebuilt from /sms/3/logs at once
    sources = records(warehouse["conn_id"], f"SELECT DISTINCT source FROM {warehouse['reports']}")
    assert sources == [("logs",)]


def _worker(env: dict[str, str]) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.transfers.reports_worker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:  # Airflow may log before the worker is ready
        if line.strip() == "ready":
            break
    else:
        raise AssertionError(f"the worker exited ({process.wait()}) before it was ready")
    threading.Thread(target=process.stdout.read, daemon=True).start()  # never block on a full pipe
    return process


#: SMS number prefix (valid Swiss mobiles) -> (sandbox outcome, expected bounce class) for the broadcast.
BROADCAST_SMS = {
    "41790": ("absent_subscriber", "soft_bounce"),
    "41791": ("unknown_subscriber", "hard_bounce"),
    "41792": ("rejected", "dropped"),
    "41793": ("expired", "soft_bounce"),
    "41794": ("barred", "hard_bounce"),
    "41795": ("operator_failure", "soft_bounce"),
    "41796": ("delivered", "delivered"),
}


def broadcast_sms(sandbox: SandboxProcess, folder: Path, count: int) -> dict[str, str]:
    """An SMS broadcast (SmsBroadcastOperator) to ``count`` numbers over every outcome; number -> class."""
    from infobip_provider.operators.sms import SmsBroadcastOperator

    sandbox.set_sms_outcomes({prefix: outcome for prefix, (outcome, _) in BROADCAST_SMS.items()})
    prefixes = list(BROADCAST_SMS)
    numbers = [f"{prefixes[i % len(prefixes)]}{i:06d}" for i in range(count)]
    cohort = folder / "sms.csv"
    cohort.write_text("phone,first_name\n" + "".join(f"+{n},Ana\n" for n in numbers))
    summary = run_operator(
        SmsBroadcastOperator(
            task_id="sms", text="Hi {{first_name}}", sender="InfoSMS", cohort_path=str(cohort)
        )
    )
    assert summary["sent"] == count
    return {n: BROADCAST_SMS[n[:5]][1] for n in numbers}


def broadcast_email(sandbox: SandboxProcess, folder: Path, count: int) -> dict[str, str]:
    """An email broadcast (EmailBroadcastOperator) to ``count`` addresses over every outcome; address -> class."""
    from infobip_provider.operators.email import EmailBroadcastOperator

    sandbox.set_email_outcomes({prefix: outcome for prefix, (outcome, _) in EMAIL_OUTCOMES.items()})
    prefixes = list(EMAIL_OUTCOMES)
    addresses = [f"{prefixes[i % len(prefixes)]}{i}@example.com" for i in range(count)]
    cohort = folder / "email.csv"
    cohort.write_text("email,first_name\n" + "".join(f"{a},Ana\n" for a in addresses))
    summary = run_operator(
        EmailBroadcastOperator(
            task_id="email",
            sender="Acme <news@acme.example>",
            subject="Hi {{first_name}}",
            text="Hello",
            cohort_path=str(cohort),
        )
    )
    assert summary["sent"] == count
    return {a: EMAIL_OUTCOMES[a[:3]][1] for a in addresses}


def classes_by_recipient(warehouse) -> dict[tuple[str, str], str]:
    rows = records(
        warehouse["conn_id"], f"SELECT channel, recipient, bounce_class FROM {warehouse['reports']}"
    )
    return {(str(c), str(r)): str(b) for c, r, b in rows}


def run_worker(env: dict[str, str], timeout: float = 120) -> int:
    return _worker(env).wait(timeout=timeout)


@pytest.mark.slow
def test_a_broadcast_of_10000_sms_and_10000_emails_reports_once_each_through_10_kills(
    sandbox, infobip_conn, warehouse, tmp_path
):
    """10,000 SMS and 10,000 emails over every failure class; the collect task SIGKILLed at a random
    point between fetching a page and inserting it, 10 times, then a lost answer on each pull
    endpoint: the table ends with exactly one row per message, each with its bounce class."""
    from tests.transfers.reports_worker import KILL_POINTS

    started = time.monotonic()
    expected = {("sms", n): c for n, c in broadcast_sms(sandbox, tmp_path, 10_000).items()}
    expected.update({("email", a): c for a, c in broadcast_email(sandbox, tmp_path, 10_000).items()})
    assert set(expected.values()) == {"delivered", "soft_bounce", "hard_bounce", "spam_bounce", "dropped"}
    time.sleep(DELAY + 0.1)
    env = {
        **os.environ,
        **infobip_conn["env"],
        **warehouse["env"],
        "REPORTS_TABLE": warehouse["reports"],
        "REPORTS_PAGE_SIZE": "100",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "plugins"), str(ROOT)]),
    }
    rng = random.Random(17)
    points = [*KILL_POINTS, *(rng.choice(KILL_POINTS) for _ in range(6))]
    for trial, point in enumerate(points):
        channels = "sms,email" if trial % 2 == 0 else "email,sms"
        kill_at = f"{point}:{rng.randint(1, 12)}"
        code = run_worker({**env, "REPORTS_CHANNELS": channels, "KILL_AT": kill_at})
        assert code == -signal.SIGKILL, f"trial {trial} ({kill_at}) ended with {code} before its kill"
        got = classes_by_recipient(warehouse)
        wrong = {k: v for k, v in got.items() if expected.get(k) != v}
        assert not wrong, f"after the kill at {kill_at}: {len(wrong)} rows unknown or with the wrong class"
    sandbox.inject_fault("sms.reports", "commit_then_500")  # handed out, answer lost: rebuilt from logs
    sandbox.inject_fault("email.reports", "commit_then_500")
    assert run_worker({**env, "REPORTS_CHANNELS": "sms,email"}) == 1  # the SMS answer lost
    assert run_worker({**env, "REPORTS_CHANNELS": "email,sms"}) == 1  # the email answer lost
    assert run_worker({**env, "REPORTS_CHANNELS": "sms,email"}) == 0
    assert classes_by_recipient(warehouse) == expected
    count = records(
        warehouse["conn_id"], f"SELECT count(*), count(DISTINCT message_id) FROM {warehouse['reports']}"
    )
    assert count == [(20_000, 20_000)]
    sources = dict(
        records(warehouse["conn_id"], f"SELECT source, count(*) FROM {warehouse['reports']} GROUP BY source")
    )
    assert sources.get("report", 0) > 0 and sources.get("logs", 0) > 0
    assert not list(infobip_conn["state"].rglob("landed-*.json")) and not list(
        infobip_conn["state"].rglob("inflight.json")
    )
    wall = time.monotonic() - started
    print(
        f"20,000 reports through {len(points)} kills and 2 lost answers in {wall:.1f} s; rows by source {sources}"
    )
    assert wall < 90


def test_replies_mark_opt_outs(sandbox, infobip_conn, warehouse):
    ids = sandbox.inject_inbound(
        [
            {"from": "41790000001", "to": "447860000000", "text": "STOP", "keyword": "STOP"},
            {"from": "41790000002", "to": "447860000000", "text": "stop please"},
            {"from": "41790000003", "to": "447860000000", "text": "Thanks, see you"},
            {"from": "41790000004", "to": "447860000000", "text": "Arret"},
            {"from": "41790000005", "to": "447860000000", "text": "unsubscribe"},
        ]
    )
    operator = InfobipRepliesToSqlOperator(
        task_id="collect_replies",
        sql_conn_id=warehouse["conn_id"],
        table=warehouse["replies"],
        opt_out_keywords=["arret"],
    )
    summary = run_operator(operator)["channels"]["sms"]
    assert summary["rows"] == 5 and summary["by_class"] == {"opt_out": 4, "reply": 1}
    assert summary["asset"].endswith("/replies/sms")
    rows = records(
        warehouse["conn_id"], f"SELECT message_id, sender, opt_out, opt_out_word FROM {warehouse['replies']}"
    )
    by_id = {r[0]: r[1:] for r in rows}
    assert by_id[ids[0]] == ("41790000001", True, "STOP")
    assert by_id[ids[2]] == ("41790000003", False, None)
    assert by_id[ids[3]][2] == "ARRET"
    assert run_operator(operator)["channels"]["sms"]["rows"] == 0  # handed out once


def test_email_reports_land_once_with_synerise_bounce_classes(sandbox, infobip_conn, warehouse):
    expected = send_email(sandbox, 1300)
    sms = send(sandbox, 70)
    assert _collect(warehouse, channels=["sms", "email"])["channels"]["email"]["rows"] == 0  # PENDING
    time.sleep(DELAY + 0.1)
    summary = _collect(warehouse, channels=["sms", "email"])["channels"]
    assert summary["email"]["rows"] == 1300 and summary["email"]["pages"] == 2
    assert summary["email"]["asset"].endswith("/reports/email")
    assert summary["sms"]["rows"] == 70
    assert table_classes(warehouse, "email") == expected
    assert table_classes(warehouse, "sms") == sms
    assert set(expected.values()) == {"delivered", "soft_bounce", "hard_bounce", "spam_bounce", "dropped"}
    assert summary["email"]["by_class"]["spam_bounce"] == sum(
        1 for c in expected.values() if c == "spam_bounce"
    )
    assert _collect(warehouse, channels=["email"])["channels"]["email"]["rows"] == 0  # handed out once
    hard = next(m for m, c in expected.items() if c == "hard_bounce")
    row = records(
        warehouse["conn_id"],
        f"SELECT channel, status_group, error_group, price, callback_data, source "
        f"FROM {warehouse['reports']} WHERE message_id = '{hard}'",
    )[0]
    assert row[0] == "email" and row[1] == "UNDELIVERABLE" and row[3:] == (0.001, "ecb", "report")


def test_a_lost_email_answer_is_rebuilt_from_the_email_logs(sandbox, infobip_conn, warehouse):
    expected = send_email(sandbox, 260)
    time.sleep(DELAY + 0.1)
    sandbox.inject_fault("email.reports", "commit_then_500")
    from airflow.sdk.exceptions import AirflowException

    with pytest.raises(AirflowException):
        _collect(warehouse, channels=["email"])
    assert table_classes(warehouse, "email") == expected
    sources = records(warehouse["conn_id"], f"SELECT DISTINCT source FROM {warehouse['reports']}")
    assert sources == [("logs",)]
