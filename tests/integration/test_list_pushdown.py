"""``diff_in_warehouse`` end to end: the list sync with the diff run in the warehouse sends what the
full read sends, on SQLite and PostgreSQL, against the sandbox."""

from __future__ import annotations

import json
import sqlite3
import uuid
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from infobip_provider.operators.lists import CohortToListOperator
from tests.conftest import POSTGRES_CONN
from tests.integration.conftest import list_members, run_operator

pytestmark = pytest.mark.sandbox

CONN = "pd_list_warehouse"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse(request, tmp_path, monkeypatch):
    """A ``people`` table (unique name) on SQLite or PostgreSQL; ``load(emails)`` replaces its rows."""
    table = f"pd_people_{uuid.uuid4().hex[:10]}"
    if request.param == "sqlite":
        path = str(tmp_path / "warehouse.db")
        conn: dict[str, Any] = {"conn_type": "sqlite", "host": path}

        def connect() -> Any:
            return sqlite3.connect(path)

        mark = "?"
    else:
        import psycopg2

        dsn = request.getfixturevalue("postgres_dsn")
        conn = dict(POSTGRES_CONN)

        def connect() -> Any:
            return psycopg2.connect(dsn)

        mark = "%s"
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps(conn))

    def load(emails: list[str | None]) -> None:
        db = connect()
        try:
            cur = db.cursor()
            cur.execute(f"DROP TABLE IF EXISTS {table}")
            cur.execute(f"CREATE TABLE {table} (id integer PRIMARY KEY, email text)")
            cur.executemany(f"INSERT INTO {table} VALUES ({mark}, {mark})", list(enumerate(emails, 1)))
            db.commit()
        finally:
            db.close()

    yield {"table": table, "load": load, "query": f"SELECT email FROM {table} ORDER BY id"}
    db = connect()
    try:
        db.cursor().execute(f"DROP TABLE IF EXISTS {table}")
        db.commit()
    finally:
        db.close()


def sync(name: str, query: str, pushed: bool, **kwargs: Any) -> dict[str, Any]:
    return run_operator(
        CohortToListOperator(
            task_id="sync_list",
            list_name=name,
            cohort_sql=query,
            cohort_conn_id=CONN,
            diff_in_warehouse="true" if pushed else False,
            batch_size=50,
            **kwargs,
        )
    )


COUNTS = ("to_add", "to_remove", "added", "removed", "unchanged", "rejected")


def test_the_pushed_down_sync_sends_what_the_full_read_sends(sandbox, infobip_conn, warehouse):
    first = [f"member{i}@example.com" for i in range(300)] + ["not-an-email", None]
    warehouse["load"](first)
    # list A diffs in the warehouse (its first run reads in full: no snapshot yet), list B reads in full
    a1, b1 = sync("Pushed", warehouse["query"], True), sync("Full", warehouse["query"], False)
    assert {k: a1[k] for k in COUNTS} == {k: b1[k] for k in COUNTS}
    assert "diff_in_warehouse" not in a1  # nothing to diff against yet
    # 30 left, 25 joined, hostile forms of members who stayed, repeats, invalid rows
    second = [f"member{i}@example.com" for i in range(30, 300)]
    second[0] = second[0].upper()
    second[1] = f"  {second[1]}\t"
    second[2] = second[2].replace("m", "M", 1) + " "
    second[3] = "\u00a0" + second[3]
    second += [f"joiner{i}@example.com" for i in range(25)]
    second += ["MEMBER40@example.com", "member41@example.com\t", "joiner3@EXAMPLE.com", "nope", "", None]
    warehouse["load"](second)
    a2, b2 = sync("Pushed", warehouse["query"], True), sync("Full", warehouse["query"], False)
    assert {k: a2[k] for k in COUNTS} == {k: b2[k] for k in COUNTS}
    assert (a2["added"], a2["removed"], a2["unchanged"]) == (25, 30, 270)
    assert a2["cohort"]["rows_read"] == b2["cohort"]["rows_read"] == len(second)
    assert {k: v for k, v in a2["cohort"].items() if k != "chunks"} == {
        k: v for k, v in b2["cohort"].items() if k != "chunks"
    }
    facts = a2["diff_in_warehouse"]
    assert facts["rows_in_cohort"] == len(second)
    assert facts["rows_travelled"] < 60  # the joiners, the odd forms, repeats and invalid rows
    assert facts["snapshot_ids_travelled"] == 30 + 2  # the leavers, member31 (a tab) and member33 (nbsp)
    assert list_members(sandbox, "Pushed") == list_members(sandbox, "Full")
    assert list_members(sandbox, "Pushed") == {f"member{i}@example.com" for i in range(30, 300)} | {
        f"joiner{i}@example.com" for i in range(25)
    }
    # an unchanged rerun sends nothing, and says where the diff ran
    a3 = sync("Pushed", warehouse["query"], True, dry_run=True)
    assert (a3["to_add"], a3["to_remove"], a3["unchanged"]) == (0, 0, 295)
    assert a3["diff_in_warehouse"]["rows_travelled"] < 60


def test_the_removal_guard_counts_the_members_left_in_the_warehouse(sandbox, infobip_conn, warehouse):
    warehouse["load"]([f"m{i}@example.com" for i in range(100)])
    sync("Guarded", warehouse["query"], True)
    warehouse["load"]([f"m{i}@example.com" for i in range(40)])  # 60 % would leave
    with pytest.raises(AirflowFailException, match="Refusing to remove 60 of 100 members"):
        sync("Guarded", warehouse["query"], True)


def test_a_file_cohort_is_refused(sandbox, infobip_conn, tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("email\na@example.com\n", encoding="utf-8")
    with pytest.raises(AirflowFailException, match="diff_in_warehouse needs the cohort as a query"):
        run_operator(
            CohortToListOperator(
                task_id="sync_list", list_name="File", cohort_path=str(path), diff_in_warehouse=True
            )
        )


def test_a_warehouse_that_refuses_the_table_stops_the_sync(sandbox, infobip_conn, tmp_path, monkeypatch):
    path = tmp_path / "ro.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE people (email text)")
    db.executemany("INSERT INTO people VALUES (?)", [(f"p{i}@example.com",) for i in range(10)])
    db.commit()
    db.close()
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    sync("ReadOnly", "SELECT email FROM people", True)  # the first run reads in full
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{CONN.upper()}",
        json.dumps({"conn_type": "sqlite", "host": str(path), "extra": {"mode": "ro"}}),
    )
    with pytest.raises(AirflowFailException, match="cannot write the snapshot table"):
        sync("ReadOnly", "SELECT email FROM people", True)


@pytest.mark.parametrize("value", [True, False])
def test_the_dag_param_reaches_the_operator(value):
    import copy

    from airflow.dag_processing.dagbag import DagBag

    from tests.conftest import ROOT

    dag = DagBag(dag_folder=str(ROOT / "dags" / "infobip_cohort_to_list.py")).dags["infobip_cohort_to_list"]
    schema = dag.params.get_param("diff_in_warehouse").schema
    assert dag.params["diff_in_warehouse"] is False
    assert (schema["type"], schema["section"]) == ("boolean", "Cohort")
    task = copy.deepcopy(dag.get_task("sync_list"))
    params = {**dag.params.dump(), "diff_in_warehouse": value}
    task.render_template_fields({"params": params, "run_id": "manual__form", "ds": "2026-03-02"})
    assert task.snapshot_first() is value
