"""Browser tests: Airflow's own UI, in Debian's chromium driven by Playwright, against the sandbox.

One Airflow per test session, started here on loopback and stopped at the end:

- the Infobip sandbox (cooldown scale 0.01, an API key of this run's own);
- ``airflow db migrate`` on SQLite in a fresh ``AIRFLOW_HOME`` under pytest's tmp dir;
- ``airflow api-server``, ``airflow scheduler`` and ``airflow dag-processor`` with the simple auth
  manager (everyone is admin, no login page), this repository's ``dags/`` and ``plugins/``, a writable
  copy of the embedded SQLite warehouse (built under the tmp dir) as ``warehouse_default``, as
  ``make ui`` has, and cron schedules off (only the runs the tests trigger run).

The ``infobip_default`` connection is *not* configured here: the first test creates it through the UI
(``infobip_connection`` creates it through the REST API only when that test did not run or failed).

Playwright never downloads a browser here: it launches ``/usr/bin/chromium`` (``make test`` installs
Debian's ``chromium`` when it is missing). Without it the tests skip locally and fail in CI.
Screenshots of every step and the server logs go to ``test-artifacts/browser/`` (git-ignored).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from infobip_provider.sandbox.testing import SandboxProcess
from tests.conftest import IN_CI, ROOT
from tests.system.test_celery_cluster import Processes, free_port

AIRFLOW = str(Path(sys.executable).parent / "airflow")
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
SCALE = 0.01
DAG_IDS = (
    "infobip_cohort_to_list",
    "infobip_people_import",
    "infobip_sms_broadcast",
    "infobip_email_broadcast",
    "infobip_whatsapp_broadcast",
)
AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
STARTUP_TIMEOUT = 240.0
UI_TIMEOUT_MS = 60_000  # Airflow's pages take seconds on two cores: every wait is on a selector


def require_browser() -> None:
    """Skip locally when chromium or Playwright is missing; in CI (CI=true) that is a failure."""
    missing = []
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"{CHROMIUM} (Debian's chromium: `apt-get install -y chromium`, or `make test`)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("Playwright for Python (the dev extra: `make install`)")
    if not missing:
        return
    reason = "browser tests need " + " and ".join(missing)
    if IN_CI:
        pytest.fail(f"{reason}; CI (CI=true) must run them")
    pytest.skip(reason)


# ------------------------------------------------------------------------------------------ Airflow
@dataclass
class AirflowUI:
    """The running stack: its URL, a REST session, the sandbox, the processes and their logs."""

    base_url: str
    sandbox: SandboxProcess
    procs: Processes
    home: Path
    state_dir: Path
    api_key: str
    env: dict[str, str]
    timings: dict[str, float] = field(default_factory=dict)
    session: requests.Session = field(default_factory=requests.Session)

    # The all-admins middleware authorises every request: the REST API needs no token here.
    def api(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200,)) -> Any:
        answer = self.session.request(method, f"{self.base_url}/api/v2{path}", json=body, timeout=30)
        assert answer.status_code in ok, f"{method} {path}: {answer.status_code} {answer.text[:2000]}"
        return answer.json() if answer.content else None

    def health(self) -> dict[str, Any] | None:
        try:
            answer = self.session.get(f"{self.base_url}/api/v2/monitor/health", timeout=5)
        except requests.RequestException:
            return None
        return answer.json() if answer.status_code == 200 else None

    def wait_for(self, what: str, probe: Callable[[], Any], timeout: float, every: float = 1.0) -> Any:
        """Call ``probe`` until it returns something truthy; fail when a process dies or time runs out."""
        deadline = time.monotonic() + timeout
        while True:
            dead = self.procs.exited()
            if dead:
                pytest.fail(f"{dead} exited while waiting for {what}\n{self.diagnostics()}")
            result = probe()
            if result:
                return result
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{self.diagnostics()}")
            time.sleep(every)

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 240.0) -> str:
        """Wait until the run ends; its final state."""
        path = f"/dags/{dag_id}/dagRuns/{run_id}"

        def finished() -> str | None:
            state = self.api("GET", path)["state"]
            return state if state in ("success", "failed") else None

        return str(self.wait_for(f"{dag_id} run {run_id} to finish", finished, timeout, every=2.0))

    def task_logs(self, dag_id: str, run_id: str | None = None, lines: int = 60) -> str:
        """The tails of the task log files of a DAG (one run when ``run_id`` is given)."""
        parts = []
        for path in sorted((self.home / "logs").rglob("*.log")):
            text = str(path)
            if f"dag_id={dag_id}" in text and (run_id is None or f"run_id={run_id}" in text):
                tail = "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
                parts.append(f"----- {path.relative_to(self.home)} -----\n{tail}")
        return "\n".join(parts)

    def cli(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """An ``airflow`` command against this Airflow's metadata database."""
        return subprocess.run([AIRFLOW, *args], env=self.env, capture_output=True, text=True, timeout=timeout)

    def diagnostics(self) -> str:
        return f"{self.procs.tails()}\n----- sandbox stderr -----\n{self.sandbox.stderr_text()[-3000:]}"


def airflow_env(home: Path, port: int, warehouse: Path) -> dict[str, str]:
    """One configuration for every Airflow process (nothing inherited from the test run's Airflow)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_"))
    }
    env.update(
        AIRFLOW_HOME=str(home),
        PYTHONPATH=str(ROOT / "plugins"),
        PYTHONUNBUFFERED="1",
        INFOBIP_INCLUDE_DIR=str(ROOT / "include"),
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__AUTH_MANAGER=AUTH_MANAGER,
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS="True",
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
        AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{port}",
        AIRFLOW__API__SECRET_KEY=secrets.token_hex(16),
        AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_hex(32),
        # Only what a test triggers runs: no scheduled run of the @daily/@hourly DAGs on unpause.
        AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE="False",
        AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES="1",
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
        AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
        # Writable, as with `make ui` (a copy of the sample built for this session): the reports DAG
        # writes its outcomes tables there, diff_in_warehouse its snapshot tables.
        AIRFLOW_CONN_WAREHOUSE_DEFAULT=json.dumps({"conn_type": "sqlite", "host": str(warehouse)}),
    )
    return env


@contextlib.contextmanager
def airflow_stack(tmp: Path, log_dir: Path) -> Iterator[AirflowUI]:
    """The sandbox, a migrated metadata database and the three Airflow processes, until exit."""
    started = time.monotonic()
    home = tmp / "airflow"
    home.mkdir(parents=True)
    warehouse = tmp / "warehouse.db"
    build = subprocess.run(
        [sys.executable, str(ROOT / "include" / "warehouse" / "build_warehouse.py"), "--db", str(warehouse)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, f"building the warehouse failed:\n{build.stdout}{build.stderr}"
    api_key = f"ui-key-{secrets.token_hex(12)}"
    with contextlib.ExitStack() as stack:
        sandbox = stack.enter_context(SandboxProcess(api_key=api_key, cooldown_scale=SCALE))
        port = free_port()
        env = airflow_env(home, port, warehouse)
        migrated = subprocess.run(
            [AIRFLOW, "db", "migrate"], env=env, cwd=tmp, capture_output=True, text=True, timeout=300
        )
        assert migrated.returncode == 0, (
            f"airflow db migrate failed:\n{migrated.stdout[-3000:]}{migrated.stderr[-3000:]}"
        )
        migrated_at = time.monotonic()
        procs = Processes(log_dir)
        stack.callback(procs.stop_all)
        api_server = [AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        procs.start("api-server", api_server, env, tmp)
        procs.start("scheduler", [AIRFLOW, "scheduler"], env, tmp)
        procs.start("dag-processor", [AIRFLOW, "dag-processor"], env, tmp)
        ui = AirflowUI(f"http://127.0.0.1:{port}", sandbox, procs, home, tmp / "state", api_key, env)
        remaining = lambda: max(STARTUP_TIMEOUT - (time.monotonic() - migrated_at), 1.0)  # noqa: E731

        def healthy() -> bool:
            health = ui.health() or {}
            return all(
                (health.get(part) or {}).get("status") == "healthy"
                for part in ("metadatabase", "scheduler", "dag_processor")
            )

        ui.wait_for("the api-server, scheduler and dag-processor to be healthy", healthy, remaining())

        def parsed() -> bool:
            errors = ui.api("GET", "/importErrors")["import_errors"]
            if errors:
                pytest.fail(f"DAG import errors: {json.dumps(errors, indent=1)[:4000]}")
            dag_ids = {dag["dag_id"] for dag in ui.api("GET", "/dags?limit=100")["dags"]}
            return set(DAG_IDS) <= dag_ids

        ui.wait_for(f"the DAGs {', '.join(DAG_IDS)} to be parsed", parsed, remaining())
        ui.timings.update(migrate=migrated_at - started, startup=time.monotonic() - migrated_at)
        yield ui


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """``test-artifacts/browser/``, emptied once per session: screenshots per test, server logs."""
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    print(f"\n[browser] screenshots and logs: {ARTIFACTS}")
    return ARTIFACTS


@pytest.fixture(scope="session")
def airflow_ui(tmp_path_factory: pytest.TempPathFactory, artifacts: Path) -> Iterator[AirflowUI]:
    require_browser()
    with airflow_stack(tmp_path_factory.mktemp("browser"), artifacts / "server-logs") as ui:
        yield ui
        print("[browser] " + " ".join(f"{k}={v:.1f}s" for k, v in ui.timings.items()))


@pytest.fixture(scope="session")
def chromium(airflow_ui: AirflowUI) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


# ------------------------------------------------------------------------------------------ pages
class Steps:
    """One test's page with a screenshot and an HTML check per step.

    :meth:`shot` writes ``NN-<name>.png`` and keeps the page's HTML; unless the step is one where the
    user is typing the key, the API key must not be in it. Every response the page received from the
    api-server is searched for the key as well (:attr:`leaks`).
    """

    def __init__(self, page: Any, folder: Path, ui: AirflowUI) -> None:
        self.page, self.folder, self.ui = page, folder, ui
        folder.mkdir(parents=True, exist_ok=True)
        self.count = 0
        self.visited: list[str] = []
        self.leaks: list[str] = []
        page.on("response", self._scan_response)

    def _scan_response(self, response: Any) -> None:
        if not response.url.startswith(self.ui.base_url):
            return
        with contextlib.suppress(Exception):  # bodies of redirects and aborted requests are absent
            if self.ui.api_key in response.text():
                self.leaks.append(f"response {response.request.method} {response.url}")

    def goto(self, path: str) -> None:
        self.page.goto(self.ui.base_url + path, wait_until="domcontentloaded")

    def shot(self, name: str, *, key_on_screen: bool = False) -> Path:
        self.count += 1
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        path = self.folder / f"{self.count:02d}-{slug}.png"
        self.page.screenshot(path=str(path), full_page=True)
        html = self.page.content()
        self.visited.append(self.page.url)
        if not key_on_screen and self.ui.api_key in html:
            self.leaks.append(f"page {self.page.url} at step {path.name}")
        return path


@pytest.fixture
def steps(
    chromium: Any, airflow_ui: AirflowUI, artifacts: Path, request: pytest.FixtureRequest
) -> Iterator[Steps]:
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    folder = artifacts / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
    recorder = Steps(page, folder, airflow_ui)
    try:
        yield recorder
    finally:
        with contextlib.suppress(Exception):
            page.screenshot(path=str(folder / "zz-last.png"), full_page=True)
        context.close()


@pytest.fixture
def infobip_connection(airflow_ui: AirflowUI) -> dict[str, Any]:
    """``infobip_default`` at the sandbox: the one the UI test saved, else one made through the REST API."""
    answer = airflow_ui.session.get(f"{airflow_ui.base_url}/api/v2/connections/infobip_default", timeout=30)
    if answer.status_code == 200:
        return dict(answer.json())
    body = {
        "connection_id": "infobip_default",
        "conn_type": "infobip",
        "host": airflow_ui.sandbox.base_url,
        "password": airflow_ui.api_key,
        "extra": json.dumps({"cooldown_scale": SCALE, "state_uri": str(airflow_ui.state_dir)}),
    }
    return dict(airflow_ui.api("POST", "/connections", body, ok=(201,)))
