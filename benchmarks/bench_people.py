"""Benchmark: import 50,000 people into the sandbox, against the pacing bound and a naive baseline.

Run from the repository root (about three minutes)::

    PYTHONPATH=plugins .venv/bin/python benchmarks/bench_people.py
    PYTHONPATH=plugins .venv/bin/python benchmarks/bench_people.py --people 10000 --repeat 1 --out /tmp/p.md  # quick

The cohort is a synthetic CSV of ``--people`` customers (email, phone, names, city, language, plan,
lifetime value), imported with ``PeopleImportOperator`` (batches of 1000, tag created on the first run)
into a sandbox whose cooldowns are multiplied by ``--scale`` (the client uses the same scale, so the
People endpoints allow one call every ``0.2 × scale`` s each).

- **ours, first run**: upserts and tag additions pipelined (a tag batch follows the upsert batch that
  created its people), both paced by the gate. *Pacing bound*: the slowest endpoint's
  ``(calls − 1) × interval``, the least time any client can take without a 429. *Send wall*: from the
  first request's arrival at the sandbox to the last answer (the sandbox's journal). *Task wall*: the
  whole ``execute``, cohort reading, validation and state writes included.
- **ours, incremental run**: the same cohort with 2 % changed, 1 % left and 1 % new people.
- **naive**: one person per request, ``upsert`` then ``tag`` for each, through the same paced hook.
  Its cost is linear in the number of people, so it runs on ``--naive-people`` and is extrapolated to
  the full cohort (the report says so).

Each run of ours starts from an empty sandbox and an empty state folder; the median of ``--repeat``
runs is reported, plus one first run at ``--also-scale`` (a longer interval). Results go to
``benchmarks/results/people.md``.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-people-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")

from infobip_provider.cooldown import POLICIES, safety_margin  # noqa: E402
from infobip_provider.sandbox.testing import SandboxProcess  # noqa: E402

DEFAULT_OUT = ROOT / "benchmarks" / "results" / "people.md"
FIELD_MAP = {
    "first_name": "firstName",
    "last_name": "lastName",
    "city": "city",
    "language": "preferredLanguage",
    "plan": "plan",
    "lifetime_value": "lifetimeValue",
}
COLUMNS = [
    "customer_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "city",
    "language",
    "plan",
    "lifetime_value",
]
SENDS = ("people.upsert", "tags.add", "tags.remove", "tags.get", "tags.create")
_FIRST = ["Ana", "Ivan", "Emma", "Liam", "Mia", "Noah", "Lena", "Luka", "Priya", "Arjun", "Alice", "Davi"]
_LAST = ["Horvat", "Smith", "Mueller", "Taylor", "Sharma", "Silva", "Babic", "Jones", "Patel", "Souza"]
_CITIES = ["Zagreb", "Split", "Berlin", "London", "Austin", "Mumbai", "Recife", "Chicago"]
_AREAS = [201, 202, 212, 213, 305, 312, 404, 415, 512, 617, 646, 702, 713, 718, 805, 917]


def customers(n: int, seed: int = 7, start: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed + start)
    rows = []
    for i in range(start, start + n):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        rows.append(
            {
                "customer_id": i,
                "email": f"{first}.{last}{i}@example.com".lower(),
                "phone": f"+1 {rng.choice(_AREAS)} {rng.randint(2, 9)}{rng.randint(0, 99):02d} {rng.randint(0, 9999):04d}",
                "first_name": first,
                "last_name": last,
                "city": rng.choice(_CITIES),
                "language": rng.choice(["en", "hr", "de", "pt-BR"]),
                "plan": rng.choice(["free", "basic", "pro", "enterprise"]),
                "lifetime_value": f"{rng.lognormvariate(4, 1):.2f}",
            }
        )
    return rows


def write_csv(path: Path, rows: list[dict[str, Any]]) -> str:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return str(path)


def importer(cohort: str, tag: str) -> Any:
    from infobip_provider.operators.people import PeopleImportOperator

    return PeopleImportOperator(
        task_id="import_people",
        tag=tag,
        cohort_path=cohort,
        external_id_column="customer_id",
        field_map=FIELD_MAP,
        batch_size=1000,
        max_removal_ratio=1.0,
    )


def measure(sandbox: SandboxProcess, since: int, scale: float) -> dict[str, Any]:
    """What the sandbox's journal says about the requests after ``since``.

    ``send_wall``: first arrival to last answer; ``calls``: answered requests (not 429) per endpoint;
    ``bound``/``gate_bound``: the slowest endpoint's ``(calls − 1) × interval`` (plus the gate's margin);
    ``upsert_wall``: first to last upsert arrival; ``tag_trail``: last tag answer after the last upsert answer.
    """
    entries = [e for e in sandbox.journal(since=since) if e["endpoint"] in SENDS]
    if not entries:
        return {
            "send_wall": 0.0,
            "calls": {},
            "bound": 0.0,
            "gate_bound": 0.0,
            "429s": {},
            "upsert_wall": 0.0,
        }
    end = lambda e: e["arrival"] + (e["duration"] or 0.0)  # noqa: E731
    ok = [e for e in entries if e["status"] != 429]
    calls: dict[str, int] = {}
    for e in ok:
        calls[e["endpoint"]] = calls.get(e["endpoint"], 0) + 1
    rejected: dict[str, int] = {}
    for e in entries:
        if e["status"] == 429:
            rejected[e["endpoint"]] = rejected.get(e["endpoint"], 0) + 1
    upserts = [e for e in ok if e["endpoint"] == "people.upsert"]
    tags = [e for e in ok if e["endpoint"] == "tags.add"]
    return {
        "send_wall": max(map(end, entries)) - min(e["arrival"] for e in entries),
        "calls": calls,
        "bound": bound(calls, scale),
        "gate_bound": bound(calls, scale, margin=True),
        "429s": rejected,
        "upsert_wall": (upserts[-1]["arrival"] - upserts[0]["arrival"]) if upserts else 0.0,
        "tag_trail": (max(map(end, tags)) - max(map(end, upserts))) if tags and upserts else 0.0,
        "gaps": [b["arrival"] - a["arrival"] for a, b in itertools.pairwise(upserts)],
    }


def bound(calls: dict[str, int], scale: float, margin: bool = False) -> float:
    """The slowest endpoint's ``(calls − 1) × interval`` (with the gate's safety margin when asked)."""
    spans = []
    for endpoint, n in calls.items():
        interval = POLICIES[endpoint].interval * scale
        spans.append((n - 1) * (interval + (safety_margin(interval) if margin else 0.0)))
    return max(spans or [0.0])


def last_seq(sandbox: SandboxProcess) -> int:
    entries = sandbox.journal()
    return entries[-1]["seq"] if entries else 0


def run_ours(
    sandbox: SandboxProcess, work: Path, rows: list[dict[str, Any]], scale: float, run: int
) -> dict[str, Any]:
    """One first run and one incremental run from an empty sandbox and state."""
    sandbox.reset()
    state = work / f"state-{run}"
    os.environ["AIRFLOW_CONN_INFOBIP_DEFAULT"] = sandbox.conn_json(
        cooldown_scale=scale, cooldown_backend="memory", state_uri=str(state)
    )
    cohort = write_csv(work / "cohort.csv", rows)
    context = {"run_id": f"bench__{run}", "ti": None, "params": {}}
    since = last_seq(sandbox)
    started = time.perf_counter()
    first = importer(cohort, f"bench-{run}").execute(context)
    task_wall = time.perf_counter() - started
    tagged = sum(1 for p in sandbox.state()["people"] if f"bench-{run}" in p["tags"])
    result: dict[str, Any] = {
        **measure(sandbox, since, scale),
        "members": first["members"],
        "shared_phones": first["shared_phones"],
        "tagged_in_sandbox": tagged,
        "task_wall": task_wall,
    }

    # Incremental: 2 % changed, 1 % left, 1 % new.
    n = len(rows)
    changed = [dict(r) for r in rows]
    for r in changed[: n // 50]:
        r["city"] = "Rijeka"
    changed = changed[n // 100 * 3 :] + changed[: n // 50] + customers(n // 100, start=n)
    cohort = write_csv(work / "cohort.csv", changed)
    since = last_seq(sandbox)
    started = time.perf_counter()
    second = importer(cohort, f"bench-{run}").execute({**context, "run_id": f"bench__{run}b"})
    result["incr_task_wall"] = time.perf_counter() - started
    incremental = measure(sandbox, since, scale)
    result["incr_send_wall"] = incremental["send_wall"]
    result["incr_calls"] = incremental["calls"]
    result["incr_bound"] = incremental["bound"]
    result["incr_429s"] = incremental["429s"]
    result["incr_counts"] = {k: second[k] for k in ("created", "updated", "unchanged", "tagged", "untagged")}
    return result


def run_naive(
    sandbox: SandboxProcess, work: Path, rows: list[dict[str, Any]], scale: float
) -> dict[str, Any]:
    """One person per request: upsert, then tag, person after person, through the same paced hook."""
    from infobip_provider.cohorts import FileSource, IdentityColumns, prepare_cohort
    from infobip_provider.hooks.infobip import InfobipHook
    from infobip_provider.people import build_people, parse_field_map, tag_query

    sandbox.reset()
    os.environ["AIRFLOW_CONN_INFOBIP_DEFAULT"] = sandbox.conn_json(
        cooldown_scale=scale, cooldown_backend="memory", state_uri=str(work / "state-naive")
    )
    cohort = write_csv(work / "naive.csv", rows)
    prepared = prepare_cohort(
        FileSource(cohort),
        IdentityColumns(email="email", phone="phone", external_id="customer_id"),
        "email_or_phone",
    )
    people = build_people(prepared.members, parse_field_map(FIELD_MAP)).people
    hook = InfobipHook()
    since = last_seq(sandbox)
    started = time.perf_counter()
    hook.create_tag("naive")
    for person in people:
        hook.upsert_people([person.payload])
        hook.tag_people("naive", [tag_query(person.ref)])
    wall = time.perf_counter() - started
    return {"people": len(people), "wall": wall, **measure(sandbox, since, scale)}


def report(
    args: argparse.Namespace, ours: list[dict[str, Any]], naive: dict[str, Any], slower: dict[str, Any] | None
) -> str:
    med = lambda key: statistics.median(r[key] for r in ours)  # noqa: E731
    medr = lambda f: statistics.median(f(r) for r in ours)  # noqa: E731
    first = ours[0]
    interval = POLICIES["people.upsert"].interval * args.scale
    margin = safety_margin(interval)
    ratio = medr(lambda r: r["send_wall"] / r["bound"])
    gate_ratio = medr(lambda r: r["send_wall"] / r["gate_bound"])
    lane_ratio = medr(lambda r: r["upsert_wall"] / ((r["calls"]["people.upsert"] - 1) * interval))
    factor = first["members"] / naive["people"]
    naive_full = naive["wall"] * factor
    naive_requests = round(sum(naive["calls"].values()) * factor)
    rejected_ours = _sum_429(ours, "429s")
    lines = [
        "# People import benchmark",
        "",
        f"Generated {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} by `benchmarks/bench_people.py "
        f"--people {args.people} --scale {args.scale} --repeat {args.repeat} --naive-people {args.naive_people}`.",
        f"Machine: {platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} at the end (other engineers' test suites shared the machine).",
        "",
        f"Sandbox and client at cooldown_scale {args.scale}: `people.upsert`, `tags.add` and `tags.remove` each "
        f"allow one call every {interval:.3f} s. Cohort: {args.people} synthetic customers in a CSV "
        f"({first['members']} members), batches of 1000, memory gate. Median of {args.repeat} runs, each from an "
        "empty sandbox and state folder. Times come from the sandbox's journal (arrival stamps and handler "
        "durations); calls are answered requests (a 429 and its retry count once).",
        "",
        "## First run: every person created and tagged",
        "",
        "| | ours (pipelined batches of 1000) | naive (one person per request) |",
        "|---|---|---|",
        f"| requests | {sum(first['calls'].values())} ({_calls(first['calls'])}) | {naive_requests} "
        f"(extrapolated from {naive['people']} people: {_calls(naive['calls'])}) |",
        f"| pacing bound: slowest endpoint's (calls − 1) × interval | {med('bound'):.2f} s | "
        f"{(naive['calls'].get('people.upsert', 1) * factor - 1) * interval:.0f} s |",
        f"| send wall: first request → last answer | {med('send_wall'):.2f} s | {naive_full:.0f} s "
        f"(measured {naive['wall']:.1f} s for {naive['people']} people, × {factor:.0f}) |",
        f"| **send wall ÷ pacing bound** (goal ≤ 1.05) | **{ratio:.3f}** | — |",
        f"| send wall ÷ gate bound: (calls − 1) × (interval + the gate's {margin * 1000:.0f} ms margin) = "
        f"{med('gate_bound'):.2f} s | {gate_ratio:.3f} | — |",
        f"| upsert lane alone: first → last upsert ÷ (upserts − 1) × interval | {lane_ratio:.3f} | — |",
        f"| last tag answer after the last upsert answer | {med('tag_trail'):.2f} s | — |",
        f"| accepted upsert arrival gaps, all runs: min / median / max (sandbox rejects < "
        f"{0.98 * interval * 1000:.0f} ms) | {_gap_stats(ours)} | — |",
        f"| task wall (cohort read, validation, state writes included) | {med('task_wall'):.2f} s | — |",
        f"| speed-up over naive (send wall) | **{naive_full / med('send_wall'):.0f}×** | 1× |",
        f"| 429 answers (all runs) | {_fmt_429(rejected_ours)} | {_fmt_429(naive['429s'])} |",
        f"| people tagged in the sandbox | {first['tagged_in_sandbox']} of {first['members']} "
        f"({first['shared_phones']} members share a phone, sent without it) | |",
        "",
        "Runs (send wall / bound / upsert lane / tag trail / task wall, s): "
        + "; ".join(
            f"{r['send_wall']:.2f} / {r['bound']:.2f} / {r['upsert_wall']:.2f} / {r['tag_trail']:.2f} / "
            f"{r['task_wall']:.2f}"
            for r in ours
        ),
        "",
        "## Incremental run: 2 % changed, 1 % left, 1 % new",
        "",
        f"Counts {first['incr_counts']}; requests {_calls(first['incr_calls'])}; send wall "
        f"{med('incr_send_wall'):.2f} s; task wall {med('incr_task_wall'):.2f} s (reading and diffing the "
        f"{args.people}-row cohort; only the changes are sent). 429s: {_fmt_429(_sum_429(ours, 'incr_429s'))}.",
        "",
        *_slower_section(args, slower),
        "## Reading the numbers",
        "",
        f"- The cooldown gate spaces slots by the interval plus a safety margin of {margin * 1000:.0f} ms "
        f"({margin / interval:.1%} of a {interval:.2f} s interval): that margin alone puts the floor of "
        "send wall ÷ pacing bound at about "
        f"{1 + margin / interval:.2f} at this interval; the upsert lane row is that floor plus any lateness "
        "and 429 push-backs.",
        "- A tag batch may only follow the answer to the upsert batch of its people, so the last tag answer "
        "comes one upsert and one tag round trip after the last upsert was sent (the tag trail row).",
        "- What keeps arrivals evenly spaced (the gap row): the hook encodes "
        "each body before it reserves the slot (a 1000-person body took 6-7 ms to encode after the slot "
        "before), the gate's confirmation makes a late wake-up (a lane thread waiting for the GIL while "
        "another decodes a 207 answer) cost its lateness only, and the sandbox process moves what its store "
        "keeps out of the cyclic collector's reach after each job: full collections over 50,000 people "
        "stalled its event loop for 36-147 ms and stamped a request that much late, which made the next one "
        "look too close (3 and 4 false 429s in 3 runs, on two days, before). The hook absorbs a 429 that still comes (slot "
        "pushed back one interval, request repeated, no task retry), at about one interval of send wall "
        "each. Each lane keeps up to 4 batches in flight (the next upsert leaves at its slot while the "
        "previous answer is slow).",
        "- The naive client is paced by the same gate but pays an interval per person: its cost is linear in "
        "the cohort, so extrapolating its measured subset is exact up to noise.",
    ]
    return "\n".join(lines) + "\n"


def _slower_section(args: argparse.Namespace, r: dict[str, Any] | None) -> list[str]:
    if r is None:
        return []
    interval = POLICIES["people.upsert"].interval * args.also_scale
    return [
        f"## The same first run at cooldown_scale {args.also_scale} (one call every {interval:.2f} s, one run)",
        "",
        f"Send wall {r['send_wall']:.2f} s, pacing bound {r['bound']:.2f} s: **ratio "
        f"{r['send_wall'] / r['bound']:.3f}**; gate bound {r['gate_bound']:.2f} s (ratio "
        f"{r['send_wall'] / r['gate_bound']:.3f}); upsert lane {r['upsert_wall']:.2f} s; tag trail "
        f"{r['tag_trail']:.2f} s; 429s: {_fmt_429(r['429s'])}. With a longer interval the gate's margin and the "
        "arrival jitter weigh less; the goal (≤ 1.05) is "
        + ("met." if r["send_wall"] / r["bound"] <= 1.05 else "**not** met in this run."),
        "",
    ]


def _gap_stats(runs: list[dict[str, Any]]) -> str:
    gaps = [g * 1000 for r in runs for g in r.get("gaps", [])]
    if not gaps:
        return "–"
    return f"{min(gaps):.1f} / {statistics.median(gaps):.1f} / {max(gaps):.1f} ms"


def _sum_429(runs: list[dict[str, Any]], key: str) -> dict[str, int]:
    total: dict[str, int] = {}
    for r in runs:
        for endpoint, n in r[key].items():
            total[endpoint] = total.get(endpoint, 0) + n
    return total


def _fmt_429(counts: dict[str, int]) -> str:
    return ", ".join(f"{e} {n}" for e, n in sorted(counts.items())) if counts else "0"


def _calls(calls: dict[str, int]) -> str:
    return ", ".join(f"{e} {n}" for e, n in sorted(calls.items()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=50_000)
    parser.add_argument("--scale", type=float, default=1.0, help="cooldown_scale of sandbox and client")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--naive-people", type=int, default=150)
    parser.add_argument(
        "--also-scale", type=float, default=2.5, help="one more first run at this scale (0: none)"
    )
    parser.add_argument("--out", default=str(DEFAULT_OUT))
    args = parser.parse_args(argv)
    rows = customers(args.people)
    with (
        tempfile.TemporaryDirectory(prefix="bench-people-") as tmp,
        SandboxProcess(api_key="bench-key", cooldown_scale=args.scale) as sandbox,
    ):
        work = Path(tmp)
        ours = []
        for run in range(args.repeat):
            ours.append(run_ours(sandbox, work, rows, args.scale, run))
            r = ours[-1]
            print(
                f"run {run}: send {r['send_wall']:.2f}s bound {r['bound']:.2f}s ratio {r['send_wall'] / r['bound']:.3f} "
                f"upsert lane {r['upsert_wall']:.2f}s trail {r['tag_trail']:.2f}s task {r['task_wall']:.2f}s "
                f"429s {r['429s']}",
                flush=True,
            )
        naive = run_naive(sandbox, work, rows[: args.naive_people], args.scale)
        print(f"naive: {naive['people']} people in {naive['wall']:.2f}s", flush=True)
    slower = None
    if args.also_scale:
        with (
            tempfile.TemporaryDirectory(prefix="bench-people-") as tmp,
            SandboxProcess(api_key="bench-key", cooldown_scale=args.also_scale) as sandbox,
        ):
            slower = run_ours(sandbox, Path(tmp), rows, args.also_scale, 0)
        print(f"scale {args.also_scale}: ratio {slower['send_wall'] / slower['bound']:.3f}", flush=True)
    text = report(args, ours, naive, slower)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
