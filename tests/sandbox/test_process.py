"""The sandbox as a real process: ready line, real HTTP, signals, --state across restarts, concurrency."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from infobip_provider.sandbox.testing import PACKAGE_PARENT, SandboxProcess
from tests.sandbox.conftest import API_KEY

pytestmark = pytest.mark.sandbox

LISTS = "/saas/amplitude/1/lists"


def test_ready_line_and_real_http(sandbox: SandboxProcess) -> None:
    assert sandbox.ready_line == f"Infobip sandbox listening on {sandbox.base_url}"
    assert sandbox.base_url.startswith("http://127.0.0.1:")
    ok = requests.get(sandbox.url("/account/1/balance"), headers=sandbox.headers(), timeout=5)
    assert ok.json() == {"balance": 47.79, "currency": "EUR"}
    denied = requests.get(sandbox.url("/account/1/balance"), headers={"Authorization": "App nope"}, timeout=5)
    assert denied.status_code == 401
    assert sandbox.counters()["account.balance"]["by_status"] == {"200": 1, "401": 1}


def test_cooldown_over_real_http_at_scaled_interval(sandbox: SandboxProcess) -> None:
    # lists.add: 10 s x 0.01 = 100 ms; two back-to-back requests arrive well within 98 ms.
    session = requests.Session()
    list_id = session.post(
        sandbox.url(LISTS), json={"name": "x"}, headers=sandbox.headers(), timeout=5
    ).json()["listId"]
    path, body = sandbox.url(f"{LISTS}/{list_id}/add"), {"userIds": ["ana@x.com"]}
    answers = [session.post(path, json=body, headers=sandbox.headers(), timeout=5) for _ in range(2)]
    time.sleep(0.1)
    answers.append(session.post(path, json=body, headers=sandbox.headers(), timeout=5))
    assert [a.status_code for a in answers] == [200, 429, 200]
    assert answers[1].json()["requestError"]["serviceException"]["messageId"] == "TOO_MANY_REQUESTS"
    entries = sandbox.journal(endpoint="lists.add")
    gaps = [later["arrival"] - earlier["arrival"] for earlier, later in itertools.pairwise(entries)]
    assert gaps[0] < 0.098 <= gaps[0] + gaps[1]
    assert entries[1]["cooldown"]["elapsed"] == pytest.approx(gaps[0], abs=1e-6)
    assert sandbox.counters()["lists.add"]["cooldown_429s"] == 1


def test_concurrent_clients_never_get_two_accepts_inside_a_cooldown(sandbox: SandboxProcess) -> None:
    list_id = requests.post(
        sandbox.url(LISTS), json={"name": "x"}, headers=sandbox.headers(), timeout=5
    ).json()["listId"]
    stop_at = time.monotonic() + 0.35
    statuses: list[int] = []

    def hammer(worker: int) -> None:
        session = requests.Session()
        n = 0
        while time.monotonic() < stop_at:
            body = {"userIds": [f"w{worker}-{n}@x.com"]}
            response = session.post(
                sandbox.url(f"{LISTS}/{list_id}/add"), json=body, headers=sandbox.headers(), timeout=5
            )
            statuses.append(response.status_code)
            n += 1

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    accepted = [e["arrival"] for e in sandbox.journal(endpoint="lists.add") if e["status"] == 200]
    assert set(statuses) == {200, 429}
    assert len(accepted) == statuses.count(200) >= 2
    assert min(b - a for a, b in itertools.pairwise(accepted)) >= 0.98 * 0.1 - 1e-6
    members = sandbox.state()["lists"][0]["members"]
    assert len(members) == statuses.count(200)


def test_concurrent_sends_are_all_stored(sandbox: SandboxProcess) -> None:
    def send(worker: int) -> None:
        session = requests.Session()
        for n in range(15):
            body = {
                "messages": [
                    {
                        "destinations": [{"to": "41793026727", "messageId": f"{worker}-{n}"}],
                        "content": {"text": "x"},
                    }
                ]
            }
            response = session.post(
                sandbox.url("/sms/3/messages"), json=body, headers=sandbox.headers(), timeout=5
            )
            assert response.status_code == 200

    threads = [threading.Thread(target=send, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = {m["messageId"] for m in sandbox.state()["messages"]}
    assert ids == {f"{w}-{n}" for w in range(6) for n in range(15)}
    assert sandbox.counters()["sms.send"]["by_status"] == {"200": 90}


def test_slow_fault_outlasts_a_client_timeout(sandbox: SandboxProcess) -> None:
    sandbox.inject_fault("lists.create", "slow", delay=0.4)
    with pytest.raises(requests.Timeout):
        requests.post(sandbox.url(LISTS), json={"name": "late"}, headers=sandbox.headers(), timeout=0.1)
    deadline = time.monotonic() + 5
    while not sandbox.state()["lists"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [lst["name"] for lst in sandbox.state()["lists"]] == [
        "late"
    ]  # it happened after the client gave up
    entry = sandbox.journal(endpoint="lists.create")[0]
    assert entry["outcome"] == "fault:slow"


def test_commit_then_500_over_http(sandbox: SandboxProcess) -> None:
    sandbox.inject_fault("lists.create", "commit_then_500")
    response = requests.post(sandbox.url(LISTS), json={"name": "lost"}, headers=sandbox.headers(), timeout=5)
    assert response.status_code == 500
    assert [lst["name"] for lst in sandbox.state()["lists"]] == ["lost"]


def test_connection_values_parse_as_airflow_connections(sandbox: SandboxProcess) -> None:
    from airflow.sdk.definitions.connection import Connection

    from_json = Connection.from_json(sandbox.conn_json(timeout=5), conn_id="infobip_default")
    from_uri = Connection.from_uri(sandbox.conn_uri(timeout=5), conn_id="infobip_default")
    for conn in (from_json, from_uri):
        assert (conn.conn_type, conn.host, conn.password) == ("infobip", sandbox.base_url, API_KEY)
        assert conn.extra_dejson == {"cooldown_scale": 0.01, "timeout": 5}


def test_sigterm_stops_cleanly_and_state_survives_restart(tmp_path: Path) -> None:
    state_file = tmp_path / "sandbox-state.json"
    with SandboxProcess(api_key=API_KEY, state_file=state_file) as first:
        headers = first.headers()
        list_id = requests.post(first.url(LISTS), json={"name": "kept"}, headers=headers, timeout=5).json()[
            "listId"
        ]
        requests.post(
            first.url(f"{LISTS}/{list_id}/add"), json={"userIds": ["ana@x.com"]}, headers=headers, timeout=5
        )
        body = {
            "messages": [
                {"destinations": [{"to": "41793026727", "messageId": "m-1"}], "content": {"text": "x"}}
            ]
        }
        requests.post(first.url("/sms/3/messages"), json=body, headers=headers, timeout=5)
        assert first.stop() == 0  # SIGTERM
    saved = json.loads(state_file.read_text())
    assert saved["lists"][0]["members"] == ["ana@x.com"]
    assert saved["messages"][0]["status"]["groupName"] == "DELIVERED"  # readable after the server stopped
    with SandboxProcess(api_key=API_KEY, state_file=state_file) as second:
        state = second.state()
        assert [(lst["listId"], lst["members"]) for lst in state["lists"]] == [(list_id, ["ana@x.com"])]
        logs = requests.get(second.url("/sms/3/logs"), headers=second.headers(), timeout=5).json()["results"]
        assert [m["messageId"] for m in logs] == ["m-1"]
        created = requests.post(second.url(LISTS), json={"name": "next"}, headers=second.headers(), timeout=5)
        assert created.json()["listId"] == list_id + 1


def test_sigint_stops_cleanly_and_saves(tmp_path: Path) -> None:
    state_file = tmp_path / "sandbox-state.json"
    with SandboxProcess(api_key=API_KEY, state_file=state_file) as sandbox:
        requests.post(sandbox.url(LISTS), json={"name": "kept"}, headers=sandbox.headers(), timeout=5)
        assert sandbox.process is not None
        sandbox.process.send_signal(signal.SIGINT)
        assert sandbox.process.wait(10) == 0
    assert json.loads(state_file.read_text())["lists"][0]["name"] == "kept"


def test_command_line_without_a_key_fails_with_usage() -> None:
    env = {k: v for k, v in os.environ.items() if k != "INFOBIP_SANDBOX_API_KEY"}
    env["PYTHONPATH"] = str(PACKAGE_PARENT)
    done = subprocess.run(
        [sys.executable, "-m", "infobip_provider.sandbox", "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "--api-key" in done.stderr


def test_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INFOBIP_SANDBOX_API_KEY", "env-key-1, env-key-2")
    from infobip_provider.sandbox.__main__ import build_parser, config_from_args

    config = config_from_args(
        build_parser().parse_args(["--undeliverable-prefix", "385", "--delivery-delay", "2"])
    )
    assert config.api_keys == ["env-key-1", "env-key-2"]
    assert (config.undeliverable_prefixes, config.delivery_delay) == (("385",), 2.0)


def test_scoped_keys_from_the_command_line() -> None:
    from infobip_provider.sandbox.__main__ import build_parser, config_from_args

    args = [
        "--api-key",
        "full",
        "--scoped-key",
        "ppl=people:manage, sms:message:send",
        "--scoped-key",
        "none=",
    ]
    config = config_from_args(build_parser().parse_args(args))
    assert config.api_keys == ["full"]
    assert config.scoped_keys == {"ppl": ("people:manage", "sms:message:send"), "none": ()}
    with pytest.raises(ValueError, match="KEY=SCOPE"):
        config_from_args(build_parser().parse_args(["--scoped-key", "no-equals-sign"]))


def test_the_sandbox_process_freezes_its_heap_after_store_jobs_and_an_in_process_app_does_not() -> None:
    """The command's sandbox owns its process: what its store keeps leaves the collector's full passes.
    A sandbox built in-process (tests, embedding) never touches its host's collector."""
    script = """
import asyncio, gc
from infobip_provider.sandbox.__main__ import build_parser, config_from_args
from infobip_provider.sandbox.config import SandboxConfig
from infobip_provider.sandbox.core import SandboxCore

def frozen_after_a_job(config):
    gc.unfreeze()
    core = SandboxCore(config)
    kept = asyncio.run(core.run(lambda: [{"person": i} for i in range(1000)]))
    core.shutdown()
    return len(kept), gc.get_freeze_count()

print(*frozen_after_a_job(config_from_args(build_parser().parse_args(["--api-key", "k"]))))
print(*frozen_after_a_job(SandboxConfig(api_keys=["k"])))
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PACKAGE_PARENT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    (kept, frozen), (kept_in_process, frozen_in_process) = (
        map(int, line.split()) for line in done.stdout.split("\n")[:2]
    )
    assert kept == kept_in_process == 1000
    assert frozen >= 1000  # the job's result and everything else alive moved to the permanent generation
    assert frozen_in_process == 0
