"""Cooldown gates end to end: many OS processes share one API key against the sandbox.

Every worker process builds its own :class:`~infobip_provider.hooks.infobip.InfobipHook` from an
``AIRFLOW_CONN_INFOBIP_DEFAULT`` connection and calls the list endpoints; the hook reserves each
slot from the gate the connection names. The sandbox answers 429 to any arrival closer than 98 %
of the scaled interval to the previous accepted one, and its journal gives the arrival times.

At ``cooldown_scale`` 0.05 the list-add interval is 0.5 s, so 64 calls take about 32 s. The scale
is chosen so that the gate's margin plus the sandbox's 2 % tolerance (23 ms in all) is well above the
scheduling jitter of nine busy processes on two cores; at 0.02 (11 ms) a loaded machine saw a 12 ms
late arrival now and then. The margin is the gate's own (2 % + 3 ms); only the test clock is slower.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import statistics
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import requests

from infobip_provider.cooldown import POLICIES, safety_margin
from infobip_provider.hooks.infobip import InfobipHook  # imported once, before the workers fork
from infobip_provider.sandbox.testing import SandboxProcess

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

SCALE = 0.05
ADD = POLICIES["lists.add"].interval * SCALE  # 0.5 s
REMOVE = POLICIES["lists.remove"].interval * SCALE  # 0.25 s
PER_PROCESS = 8  # list adds per process: 8 processes x 8 = 64 calls
FORK = multiprocessing.get_context("fork")


def _worker(conn: str, list_id: int, plan: Sequence[str], tag: str, ready: Any, start: Any, out: Any) -> None:
    """One process: an own hook (and gate) from ``conn``, then ``plan`` calls in order."""
    try:
        os.environ["AIRFLOW_CONN_INFOBIP_DEFAULT"] = conn
        hook = InfobipHook()
        hook.gate  # noqa: B018 - build (and ping) the gate before the race starts
        ready.put(os.getpid())
        start.wait()
        first = time.time()
        for i, endpoint in enumerate(plan):
            ids = [f"{tag}-{i}@example.com"]
            if endpoint == "lists.add":
                hook.list_add(list_id, ids)
            else:
                hook.list_remove(list_id, ids)
        out.put({"first": first, "done": time.time(), "calls": dict(hook.calls), "error": None})
    except Exception as exc:  # reported to the parent, which fails the test with it
        out.put({"error": f"{type(exc).__name__}: {exc}"})


def _run(
    groups: Sequence[tuple[str, int, Sequence[str]]], list_id: int
) -> tuple[float, list[dict[str, Any]]]:
    """Start ``count`` processes per ``(conn, count, plan)`` group, release them together.

    :return: the wall time from the first call to the last answer, and each worker's report.
    """
    ready, start, out = FORK.Queue(), FORK.Event(), FORK.Queue()
    procs = [
        FORK.Process(target=_worker, args=(conn, list_id, plan, f"g{g}p{p}", ready, start, out))
        for g, (conn, count, plan) in enumerate(groups)
        for p in range(count)
    ]
    for proc in procs:
        proc.start()
    for _ in procs:  # every process has its hook and gate: the race starts now
        ready.get(timeout=60)
    start.set()
    reports = [out.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    errors = [r["error"] for r in reports if r["error"]]
    assert not errors, errors
    wall = max(r["done"] for r in reports) - min(r["first"] for r in reports)
    return wall, reports


def _gaps(journal: list[dict[str, Any]], endpoint: str) -> list[float]:
    arrivals = sorted(e["arrival"] for e in journal if e["endpoint"] == endpoint and e["status"] == 200)
    return [b - a for a, b in itertools.pairwise(arrivals)]


def _check_spacing(
    journal: list[dict[str, Any]], endpoint: str, interval: float, calls: int, *, saturated: bool = True
) -> list[float]:
    """Arrival gaps of the accepted calls: never under the sandbox's 98 %; when the endpoint was the
    bottleneck (``saturated``), typically one interval + margin, i.e. no time was wasted."""
    gaps = _gaps(journal, endpoint)
    assert len(gaps) == calls - 1
    assert min(gaps) >= 0.98 * interval  # the sandbox's own verdict, checked independently
    assert not saturated or statistics.median(gaps) == pytest.approx(
        interval + safety_margin(interval), abs=0.1 * interval
    )
    return gaps


def _summary(name: str, wall: float, bound: float, gaps: list[float]) -> None:
    q = statistics.quantiles(gaps, n=100)
    print(
        f"\n{name}: wall {wall:.2f}s vs bound {bound:.2f}s ({wall / bound - 1:+.1%}); arrival gaps "
        f"min {min(gaps) * 1000:.1f} ms, median {statistics.median(gaps) * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms"
    )


def _rejected(sandbox: Any) -> list[tuple[str, float | None]]:
    """(endpoint, seconds since the previous accepted arrival) of every 429, for failure messages."""
    return [
        (e["endpoint"], e.get("cooldown", {}).get("elapsed")) for e in sandbox.journal() if e["status"] == 429
    ]


def _conn(sandbox: Any, **extras: Any) -> str:
    conn = json.loads(sandbox.conn_json(**extras))
    conn["extra"]["cooldown_scale"] = SCALE
    return json.dumps(conn)


@pytest.fixture
def sandbox() -> Any:
    with SandboxProcess(api_key=f"it-{uuid.uuid4().hex}", cooldown_scale=SCALE) as sb:
        yield sb


@pytest.fixture
def list_id(sandbox: Any) -> int:
    created = requests.post(
        sandbox.url("/saas/amplitude/1/lists"),
        json={"name": "cooldown-it"},
        headers=sandbox.headers(),
        timeout=10,
    )
    created.raise_for_status()
    return int(created.json()["listId"])


def test_eight_processes_file_gate_zero_429s(sandbox: Any, list_id: int, tmp_path: Path) -> None:
    """8 processes x 8 list adds through the file gate: no 429, wall within 10 % of 63 x interval."""
    conn = _conn(sandbox, cooldown_backend="file", state_uri=str(tmp_path))
    wall, reports = _run([(conn, 8, ["lists.add"] * PER_PROCESS)], list_id)
    counters = sandbox.counters()["lists.add"]
    assert counters["429s"] == 0, _rejected(sandbox)
    assert counters["requests"] == 8 * PER_PROCESS
    assert all(r["calls"] == {"lists.add": PER_PROCESS} for r in reports)  # no retry was ever needed
    bound = (8 * PER_PROCESS - 1) * ADD
    assert wall == pytest.approx(bound, rel=0.10)
    gaps = _check_spacing(sandbox.journal(endpoint="lists.add"), "lists.add", ADD, 8 * PER_PROCESS)
    _summary("file gate, 8 processes", wall, bound, gaps)


@pytest.mark.redis
def test_two_hosts_share_the_redis_gate(sandbox: Any, list_id: int, tmp_path: Path, redis_url: str) -> None:
    """Two groups of 4 processes with separate state folders (two hosts) meet only in Redis."""
    host_a = _conn(
        sandbox, cooldown_backend="redis", cooldown_redis_url=redis_url, state_uri=str(tmp_path / "a")
    )
    host_b = _conn(
        sandbox, cooldown_backend="auto", cooldown_redis_url=redis_url, state_uri=str(tmp_path / "b")
    )
    plan = ["lists.add"] * PER_PROCESS
    wall, reports = _run([(host_a, 4, plan), (host_b, 4, plan)], list_id)
    counters = sandbox.counters()["lists.add"]
    assert counters["429s"] == 0, _rejected(sandbox)
    assert counters["requests"] == 8 * PER_PROCESS
    assert all(r["calls"] == {"lists.add": PER_PROCESS} for r in reports)
    bound = (8 * PER_PROCESS - 1) * ADD
    assert wall == pytest.approx(bound, rel=0.10)
    gaps = _check_spacing(sandbox.journal(endpoint="lists.add"), "lists.add", ADD, 8 * PER_PROCESS)
    assert not (tmp_path / "a" / "cooldown").exists()  # the file gate was never used
    _summary("redis gate, 2 hosts x 4 processes", wall, bound, gaps)


def test_adds_and_removes_proceed_side_by_side(sandbox: Any, list_id: int, tmp_path: Path) -> None:
    """Each process alternates add and remove: the wall is the add bound, not adds + removes."""
    conn = _conn(sandbox, cooldown_backend="file", state_uri=str(tmp_path))
    plan = ["lists.add", "lists.remove"] * (PER_PROCESS // 2)
    calls = 8 * PER_PROCESS // 2  # of each endpoint
    wall, _ = _run([(conn, 8, plan)], list_id)
    counters = sandbox.counters()
    assert counters["lists.add"]["429s"] == 0, _rejected(sandbox)
    assert counters["lists.remove"]["429s"] == 0, _rejected(sandbox)
    assert counters["lists.add"]["requests"] == counters["lists.remove"]["requests"] == calls
    journal = sandbox.journal()
    add_gaps = _check_spacing(journal, "lists.add", ADD, calls)
    _check_spacing(journal, "lists.remove", REMOVE, calls, saturated=False)  # removes wait for adds
    add_bound, remove_bound = (calls - 1) * ADD, (calls - 1) * REMOVE
    assert wall == pytest.approx(add_bound + REMOVE, rel=0.10)
    assert wall < 0.8 * (add_bound + remove_bound)
    removes = sorted(e["arrival"] for e in journal if e["endpoint"] == "lists.remove")
    adds = sorted(e["arrival"] for e in journal if e["endpoint"] == "lists.add")
    assert removes[len(removes) // 2] < adds[-1]  # removes ran during the adds, not after them
    _summary("adds+removes interleaved (adds)", wall, add_bound, add_gaps)


def test_control_two_hosts_without_a_shared_gate_do_get_429s(
    sandbox: Any, list_id: int, tmp_path: Path
) -> None:
    """The control: file gates on two "hosts" (separate folders) do not coordinate, and the sandbox
    notices. This proves the zero-429 assertions above can fail."""
    plan = ["lists.add"] * 5
    host_a = _conn(sandbox, cooldown_backend="file", state_uri=str(tmp_path / "a"))
    host_b = _conn(sandbox, cooldown_backend="file", state_uri=str(tmp_path / "b"))
    _run([(host_a, 2, plan), (host_b, 2, plan)], list_id)
    counters = sandbox.counters()["lists.add"]
    assert counters["429s"] > 0
    assert counters["requests"] - counters["429s"] == 20  # the hook retried every 429 inside the task
