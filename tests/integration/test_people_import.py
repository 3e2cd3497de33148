"""PeopleImportOperator against the sandbox: state equals the cohort, only changes are sent, kill and resume.

The cohort comes from a warehouse built by ``include/warehouse/build_warehouse.py`` (a temporary
SQLite copy, or a table in the local PostgreSQL), read through ``include/sql/people_cohort.sql``.
"""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import os
import random
import signal
import sqlite3
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from infobip_provider.operators.people import LANE_WINDOW, PeopleImportOperator
from tests.conftest import ROOT
from tests.integration.conftest import run_operator, total_429

pytestmark = pytest.mark.sandbox

SQL = (ROOT / "include" / "sql" / "people_cohort.sql").read_text()
TAG = "VIP people"
FIELD_MAP = {
    "first_name": "firstName",
    "last_name": "lastName",
    "gender": "gender",
    "birth_date": "birthDate",
    "city": "city",
    "language": "preferredLanguage",
    "plan": "plan",
    "lifetime_value": "lifetimeValue",
}
_spec = importlib.util.spec_from_file_location(
    "build_warehouse", ROOT / "include" / "warehouse" / "build_warehouse.py"
)
assert _spec and _spec.loader
warehouse = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(warehouse)


def importer(**kwargs: Any) -> PeopleImportOperator:
    args: dict[str, Any] = {
        "task_id": "import_people",
        "tag": TAG,
        "cohort_sql": SQL,
        "cohort_conn_id": "warehouse_default",
        "external_id_column": "customer_id",
        "country_column": "country",
        "field_map": FIELD_MAP,
        "batch_size": 250,
        **kwargs,
    }
    return PeopleImportOperator(**args)


@pytest.fixture
def sqlite_warehouse(tmp_path, monkeypatch) -> Path:
    db = warehouse.build_warehouse(tmp_path / "warehouse.db", count=600)
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_DEFAULT", json.dumps({"conn_type": "sqlite", "host": str(db)}))
    return db


def cohort_members(conn_id: str = "warehouse_default", sql: str = SQL) -> list[dict[str, Any]]:
    """The reference cohort, read through the cohort layer with the operator's identity columns."""
    from infobip_provider.cohorts import IdentityColumns, cohort_source, prepare_cohort

    prepared = prepare_cohort(
        cohort_source(sql=sql, conn_id=conn_id),
        IdentityColumns(email="email", phone="phone", external_id="customer_id", country="country"),
        key="email_or_phone",
    )
    return prepared.members.to_dict("records")


def find(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Sandbox people by every email and phone they have."""
    index: dict[str, dict[str, Any]] = {}
    for person in state["people"]:
        for email in person["contactInformation"]["email"]:
            index[email["address"]] = person
        for phone in person["contactInformation"]["phone"]:
            index[phone["number"]] = person
    return index


def assert_state_equals_cohort(sandbox, members: list[dict[str, Any]], person_type: str = "CUSTOMER") -> None:
    state = sandbox.state()
    people = find(state)
    for member in members:
        person = people.get(member["key"])
        assert person is not None, f"row {member['row']} is not in Infobip"
        expected = {
            "type": person_type,
            "externalId": member["external_id"],
            "firstName": member["first_name"],
            "lastName": member["last_name"],
            "gender": member["gender"],
            "birthDate": member["birth_date"],
            "city": member["city"],
            "preferredLanguage": member["language"],
        }
        assert {k: person.get(k) for k in expected} == expected, f"row {member['row']}"
        assert person["customAttributes"] == {
            "plan": member["plan"],
            "lifetimeValue": member["lifetime_value"],
        }
        assert person["tags"] == [TAG]
    tagged = [p for p in state["people"] if TAG in p["tags"]]
    assert len(tagged) == len(members)  # nobody else carries the tag


def identifiers(entry: dict[str, Any]) -> list[str]:
    body = entry["body"]
    if entry["endpoint"] == "people.upsert":
        return [p["contactInformation"][0]["identifier"] for p in body["persons"]]
    return [p["query"]["identifier"] for p in body["people"]]


def journal(sandbox, since: int, endpoint: str) -> list[dict[str, Any]]:
    return [
        e for e in sandbox.journal(bodies=True, endpoint=endpoint, since=since) if e["status"] in (200, 207)
    ]


def last_seq(sandbox) -> int:
    entries = sandbox.journal()
    return entries[-1]["seq"] if entries else 0


# ------------------------------------------------------------------------------------------------ tests
def test_import_keeps_people_and_tag_equal_to_the_cohort_and_sends_only_changes(
    sandbox, infobip_conn, sqlite_warehouse
):
    members = cohort_members()
    first = run_operator(importer())
    assert first["created"] == len(members) and first["tagged"] == len(members) and first["rejected"] >= 0
    assert_state_equals_cohort(sandbox, members)
    # The order Lytics' Infobip export asks for, per person: the tag call arrives after the person's upsert was answered.
    upserted_at: dict[str, float] = {}
    for entry in journal(sandbox, 0, "people.upsert"):
        for key in identifiers(entry):
            upserted_at[key] = entry["arrival"] + entry["duration"]
    tag_calls = journal(sandbox, 0, "tags.add")
    assert tag_calls and all(e["arrival"] > upserted_at[k] for e in tag_calls for k in identifiers(e))
    assert len(upserted_at) == len(members)

    # A rerun without change: no upsert, no tag call (no call at all).
    seq = last_seq(sandbox)
    second = run_operator(importer())
    assert last_seq(sandbox) == seq and second["calls"] == {} and second["unchanged"] == len(members)

    # Changed fields, leavers and entrants.
    db = sqlite3.connect(sqlite_warehouse)
    active = [r[0] for r in db.execute("SELECT customer_id FROM customers WHERE is_active = 1 ORDER BY 1")]
    inactive = [r[0] for r in db.execute("SELECT customer_id FROM customers WHERE is_active = 0 ORDER BY 1")]
    changed, leaving, entering = active[10:15], active[20:27], inactive[:4]
    db.execute(
        f"UPDATE customers SET city = 'Zadar', plan = 'enterprise' WHERE customer_id IN ({','.join(map(str, changed))})"
    )
    db.execute(f"UPDATE customers SET is_active = 0 WHERE customer_id IN ({','.join(map(str, leaving))})")
    db.execute(f"UPDATE customers SET is_active = 1 WHERE customer_id IN ({','.join(map(str, entering))})")
    db.commit()
    db.close()
    by_id = {m["external_id"]: m for m in members}
    new_members = cohort_members()
    new_by_id = {m["external_id"]: m for m in new_members}
    third = run_operator(importer())
    upserted = [k for e in journal(sandbox, seq, "people.upsert") for k in identifiers(e)]
    expected_upserts = [
        new_by_id[str(i)]["key"] for i in sorted([*changed, *entering]) if str(i) in new_by_id
    ]
    assert sorted(upserted) == sorted(expected_upserts)
    assert len(upserted) >= len(changed)
    untagged = [k for e in journal(sandbox, seq, "tags.remove") for k in identifiers(e)]
    leavers = [by_id[str(i)]["key"] for i in leaving if str(i) in by_id]
    assert sorted(untagged) == sorted(leavers) and leavers
    added = [k for e in journal(sandbox, seq, "tags.add") for k in identifiers(e)]
    assert sorted(added) == sorted(new_by_id[str(i)]["key"] for i in entering if str(i) in new_by_id)
    assert (third["updated"], third["untagged"]) == (len(changed), len(leavers))
    assert_state_equals_cohort(sandbox, new_members)
    people = find(sandbox.state())
    assert all(people[k]["tags"] == [] for k in leavers)  # leavers lose the tag and still exist
    assert total_429(sandbox.counters()) == 0


def test_people_infobip_refuses_are_rejected_and_not_tagged(sandbox, infobip_conn, tmp_path):
    # Two existing people own the email and the phone of one cohort row: Infobip cannot tell who it is.
    from infobip_provider.hooks.infobip import InfobipHook

    hook = InfobipHook()
    hook.upsert_people(
        [
            {"contactInformation": [{"type": "EMAIL", "identifier": "ana@example.com"}]},
            {"contactInformation": [{"type": "PHONE", "identifier": "12025550143"}]},
        ]
    )
    cohort = tmp_path / "cohort.csv"
    cohort.write_text("email,phone,first_name\nana@example.com,+1 202 555 0143,Ana\nbo@example.com,,Bo\n")
    summary = run_operator(
        PeopleImportOperator(
            task_id="t", tag=TAG, cohort_path=str(cohort), field_map={"first_name": "firstName"}
        )
    )
    assert summary["refused_by_infobip"] == 1 and summary["tagged"] == 1 and summary["created"] == 1
    people = find(sandbox.state())
    assert people["bo@example.com"]["tags"] == [TAG] and people["ana@example.com"]["tags"] == []
    refused = list(Path(infobip_conn["state"]).rglob("rejects/*refused.csv"))
    assert refused and "ana@example.com" in refused[0].read_text() and "400106" in refused[0].read_text()


@pytest.mark.postgres
def test_the_same_flow_with_postgresql_as_the_warehouse(sandbox, infobip_conn, postgres_dsn, monkeypatch):
    import psycopg2

    table = f"people_import_{uuid.uuid4().hex[:8]}"
    customers = warehouse.generate_customers(300)
    columns = warehouse.COLUMNS
    conn = psycopg2.connect(postgres_dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(
                f"CREATE TABLE {table} (customer_id INTEGER PRIMARY KEY, first_name TEXT, last_name TEXT, email TEXT, "
                "phone TEXT, country TEXT NOT NULL, city TEXT, language TEXT, gender TEXT, birth_date DATE, "
                "plan TEXT NOT NULL, lifetime_value NUMERIC(12, 2) NOT NULL, is_active INTEGER NOT NULL, "
                "updated_at TIMESTAMP NOT NULL)"
            )
            cur.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})",
                [tuple(c[k] for k in columns) for c in customers],
            )
        monkeypatch.setenv(
            "AIRFLOW_CONN_PG_WAREHOUSE",
            json.dumps(
                {
                    "conn_type": "postgres",
                    "host": "127.0.0.1",
                    "login": "postgres",
                    "schema": "test",
                    "port": 5432,
                }
            ),
        )
        sql = SQL.replace("FROM customers", f"FROM {table}")
        members = cohort_members("pg_warehouse", sql)
        first = run_operator(importer(cohort_sql=sql, cohort_conn_id="pg_warehouse", person_type="LEAD"))
        assert first["created"] == len(members) > 200
        assert_state_equals_cohort(sandbox, members, person_type="LEAD")
        seq = last_seq(sandbox)
        ids = [m["external_id"] for m in members[:3]]
        with conn.cursor() as cur:
            cur.execute(f"UPDATE {table} SET first_name = 'Renamed' WHERE customer_id IN ({','.join(ids)})")
        second = run_operator(importer(cohort_sql=sql, cohort_conn_id="pg_warehouse", person_type="LEAD"))
        upserted = [k for e in journal(sandbox, seq, "people.upsert") for k in identifiers(e)]
        assert sorted(upserted) == sorted(m["key"] for m in members[:3]) and second["updated"] == 3
        assert journal(sandbox, seq, "tags.add") == [] and journal(sandbox, seq, "tags.remove") == []
        assert_state_equals_cohort(sandbox, cohort_members("pg_warehouse", sql), person_type="LEAD")
        assert total_429(sandbox.counters()) == 0
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {table}")
        conn.close()


def _child(args: dict[str, Any], log: str) -> None:
    """The killed process: runs the operator and writes its summary (forked: no import cost)."""
    context: Any = {"run_id": "scheduled__kill", "ti": None, "params": {}}
    result = PeopleImportOperator(**args).execute(context)
    Path(log).write_text("SUMMARY " + json.dumps(result))


def test_kill_and_resume_loses_nothing_and_repeats_no_acknowledged_batch(
    sandbox, infobip_conn, sqlite_warehouse, tmp_path, monkeypatch
):
    # The client paces more slowly than the sandbox demands, so that a run lasts long enough to be killed.
    conn = sandbox.conn_json(
        cooldown_scale=0.25, cooldown_backend="file", state_uri=str(infobip_conn["state"])
    )
    monkeypatch.setenv("AIRFLOW_CONN_INFOBIP_DEFAULT", conn)
    run_operator(importer(batch_size=1000))
    before = {m["external_id"]: m for m in cohort_members()}
    db = sqlite3.connect(sqlite_warehouse)
    active = [r[0] for r in db.execute("SELECT customer_id FROM customers WHERE is_active = 1 ORDER BY 1")]
    inactive = [r[0] for r in db.execute("SELECT customer_id FROM customers WHERE is_active = 0 ORDER BY 1")]
    db.execute(f"UPDATE customers SET is_active = 0 WHERE customer_id IN ({','.join(map(str, active[:60]))})")
    db.execute(
        f"UPDATE customers SET city = 'Split' WHERE customer_id IN ({','.join(map(str, active[100:160]))})"
    )
    db.execute(f"UPDATE customers SET is_active = 1 WHERE customer_id IN ({','.join(map(str, inactive))})")
    db.commit()
    db.close()
    members = cohort_members()
    leavers = [before[str(i)]["key"] for i in active[:60] if str(i) in before]

    batch_size = 5
    args = {
        "task_id": "import_people",
        "tag": TAG,
        "cohort_sql": SQL,
        "external_id_column": "customer_id",
        "country_column": "country",
        "field_map": FIELD_MAP,
        "batch_size": batch_size,
    }
    fork = multiprocessing.get_context("fork")
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    start_seq = last_seq(sandbox)
    watched = ("people.upsert", "tags.add", "tags.remove")

    def sent() -> int:
        counters = sandbox.counters()
        return sum(counters[e]["requests"] for e in watched)

    from infobip_provider.checkpoint import recover
    from infobip_provider.hooks.infobip import InfobipHook
    from infobip_provider.people import parse_ref
    from infobip_provider.state import StateStore

    target = StateStore(str(infobip_conn["state"])).target(InfobipHook().key_fingerprint, "tags", TAG)
    lanes = {"upsert": "people.upsert", "tag": "tags.add", "untag": "tags.remove"}
    kills = 0
    kill_seqs: list[int] = []
    acked_at_kill: list[dict[str, set[str]]] = []  # what the killed process's journal had acknowledged
    for attempt in range(6):
        log = tmp_path / f"child-{attempt}.log"
        threshold = sent() + rng.randint(8, 16)
        child = fork.Process(target=_child, args=(args, str(log)))
        child.start()
        deadline = time.monotonic() + 60
        while child.is_alive() and sent() < threshold and time.monotonic() < deadline:
            time.sleep(0.002)
        if child.is_alive() and child.pid is not None:
            os.kill(child.pid, signal.SIGKILL)
            kills += 1
            child.join()
            time.sleep(0.05)  # let the sandbox journal a request that was on the wire
            kill_seqs.append(last_seq(sandbox))
            acked_now = recover(target).acked
            acked_at_kill.append(
                {
                    lanes[lane]: {
                        parse_ref(ref)[1] for ids, refused in done for ref in ids if ref not in refused
                    }
                    for lane, done in acked_now.items()
                }
            )
        child.join()
        if child.exitcode == 0:
            assert log.read_text().startswith("SUMMARY")
            break
        assert child.exitcode == -signal.SIGKILL
    assert kills >= 3, f"only {kills} kills landed mid-run (seed {seed})"
    run_operator(importer(batch_size=batch_size))

    # Nothing lost: Infobip equals the new cohort; leavers exist without the tag.
    assert_state_equals_cohort(sandbox, members)
    people = find(sandbox.state())
    assert leavers and all(people[k]["tags"] == [] for k in leavers)
    # Nothing acknowledged repeated: after each kill, no batch the killed process had journaled as
    # acknowledged reaches Infobip again (only batches in flight at the kill may be sent twice).
    assert sum(len(keys) for acked in acked_at_kill for keys in acked.values()) > 0
    for seq, acked in zip(kill_seqs, acked_at_kill):
        for endpoint, keys in acked.items():
            resent = {k for e in journal(sandbox, seq, endpoint) for k in identifiers(e)} & keys
            assert not resent, (endpoint, sorted(resent)[:5], seed)
    for endpoint in watched:
        counts = Counter(k for e in journal(sandbox, start_seq, endpoint) for k in identifiers(e))
        assert sum(n - 1 for n in counts.values()) <= kills * batch_size * LANE_WINDOW
    assert total_429(sandbox.counters()) == 0


def test_the_dag_task_renders_its_params_natively_and_runs(sandbox, infobip_conn, sqlite_warehouse):
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(ROOT / "dags" / "infobip_people_import.py")).dags["infobip_people_import"]
    task = dag.get_task("import_people")
    assert isinstance(task, PeopleImportOperator)
    params = {name: dag.params[name] for name in dag.params}
    context: Any = {
        "run_id": "manual__dag",
        "ti": None,
        "params": {
            **params,
            "cohort_sql": "sql/people_cohort.sql",
            "field_map": {"first_name": "firstName", "plan": "plan"},
            "dry_run": True,
        },
        "dag": dag,
        "task": task,
    }
    task.render_template_fields(context)
    assert task.field_map == {"first_name": "firstName", "plan": "plan"}  # native objects, not their text
    assert task.dry_run is True
    summary = task.execute(context)
    members = cohort_members()
    assert summary["tag"] == "infobip_people_import.import_people"
    assert summary["dry_run"] is True and summary["to_upsert"] == summary["to_tag"] == len(members)
    assert summary["calls_planned"]["people.upsert"] == -(-len(members) // 1000)
    assert sum(c["requests"] for c in sandbox.counters().values()) == 0
