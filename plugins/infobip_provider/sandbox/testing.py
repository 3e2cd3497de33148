"""Helpers for tests that need a sandbox: a real subprocess, its admin API, a pytest fixture factory.

>>> with SandboxProcess(cooldown_scale=0.01) as sandbox:
...     os.environ["AIRFLOW_CONN_INFOBIP_DEFAULT"] = sandbox.conn_json()
...     ...  # run the code under test, then look at sandbox.journal() / sandbox.counters()

In a ``conftest.py``::

    from infobip_provider.sandbox.testing import sandbox_fixture
    infobip_sandbox = sandbox_fixture()              # one sandbox process per test session
    sandbox = clean_sandbox_fixture("infobip_sandbox")  # that process, reset before each test
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote, urlencode

import requests

READY = re.compile(r"Infobip sandbox listening on (http://\S+)")
#: the folder that holds the ``infobip_provider`` package (``plugins/`` in the repository).
PACKAGE_PARENT = Path(__file__).resolve().parents[2]
FixtureScope = Literal["session", "package", "module", "class", "function"]


class FakeClock:
    """A settable clock for :class:`~infobip_provider.sandbox.SandboxConfig` ``clock``."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


class SandboxProcess:
    """The sandbox running as a subprocess on a free port, stopped (killed if need be) on exit.

    :param api_key: the full-access key the sandbox accepts (also what :meth:`conn_json` puts in the password).
    :param scoped_keys: more keys, each limited to some scopes (``--scoped-key``):
        ``{"key": ["people:manage", "sms:message:send"]}``.
    :param cooldown_scale: passed to ``--cooldown-scale`` and, by default, to the connection extras.
    :param state_file: ``--state`` file, to test persistence across restarts.
    :param extra_args: more command-line arguments (``["--delivery-delay", "0.5"]``).
    :param startup_timeout: seconds to wait for the ready line.
    """

    def __init__(
        self,
        api_key: str = "sandbox-key",
        cooldown_scale: float = 0.01,
        scoped_keys: Mapping[str, Sequence[str]] | None = None,
        state_file: str | os.PathLike[str] | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 20.0,
    ) -> None:
        self.api_key = api_key
        self.scoped_keys = {key: tuple(scopes) for key, scopes in (scoped_keys or {}).items()}
        self.cooldown_scale = cooldown_scale
        self.state_file = None if state_file is None else str(state_file)
        self.extra_args = tuple(extra_args)
        self.startup_timeout = startup_timeout
        self.base_url = ""
        self.ready_line = ""
        self.process: subprocess.Popen[str] | None = None
        self._stderr = tempfile.TemporaryFile(mode="w+", encoding="utf-8")
        self._session = requests.Session()

    # ---- lifecycle ---------------------------------------------------------------------------
    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "infobip_provider.sandbox", "--host", "127.0.0.1", "--port", "0"]
        cmd += ["--api-key", self.api_key, "--cooldown-scale", repr(self.cooldown_scale)]
        for key, scopes in self.scoped_keys.items():
            cmd += ["--scoped-key", f"{key}={','.join(scopes)}"]
        if self.state_file:
            cmd += ["--state", self.state_file]
        return cmd + list(self.extra_args)

    def start(self) -> SandboxProcess:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PACKAGE_PARENT), env.get("PYTHONPATH")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        self.process = subprocess.Popen(
            self.command(), stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=env
        )
        lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_pump, args=(self.process.stdout, lines), daemon=True).start()
        deadline = time.monotonic() + self.startup_timeout
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise RuntimeError(
                    f"sandbox not ready after {self.startup_timeout} s: {self.stderr_text()}"
                ) from None
            if line is None:
                self.process.wait()
                raise RuntimeError(f"sandbox exited ({self.process.returncode}): {self.stderr_text()}")
            found = READY.search(line)
            if found:
                self.ready_line, self.base_url = line.strip(), found.group(1)
                return self

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, wait for a clean exit (the state is saved), kill after ``timeout``; the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._session.close()
        return self.process.returncode

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stderr_text(self) -> str:
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read()

    def __enter__(self) -> SandboxProcess:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.stop()
        finally:
            self.kill()
            self._stderr.close()

    # ---- Airflow connection ------------------------------------------------------------------
    def _extras(self, extras: dict[str, Any]) -> dict[str, Any]:
        return {"cooldown_scale": self.cooldown_scale, **extras}

    def conn_json(self, *, api_key: str | None = None, **extras: Any) -> str:
        """The value for ``AIRFLOW_CONN_<ID>`` (JSON form) of an ``infobip`` connection to this sandbox,
        with the full-access key unless ``api_key`` names another (a scoped one, a wrong one)."""
        return json.dumps(
            {
                "conn_type": "infobip",
                "host": self.base_url,
                "password": self.api_key if api_key is None else api_key,
                "extra": self._extras(extras),
            }
        )

    def conn_uri(self, **extras: Any) -> str:
        """The same connection as a URI (the host, scheme included, is percent-encoded)."""
        query = urlencode({"__extra__": json.dumps(self._extras(extras))})
        return f"infobip://:{quote(self.api_key, safe='')}@{quote(self.base_url, safe='')}/?{query}"

    # ---- admin API -----------------------------------------------------------------------------
    def url(self, path: str) -> str:
        return self.base_url + path

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"App {self.api_key}"}

    def _admin(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._session.request(method, self.url("/_sandbox" + path), timeout=10, **kwargs)
        response.raise_for_status()
        return response.json()

    def state(self) -> dict[str, Any]:
        return self._admin("GET", "/state")

    def journal(
        self, bodies: bool = False, endpoint: str | None = None, since: int = 0
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"bodies": str(bodies).lower(), "since": since}
        if endpoint:
            params["endpoint"] = endpoint
        entries: list[dict[str, Any]] = self._admin("GET", "/journal", params=params)["entries"]
        return entries

    def counters(self) -> dict[str, dict[str, Any]]:
        return self._admin("GET", "/counters")

    def reset(self) -> None:
        self._admin("POST", "/reset")

    def save(self) -> str | None:
        saved: str | None = self._admin("POST", "/save")["saved"]
        return saved

    def info(self) -> dict[str, Any]:
        return self._admin("GET", "/info")

    def inject_fault(
        self, endpoint: str, kind: str, count: int = 1, delay: float | None = None
    ) -> list[dict]:
        """Make the next ``count`` requests to ``endpoint`` fail: ``error_500``, ``error_429``, ``slow``
        (answers after ``delay`` s) or ``commit_then_500`` (the change is made, the answer is a 500)."""
        body = {"endpoint": endpoint, "kind": kind, "count": count, "delay": delay}
        faults: list[dict] = self._admin("POST", "/faults", json=body)["faults"]
        return faults

    # ---- return path (see sandbox/admin_returns.py) -------------------------------------------
    def inject_inbound(self, messages: Sequence[Mapping[str, Any]]) -> list[str]:
        """Replies (``{"from", "to", "text", "keyword"?}``) for ``/sms/1/inbox/reports``; their ids."""
        ids: list[str] = self._admin("POST", "/sms/inbound", json={"messages": list(messages)})["messageIds"]
        return ids

    def set_sms_outcomes(self, outcomes: Mapping[str, str]) -> dict[str, str]:
        """SMS sent later to numbers starting with a prefix end in its outcome (``sms.OUTCOMES``)."""
        table: dict[str, str] = self._admin("POST", "/sms/outcomes", json={"outcomes": dict(outcomes)})[
            "outcomes"
        ]
        return table

    def set_email_outcomes(self, outcomes: Mapping[str, str]) -> dict[str, str]:
        """Emails sent later to addresses starting with a prefix end in its outcome
        (``api_email.EMAIL_OUTCOMES``)."""
        table: dict[str, str] = self._admin("POST", "/email/outcomes", json={"outcomes": dict(outcomes)})[
            "outcomes"
        ]
        return table

    def push_webhook(
        self,
        url: str,
        *,
        channel: str | None = None,
        kind: str = "reports",
        bulk_id: str | None = None,
        message_ids: Sequence[str] = (),
        results: Sequence[Mapping[str, Any]] | None = None,
        batch: int = 100,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Have the sandbox POST Infobip's ``{"results": [...]}`` to ``url`` (see
        ``sandbox/admin_pushes.py``): the reports of its stored ``channel`` messages, or ``results``
        as given. ``{"requests", "items", "statuses"}``."""
        body: dict[str, Any] = {"url": url, "batch": batch, "headers": dict(headers or {})}
        if results is not None:
            body["results"] = [dict(r) for r in results]
        else:
            body.update(channel=channel, kind=kind, bulkId=bulk_id, messageIds=list(message_ids))
        response = self._session.post(self.url("/_sandbox/webhooks/push"), json=body, timeout=300)
        response.raise_for_status()
        pushed: dict[str, Any] = response.json()
        return pushed

    def generate_people(self, count: int, tags: Sequence[str] = (), prefix: str = "p") -> tuple[int, int]:
        """Make ``count`` people at once (no API cooldowns); the first and last new person id."""
        got = self._admin(
            "POST", "/people/generate", json={"count": count, "tags": list(tags), "prefix": prefix}
        )
        return int(got["first"]), int(got["last"])

    def modify_people(self, ids: Sequence[int], custom_attributes: Mapping[str, Any]) -> int:
        """Change those people as an API update would (``modifiedAt`` becomes now); how many changed."""
        body = {"ids": list(ids), "customAttributes": dict(custom_attributes)}
        modified: int = self._admin("POST", "/people/modify", json=body)["modified"]
        return modified


def _pump(stream: Any, lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def sandbox_fixture(scope: FixtureScope = "session", **kwargs: Any) -> Callable[..., Any]:
    """A pytest fixture running one :class:`SandboxProcess` (``kwargs`` go to it) for ``scope``.

    Assign the result to a name in a ``conftest.py``: ``infobip_sandbox = sandbox_fixture()``.
    """
    import pytest

    @pytest.fixture(scope=scope)
    def _sandbox() -> Iterator[SandboxProcess]:
        with SandboxProcess(**kwargs) as sandbox:
            yield sandbox

    return _sandbox


def clean_sandbox_fixture(base: str = "infobip_sandbox") -> Callable[..., Any]:
    """A function-scoped fixture handing out the sandbox fixture named ``base`` after a reset
    (state, journal, counters, faults and cooldown windows wiped): one process, a clean slate per test."""
    import pytest

    @pytest.fixture
    def _clean(request: Any) -> SandboxProcess:
        sandbox: SandboxProcess = request.getfixturevalue(base)
        sandbox.reset()
        return sandbox

    return _clean
