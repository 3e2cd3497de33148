"""`make demo`: the main job on the embedded default, end to end.

Starts the Infobip sandbox, runs the ``infobip_cohort_to_list`` DAG with ``airflow dags test`` on
SQLite against it, shows the summary and what the sandbox holds, changes a few cohort rows, runs
again to show the incremental sync, and stops the sandbox. Everything lives under ``.demo/``.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / ".demo"
BIN = Path(sys.executable).parent
DAG_ID = "infobip_cohort_to_list"
LIST_NAME = "Airflow demo customers"


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def airflow_env(sandbox) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AIRFLOW_HOME=str(DEMO / "airflow"),
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__TEST_CONNECTION="Enabled",
        AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
        AIRFLOW_CONN_INFOBIP_DEFAULT=sandbox.conn_json(
            cooldown_scale=0.01, cooldown_backend="file", state_uri=str(DEMO / "state")
        ),
        AIRFLOW_CONN_WAREHOUSE_DEFAULT=json.dumps(
            {"conn_type": "sqlite", "host": str(WAREHOUSE), "extra": {"mode": "ro"}}
        ),
    )
    return env


def run(args: list[str], env: dict[str, str], quiet: bool = False) -> subprocess.CompletedProcess:
    result = subprocess.run(args, env=env, cwd=ROOT, text=True, capture_output=True)
    if result.returncode != 0:
        sys.stdout.write(result.stdout[-4000:] + result.stderr[-4000:])
        raise SystemExit(f"demo: {' '.join(args[:3])} failed with exit code {result.returncode}")
    if not quiet:
        # The task's own story: the plan, the batches, the outcome (not Airflow's chatter).
        story = (
            "Cohort from",
            "Plan for the list",
            "Created the Infobip list",
            ": batch ",
            "List '",
            "Resuming",
            "Cohort rows not used",
        )
        for line in (result.stdout + result.stderr).splitlines():
            message = re.sub(r"^\S+Z \[\w+\s*\] ", "", line).split(" [", 1)[0].strip()
            if any(s in message for s in story) and not message.startswith("20"):
                print("  " + message)
    return result


def last_summary(env: dict[str, str]) -> dict:
    db = Path(env["AIRFLOW_HOME"]) / "airflow.db"
    with sqlite3.connect(db) as conn:
        (value,) = conn.execute(
            "SELECT value FROM xcom WHERE dag_id=? AND task_id='sync_list' AND key='return_value' "
            "ORDER BY timestamp DESC LIMIT 1",
            (DAG_ID,),
        ).fetchone()
    value = json.loads(value) if isinstance(value, str | bytes) else value
    return json.loads(value) if isinstance(value, str) else value


def show(summary: dict) -> None:
    keep = ("list_id", "added", "removed", "unchanged", "rejected", "calls", "seconds_waited")
    print(json.dumps({k: summary.get(k) for k in keep}, indent=2))


def list_members(sandbox) -> set[str]:
    (entry,) = [record for record in sandbox.state()["lists"] if record["name"] == LIST_NAME]
    return set(entry["members"])


def change_cohort(path: Path) -> tuple[int, int]:
    """Drop 25 members and add 10 new ones, as a day of sign-ups and churn would."""
    with path.open(newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.DictReader(fh))
    fields = list(rows[0])
    kept = rows[25:]
    for i in range(10):
        new = dict(rows[0])
        new["email"] = f"new.signup{i}@example.org"
        kept.append(new)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(kept)
    return 10, 25


WAREHOUSE = ROOT / "include" / "warehouse" / "warehouse.db"


def main() -> None:
    sys.path.insert(0, str(ROOT / "plugins"))
    from infobip_provider.sandbox.testing import SandboxProcess

    shutil.rmtree(DEMO, ignore_errors=True)
    DEMO.mkdir()
    if not WAREHOUSE.exists():
        say("Building the embedded SQLite warehouse")
        subprocess.run(
            [sys.executable, str(ROOT / "include" / "warehouse" / "build_warehouse.py")], check=True
        )
    cohort = DEMO / "cohort.csv"
    shutil.copy(ROOT / "include" / "cohorts" / "customers.csv", cohort)

    say("Starting the Infobip sandbox (cooldowns scaled by 0.01)")
    with SandboxProcess(
        api_key="demo-api-key", cooldown_scale=0.01, state_file=str(DEMO / "sandbox.json")
    ) as sandbox:
        print(f"sandbox at {sandbox.base_url}")
        env = airflow_env(sandbox)
        airflow = str(BIN / "airflow")
        say("Preparing Airflow's SQLite metadata database (airflow db migrate)")
        run([airflow, "db", "migrate"], env, quiet=True)
        say("Testing the connection infobip_default")
        print(run([airflow, "connections", "test", "infobip_default"], env, quiet=True).stdout.strip()[-300:])

        conf = json.dumps({"cohort_path": str(cohort), "list_name": LIST_NAME})
        say(f"Run 1: airflow dags test {DAG_ID} (first run: create the list, send everyone)")
        started = time.monotonic()
        run([airflow, "dags", "test", DAG_ID, "--conf", conf], env)
        first = last_summary(env)
        show(first)
        print(f"({time.monotonic() - started:.1f}s)")

        added, removed = change_cohort(cohort)
        say(f"Run 2: the cohort changed ({added} signed up, {removed} left): only the difference is sent")
        run([airflow, "dags", "test", DAG_ID, "--conf", conf], env)
        second = last_summary(env)
        show(second)

        say("What the sandbox holds")
        members = list_members(sandbox)
        counters = sandbox.counters()
        too_many = sum(int(row.get("429s", 0)) for row in counters.values())
        print(f"list {LIST_NAME!r}: {len(members)} members; 429 answers: {too_many}")
        calls = second["calls"]
        assert calls.get("lists.add", 0) <= 1 and calls.get("lists.remove", 0) <= 1, "sent more than changed"
        assert second["added"] <= added and second["removed"] <= removed, "sent more than changed"
        assert too_many == 0, "a cooldown was broken"
    say(f"Done. The sandbox state was saved to {DEMO / 'sandbox.json'}")


if __name__ == "__main__":
    main()
