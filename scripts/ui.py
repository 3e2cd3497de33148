"""`make ui`: Airflow's own UI on http://127.0.0.1:8080 with this provider, against the sandbox.

Starts, on loopback only, until Ctrl-C (or SIGTERM / SIGHUP):

- the Infobip sandbox on http://127.0.0.1:8765 (API key ``sandbox-key``, cooldowns scaled by 0.01,
  its state kept in ``.demo/ui/sandbox.json``);
- Airflow 3 on SQLite in ``.demo/ui/airflow``: ``airflow db migrate``, then ``api-server`` (bound to
  127.0.0.1:8080), ``scheduler`` (without its log server: the api-server reads the task logs from
  disk) and ``dag-processor``, with the simple auth manager and no login (every visitor is admin: for
  a laptop only), this repository's ``dags/`` and ``plugins/``, and as ``warehouse_default`` a
  writable copy of the embedded SQLite warehouse, ``.demo/ui/warehouse.db`` (copied from
  ``include/warehouse/warehouse.db`` once, then kept between runs: the reports DAG writes its
  outcomes tables there, ``diff_in_warehouse`` its snapshot tables).

No Infobip connection is made: add it in the UI, as the README says. Everything stops with Ctrl-C,
SIGTERM or SIGHUP: each child's process group gets SIGTERM, then SIGKILL after a few seconds.
``make clean`` removes ``.demo``.

``scripts/airflow.sh ARGS...`` (``python scripts/ui.py airflow ARGS...``) runs Airflow's CLI with the
same configuration and metadata database, e.g. ``scripts/airflow.sh tasks test infobip_cohort_to_list
sync_list 2026-01-01``; see :func:`airflow_cli`.

``INFOBIP_UI_HOME``, ``INFOBIP_UI_PORT`` and ``INFOBIP_UI_SANDBOX_PORT`` move the state folder and the
two ports (the tests use them; the defaults are the ones above).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from importlib.metadata import version
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parents[1]
HOME = Path(os.environ.get("INFOBIP_UI_HOME") or ROOT / ".demo" / "ui").resolve()
BIN = Path(sys.executable).parent
SAMPLE_WAREHOUSE = ROOT / "include" / "warehouse" / "warehouse.db"
WAREHOUSE = HOME / "warehouse.db"  # the writable copy warehouse_default points at
LOOPBACK = "127.0.0.1"
PORT = int(os.environ.get("INFOBIP_UI_PORT") or 8080)
SANDBOX_PORT = int(os.environ.get("INFOBIP_UI_SANDBOX_PORT") or 8765)
KEY = "sandbox-key"
AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
STOP_GRACE = 10.0  # seconds each process group has after SIGTERM before SIGKILL


class Stop(Exception):
    """SIGTERM or SIGHUP arrived: stop like Ctrl-C does."""


def _stop(signum: int, frame: Any) -> None:
    raise Stop(signal.Signals(signum).name)


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
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://{LOOPBACK}:{PORT}/execution/",
        AIRFLOW__API__BASE_URL=f"http://{LOOPBACK}:{PORT}",
        AIRFLOW__API__HOST=LOOPBACK,
        AIRFLOW__API__PORT=str(PORT),
        AIRFLOW__API__SECRET_KEY=secrets.token_hex(16),
        AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_hex(32),
        AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE="False",  # only what you trigger runs
        AIRFLOW_CONN_WAREHOUSE_DEFAULT=json.dumps({"conn_type": "sqlite", "host": str(WAREHOUSE)}),
    )
    return env


def writable_warehouse() -> Path:
    """``.demo/ui/warehouse.db``: a copy of the sample warehouse, made once (the sample stays as it is)."""
    if WAREHOUSE.exists():
        return WAREHOUSE
    if not SAMPLE_WAREHOUSE.exists():
        subprocess.run(
            [sys.executable, str(ROOT / "include" / "warehouse" / "build_warehouse.py")], check=True
        )
    partial = WAREHOUSE.with_name(WAREHOUSE.name + ".partial")
    partial.unlink(missing_ok=True)
    sample = sqlite3.connect(f"{SAMPLE_WAREHOUSE.as_uri()}?mode=ro", uri=True)
    with contextlib.closing(sample), contextlib.closing(sqlite3.connect(partial)) as copy:
        sample.backup(copy)
    os.replace(partial, WAREHOUSE)
    return WAREHOUSE


def prepare(env: dict[str, str]) -> None:
    """The state folder, the writable warehouse and a migrated metadata database (skipped when current)."""
    HOME.mkdir(parents=True, exist_ok=True)
    writable_warehouse()
    airflow_home = Path(env["AIRFLOW_HOME"])
    stamp = airflow_home / ".migrated"
    current = f"apache-airflow {version('apache-airflow')}"
    if (airflow_home / "airflow.db").exists() and stamp.exists() and stamp.read_text() == current:
        return
    migrated = subprocess.run(
        [str(BIN / "airflow"), "db", "migrate"], env=env, text=True, capture_output=True
    )
    if migrated.returncode != 0:
        sys.stderr.write(migrated.stdout[-3000:] + migrated.stderr[-3000:])
        raise SystemExit(f"ui: airflow db migrate failed with exit code {migrated.returncode}")
    stamp.write_text(current)


def healthy() -> bool:
    try:
        url = f"http://{LOOPBACK}:{PORT}/api/v2/monitor/health"
        with urllib.request.urlopen(url, timeout=3) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((LOOPBACK, port)) == 0


def sandbox_command() -> list[str]:
    return [
        str(BIN / "infobip-sandbox"), "--host", LOOPBACK, "--port", str(SANDBOX_PORT),
        "--api-key", KEY, "--cooldown-scale", "0.01", "--state", str(HOME / "sandbox.json"),
    ]  # fmt: skip


def start(cmd: list[str], env: dict[str, str], log: IO[Any] | None) -> subprocess.Popen[bytes]:
    """A child in its own session (process group), so that stopping it reaches its own children too."""
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_all(procs: list[subprocess.Popen[bytes]], grace: float = STOP_GRACE) -> None:
    """SIGTERM to every process group, wait up to ``grace`` seconds for all of them, then SIGKILL."""
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        for proc in procs:
            proc.poll()  # reap the leader, so that a zombie does not count as alive
        if not any(_group_alive(proc.pid) for proc in procs):
            break
        time.sleep(0.2)
    for proc in procs:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)


def handle_stop_signals() -> None:
    signal.signal(signal.SIGTERM, _stop)
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:  # under nohup, a hang-up stays ignored
        signal.signal(signal.SIGHUP, _stop)


def main() -> None:
    handle_stop_signals()
    env = environment()
    logs = HOME / "logs"
    procs: dict[str, subprocess.Popen[bytes]] = {}
    files: list[IO[Any]] = []
    try:
        prepare(env)
        logs.mkdir(exist_ok=True)
        busy = [str(port) for port in (PORT, SANDBOX_PORT) if listening(port)]
        if busy:
            raise SystemExit(f"ui: port {', '.join(busy)} on {LOOPBACK} is in use (another `make ui`?)")
        commands = {
            "sandbox": sandbox_command(),
            "api-server": [str(BIN / "airflow"), "api-server", "--host", LOOPBACK, "--port", str(PORT)],
            "scheduler": [str(BIN / "airflow"), "scheduler", "--skip-serve-logs"],
            "dag-processor": [str(BIN / "airflow"), "dag-processor"],
        }
        for name, cmd in commands.items():
            files.append(open(logs / f"{name}.log", "w"))
            procs[name] = start(cmd, env, files[-1])
        deadline = time.monotonic() + 180
        while not healthy():
            dead = [n for n, p in procs.items() if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                raise SystemExit(f"ui: {', '.join(dead) or 'api-server'} did not start; see {logs}")
            time.sleep(1)
        print(
            f"""
Airflow is up: http://{LOOPBACK}:{PORT}  (no login, loopback only; logs in {logs})

1. Admin -> Connections -> Add Connection: Connection Id infobip_default, type Infobip,
   Base URL http://{LOOPBACK}:{SANDBOX_PORT}, API key {KEY}, Cooldown scale 0.01. Save.
2. Dags -> infobip_cohort_to_list -> Trigger: leave the form as it is (the sample cohort), or
   give your own file in Cohort file (an absolute path). Trigger.
3. Open the run, click the task: Logs shows the plan and the outcome; Infobip in the navigation
   shows every list, tag and broadcast with its runs.

warehouse_default is {WAREHOUSE} (a writable copy of the sample warehouse).
Ctrl-C stops everything.""",
            flush=True,
        )
        while all(p.poll() is None for p in procs.values()):
            time.sleep(1)
        stopped = ", ".join(n for n, p in procs.items() if p.poll() is not None)
        with contextlib.suppress(OSError):
            print(f"ui: {stopped} stopped; see {logs}", file=sys.stderr)
    except (KeyboardInterrupt, Stop):
        pass
    finally:
        # Ctrl-C or a second signal must not interrupt the cleanup.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        try:
            if procs:
                # After a hang-up the terminal is gone: writing to it fails, stopping must not.
                with contextlib.suppress(OSError, ValueError):
                    print("ui: stopping ...", file=sys.stderr, flush=True)
        finally:
            stop_all(list(procs.values()))
            for fh in files:
                fh.close()


def airflow_cli(args: list[str]) -> int:
    """Airflow's CLI with ``make ui``'s configuration (``scripts/airflow.sh``).

    Same ``AIRFLOW_HOME`` (``.demo/ui/airflow``), DAGs, plugins and writable ``warehouse_default``;
    the metadata database is migrated first when it is new or older than the installed Airflow. Your
    own ``AIRFLOW_CONN_*`` variables are kept (they win over ours). When ``infobip_default`` is
    neither in the metadata database (saved in ``make ui``'s UI) nor in ``AIRFLOW_CONN_INFOBIP_DEFAULT``,
    it is the sandbox at 127.0.0.1:8765, and the sandbox is started for the command when ``make ui``
    is not running it.
    """
    handle_stop_signals()
    env = environment()
    env.update({k: v for k, v in os.environ.items() if k.startswith("AIRFLOW_CONN_")})
    prepare(env)
    sandbox: subprocess.Popen[bytes] | None = None
    try:
        if "AIRFLOW_CONN_INFOBIP_DEFAULT" not in env and not _stored_connection(env, "infobip_default"):
            print(
                f"airflow.sh: infobip_default is not defined: using the sandbox at "
                f"http://{LOOPBACK}:{SANDBOX_PORT} (API key {KEY}, cooldown scale 0.01)",
                file=sys.stderr,
                flush=True,
            )
            env["AIRFLOW_CONN_INFOBIP_DEFAULT"] = json.dumps(
                {
                    "conn_type": "infobip",
                    "host": f"http://{LOOPBACK}:{SANDBOX_PORT}",
                    "password": KEY,
                    "extra": {"cooldown_scale": 0.01},
                }
            )
            if not listening(SANDBOX_PORT):
                sandbox = start(sandbox_command(), env, subprocess.DEVNULL)  # type: ignore[arg-type]
                deadline = time.monotonic() + 30
                while not listening(SANDBOX_PORT):
                    if sandbox.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit("airflow.sh: the sandbox did not start")
                    time.sleep(0.2)
        return subprocess.run([str(BIN / "airflow"), *args], env=env).returncode
    except (KeyboardInterrupt, Stop):
        return 130
    finally:
        if sandbox is not None:
            stop_all([sandbox], grace=5)


def _stored_connection(env: dict[str, str], conn_id: str) -> bool:
    db = Path(env["AIRFLOW_HOME"]) / "airflow.db"
    try:
        with contextlib.closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=10)) as conn:
            row = conn.execute("SELECT 1 FROM connection WHERE conn_id = ?", (conn_id,)).fetchone()
    except sqlite3.Error:
        return False
    return row is not None


if __name__ == "__main__":
    if sys.argv[1:2] == ["airflow"]:
        sys.exit(airflow_cli(sys.argv[2:]))
    main()
