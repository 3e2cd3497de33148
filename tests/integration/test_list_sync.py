"""CohortToListOperator against the sandbox: incremental, guarded, crash-safe, never a 429."""

from __future__ import annotations

import math
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from airflow.sdk.exceptions import AirflowFailException

from infobip_provider.operators.lists import CohortToListOperator
from infobip_provider.state import TargetLockedError
from tests.conftest import ROOT
from tests.integration.conftest import list_members, run_operator, total_429

pytestmark = pytest.mark.sandbox


def write_cohort(path, emails, extra_rows=()):
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("email,first_name\n")
        for i, email in enumerate(emails):
            fh.write(f"{email},Name{i}\n")
        for row in extra_rows:
            fh.write(row + "\n")
    return str(path)


def emails(n, prefix="member"):
    return [f"{prefix}{i}@example.com" for i in range(n)]


def list_calls(sandbox):
    counters = sandbox.counters()
    return {e: counters.get(e, {}).get("requests", 0) for e in ("lists.create", "lists.add", "lists.remove")}


def sync(path, name="Customers", **kwargs):
    return run_operator(CohortToListOperator(task_id="sync_list", list_name=name, cohort_path=path, **kwargs))


def test_first_sync_then_an_unchanged_rerun_sends_nothing(sandbox, infobip_conn, tmp_path):
    cohort = emails(2500)
    path = write_cohort(tmp_path / "c.csv", cohort, extra_rows=["not-an-email,X", "MEMBER0@example.com,dup"])
    first = sync(path)
    assert list_members(sandbox, "Customers") == set(cohort)
    assert first["added"] == 2500 and first["removed"] == 0 and first["rejected"] == 2
    assert first["calls"]["lists.add"] == 3 and first["calls"]["lists.create"] == 1
    before = list_calls(sandbox)
    second = sync(path)
    assert list_calls(sandbox) == before  # zero add, remove or create calls
    assert second["added"] == second["removed"] == 0 and second["unchanged"] == 2500
    assert second["list_id"] == first["list_id"]
    assert total_429(sandbox.counters()) == 0
    assert os.path.exists(first["rejects_uri"].removeprefix("file://"))


@pytest.mark.slow
def test_one_percent_change_of_100k_costs_one_call_per_endpoint(sandbox, infobip_conn, tmp_path):
    cohort = emails(100_000)
    path = write_cohort(tmp_path / "c.csv", cohort)
    first = sync(path)
    assert first["calls"]["lists.add"] == 100
    changed = cohort[1000:] + emails(1000, prefix="newcomer")
    write_cohort(tmp_path / "c.csv", changed)
    before = list_calls(sandbox)
    second = sync(path)
    after = list_calls(sandbox)
    assert (second["added"], second["removed"]) == (1000, 1000)
    assert after["lists.add"] - before["lists.add"] == math.ceil(1000 / 1000)
    assert after["lists.remove"] - before["lists.remove"] == math.ceil(1000 / 1000)
    assert list_members(sandbox, "Customers") == set(changed)
    assert total_429(sandbox.counters()) == 0


def test_removal_guard_stops_a_broken_cohort(sandbox, infobip_conn, tmp_path):
    path = write_cohort(tmp_path / "c.csv", emails(100))
    sync(path)
    write_cohort(tmp_path / "c.csv", emails(30))
    before = list_calls(sandbox)
    with pytest.raises(AirflowFailException, match="max_removal_ratio"):
        sync(path)
    assert list_calls(sandbox) == before and len(list_members(sandbox, "Customers")) == 100
    result = sync(path, max_removal_ratio=1.0)
    assert result["removed"] == 70 and list_members(sandbox, "Customers") == set(emails(30))


def test_add_only_never_removes(sandbox, infobip_conn, tmp_path):
    path = write_cohort(tmp_path / "c.csv", emails(10))
    sync(path, mode="add_only")
    write_cohort(tmp_path / "c.csv", [*emails(5), "late@example.com"])
    result = sync(path, mode="add_only")
    assert (result["added"], result["removed"]) == (1, 0)
    assert list_members(sandbox, "Customers") == set(emails(10)) | {"late@example.com"}


def test_dry_run_calls_nothing_and_returns_the_plan(sandbox, infobip_conn, tmp_path):
    path = write_cohort(tmp_path / "c.csv", emails(2100))
    plan = sync(path, dry_run="true")
    assert plan["to_add"] == 2100 and plan["calls_planned"] == {"lists.add": 3, "lists.remove": 0}
    assert sum(c["requests"] for c in sandbox.counters().values()) == 0


def test_a_list_deleted_in_infobip_is_created_again_and_resynced(sandbox, infobip_conn, tmp_path):
    path = write_cohort(tmp_path / "c.csv", emails(50))
    first = sync(path)
    sandbox.reset()  # the list is gone: the next add answers TAG_NOT_FOUND
    write_cohort(tmp_path / "c.csv", emails(51))
    second = sync(path)
    assert second.get("recreated") is True and first["list_id"] is not None
    assert list_members(sandbox, "Customers") == set(emails(51))


def test_two_runs_of_one_list_cannot_overlap(sandbox, infobip_conn, tmp_path):
    from infobip_provider.hooks.infobip import InfobipHook
    from infobip_provider.state import StateStore

    hook = InfobipHook()
    target = StateStore(hook.state_uri).target(hook.key_fingerprint, "lists", "Customers")
    path = write_cohort(tmp_path / "c.csv", emails(5))
    with target.lock("held by another run"), pytest.raises(TargetLockedError, match="within 1 s"):
        sync(path, lock_wait=1)  # an earlier try still holds it: wait, then give up, sending nothing
    assert list_calls(sandbox)["lists.add"] == 0


def test_sql_cohort_on_sqlite(sandbox, infobip_conn, tmp_path, monkeypatch):
    import json
    import sqlite3

    db = tmp_path / "wh.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE people (email TEXT, active INTEGER)")
        conn.executemany("INSERT INTO people VALUES (?, ?)", [(e, i % 2) for i, e in enumerate(emails(40))])
    monkeypatch.setenv("AIRFLOW_CONN_WH_TEST", json.dumps({"conn_type": "sqlite", "host": str(db)}))
    result = run_operator(
        CohortToListOperator(
            task_id="sync_list",
            list_name="Active",
            cohort_sql="SELECT email FROM people WHERE active = 1",
            cohort_conn_id="wh_test",
        )
    )
    assert result["added"] == 20
    assert list_members(sandbox, "Active") == {e for i, e in enumerate(emails(40)) if i % 2}


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume(sandbox, infobip_conn, tmp_path):
    """Ten SIGKILLs mid-sync, then a resume: the list equals the cohort, no acknowledged id is resent."""
    cohort = emails(3000)
    path = write_cohort(tmp_path / "c.csv", cohort)
    env = {**os.environ, **infobip_conn["env"], "PYTHONPATH": f"{ROOT}:{ROOT / 'plugins'}"}
    command = [sys.executable, "-m", "tests.integration.list_sync_worker", path, "Killed", "manual__kill"]
    rng = random.Random(7)
    in_flight: set[str] = set()
    kills = 0
    for trial in range(10):
        if trial == 5:  # halfway, the cohort changes: the resume must also remove who left
            cohort = cohort[20:] + emails(150, prefix="late")
            write_cohort(tmp_path / "c.csv", cohort)
        process = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(1.5, 3.5))  # start-up takes ~1.5 s; each 100-id batch ~0.1 s
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
        in_flight |= unacknowledged_ids(infobip_conn["state"])
    final = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stdout[-2000:]
    assert kills >= 5
    assert list_members(sandbox, "Killed") == set(cohort)
    sent = Counter(
        i
        for entry in sandbox.journal(bodies=True, endpoint="lists.add")
        if entry["status"] == 200
        for i in (entry.get("body") or {}).get("userIds", [])
    )
    repeated = {i for i, n in sent.items() if n > 1}
    # Only ids of a batch in flight at a kill (sent, no answer recorded) may go twice: there is no
    # Infobip call to ask whether such a batch arrived.
    assert repeated <= in_flight, f"{len(repeated - in_flight)} acknowledged ids were sent again"
    assert total_429(sandbox.counters()) == 0


def unacknowledged_ids(state_root) -> set[str]:
    from infobip_provider.checkpoint import recover
    from infobip_provider.state import TargetState, as_storage_path

    found: set[str] = set()
    for journal in state_root.rglob("journal.jsonl"):
        recovery = recover(TargetState(as_storage_path(str(journal.parent))))
        for ids in recovery.unacked.values():
            found.update(ids)
    return found


def test_list_names_that_look_like_numbers_stay_names(sandbox, infobip_conn, tmp_path):
    path = write_cohort(tmp_path / "c.csv", emails(3))
    result = sync(path, name=2026)  # what native rendering makes of "{{ params.list_name }}" = "2026"
    assert result["list_name"] == "2026"
    assert list_members(sandbox, "2026") == set(emails(3))
