"""`make ui`: Airflow's own UI on http://127.0.0.1:8080 with this provider, against the sandbox.

Starts, on loopback, until Ctrl-C:

- the Infobip sandbox on http://127.0.0.1:8765 (API key ``sandbox-key``, cooldowns scaled by 0.01,
  its state kept in ``.demo/ui/sandbox.json``);
- Airflow 3 on SQLite in ``.demo/ui/airflow``: ``airflow db migrate``, then ``api-server`` (port
  8080), ``scheduler`` and ``dag-processor``, with the simple auth manager and no login (every visitor
  is admin: for a laptop only), this repository's ``dags/`` and ``plugins/``, and the embedded SQLite
  warehouse as ``warehouse_default``.

No Infobip connection is made: add it in the UI, as the README says. Everything stops with Ctrl-C;
``make clean`` removes ``.demo``.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOME = ROOT / ".demo" / "ui"
BIN = Path(sys.executable).parent
WAREHOUSE = ROOT / "include" / "warehouse" / "warehouse.db"
PORT, SANDBOX_PORT, KEY = 8080, 8765, "sandbox-key"
AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env.update(
        AIRFLOW_HOME=str(HOME / "airflow"),
        PYTHONUNBUFFERED="1",
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__AUTH_MANAGER=AUTH_MANAGER,
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        AIRFLOW__CORE__TEST_CONNECTION="Enabled",
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{PORT}/execution/",
        AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{PORT}",
        AIRFLOW__API__PORT=str(PORT),
        AIRFLOW__API__SECRET_KEY=secrets.token_hex(16),
        AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_hex(32),
        AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE="False",  # only what you trigger runs
        AIRFLOW_CONN_WAREHOUSE_DEFAULT=json.dumps(
            {"conn_type": "sqlite", "host": str(WAREHOUSE), "extra": {"mode": "ro"}}
        ),
    )
    return env


def healthy() -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/api/v2/monitor/health", timeout=3) as answer:
            return answer.status == 200
    except OSError:
        return False


def main() -> None:
    HOME.mkdir(parents=True, exist_ok=True)
    logs = HOME / "logs"
    logs.mkdir(exist_ok=True)
    if not WAREHOUSE.exists():
        subprocess.run(
            [sys.executable, str(ROOT / "include" / "warehouse" / "build_warehouse.py")], check=True
        )
    env = environment()
    subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True)
    commands = {
        "sandbox": [
            str(BIN / "infobip-sandbox"), "--host", "127.0.0.1", "--port", str(SANDBOX_PORT),
            "--api-key", KEY, "--cooldown-scale", "0.01", "--state", str(HOME / "sandbox.json"),
        ],
        "api-server": [str(BIN / "airflow"), "api-server", "--port", str(PORT)],
        "scheduler": [str(BIN / "airflow"), "scheduler"],
        "dag-processor": [str(BIN / "airflow"), "dag-processor"],
    }  # fmt: skip
    procs = {
        name: subprocess.Popen(
            cmd,
            env=env,
            stdout=open(logs / f"{name}.log", "w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for name, cmd in commands.items()
    }
    try:
        deadline = time.monotonic() + 180
        while not healthy():
            dead = [n for n, p in procs.items() if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise SystemExit(f"ui: {', '.join(dead) or 'api-server'} did not start; see {logs}")
            time.sleep(1)
        print(
            f"""
Airflow is up: http://127.0.0.1:{PORT}  (no login; logs in {logs})

1. Admin -> Connections -> Add Connection: Connection Id infobip_default, type Infobip,
   Base URL http://127.0.0.1:{SANDBOX_PORT}, API key {KEY}, Cooldown scale 0.01. Save.
2. Dags -> infobip_cohort_to_list -> Trigger: leave the form as it is (the sample cohort), or
   give your own file in Cohort file (an absolute path). Trigger.
3. Open the run, click the task: Logs shows the plan and the outcome; Infobip in the navigation
   shows every list, tag and broadcast with its runs.

Ctrl-C stops everything.""",
            flush=True,
        )
        while all(p.poll() is None for p in procs.values()):
            time.sleep(1)
        print(f"ui: a process stopped; see {logs}", file=sys.stderr)
    except KeyboardInterrupt:
        pass
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
