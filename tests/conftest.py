"""Test-wide set-up: an isolated AIRFLOW_HOME, the repo's dags/plugins, and service checks."""

from __future__ import annotations

import json
import os
import socket
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_home = tempfile.mkdtemp(prefix="infobip-tests-airflow-")
os.environ.setdefault("AIRFLOW_HOME", _home)
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "dags"))
os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(ROOT / "plugins"))
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
if str(ROOT / "plugins") not in sys.path:
    sys.path.insert(0, str(ROOT / "plugins"))

IN_CI = os.environ.get("CI", "").lower() == "true"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    """Skip locally when a service is absent; in CI its absence is a failure."""
    if _reachable(host, port):
        return
    if IN_CI:
        pytest.fail(f"{name} on {host}:{port} is required in CI (CI=true) but is not reachable")
    pytest.skip(f"{name} on {host}:{port} is not running on this machine")


@pytest.fixture
def postgres_dsn() -> str:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    return "postgresql://postgres@127.0.0.1:5432/test"


#: The Airflow connection (as ``AIRFLOW_CONN_*`` JSON holds it) of the database ``postgres_dsn`` names.
POSTGRES_CONN = {
    "conn_type": "postgres",
    "host": "127.0.0.1",
    "port": 5432,
    "login": "postgres",
    "schema": "test",
}


@pytest.fixture
def redis_url() -> str:
    require_service("Redis", "127.0.0.1", 6379)
    return "redis://127.0.0.1:6379/15"


def infobip_conn_env(
    monkeypatch: pytest.MonkeyPatch, conn_id: str, *, host: str, password: str, **extra
) -> None:
    """Define an ``infobip`` connection through ``AIRFLOW_CONN_<ID>`` (no metadata database)."""
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}",
        json.dumps({"conn_type": "infobip", "host": host, "password": password, "extra": extra}),
    )
