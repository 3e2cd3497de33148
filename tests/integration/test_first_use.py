"""A newcomer's own file on every example DAG, through Airflow's CLI against the sandbox.

The file is not the sample: ``email, phone, first_name, last_name, plan`` with international
numbers and no ``country`` column, one row without a usable identity and one repeated email.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from infobip_provider.sandbox.testing import SandboxProcess
from tests.conftest import ROOT

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]
AIRFLOW = str(Path(sys.executable).parent / "airflow")

NEWCOMER = """email,phone,first_name,last_name,plan
anna.meier@example.org,+41791000001,Anna,Meier,pro
ivo.horvat@example.org,+385912345671,Ivo,Horvat,free
sam.lee@example.org,+14155550101,Sam,Lee,free
,+447911123456,Kim,Taylor,pro
ana.kovac@example.org,+38598765432,Ana,Kovač,pro
not an email,,Nobody,Atall,free
Anna.Meier@example.org,+41791000001,Anna,Meier,pro
"""
MEMBERS = 5  # 7 rows: one without a usable identity, one repeating an earlier email


@pytest.fixture(scope="module")
def sandbox():
    with SandboxProcess(api_key="first-use-key", cooldown_scale=0.01) as sb:
        yield sb


@pytest.fixture(scope="module")
def env(sandbox, tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow-home")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW_CONN_INFOBIP_DEFAULT": sandbox.conn_json(
            cooldown_backend="file", state_uri=str(home / "state")
        ),
    }
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    return env


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("mine") / "my audience.csv"
    path.write_text(NEWCOMER, encoding="utf-8")
    return path


def airflow(env, *args, timeout=600):
    out = subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=timeout)
    return out.returncode, out.stdout + out.stderr


def dags_test(env, dag_id: str, conf: dict) -> tuple[int, str]:
    return airflow(env, "dags", "test", dag_id, "2026-03-01", "--conf", json.dumps(conf))


def test_list_dag_takes_the_users_file(env, sandbox, cohort):
    sandbox.reset()
    code, out = dags_test(env, "infobip_cohort_to_list", {"cohort_path": str(cohort), "list_name": "Mine"})
    assert code == 0, out[-4000:]
    members = next(r for r in sandbox.state()["lists"] if r["name"] == "Mine")["members"]
    assert len(members) == 4  # the row with a phone only has no email to be a list member
    assert "Cohort from" in out and "rows not used" in out


def test_people_dag_takes_the_users_file_and_maps_the_named_columns(env, sandbox, cohort):
    sandbox.reset()
    code, out = dags_test(env, "infobip_people_import", {"cohort_path": str(cohort), "tag": "mine"})
    assert code == 0, out[-4000:]
    people = sandbox.state()["people"]
    assert len(people) == MEMBERS
    by_name = {p.get("firstName"): p for p in people}
    assert by_name["Kim"]["contactInformation"]["phone"][0]["number"] == "447911123456"
    assert by_name["Ana"]["lastName"] == "Kovač"
    assert all("mine" in p["tags"] for p in people)
    assert "first_name → firstName" in out and "not sent: plan" in out
    assert "warehouse_default" not in out  # the user named a file: no word about a warehouse


def test_sms_dag_sends_the_users_file_once_per_member(env, sandbox, cohort):
    sandbox.reset()
    code, out = dags_test(
        env,
        "infobip_sms_broadcast",
        {"cohort_path": str(cohort), "dry_run": False, "text": "Hi {{first_name}}, {{plan}} plan"},
    )
    assert code == 0, out[-4000:]
    messages = sandbox.state()["messages"]
    # six rows have a phone; the repeated row repeats one of them
    assert sorted(m["text"] for m in messages) == sorted(
        [
            "Hi Anna, pro plan",
            "Hi Ivo, free plan",
            "Hi Sam, free plan",
            "Hi Kim, pro plan",
            "Hi Ana, pro plan",
        ]
    )
    assert "Encoding:" in out and "SMS parts per message" in out


def test_a_file_and_a_query_together_stop_with_a_clear_error(env, sandbox, cohort):
    sandbox.reset()
    code, out = dags_test(
        env,
        "infobip_cohort_to_list",
        {"cohort_path": str(cohort), "cohort_sql": "SELECT email FROM customers", "list_name": "Both"},
    )
    assert code != 0
    assert "give one of cohort_path and cohort_sql" in out
    assert sandbox.state()["lists"] == []


def test_tasks_test_twice_for_one_date_sends_each_member_once(env, sandbox, cohort):
    sandbox.reset()
    params = json.dumps({"cohort_path": str(cohort), "dry_run": False})
    outs = []
    for _ in range(2):
        code, out = airflow(
            env, "tasks", "test", "infobip_sms_broadcast", "broadcast", "2026-01-01", "-t", params
        )
        assert code == 0, out[-4000:]
        outs.append(out)
    numbers = [m["destination"] for m in sandbox.state()["messages"]]
    assert len(numbers) == MEMBERS and len(set(numbers)) == MEMBERS
    assert "This run continues the broadcast" in outs[1]
    assert "This run continues the broadcast" not in outs[0]
