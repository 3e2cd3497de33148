"""The provider through Airflow's own CLI, as a user meets it: providers, connections, tasks test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.parametrize(
    ("password", "host", "expected"),
    [
        pytest.param("wrong-key-4f8a2c", None, "check the connection's password", id="wrong-key"),
        pytest.param(None, "http://127.0.0.1:9", "check the base URL", id="unreachable"),
        pytest.param(None, "http://infobip.example.com", "Refusing plain http", id="plain-http"),
    ],
)
def test_connection_test_failures_say_what_to_fix(airflow_env, sandbox, password, host, expected):
    env = {
        **airflow_env,
        "AIRFLOW_CONN_IB_BAD": json.dumps(
            {
                "conn_type": "infobip",
                "host": host or sandbox.base_url,
                "password": password or sandbox.api_key,
            }
        ),
    }
    out = airflow(env, "connections", "test", "ib_bad")
    text = out.stdout + out.stderr
    assert "Connection success!" not in text
    assert expected in text, text[-2000:]
    assert (password or sandbox.api_key) not in text  # the key is never printed


def test_tasks_test_syncs_the_sample_cohort(airflow_env, sandbox):
    sandbox.reset()
    out = airflow(
        airflow_env, "tasks", "test", "infobip_cohort_to_list", "sync_list", "2026-01-01", timeout=600
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    lists = [r for r in sandbox.state()["lists"] if r["name"] == "Airflow demo customers"]
    assert len(lists) == 1 and len(lists[0]["members"]) > 1000
    assert sum(row["429s"] for row in sandbox.counters().values()) == 0
