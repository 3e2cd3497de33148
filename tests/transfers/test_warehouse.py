"""The warehouse table: a database that refuses the table fails the task at once, clearly."""

from __future__ import annotations

import json
import sqlite3

import pytest
from airflow.sdk.exceptions import AirflowFailException

from infobip_provider.outcomes import REPORT_COLUMNS, REPORT_KEY
from infobip_provider.warehouse import SqlTable


def test_a_read_only_warehouse_fails_at_once_saying_what_to_do(tmp_path, monkeypatch):
    path = tmp_path / "readonly.db"
    sqlite3.connect(path).close()
    conn = {"conn_type": "sqlite", "host": str(path), "extra": {"mode": "ro"}}
    monkeypatch.setenv("AIRFLOW_CONN_WH_RO", json.dumps(conn))
    with pytest.raises(AirflowFailException) as failure:
        SqlTable("wh_ro", "infobip_delivery_reports", REPORT_COLUMNS, REPORT_KEY).ensure()
    message = str(failure.value)
    assert "'wh_ro'" in message and "infobip_delivery_reports" in message and "readonly" in message
    assert "warehouse_conn_id" in message and "CREATE TABLE IF NOT EXISTS infobip_delivery_reports" in message


def test_other_database_errors_stay_retryable(tmp_path, monkeypatch):
    """A missing database folder is not a refusal: the error is the driver's own (the task may retry)."""
    conn = {"conn_type": "sqlite", "host": str(tmp_path / "no" / "such" / "folder" / "x.db")}
    monkeypatch.setenv("AIRFLOW_CONN_WH_GONE", json.dumps(conn))
    with pytest.raises(sqlite3.OperationalError, match="unable to open database"):
        SqlTable("wh_gone", "t", REPORT_COLUMNS, REPORT_KEY).ensure()


def test_a_writable_warehouse_gets_its_table(tmp_path, monkeypatch):
    path = tmp_path / "wh.db"
    monkeypatch.setenv("AIRFLOW_CONN_WH_OK", json.dumps({"conn_type": "sqlite", "host": str(path)}))
    table = SqlTable("wh_ok", "infobip_replies_x", REPORT_COLUMNS, REPORT_KEY)
    table.ensure()
    table.ensure()  # an existing table is left as it is
    names = [r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(infobip_replies_x)")]
    assert names == [name for name, _ in REPORT_COLUMNS]
