"""People export against the sandbox, into SQLite and PostgreSQL: first run, 1 % changed, paging ties."""

from __future__ import annotations

import json
import time

import pytest

from infobip_provider.hooks.infobip import InfobipHook
from infobip_provider.transfers.people_to_sql import InfobipPeopleToSqlOperator
from tests.integration.conftest import run_operator
from tests.transfers.conftest import records

pytestmark = pytest.mark.sandbox


def _next_second() -> None:
    """Let the sandbox's clock leave the second of the last change (People stamp whole seconds)."""
    time.sleep(1.05 - time.time() % 1)


def sandbox_people(sandbox, tags: list[str] | None = None) -> dict[int, tuple]:
    out = {}
    for person in sandbox.state()["people"]:
        if tags and not set(tags) & set(person["tags"]):
            continue
        out[person["id"]] = (
            person.get("externalId"),
            person.get("firstName"),
            sorted(person["tags"]),
            person.get("customAttributes") or {},
            sorted(e["address"] for e in person["contactInformation"]["email"]),
            person["modifiedAt"].replace("T", " "),
        )
    return out


def table_people(warehouse) -> dict[int, tuple]:
    rows = records(
        warehouse["conn_id"],
        f"SELECT id, external_id, first_name, tags, custom_attributes, emails, modified_at FROM {warehouse['table']}",
    )
    return {
        int(r[0]): (
            r[1],
            r[2],
            sorted(json.loads(r[3])),
            json.loads(r[4]),
            sorted(json.loads(r[5])),
            str(r[6]),
        )
        for r in rows
    }


def _export(warehouse, **kwargs) -> InfobipPeopleToSqlOperator:
    return InfobipPeopleToSqlOperator(
        task_id="export_people", sql_conn_id=warehouse["conn_id"], table=warehouse["table"], **kwargs
    )


def test_table_equals_sandbox_then_only_the_changed_percent_is_fetched(sandbox, infobip_conn, warehouse):
    sandbox.generate_people(5000)
    _next_second()
    first = run_operator(_export(warehouse))
    assert first["first_run"] is True and first["people"] == 5000
    assert first["requests"] == 6  # five full pages and the empty one that ends them
    assert table_people(warehouse) == sandbox_people(sandbox)

    changed = list(range(7, 5001, 100))  # 1 %
    assert sandbox.modify_people(changed, {"plan": "gold"}) == 50
    _next_second()
    since = sandbox.journal(endpoint="people.list")[-1]["seq"]
    second = run_operator(_export(warehouse))
    assert second["people"] == 50 and second["first_run"] is False
    answered = [e for e in sandbox.journal(endpoint="people.list", since=since)]
    assert len(answered) == 1  # one short page: only the changed people left Infobip
    assert table_people(warehouse) == sandbox_people(sandbox)
    assert records(warehouse["conn_id"], f"SELECT count(*) FROM {warehouse['table']}") == [(5000,)]
    assert sum(int(v["429s"]) for v in sandbox.counters().values()) == 0


def test_a_person_changed_while_the_run_pages_is_not_lost(sandbox, infobip_conn, warehouse, monkeypatch):
    sandbox.generate_people(1000)
    _next_second()
    original = InfobipHook.people_page
    calls = {"n": 0}

    def changing(self, **kwargs):
        page = original(self, **kwargs)
        calls["n"] += 1
        if calls["n"] == 3:  # 300 people read: change one behind the cursor and one ahead of it
            sandbox.modify_people([5, 950], {"plan": "changed-mid-run"})
        return page

    monkeypatch.setattr(InfobipHook, "people_page", changing)
    summary = run_operator(_export(warehouse, page_size=100))
    assert summary["people"] == 1001  # person 5 read twice: before and after its change
    assert table_people(warehouse) == sandbox_people(sandbox)


def test_tags_filter_and_attribute_columns(sandbox, infobip_conn, warehouse):
    sandbox.generate_people(300, tags=["VIP"], prefix="vip")
    sandbox.generate_people(200, tags=["Other"], prefix="other")
    _next_second()
    summary = run_operator(_export(warehouse, tags=["VIP", "Beta"], attribute_columns=["plan"]))
    assert summary["people"] == 300
    assert table_people(warehouse) == sandbox_people(sandbox, ["VIP", "Beta"])
    plans = records(warehouse["conn_id"], f"SELECT DISTINCT plan FROM {warehouse['table']} ORDER BY plan")
    assert plans == [("free",), ("pro",)]


def test_parquet_files_under_a_uri(sandbox, infobip_conn, tmp_path):
    import pandas as pd

    sandbox.generate_people(2500)
    _next_second()
    folder = tmp_path / "people"
    operator = InfobipPeopleToSqlOperator(
        task_id="export_people", output_uri=f"file://{folder}", rows_per_file=1000
    )
    assert run_operator(operator)["files"] == 3
    sandbox.modify_people([1, 2], {"plan": "gold"})
    _next_second()
    assert run_operator(operator)["people"] == 2
    frame = pd.concat(pd.read_parquet(p) for p in sorted(folder.glob("*.parquet")))
    latest = frame.sort_values("exported_at").drop_duplicates("id", keep="last")
    assert len(frame) == 2502 and len(latest) == 2500
    assert json.loads(latest.set_index("id").loc[1, "custom_attributes"])["plan"] == "gold"


def test_table_and_output_uri_together_is_an_error(infobip_conn, warehouse):
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="not both"):
        run_operator(_export(warehouse, output_uri="file:///tmp/x"))
