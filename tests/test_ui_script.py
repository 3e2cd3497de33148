"""``make ui`` (scripts/ui.py) and ``scripts/airflow.sh``: loopback only, a writable warehouse copy, every
child stopped on SIGTERM / SIGHUP, and ``airflow tasks test`` working on a fresh state folder.

Each test runs the script with its own state folder and free ports (``INFOBIP_UI_HOME``,
``INFOBIP_UI_PORT``, ``INFOBIP_UI_SANDBOX_PORT``), so a ``make ui`` of yours is not disturbed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import psutil
import pytest

from tests.conftest import ROOT
from tests.system.test_celery_cluster import free_port

UI = ROOT / "scripts" / "ui.py"
SAMPLE = ROOT / "include" / "warehouse" / "warehouse.db"


def ui_env(home: Path, port: int, sandbox_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "INFOBIP_UI_"))}
    env.update(
        INFOBIP_UI_HOME=str(home),
        INFOBIP_UI_PORT=str(port),
        INFOBIP_UI_SANDBOX_PORT=str(sandbox_port),
        HOME=str(home / "user-home"),  # an ~/airflow made by mistake would show up here
    )
    return env


def load_ui(monkeypatch: pytest.MonkeyPatch, home: Path) -> ModuleType:
    monkeypatch.setenv("INFOBIP_UI_HOME", str(home))
    spec = importlib.util.spec_from_file_location("ui_script_under_test", UI)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def listening_ports(port: int) -> list[str]:
    return [
        f"{c.laddr.ip}:{c.laddr.port} (pid {c.pid})"
        for c in psutil.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    ]


def test_warehouse_default_is_a_writable_copy_and_the_sample_stays(monkeypatch, tmp_path):
    ui = load_ui(monkeypatch, tmp_path / "ui")
    conn = json.loads(ui.environment()["AIRFLOW_CONN_WAREHOUSE_DEFAULT"])
    assert conn == {"conn_type": "sqlite", "host": str(tmp_path / "ui" / "warehouse.db")}
    ui.HOME.mkdir(parents=True)
    if not SAMPLE.exists():
        ui.writable_warehouse()  # builds the sample first
    before = (SAMPLE.stat().st_mtime_ns, SAMPLE.stat().st_size)
    copy = ui.writable_warehouse()
    with sqlite3.connect(copy) as db:
        db.execute("CREATE TABLE infobip_delivery_reports (id TEXT)")
        (count,) = db.execute("SELECT count(*) FROM customers").fetchone()
    assert count > 0
    # Made once, then kept: what the reports DAG wrote survives the next `make ui`.
    ui.writable_warehouse()
    with sqlite3.connect(copy) as db:
        assert db.execute("SELECT name FROM sqlite_master WHERE name='infobip_delivery_reports'").fetchone()
    assert (SAMPLE.stat().st_mtime_ns, SAMPLE.stat().st_size) == before


def _default_hangup() -> None:
    """In the child before exec: SIGHUP back to its default (``nohup`` hands down "ignored", and
    ui.py keeps a hang-up ignored when it was, as nohup asks)."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_make_ui_listens_on_loopback_and_stops_every_child_on_a_signal(tmp_path, signum):
    port, sandbox_port = free_port(), free_port()
    home = tmp_path / "ui"
    out = tmp_path / "ui.out"
    with out.open("w") as fh:
        script = subprocess.Popen(
            [sys.executable, str(UI)],
            env=ui_env(home, port, sandbox_port),
            cwd=tmp_path,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # a hang-up as a terminal sends it: not ignored, even when this test runs under nohup
            preexec_fn=_default_hangup,
        )
    try:
        deadline = time.monotonic() + 150
        while "Airflow is up" not in out.read_text():
            assert script.poll() is None, f"ui.py exited with {script.returncode}:\n{out.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"ui.py did not start:\n{out.read_text()[-3000:]}"
            time.sleep(0.5)
        children = psutil.Process(script.pid).children(recursive=True)
        assert len(children) >= 4, children
        listeners = [
            (c.laddr.ip, c.laddr.port)
            for child in children
            for c in _connections(child)
            if c.status == psutil.CONN_LISTEN
        ]
        assert (("127.0.0.1", port) in listeners) and (("127.0.0.1", sandbox_port) in listeners), listeners
        assert all(ip == "127.0.0.1" for ip, _ in listeners), f"not on loopback only: {listeners}"

        sent = time.monotonic()
        script.send_signal(signum)
        code = script.wait(40)
        took = time.monotonic() - sent
    finally:
        if (
            script.poll() is None
        ):  # a failed check: nothing may outlive the test (each child has its own group)
            for child in psutil.Process(script.pid).children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    child.kill()
            os.killpg(script.pid, signal.SIGKILL)
    survivors = [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    for child in survivors:
        child.kill()
    assert not survivors, f"left running after {signum.name}: {survivors}"
    assert not listening_ports(port) and not listening_ports(sandbox_port)
    assert code == 0, out.read_text()[-2000:]
    assert took < 25, f"stopping took {took:.1f} s"


def _connections(process: psutil.Process) -> list:
    try:
        return list(process.net_connections(kind="inet"))
    except psutil.Error:
        return []


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_airflow_sh_tasks_test_works_on_a_fresh_state_folder(tmp_path):
    """The README's command, as a newcomer types it: no make ui before, no connection saved."""
    sandbox_port = free_port()
    env = ui_env(tmp_path / "ui", free_port(), sandbox_port)
    (tmp_path / "ui" / "user-home").mkdir(parents=True)
    args = ["tasks", "test", "infobip_cohort_to_list", "sync_list", "2026-01-01"]
    # The wrapper sets up .venv when it is missing; under another virtualenv, its Python part alone.
    wrapper = [str(ROOT / "scripts" / "airflow.sh")]
    if not (ROOT / ".venv" / ".installed").exists():
        wrapper = [sys.executable, str(UI), "airflow"]
    result = subprocess.run(
        [*wrapper, *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=220,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert "infobip_default is not defined: using the sandbox" in output
    assert "Plan for the list" in output, output[-3000:]
    assert (tmp_path / "ui" / "airflow" / "airflow.db").exists()
    assert not (tmp_path / "ui" / "user-home" / "airflow").exists(), "~/airflow was created"
    assert not listening_ports(sandbox_port), "the sandbox it started is still running"
