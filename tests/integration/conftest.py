"""Integration fixtures: a sandbox per test module and an ``infobip`` connection pointing at it."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from infobip_provider.sandbox.testing import SandboxProcess

SCALE = 0.01  # list add every 0.1 s, remove every 0.05 s


@pytest.fixture(scope="module")
def sandbox(request):
    """The module's sandbox, at ``SCALE`` or at the module's own ``SANDBOX_SCALE``."""
    scale = getattr(request.module, "SANDBOX_SCALE", SCALE)
    with SandboxProcess(api_key="integration-key", cooldown_scale=scale) as sb:
        yield sb


@pytest.fixture
def infobip_conn(sandbox, tmp_path, monkeypatch):
    """``infobip_default`` at the sandbox (at its scale), with a fresh state folder and the file gate."""
    sandbox.reset()
    state = tmp_path / "state"
    extras = {"cooldown_scale": sandbox.cooldown_scale, "cooldown_backend": "file", "state_uri": str(state)}
    monkeypatch.setenv("AIRFLOW_CONN_INFOBIP_DEFAULT", sandbox.conn_json(**extras))
    return {"state": state, "env": {"AIRFLOW_CONN_INFOBIP_DEFAULT": sandbox.conn_json(**extras)}}


class FakeTI:
    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        json.dumps(value)  # what Airflow would store must be JSON
        self.xcom[key] = value


def run_operator(operator, run_id: str = "manual__1") -> dict[str, Any]:
    """Execute an operator outside a scheduler, as ``airflow tasks test`` would, minus the database."""
    context = {"run_id": run_id, "ti": FakeTI(), "params": {}, "dag_run": None}
    operator.render_template_fields(context)
    result = operator.execute(context)
    json.dumps(result)
    return result


def total_429(counters: dict) -> int:
    return sum(int(v.get("429s", 0)) for v in counters.values())


os.environ.setdefault("INFOBIP_TEST_SCALE", str(SCALE))


def list_members(sandbox, name: str) -> set[str]:
    """Members of the sandbox's list called ``name`` (exactly one must exist)."""
    matches = [record for record in sandbox.state()["lists"] if record["name"] == name]
    assert len(matches) == 1, f"{len(matches)} lists named {name!r} in the sandbox"
    return set(matches[0]["members"])
