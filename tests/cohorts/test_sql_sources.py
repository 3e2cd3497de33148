"""SQL cohorts on real databases: the embedded SQLite warehouse and the machine's PostgreSQL."""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import date
from decimal import Decimal

import pandas as pd
import pytest

from infobip_provider.cohorts import CohortError, IdentityColumns, SqlSource, cohort_source, prepare_cohort
from tests.cohorts.conftest import write


class _CountingCursor:
    """Wraps a DB-API cursor and records what each ``fetchmany`` returned."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.fetched: list[int] = []
        self.sizes: list[int] = []

    def fetchmany(self, size):
        rows = self.inner.fetchmany(size)
        self.sizes.append(size)
        self.fetched.append(len(rows))
        return rows

    def fetchall(self):  # pragma: no cover - the source must never call it
        raise AssertionError("fetchall would hold the whole result in memory")

    def __getattr__(self, name):
        return getattr(self.inner, name)


class SpySource(SqlSource):
    """A SqlSource that keeps the cursors it opened."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.cursors: list[_CountingCursor] = []

    def _open_cursor(self, conn):
        cursor = _CountingCursor(super()._open_cursor(conn))
        self.cursors.append(cursor)
        return cursor


def _active_count(db) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM customers WHERE is_active = 1").fetchone()[0]


# ---------------------------------------------------------------------------------------------- SQLite


def test_sqlite_query_is_streamed_with_fetchmany(warehouse_conn, warehouse_db):
    source = SpySource("SELECT * FROM customers ORDER BY customer_id", warehouse_conn)
    chunks = list(source.iter_chunks(1000))
    assert [len(c) for c in chunks] == [1000] * 5
    cursor = source.cursors[0]
    assert cursor.sizes and set(cursor.sizes) == {1000}
    assert max(cursor.fetched) == 1000
    frame = pd.concat(chunks, ignore_index=True)
    assert list(frame.columns)[:4] == ["customer_id", "first_name", "last_name", "email"]
    assert frame["customer_id"].tolist()[:3] == ["1", "2", "3"]  # integers arrive as text
    assert all(isinstance(v, str) for v in frame["lifetime_value"].dropna().head(20))


def test_sqlite_sql_file_runs_without_params(warehouse_conn, warehouse_db, monkeypatch):
    monkeypatch.delenv("INFOBIP_INCLUDE_DIR", raising=False)  # the repository's include/sql/
    source = cohort_source(sql="sql/active_customers.sql", conn_id=warehouse_conn)
    assert "is_active = 1" in source.query()
    assert "{" not in source.query()
    rows = sum(len(c) for c in source.iter_chunks(2000))
    assert rows == _active_count(warehouse_db)


def test_sqlite_sql_file_with_params(warehouse_conn, monkeypatch):
    monkeypatch.delenv("INFOBIP_INCLUDE_DIR", raising=False)
    source = SqlSource(
        "active_customers.sql",  # also found under include/sql/
        warehouse_conn,
        params={"countries": ["HR", "DE"], "plans": ["pro"], "updated_since": "2026-01-01"},
    )
    frame = pd.concat(list(source.iter_chunks()), ignore_index=True)
    assert len(frame) > 10
    assert set(frame["country"]) == {"HR", "DE"}
    assert set(frame["plan"]) == {"pro"}
    assert min(frame["updated_at"]) >= "2026-01-01"


def test_sqlite_bind_parameters(warehouse_conn):
    source = SqlSource(
        "SELECT email, country FROM customers WHERE country = ? LIMIT 7", warehouse_conn, parameters=["HR"]
    )
    frame = pd.concat(list(source.iter_chunks()), ignore_index=True)
    assert frame["country"].tolist() == ["HR"] * 7


def test_warehouse_cohort_prepares_with_each_rows_country(warehouse_conn, warehouse_db):
    sql = "SELECT * FROM customers ORDER BY customer_id"
    with_country = prepare_cohort(
        SqlSource(sql, warehouse_conn), IdentityColumns(country="country"), key="phone", chunk_size=1500
    )
    us_only = prepare_cohort(SqlSource(sql, warehouse_conn), key="phone", chunk_size=1500)
    assert with_country.stats["rows_read"] == us_only.stats["rows_read"] == 5000
    # national numbers of GB/DE/HR/IN/BR customers are only valid when read with their country
    assert with_country.stats["members"] > us_only.stats["members"] + 200
    assert with_country.stats["rejected_by_reason"]["invalid phone"] <= 20  # the deliberately bad ones
    assert set(with_country.members["country"]) == {"US", "GB", "DE", "HR", "IN", "BR"}


def test_sqlite_missing_table_is_named(warehouse_conn):
    with pytest.raises(
        CohortError, match=r"cohort query on connection 'warehouse_default' failed: no such table: clients"
    ):
        list(SqlSource("SELECT * FROM clients", warehouse_conn).iter_chunks())


def test_sqlite_missing_column_in_query_is_named(warehouse_conn):
    with pytest.raises(CohortError, match="no such column: mobile"):
        list(SqlSource("SELECT mobile FROM customers", warehouse_conn).iter_chunks())


def test_statement_without_result_set(warehouse_conn):
    with pytest.raises(CohortError, match="returned no result set"):
        list(SqlSource("PRAGMA user_version = 0", warehouse_conn).iter_chunks())


def test_empty_result_still_has_columns(warehouse_conn):
    prepared = prepare_cohort(SqlSource("SELECT * FROM customers WHERE 1 = 0", warehouse_conn))
    assert prepared.stats["empty"] is True
    assert prepared.stats["rows_read"] == 0
    assert "first_name" in prepared.members.columns


def test_undefined_connection(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_NO_SUCH_WAREHOUSE", raising=False)
    with pytest.raises(CohortError, match="connection 'no_such_warehouse' is not defined"):
        list(SqlSource("SELECT 1", "no_such_warehouse").iter_chunks())


def test_connection_without_sql_hook(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_NOT_A_DB", json.dumps({"conn_type": "http", "host": "example.com"}))
    with pytest.raises(CohortError, match=r"connection 'not_a_db' \(type http\) has no SQL hook"):
        list(SqlSource("SELECT 1", "not_a_db").iter_chunks())


def test_missing_sql_file(include):
    with pytest.raises(CohortError, match=r"SQL file not found: sql/nope\.sql"):
        SqlSource("sql/nope.sql").query()


def test_sql_file_needing_a_param_that_is_absent(include):
    write(include / "sql" / "strict.sql", "SELECT * FROM customers WHERE plan = '{{ params.plan }}'")
    with pytest.raises(CohortError, match=r"cannot render SQL file .*strict\.sql"):
        SqlSource("sql/strict.sql").query()
    assert "plan = 'pro'" in SqlSource("sql/strict.sql", params={"plan": "pro"}).query()


def test_empty_query_is_refused():
    with pytest.raises(CohortError, match="query is empty"):
        SqlSource("  ")


# ------------------------------------------------------------------------------------------ PostgreSQL


@pytest.fixture
def pg_table(postgres_dsn, monkeypatch):
    """A uniquely named table in database ``test`` with 2,500 typed rows; dropped afterwards."""
    import psycopg2

    table = f"cohort_test_{uuid.uuid4().hex[:10]}"
    conn = psycopg2.connect(postgres_dsn)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(
                f"CREATE TABLE {table} (id integer PRIMARY KEY, email text, phone text, country text, "
                "ltv numeric(10,2), joined date, vip boolean)"
            )
            rows = [
                (
                    i,
                    f"user{i % 2200}@example.com" if i % 50 else None,
                    "091 234 5678" if i % 3 == 0 else f"+1 415 555 {i % 10000:04d}",
                    "HR" if i % 3 == 0 else "US",
                    Decimal("12.50") + i,
                    date(2026, 1, 1),
                    i % 2 == 0,
                )
                for i in range(1, 2501)
            ]
            cur.executemany(f"INSERT INTO {table} VALUES (%s, %s, %s, %s, %s, %s, %s)", rows)
        monkeypatch.setenv(
            "AIRFLOW_CONN_PG_COHORTS",
            json.dumps(
                {
                    "conn_type": "postgres",
                    "host": "127.0.0.1",
                    "port": 5432,
                    "login": "postgres",
                    "schema": "test",
                }
            ),
        )
        yield table
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS {table}")
        conn.close()


@pytest.mark.postgres
def test_postgres_query_streams_through_a_server_side_cursor(pg_table):
    source = SpySource(f"SELECT * FROM {pg_table} ORDER BY id", "pg_cohorts")
    chunks = list(source.iter_chunks(1000))
    assert [len(c) for c in chunks] == [1000, 1000, 500]
    cursor = source.cursors[0]
    assert str(cursor.inner.name).startswith("infobip_cohort_")  # a named (server-side) cursor
    assert max(cursor.fetched) == 1000
    first = chunks[0].iloc[0]
    assert (first["id"], first["ltv"], first["joined"], first["vip"]) == ("1", "13.50", "2026-01-01", "false")


@pytest.mark.postgres
def test_postgres_cohort_prepares(pg_table):
    prepared = prepare_cohort(
        SqlSource(f"SELECT * FROM {pg_table} ORDER BY id", "pg_cohorts"),
        IdentityColumns(country="country"),
        key="email_or_phone",
        chunk_size=1000,
    )
    stats = prepared.stats
    assert stats["rows_read"] == 2500
    assert stats["chunks"] == 3
    # ids 2201..2500 repeat the emails of ids 1..300 (except where the email is NULL: then the phone keys)
    assert stats["duplicates"] > 250
    assert stats["members"] + stats["rejected"] == 2500
    hr = prepared.members[prepared.members["country"] == "HR"]
    assert set(hr["phone"]) == {"385912345678"}


@pytest.mark.postgres
def test_postgres_missing_table_is_named(pg_table):
    with pytest.raises(CohortError, match=r'relation "no_such_cohort_table" does not exist'):
        list(SqlSource("SELECT * FROM no_such_cohort_table", "pg_cohorts").iter_chunks())
