"""Benchmark of the cooldown gates: what one reservation costs, and how well calls end up spaced.

Run from the repository root (about a minute; Redis parts are skipped when no server answers)::

    PYTHONPATH=plugins .venv/bin/python benchmarks/bench_cooldown.py [--redis-url redis://127.0.0.1:6379/15]

Part 1 times one reservation per backend in one process (no other caller): ``take`` (the atomic
step alone), ``reserve`` of an unpaced endpoint (interval 0: one round trip, never sleeps) and
``reserve`` on a fresh bucket each time (no wait: ``take`` and ``confirm``, what a paced call costs); then 4 processes racing
``take`` on one bucket (contention).

Part 2 runs OS processes sharing one API key against the sandbox at cooldown_scale 0.02 (list add
every 0.2 s): through the file gate, the Redis gate (two groups standing for two hosts) and a naive
baseline where each process sleeps one interval between its own calls, with no coordination. The
sandbox's journal gives the arrival times; 429s come from its counters.

Results go to ``benchmarks/results/cooldown.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import requests

from infobip_provider.cooldown import (
    POLICIES,
    CooldownBackendError,
    CooldownGate,
    FileGate,
    MemoryGate,
    RedisGate,
    Reservation,
    fingerprint,
    safety_margin,
)
from infobip_provider.sandbox.testing import SandboxProcess

FORK = multiprocessing.get_context("fork")
RESULTS = Path(__file__).resolve().parent / "results" / "cooldown.md"
SCALE = 0.02
INTERVAL = POLICIES["lists.add"].interval * SCALE
PER = 15  # list adds per process in the spacing runs


def pct(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


# ------------------------------------------------------------------------ part 1: reservation cost
def time_calls(call: Callable[[int], object], n: int) -> list[float]:
    """Microseconds of each of ``n`` calls (after a short warm-up)."""
    for i in range(20):
        call(-1 - i)
    out = []
    for i in range(n):
        t0 = time.perf_counter_ns()
        call(i)
        out.append((time.perf_counter_ns() - t0) / 1000)
    return out


def reservation_costs(gate: CooldownGate, n: int) -> dict[str, list[float]]:
    run = uuid.uuid4().hex[:8]
    return {
        "take, one bucket": time_calls(lambda i: gate.take(f"bench-{run}:lists.add", INTERVAL), n),
        "reserve, interval 0": time_calls(lambda i: gate.reserve(f"bench-{run}:sms.send", 0.0), n),
        "reserve, fresh bucket": time_calls(
            lambda i: gate.reserve(f"bench-{run}-{i}:lists.add", INTERVAL), n
        ),
    }


def _contender(make: Callable[[], CooldownGate], bucket: str, n: int, start: Any, out: Any) -> None:
    gate = make()
    start.wait()
    t0 = time.perf_counter()
    lat = time_calls(lambda i: gate.take(bucket, INTERVAL), n)
    out.put((time.perf_counter() - t0, lat))


def contention(make: Callable[[], CooldownGate], procs: int, n: int) -> tuple[float, list[float]]:
    """``procs`` processes race ``take`` on one bucket: (reservations per second, latencies in us)."""
    bucket = f"bench-{uuid.uuid4().hex[:8]}:lists.add"
    start, out = FORK.Event(), FORK.Queue()
    workers = [FORK.Process(target=_contender, args=(make, bucket, n, start, out)) for _ in range(procs)]
    for w in workers:
        w.start()
    time.sleep(0.3)
    start.set()
    results = [out.get(timeout=120) for _ in workers]
    for w in workers:
        w.join()
    elapsed = max(r[0] for r in results)
    return procs * n / elapsed, [x for r in results for x in r[1]]


# ----------------------------------------------------------------------- part 2: achieved spacing
def _caller(
    backend: str, option: str, base_url: str, key: str, list_id: int, n: int, ready: Any, start: Any, out: Any
) -> None:
    """One process: ``n`` list adds, paced by its gate (``file``/``redis``) or by ``naive`` sleeps."""
    session = requests.Session()
    session.headers["Authorization"] = f"App {key}"
    url = f"{base_url}/saas/amplitude/1/lists/{list_id}/add"
    bucket = f"{fingerprint(key)}:lists.add"
    gate: CooldownGate | None = None
    if backend == "file":
        gate = FileGate(option)
    elif backend == "redis":
        gate = RedisGate(option)
    session.post(url.replace("/add", "/nope"), json={}, timeout=10)  # warm the connection (404, unpaced)
    ready.put(os.getpid())
    start.wait()
    slots: list[float] = []
    statuses = []
    if gate is not None:  # the real path (take, sleep, confirm), recording each slot it was given
        take = gate.take
        gate.take = lambda bucket, interval: _recorded(take(bucket, interval), slots)  # type: ignore[method-assign]
    for i in range(n):
        body = json.dumps({"userIds": [f"p{os.getpid()}-{i}@example.com"]}).encode()  # ready before the slot
        if gate is not None:
            gate.reserve(bucket, INTERVAL)
        elif i:
            time.sleep(INTERVAL)
        headers = {"Content-Type": "application/json"}
        statuses.append(session.post(url, data=body, headers=headers, timeout=10).status_code)
    out.put((slots, statuses, time.time()))


def _recorded(reservation: Reservation, slots: list[float]) -> Reservation:
    slots.append(reservation.slot)
    return reservation


def spacing_run(label: str, groups: Sequence[tuple[str, str, int]], per: int) -> dict[str, Any]:
    """Processes per ``(backend, option, count)`` group make ``per`` adds each; the sandbox judges."""
    key = f"bench-{uuid.uuid4().hex}"
    with SandboxProcess(api_key=key, cooldown_scale=SCALE) as sb:
        created = requests.post(
            sb.url("/saas/amplitude/1/lists"), json={"name": "bench"}, headers=sb.headers(), timeout=10
        )
        list_id = int(created.json()["listId"])
        ready, start, out = FORK.Queue(), FORK.Event(), FORK.Queue()
        procs = [
            FORK.Process(
                target=_caller, args=(backend, option, sb.base_url, key, list_id, per, ready, start, out)
            )
            for backend, option, count in groups
            for _ in range(count)
        ]
        for p in procs:
            p.start()
        for _ in procs:
            ready.get(timeout=60)
        t0 = time.time()
        start.set()
        results = [out.get(timeout=300) for _ in procs]
        for p in procs:
            p.join()
        wall = max(r[2] for r in results) - t0
        journal = [e for e in sb.journal(endpoint="lists.add")]
        counters = sb.counters()["lists.add"]
    accepted = sorted(e["arrival"] for e in journal if e["status"] == 200)
    gaps = [b - a for a, b in itertools.pairwise(accepted)]
    all_arrivals = sorted(e["arrival"] for e in journal)
    slots = sorted(s for r in results for s in r[0])
    lateness = [a - s for s, a in zip(slots, all_arrivals)] if slots else []
    calls = sum(len(r[1]) for r in results)
    return {
        "label": label,
        "calls": calls,
        "429s": counters["429s"],
        "wall": wall,
        "bound": (calls - 1) * INTERVAL,
        "gaps": gaps,
        "lateness": lateness,
    }


# ---------------------------------------------------------------------------------------- report
def fmt_us(values: Sequence[float]) -> str:
    return f"{statistics.median(values):.1f} | {pct(values, 99):.1f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--redis-url", default=os.environ.get("INFOBIP_BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
    )
    parser.add_argument("--n", type=int, default=2000, help="reservations timed per backend and case")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    started = time.time()
    state_dir = tempfile.mkdtemp(prefix="bench-cooldown-")

    makers: dict[str, Callable[[], CooldownGate]] = {
        "memory": MemoryGate,
        "file": lambda: FileGate(state_dir),
    }
    try:
        RedisGate(args.redis_url).close()
        makers["redis"] = lambda: RedisGate(args.redis_url)
    except CooldownBackendError as exc:
        print(f"Redis parts skipped: {exc}", file=sys.stderr)

    lines = [
        "# Cooldown gate benchmark",
        "",
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC · Python {platform.python_version()} · "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (a shared machine) · "
        f"`python benchmarks/bench_cooldown.py` · Redis {args.redis_url.rsplit('@')[-1]}",
        "",
        "## Cost of one reservation (one process, no other caller), microseconds",
        "",
        "| backend | case | median | p99 |",
        "|---|---|---:|---:|",
    ]
    for name, make in makers.items():
        gate = make()
        for case, values in reservation_costs(gate, args.n).items():
            lines.append(f"| {name} | {case} | {fmt_us(values)} |")
            print(
                f"{name:6} {case:22} median {statistics.median(values):8.1f} us  p99 {pct(values, 99):8.1f} us"
            )
        gate.close()

    lines += [
        "",
        "## Contention: 4 processes race `take` on one bucket",
        "",
        "| backend | reservations/s | median us | p99 us |",
        "|---|---:|---:|---:|",
    ]
    for name, make in makers.items():
        if name == "memory":
            continue  # one process only: threads of a process share it, other processes cannot
        rate, lat = contention(make, 4, args.n // 4)
        lines.append(f"| {name} | {rate:,.0f} | {fmt_us(lat)} |")
        print(f"{name:6} contention: {rate:,.0f} reservations/s, median {statistics.median(lat):.1f} us")

    runs = [spacing_run("file gate, 4 processes", [("file", tempfile.mkdtemp(prefix="bench-fg-"), 4)], PER)]
    if "redis" in makers:
        runs.append(
            spacing_run(
                "redis gate, 2 hosts x 2 processes",
                [("redis", args.redis_url, 2), ("redis", args.redis_url, 2)],
                PER,
            )
        )
    runs.append(spacing_run("naive: sleep(interval) per process", [("naive", "", 4)], PER))

    margin = safety_margin(INTERVAL) * 1000
    lines += [
        "",
        f"## Achieved spacing: list add at cooldown_scale {SCALE} (interval {INTERVAL * 1000:.0f} ms, "
        f"gate step {INTERVAL * 1000 + margin:.0f} ms, sandbox rejects gaps < {0.98 * INTERVAL * 1000:.0f} ms)",
        "",
        "Gaps are between accepted arrivals at the sandbox; lateness is arrival minus reserved slot.",
        "",
        "| run | calls | 429s | wall s | (calls−1)×interval s | gap min ms | gap median ms | gap p99 ms "
        "| lateness median ms | lateness p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        gaps = [g * 1000 for g in r["gaps"]]
        late = [x * 1000 for x in r["lateness"]]
        late_cols = f"{statistics.median(late):.1f} | {pct(late, 99):.1f}" if late else "– | –"
        lines.append(
            f"| {r['label']} | {r['calls']} | {r['429s']} | {r['wall']:.2f} | {r['bound']:.2f} | {min(gaps):.1f} | "
            f"{statistics.median(gaps):.1f} | {pct(gaps, 99):.1f} | {late_cols} |"
        )
        print(
            f"{r['label']:36} 429s {r['429s']:3}  wall {r['wall']:.2f}s (bound {r['bound']:.2f}s)  gaps min "
            f"{min(gaps):.1f} median {statistics.median(gaps):.1f} p99 {pct(gaps, 99):.1f} ms"
        )
    lines += ["", f"Total benchmark time: {time.time() - started:.0f} s.", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
