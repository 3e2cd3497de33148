"""The embedded warehouse builder and the committed sample cohort."""

from __future__ import annotations

import json
import sqlite3

import pytest

from infobip_provider.cohorts import CohortError, SqlSource, normalize_email, normalize_phone
from tests.cohorts.conftest import ROOT


def test_same_seed_same_warehouse(builder, tmp_path):
    first = builder.build_warehouse(tmp_path / "a.db", count=300, seed=7)
    second = builder.build_warehouse(tmp_path / "b.db", count=300, seed=7)
    other = builder.build_warehouse(tmp_path / "c.db", count=300, seed=8)

    def dump(path):
        with sqlite3.connect(path) as conn:
            return conn.execute("SELECT * FROM customers ORDER BY customer_id").fetchall()

    assert dump(first) == dump(second)
    assert dump(first) != dump(other)
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically, nothing left behind


def test_warehouse_schema_and_mix(warehouse_db, builder):
    with sqlite3.connect(warehouse_db) as conn:
        columns = [row[1] for row in conn.execute("PRAGMA table_info(customers)")]
        countries = dict(conn.execute("SELECT country, count(*) FROM customers GROUP BY country").fetchall())
        phones = [row[0] for row in conn.execute("SELECT phone FROM customers WHERE phone IS NOT NULL")]
        total = conn.execute("SELECT count(*) FROM customers").fetchone()[0]
    assert tuple(columns) == builder.COLUMNS
    assert total == 5000
    assert set(countries) == {"US", "GB", "DE", "HR", "IN", "BR"}
    assert min(countries.values()) > 300
    shapes = {
        "e164": sum(p.startswith("+") and p[1:].isdigit() for p in phones),
        "international": sum(p.startswith("+") and " " in p for p in phones),
        "national_trunk": sum(p.startswith("0") and not p.startswith("00") for p in phones),
        "idd": sum(p.startswith("00") for p in phones),
        "brackets": sum(p.startswith("(") for p in phones),
        "digits": sum(p.isdigit() for p in phones),
    }
    assert all(count > 20 for count in shapes.values()), shapes


def test_warehouse_has_each_kind_of_bad_row(warehouse_db):
    with sqlite3.connect(warehouse_db) as conn:
        rows = conn.execute("SELECT email, phone, country FROM customers").fetchall()
    bad_email = [e for e, _, _ in rows if e is not None and normalize_email(e) is None]
    bad_phone = [p for _, p, c in rows if p is not None and normalize_phone(p, c) is None]
    neither = [r for r in rows if r[0] is None and r[1] is None]
    emails = [normalize_email(e) for e, _, _ in rows if normalize_email(e)]
    assert len(bad_email) >= 5
    assert len(bad_phone) >= 5
    assert len(neither) >= 5
    assert len(emails) - len(set(emails)) >= 5  # duplicate emails (differently cased)
    assert len(bad_email) + len(bad_phone) + len(neither) < 0.03 * len(rows)


def test_committed_sample_cohort_matches_the_generator(builder, tmp_path):
    regenerated = builder.write_cohort_csv(tmp_path / "customers.csv")
    committed = ROOT / "include" / "cohorts" / "customers.csv"
    assert committed.read_bytes() == regenerated.read_bytes()
    header = committed.read_text(encoding="utf-8").splitlines()[0].split(",")
    assert {"email", "phone", "first_name", "last_name", "country", "plan"} <= set(header)


def test_print_conn_gives_the_documented_json(builder, tmp_path, capsys):
    db = tmp_path / "w.db"
    assert builder.main(["--db", str(db), "--customers", "120", "--print-conn"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("AIRFLOW_CONN_WAREHOUSE_DEFAULT='")
    conn = json.loads(line.split("=", 1)[1].strip("'"))
    assert conn == {"conn_type": "sqlite", "host": str(db.resolve()), "extra": {"mode": "ro"}}
    mtime = db.stat().st_mtime_ns
    builder.main(["--db", str(db), "--if-missing"])
    assert db.stat().st_mtime_ns == mtime


def test_read_only_connection_form_works_and_refuses_a_wrong_path(builder, warehouse_db, monkeypatch):
    """The JSON the builder prints, through SqliteHook (providers-sqlite 4.3.4)."""
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_RO", builder.connection_json(warehouse_db))
    rows = sum(len(c) for c in SqlSource("SELECT customer_id FROM customers", "warehouse_ro").iter_chunks())
    assert rows == 5000
    missing = warehouse_db.parent / "missing.db"
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_RO", builder.connection_json(missing))
    with pytest.raises(
        CohortError,
        match=r"cannot connect to the database of connection 'warehouse_ro': unable to open database file",
    ):
        list(SqlSource("SELECT 1", "warehouse_ro").iter_chunks())
    assert not missing.exists()
