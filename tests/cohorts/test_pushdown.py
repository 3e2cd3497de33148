"""The list diff pushed down to the warehouse gives exactly the plan, rejects and counts of a full read.

Differential: hostile cohorts (case, spaces, tabs, non-breaking spaces, the Kelvin sign that Python
lower-cases to ``k``, the dotted capital I that PostgreSQL lower-cases to ``i`` and Python does not,
invalid and missing ids, duplicates on both sides of the boundary) against snapshots with members,
refused and unanswered ids, members that left and joined, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
import random
import sqlite3
import uuid
from typing import Any

import pyarrow as pa
import pytest

from infobip_provider.cohorts import CohortError, IdentityColumns, SqlSource, prepare_cohort
from infobip_provider.cohorts.columnar import Ids
from infobip_provider.cohorts.pushdown import DIALECTS, dialect_for, diff_in_warehouse, snapshot_table
from infobip_provider.operators.lists import (
    MEMBER,
    REFUSED,
    UNCERTAIN,
    WarehouseWork,
    _snapshot,
    plan_list,
    plan_pushed,
)
from tests.conftest import POSTGRES_CONN

CONN = "pd_warehouse"


class Warehouse:
    """A cohort table ``(id, email)`` on SQLite or PostgreSQL, reached as the connection ``pd_warehouse``."""

    def __init__(self, kind: str, connect: Any, conn: dict[str, Any]) -> None:
        self.kind, self.connect, self.conn = kind, connect, conn
        self.table = f"pd_cohort_{uuid.uuid4().hex[:10]}"
        self.placeholder = "?" if kind == "sqlite" else "%s"

    def load(self, emails: list[str | None]) -> str:
        """Replace the cohort; the query that reads it (with an ORDER BY: the rows' order is defined)."""
        with self.connect() as db:
            cur = db.cursor()
            cur.execute(f"DROP TABLE IF EXISTS {self.table}")
            cur.execute(f"CREATE TABLE {self.table} (id integer PRIMARY KEY, email text)")
            cur.executemany(
                f"INSERT INTO {self.table} (id, email) VALUES ({self.placeholder}, {self.placeholder})",
                list(enumerate(emails, start=1)),
            )
            db.commit()
        return f"SELECT id, email AS Email FROM {self.table} ORDER BY id"

    def tables(self) -> set[str]:
        with self.connect() as db:
            cur = db.cursor()
            if self.kind == "sqlite":
                cur.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            else:
                cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            return {row[0] for row in cur.fetchall()}

    def drop(self) -> None:
        with self.connect() as db:
            db.cursor().execute(f"DROP TABLE IF EXISTS {self.table}")
            db.commit()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse(request, tmp_path, monkeypatch):
    if request.param == "sqlite":
        path = str(tmp_path / "warehouse.db")
        conn: dict[str, Any] = {"conn_type": "sqlite", "host": path}
        wh = Warehouse("sqlite", lambda: _closing(sqlite3.connect(path)), conn)
    else:
        import psycopg2

        dsn = request.getfixturevalue("postgres_dsn")
        conn = dict(POSTGRES_CONN)
        wh = Warehouse("postgres", lambda: _closing(psycopg2.connect(dsn)), conn)
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps(conn))
    yield wh
    wh.drop()


class _closing:
    """A DB-API connection as a context manager that closes it (sqlite3's own only ends a transaction)."""

    def __init__(self, db: Any) -> None:
        self.db = db

    def __enter__(self) -> Any:
        return self.db

    def __exit__(self, *exc: object) -> None:
        self.db.close()


# ------------------------------------------------------------------------------------------ the two ways


def full_read(query: str, snapshot: pa.Table, mode: str) -> dict[str, Any]:
    prepared = prepare_cohort(
        SqlSource(query, CONN), IdentityColumns(email="email", phone=None), key="email", keep_columns=()
    )
    plan = plan_list(Ids(prepared.keys, prepared.key_hashes), snapshot, mode, distinct=True)
    return outcome(prepared, plan)


def pushed_down(query: str, snapshot: pa.Table, mode: str, table: str = "infobip_snapshot_pdtest") -> dict:
    pushed = diff_in_warehouse(
        SqlSource(query, CONN), snapshot, "email", table, removals=mode == "mirror", chunk_size=97
    )
    prepared = pushed.prepared
    work = WarehouseWork(
        Ids(prepared.keys, prepared.key_hashes), pushed.leaving, pushed.unchanged, pushed.facts
    )
    plan = plan_pushed(work, snapshot, mode)
    result = outcome(prepared, plan)
    result["facts"] = plan.warehouse
    return result


def outcome(prepared, plan) -> dict[str, Any]:
    stats = {
        k: prepared.stats[k] for k in ("rows_read", "members", "rejected", "invalid", "duplicates", "empty")
    }
    stats["rejected_by_reason"] = dict(sorted(prepared.stats["rejected_by_reason"].items()))
    rejects = prepared.rejects
    return {
        "adds": list(plan.adds),  # in the cohort's order on both ways
        "removes": list(plan.removes),
        "unchanged": plan.unchanged,
        "stats": stats,
        "rejects": [tuple(r) for r in rejects[["row", "key", "value", "reason"]].itertuples(index=False)],
    }


def same(full: dict[str, Any], pushed: dict[str, Any]) -> None:
    for name in ("adds", "removes", "unchanged", "stats", "rejects"):
        assert pushed[name] == full[name], name


# ---------------------------------------------------------------------------------------- hostile data


def variants(email: str) -> list[str]:
    """Ways a warehouse holds one address (all but the last two are this address for Python)."""
    local, domain = email.split("@")
    kelvin = email.replace("k", "\u212a", 1) if "k" in local else email.upper()
    return [
        email,
        email.upper(),
        f"  {email} ",
        local.title() + "@" + domain.upper(),
        f"{email}\t",  # Python strips the tab; SQL's trim does not
        f"\u00a0{email}",  # a non-breaking space: Python strips it
        kelvin,  # the Kelvin sign: Python lower-cases it to k
        email.replace("i", "\u0130", 1) if "i" in local else f"{email}.",  # İ: PostgreSQL says i, Python not
        f"{local} x@{domain}",  # invalid
    ]


INVALID = [
    "not-an-email",
    "a@b",
    "",
    "   ",
    None,
    "x@y..com",
    "@example.com",
    "x" * 65 + "@example.com",
    "\t",
]


def hostile(seed: int, size: int = 300) -> tuple[list[str | None], pa.Table]:
    """A cohort (rows in order) and a snapshot of the list from an earlier run."""
    rng = random.Random(seed)
    people = [f"{rng.choice(['kim', 'mike', 'ivo', 'ana'])}{i}@example.com" for i in range(size)]
    old = rng.sample(people, size * 2 // 3)  # the snapshot's ids: some left, the rest stay
    statuses = [rng.choices([MEMBER, REFUSED, UNCERTAIN], weights=[85, 8, 7])[0] for _ in old]
    old += ["bad key@example.com", "gone@example.com", "left@example.com"]  # an id older rules let in
    statuses += [MEMBER, MEMBER, UNCERTAIN]
    snapshot = _snapshot(pa.array(old, pa.string()), pa.array(statuses, pa.string()))
    current = rng.sample(people, size * 3 // 4)  # who is in the cohort now: stayed and joined
    rows: list[str | None] = []
    for email in current:
        forms = variants(email)
        weights = [60, 6, 6, 4, 3, 3, 3, 3, 2]
        for _ in range(rng.choices([1, 2, 3], weights=[80, 15, 5])[0]):  # duplicates
            rows.append(rng.choices(forms, weights=weights)[0])
    rows += rng.choices(INVALID, k=size // 10)
    rng.shuffle(rows)
    return rows, snapshot


# ------------------------------------------------------------------------------------------------ tests


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("mode", ["mirror", "add_only"])
def test_the_diff_in_the_warehouse_is_the_full_read(warehouse, seed, mode):
    rows, snapshot = hostile(seed)
    query = warehouse.load(rows)
    full = full_read(query, snapshot, mode)
    pushed = pushed_down(query, snapshot, mode)
    same(full, pushed)
    facts = pushed["facts"]
    assert facts["rows_in_cohort"] == len(rows)
    assert facts["rows_travelled"] < len(rows)  # the unchanged members' plain rows stayed behind
    assert full["removes"] or mode == "add_only"
    assert "infobip_snapshot_pdtest" not in warehouse.tables()  # dropped again


def test_every_trap_at_once(warehouse):
    """Each case of the module's doc, named: what stays behind, what travels and why."""
    snapshot = _snapshot(
        pa.array(
            [
                "a@x.com",
                "b@x.com",
                "c@x.com",
                "ina@x.com",
                "kate@x.com",
                "o'neil@x.com",
                "ref@x.com",
                "unsure@x.com",
                "gone@x.com",
                "gone2@x.com",
                "bad key@x.com",
            ]
        ),
        pa.array([MEMBER] * 6 + [REFUSED, UNCERTAIN, MEMBER, UNCERTAIN, MEMBER]),
    )
    rows = [
        "a@x.com",  # 1 a member's only row: stays behind
        " B@X.com",  # 2 a member's two plain rows: both travel, row 3 is the duplicate
        "b@x.com",  # 3
        "c@x.com\t",  # 4 only Python reads it as c@x.com: travels, c stays a member
        "\u0130na@x.com",  # 5 PostgreSQL's lower says ina@x.com, Python says invalid
        "ina@x.com",  # 6 the member's own row: stays behind
        "\u212aate@x.com",  # 7 Python reads kate@x.com: travels, and fetches row 8 after it
        "kate@x.com",  # 8 ... which is then its duplicate
        "O'Neil@x.com",  # 9 a quote in an id
        "REF@x.com",  # 10 refused earlier: stays behind, not sent again
        "unsure@x.com",  # 11 unanswered last time: travels, sent again
        "new@x.com",  # 12 joined
        "new@x.com ",  # 13 its duplicate
        None,  # 14
        "nope",  # 15
    ]
    query = warehouse.load(rows)
    full = full_read(query, snapshot, "mirror")
    pushed = pushed_down(query, snapshot, "mirror")
    same(full, pushed)
    assert full["adds"] == ["unsure@x.com", "new@x.com"]
    assert full["removes"] == ["bad key@x.com", "gone2@x.com", "gone@x.com"]
    assert full["unchanged"] == 6
    assert [(r[0], r[3]) for r in full["rejects"]] == [
        (3, "duplicate of row 2"),
        (5, "invalid email"),
        (8, "duplicate of row 7"),
        (13, "duplicate of row 12"),
        (14, "missing identity"),
        (15, "invalid email"),
    ]
    facts = pushed["facts"]
    assert facts["rows_fetched_again"] == 1  # row 8
    assert facts["rows_travelled"] == 15 - 4  # rows 1, 6, 9 and 10 stayed behind


def test_an_empty_cohort_takes_everyone_away_as_a_full_read_does(warehouse):
    snapshot = _snapshot(pa.array(["a@x.com", "b@x.com"]), pa.array([MEMBER, MEMBER]))
    query = warehouse.load([])
    same(full_read(query, snapshot, "mirror"), pushed_down(query, snapshot, "mirror"))


def test_the_query_may_end_with_a_semicolon_and_a_comment(warehouse):
    snapshot = _snapshot(pa.array(["a@x.com"]), pa.array([MEMBER]))
    query = warehouse.load(["a@x.com", "b@x.com"]) + " ;  -- the last line\n"
    same(full_read(query, snapshot, "mirror"), pushed_down(query, snapshot, "mirror"))


def test_a_missing_id_column_is_named_as_a_full_read_names_it(warehouse):
    query = warehouse.load(["a@x.com"]).replace("email AS Email", "email AS mail")
    snapshot = _snapshot(pa.array(["a@x.com"]), pa.array([MEMBER]))
    with pytest.raises(CohortError, match=r"cohort column 'email' .* not found .* columns found: id, mail"):
        pushed_down(query, snapshot, "mirror")


def test_two_statements_are_refused(warehouse):
    query = warehouse.load(["a@x.com"])
    snapshot = _snapshot(pa.array(["a@x.com"]), pa.array([MEMBER]))
    with pytest.raises(CohortError, match="must be one SELECT; it has 2 statements"):
        pushed_down(f"{query}; SELECT 1", snapshot, "mirror")


def test_a_read_only_warehouse_stops_the_diff_with_what_to_do(tmp_path, monkeypatch):
    path = tmp_path / "ro.db"
    with _closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE people (email text)")
        db.execute("INSERT INTO people VALUES ('a@x.com')")
        db.commit()
    conn = {"conn_type": "sqlite", "host": str(path), "extra": {"mode": "ro"}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN.upper()}", json.dumps(conn))
    snapshot = _snapshot(pa.array(["a@x.com"]), pa.array([MEMBER]))
    with pytest.raises(CohortError, match=r"cannot write the snapshot table .* turn diff_in_warehouse off"):
        pushed_down("SELECT email FROM people", snapshot, "mirror")


def test_other_databases_are_refused():
    class Hook:
        dialect_name = "snowflake"
        conn_type = "snowflake"

    with pytest.raises(CohortError, match="runs on SQLite and PostgreSQL warehouses"):
        dialect_for(Hook(), "sf")
    assert set(DIALECTS) == {"sqlite", "postgresql"}


def test_the_table_is_named_after_the_account_and_the_list():
    name = snapshot_table("acct", "VIP")
    assert name.startswith("infobip_snapshot_") and name == snapshot_table("acct", "VIP")
    assert name != snapshot_table("acct", "VIP2") and name != snapshot_table("other", "VIP")
