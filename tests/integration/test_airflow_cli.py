"""The provider through Airflow's own CLI, as a user meets it: providers, connections, tasks test."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from infobip_provider.sandbox.testing import SandboxProcess
from tests.conftest import ROOT

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]
AIRFLOW = str(Path(sys.executable).parent / "airflow")


@pytest.fixture(scope="module")
def airflow_env(sandbox, tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow-home")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW_CONN_INFOBIP_DEFAULT": sandbox.conn_json(
            cooldown_backend="file", state_uri=str(home / "state")
        ),
    }
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    return env


def airflow(env, *args, timeout=300):
    return subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_providers_list_shows_the_provider(airflow_env):
    out = airflow(airflow_env, "providers", "list", "-o", "json")
    assert out.returncode == 0, out.stderr[-2000:]
    start = out.stdout.index("[")
    packages = {p["package_name"] for p in json.loads(out.stdout[start:])}
    assert "airflow-provider-infobip" in packages


def test_connections_add_get_and_test(airflow_env, sandbox):
    add = airflow(
        airflow_env, "connections", "add", "ib_cli", "--conn-type", "infobip",
        "--conn-host", sandbox.base_url, "--conn-password", sandbox.api_key,
        "--conn-extra", json.dumps({"cooldown_backend": "memory", "cooldown_scale": 0.01}),
    )  # fmt: skip
    assert add.returncode == 0, add.stderr[-2000:]
    got = airflow(airflow_env, "connections", "get", "ib_cli", "-o", "json")
    assert '"conn_type": "infobip"' in got.stdout
    ok = airflow(airflow_env, "connections", "test", "ib_cli")
    assert "Connection success!" in ok.stdout, ok.stdout[-2000:] + ok.stderr[-2000:]
    assert sandbox.api_key not in ok.stdout + ok.stderr


#: Keys of the sandbox for the connection tests: one without the balance's scope, one for People only.
NO_BALANCE_KEY = "cli-people-sms-key-7d1e"
PEOPLE_ONLY_KEY = "cli-people-only-key-93b0"


@pytest.fixture(scope="module")
def scoped_sandbox():
    scopes = {
        NO_BALANCE_KEY: ["people:manage", "sms:message:send", "sms:logs:read"],
        PEOPLE_ONLY_KEY: ["people:manage"],
    }
    with SandboxProcess(api_key="cli-full-key-5c2a", cooldown_scale=0.01, scoped_keys=scopes) as sb:
        yield sb


def connection_test(env, sandbox, *, key, host=None, verbose=False):
    """``airflow connections test`` of a connection to ``host`` (the sandbox) with ``key``."""
    conn = {"conn_type": "infobip", "host": host or sandbox.base_url, "password": key}
    conn["extra"] = {"cooldown_scale": 0.01, "cooldown_backend": "memory"}
    out = airflow({**env, "AIRFLOW_CONN_IB_TEST": json.dumps(conn)}, "connections", "test", "ib_test",
                  *(["--verbose"] if verbose else []))  # fmt: skip
    return out, out.stdout + out.stderr


def test_connection_test_of_a_key_without_the_balance_scope_succeeds_and_says_so(airflow_env, scoped_sandbox):
    out, text = connection_test(airflow_env, scoped_sandbox, key=NO_BALANCE_KEY, verbose=True)
    assert out.returncode == 0 and "Connection success!" in text, text[-3000:]
    assert "the API key opens every product the flows use" in text
    assert re.search(r"balance\s+GET /account/1/balance\s+missing scope \(403\)", text), text[-3000:]
    assert "Scopes to add: account-management:manage (balance, optional)" in text
    assert NO_BALANCE_KEY not in text
    requests = scoped_sandbox.journal()
    assert [(e["endpoint"], e["status"]) for e in requests[-3:]] == [
        ("people.list", 200), ("sms.logs", 200), ("account.balance", 403),
    ]  # fmt: skip


def test_connection_test_names_the_flows_a_key_cannot_run(airflow_env, scoped_sandbox):
    out, text = connection_test(airflow_env, scoped_sandbox, key=PEOPLE_ONLY_KEY, verbose=True)
    assert out.returncode == 0 and "Connection success!" in text, text[-3000:]
    assert "the API key lacks scopes for SMS." in text
    assert "sms:message:send, sms:logs:read (SMS)" in text
    assert PEOPLE_ONLY_KEY not in text


@pytest.mark.parametrize(
    ("key", "path", "expected"),
    [
        pytest.param("wrong-key-4f8a2c", "", "Infobip refused the API key (401): check the API key", id="wrong-key"),
        pytest.param(None, "/not-infobip", "is not an Infobip API URL", id="not-infobip"),
    ],
)  # fmt: skip
def test_connection_test_failures_say_what_to_fix(airflow_env, scoped_sandbox, key, path, expected):
    out, text = connection_test(airflow_env, scoped_sandbox, key=key or NO_BALANCE_KEY,
                                host=scoped_sandbox.base_url + path)  # fmt: skip
    assert out.returncode != 0 and "Connection failed!" in text
    assert expected in text, text[-2000:]
    assert "password" not in text.lower()
    assert (key or NO_BALANCE_KEY) not in text  # the key is never printed


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        pytest.param("http://127.0.0.1:9", "Cannot reach Infobip at http://127.0.0.1:9: check the Base URL", id="unreachable"),
        pytest.param("http://infobip.example.com", "Refusing plain http", id="plain-http"),
    ],
)  # fmt: skip
def test_connection_test_of_a_wrong_base_url_fails(airflow_env, scoped_sandbox, host, expected):
    out, text = connection_test(airflow_env, scoped_sandbox, key=NO_BALANCE_KEY, host=host)
    assert out.returncode != 0 and "Connection success!" not in text
    assert expected in text, text[-2000:]
    assert NO_BALANCE_KEY not in text


def test_tasks_test_syncs_the_sample_cohort(airflow_env, sandbox):
    sandbox.reset()
    out = airflow(
        airflow_env, "tasks", "test", "infobip_cohort_to_list", "sync_list", "2026-01-01", timeout=600
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    lists = [r for r in sandbox.state()["lists"] if r["name"] == "Airflow demo customers"]
    assert len(lists) == 1 and len(lists[0]["members"]) > 1000
    assert sum(row["429s"] for row in sandbox.counters().values()) == 0
