"""Benchmark: list syncs of millions of members, task wall, time per phase and peak memory.

Run from the repository root::

    PYTHONPATH=plugins .venv/bin/python benchmarks/bench_scale.py --members 1000000 10000000
    # with the per-row implementation side by side (any checkout of it, e.g. a git worktree):
    git worktree add /tmp/per-row b4176fa
    PYTHONPATH=plugins .venv/bin/python benchmarks/bench_scale.py --members 1000000 --baseline /tmp/per-row

For each size: a cohort file of plain emails is written, ``CohortToListOperator`` syncs it into an
empty list in the sandbox (the first sync), then 0.5 % of the members leave and as many new ones join
and it syncs again (the rerun). Each run is a fresh Python process, so its peak RSS (``wait4``) is
the task's own. Cooldowns are scaled by ``--scale`` in the sandbox and the client alike, so the
send phase is still bound by them (list add every ``10 s × scale``).

``--people N`` adds ``PeopleImportOperator`` on N people (email, phone, names, plan, country): a
first run and an unchanged rerun. ``--sms N`` adds a dry run of ``SmsBroadcastOperator`` that
plans N personalised messages. Results go to ``benchmarks/results/scale.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "scale.md"

#: The issue's measurements of the per-row implementation on this machine (task wall s, peak RSS GB).
PER_ROW = {
    ("list", 2_000_000, "first sync"): (49, 1.1),
    ("list", 2_000_000, "rerun"): (50, 1.35),
    ("list", 10_000_000, "first sync"): (189, 3.9),
    ("list", 10_000_000, "rerun"): (244, 5.0),
    ("people", 1_000_000, "first run"): (197, 2.8),
    ("people", 1_000_000, "unchanged rerun"): (86, 2.6),
}


# ------------------------------------------------------------------------------------------ the worker
def worker(args: argparse.Namespace) -> None:
    """Run one operator in this process and print its wall time and summary as JSON."""
    sys.path.insert(0, str(Path(args.root) / "plugins"))
    os.environ["AIRFLOW_CONN_INFOBIP_DEFAULT"] = args.conn

    class TI:
        def xcom_push(self, key: str, value: Any) -> None:
            pass

    if args.worker == "list":
        from infobip_provider.operators.lists import CohortToListOperator

        if args.cohort_sql:  # a SQL cohort on the connection ``args.warehouse`` (bench_pushdown.py)
            os.environ["AIRFLOW_CONN_BENCH_WAREHOUSE"] = args.warehouse
            operator: Any = CohortToListOperator(
                task_id="sync",
                list_name=args.list_name,
                cohort_sql=args.cohort_sql,
                cohort_conn_id="bench_warehouse",
                diff_in_warehouse=args.pushdown,
            )
        else:
            operator = CohortToListOperator(task_id="sync", list_name=args.list_name, cohort_path=args.cohort)
    elif args.worker == "people":
        from infobip_provider.operators.people import PeopleImportOperator

        operator = PeopleImportOperator(
            task_id="people",
            tag="scale",
            cohort_path=args.cohort,
            field_map={"first_name": "firstName", "last_name": "lastName", "plan": "customAttributes.plan"},
        )
    else:
        from infobip_provider.operators.sms import SmsBroadcastOperator

        operator = SmsBroadcastOperator(
            task_id="sms",
            cohort_path=args.cohort,
            text="Hi {{first_name}}, your {{plan}} plan renews soon",
            sender="Shop",
            dry_run=True,
        )
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    started = time.monotonic()
    summary = operator.execute({"run_id": args.run_id, "ti": TI()})
    wall = time.monotonic() - started
    print(json.dumps({"wall": wall, "summary": summary, "rss_before_gb": before}, default=str))


def run_worker(
    kind: str, root: Path, cohort: Path | None, conn: str, run_id: str, extra: list[str] | None = None
) -> dict[str, Any]:
    """One operator run in a fresh process: its result and its peak RSS in GB."""
    cmd = [sys.executable, __file__, "--worker", kind, "--root", str(root), "--cohort", str(cohort)]
    cmd += ["--conn", conn, "--run-id", run_id, *(extra or [])]
    env = {**os.environ, "AIRFLOW_HOME": tempfile.mkdtemp(prefix="bench-scale-airflow-")}
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    env.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
    env["PYTHONPATH"] = str(root / "plugins")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text, log = out.read().decode(), err.read().decode()
    if process.returncode:
        raise SystemExit(f"{kind} run {run_id} failed ({process.returncode}):\n{log[-4000:]}")
    result = json.loads(text.strip().splitlines()[-1])
    result["rss_gb"] = usage.ru_maxrss / 1024**2  # ru_maxrss is in KiB on Linux
    return result


# --------------------------------------------------------------------------------------------- cohorts
def write_emails(path: Path, start: int, stop: int, new: int = 0) -> None:
    """A cohort of plain emails: members ``start..stop`` then ``new`` newcomers (written in blocks)."""
    with path.open("w") as fh:
        fh.write("email\n")
        for block in range(start, stop, 1_000_000):
            fh.write("".join(f"member{i}@example.com\n" for i in range(block, min(block + 1_000_000, stop))))
        fh.write("".join(f"newcomer{i}@example.com\n" for i in range(new)))


def write_people(path: Path, n: int) -> None:
    """People with an email and a distinct, valid US number each (exchanges 200-999 of area code 415)."""
    plans, countries = ("free", "pro", "team"), ("US", "GB", "DE", "HR")
    with path.open("w") as fh:
        fh.write("email,phone,first_name,last_name,plan,country\n")
        for block in range(0, n, 500_000):
            fh.write(
                "".join(
                    f"person{i}@example.com,+1415{2_000_000 + i % 8_000_000:07d},Ana{i % 977},Lee{i % 541},"
                    f"{plans[i % 3]},{countries[i % 4]}\n"
                    for i in range(block, min(block + 500_000, n))
                )
            )


# ------------------------------------------------------------------------------------------------ main
def phases(result: dict[str, Any]) -> str:
    got = result["summary"].get("phases") or {}
    return ", ".join(f"{k} {v:.1f}" for k, v in got.items()) or "–"


def row(kind: str, size: int, run: str, result: dict[str, Any], impl: str) -> str:
    summary = result["summary"]
    calls = sum((summary.get("calls") or {}).values())
    before = PER_ROW.get((kind, size, run))
    then = f"{before[0]} s, {before[1]} GB" if before else "–"
    return (
        f"| {kind} | {impl} | {size:,} | {run} | {result['wall']:.1f} | {result['rss_gb']:.2f} | "
        f"{phases(result)} | {calls} | {then} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, nargs="*", default=[1_000_000, 10_000_000])
    parser.add_argument("--people", type=int, default=0)
    parser.add_argument("--sms", type=int, default=0)
    parser.add_argument("--scale", type=float, default=0.0005)
    parser.add_argument("--baseline", type=Path, help="a checkout of the per-row implementation")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--worker", choices=["list", "people", "sms"])
    parser.add_argument("--root", default=str(ROOT))
    parser.add_argument("--cohort")
    parser.add_argument("--conn")
    parser.add_argument("--run-id")
    parser.add_argument("--list-name", default="scale")
    parser.add_argument("--cohort-sql")
    parser.add_argument("--warehouse", help="the Airflow connection (JSON) of --cohort-sql")
    parser.add_argument("--pushdown", action="store_true", help="diff_in_warehouse=True")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    sys.path.insert(0, str(ROOT / "plugins"))
    from infobip_provider.sandbox.testing import SandboxProcess

    impls = [("ours", ROOT)] + ([("per-row", args.baseline.resolve())] if args.baseline else [])
    lines: list[str] = []
    started = time.monotonic()
    with (
        SandboxProcess(api_key="scale-key", cooldown_scale=args.scale) as sandbox,
        tempfile.TemporaryDirectory() as tmp,
    ):
        work = Path(tmp)

        def conn(state: Path) -> str:
            return sandbox.conn_json(cooldown_scale=args.scale, cooldown_backend="file", state_uri=str(state))

        for size in args.members:
            first, changed = work / f"first-{size}.csv", work / f"changed-{size}.csv"
            write_emails(first, 0, size)
            step = size // 200  # 0.5 % leave, 0.5 % join
            write_emails(changed, step, size, new=step)
            for impl, root in impls:
                sandbox.reset()
                state = work / f"state-{impl}-{size}"
                for run, cohort in (("first sync", first), ("rerun", changed)):
                    result = run_worker("list", root, cohort, conn(state), f"{run}-{size}".replace(" ", "-"))
                    lines.append(row("list", size, run, result, impl))
                    print(lines[-1], flush=True)
        if args.people:
            people = work / "people.csv"
            write_people(people, args.people)
            for impl, root in impls:
                sandbox.reset()
                state = work / f"people-{impl}"
                for run in ("first run", "unchanged rerun"):
                    result = run_worker("people", root, people, conn(state), run.replace(" ", "-"))
                    lines.append(row("people", args.people, run, result, impl))
                    print(lines[-1], flush=True)
        if args.sms:
            people = work / "sms.csv"
            write_people(people, args.sms)
            for impl, root in impls:
                result = run_worker("sms", root, people, conn(work / f"sms-{impl}"), "plan")
                lines.append(row("sms plan", args.sms, "dry run", result, impl))
                print(lines[-1], flush=True)
        too_many = sum(r["429s"] for r in sandbox.counters().values())

    header = [
        "# Scale benchmark: millions of members",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · Python {platform.python_version()} · {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} at the end · `python benchmarks/bench_scale.py "
        f"--members {' '.join(map(str, args.members))}"
        + (f" --people {args.people}" if args.people else "")
        + (f" --sms {args.sms}" if args.sms else "")
        + f" --scale {args.scale}`"
        + (" with the per-row implementation beside" if args.baseline else "")
        + f" · one run each, {time.monotonic() - started:.0f} s in all · 429 answers: **{too_many}**",
        "",
        "Each run is a fresh process; *peak RSS* is its own (`wait4`). Phases in seconds: resume (journal"
        " and snapshot read), prepare (read, normalise, deduplicate the cohort, write its rejects), plan"
        " (the diff), send (the calls, paced by the cooldowns), fold (the new snapshot written).",
        "",
        "| flow | implementation | members | run | task wall s | peak RSS GB | phases s | calls | per-row "
        "(issue #19, same machine) |",
        "|---|---|---:|---|---:|---:|---|---:|---|",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(header + lines) + "\n")
    print("\n".join(header + lines))


if __name__ == "__main__":
    main()
