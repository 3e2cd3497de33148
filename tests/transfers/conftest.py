"""Transfer fixtures: a sandbox per module, the Infobip connection at it, and a warehouse on SQLite
or on the machine's PostgreSQL (skipped locally when absent, required with CI=true)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from infobip_provider.sandbox.testing import SandboxProcess
from tests.conftest import POSTGRES_CONN, require_service

SCALE = 0.01


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxProcess]:
    with SandboxProcess(api_key="transfers-key", cooldown_scale=SCALE) as sb:
        yield sb


@pytest.fixture
def infobip_conn(sandbox, tmp_path, monkeypatch) -> dict[str, Any]:
    """``infobip_default`` at a freshly reset sandbox, with its own state folder and the file gate."""
    sandbox.reset()
    extras = {"cooldown_scale": SCALE, "cooldown_backend": "file", "state_uri": str(tmp_path / "state")}
    value = sandbox.conn_json(**extras)
    monkeypatch.setenv("AIRFLOW_CONN_INFOBIP_DEFAULT", value)
    return {"state": tmp_path / "state", "env": {"AIRFLOW_CONN_INFOBIP_DEFAULT": value}}


#: The secret the receiver tests put on the connection.
PUSH_SECRET = "pushes-test-secret-0123456789"


@pytest.fixture
def pushing_conn(sandbox, infobip_conn, monkeypatch) -> dict[str, Any]:
    """``infobip_default`` with a ``webhook_secret``: the receiver takes its pushes."""
    extras = {
        "cooldown_scale": SCALE,
        "cooldown_backend": "file",
        "state_uri": str(infobip_conn["state"]),
        "webhook_secret": PUSH_SECRET,
    }
    monkeypatch.setenv("AIRFLOW_CONN_INFOBIP_DEFAULT", sandbox.conn_json(**extras))
    return infobip_conn


def _sqlite(tmp_path) -> dict[str, Any]:
    return {"conn_type": "sqlite", "host": str(tmp_path / "warehouse.db")}


def _postgres() -> dict[str, Any]:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    return dict(POSTGRES_CONN)


@pytest.fixture(params=[pytest.param("sqlite", id="sqlite"), pytest.param("postgres", id="postgres")])
def warehouse(request, tmp_path, monkeypatch) -> Iterator[dict[str, Any]]:
    """``warehouse_default`` on SQLite or PostgreSQL, and a unique table name; the tables are dropped."""
    conn = _sqlite(tmp_path) if request.param == "sqlite" else _postgres()
    value = json.dumps(conn)
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE_DEFAULT", value)
    suffix = uuid.uuid4().hex[:8]
    info = {
        "kind": request.param,
        "conn_id": "warehouse_default",
        "table": f"infobip_people_{suffix}",
        "reports": f"infobip_reports_{suffix}",
        "replies": f"infobip_replies_{suffix}",
        "seen": f"infobip_seen_{suffix}",
        "env": {"AIRFLOW_CONN_WAREHOUSE_DEFAULT": value},
    }
    yield info
    from airflow.providers.common.sql.hooks.sql import DbApiHook
    from airflow.sdk import BaseHook

    hook = BaseHook.get_connection("warehouse_default").get_hook()
    assert isinstance(hook, DbApiHook)
    for name in (info["table"], info["reports"], info["replies"], info["seen"]):
        hook.run(f"DROP TABLE IF EXISTS {name}")


def records(conn_id: str, sql: str) -> list[tuple[Any, ...]]:
    from airflow.sdk import BaseHook

    hook = BaseHook.get_connection(conn_id).get_hook()
    return [tuple(row) for row in hook.get_records(sql)]


@pytest.fixture(scope="module")
def receiver() -> Iterator[str]:
    """The plugin's receiver served over HTTP as the api-server mounts it; its base URL
    (``http://127.0.0.1:<port>/infobip-webhooks``). Connections come from ``AIRFLOW_CONN_*``."""
    import threading
    import time

    import uvicorn
    from fastapi import FastAPI

    from infobip_provider import webhooks

    parent = FastAPI()
    for spec in webhooks.fastapi_apps():
        parent.mount(spec["url_prefix"], spec["app"])
    server = uvicorn.Server(
        uvicorn.Config(parent, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the receiver did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}{webhooks.URL_PREFIX}"
    server.should_exit = True
    thread.join(10)
