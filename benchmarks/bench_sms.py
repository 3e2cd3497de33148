"""Benchmark: 100,000 personalised SMS to the sandbox, exactly once, beside a naive baseline.

Run from the repository root::

    PYTHONPATH=plugins .venv/bin/python benchmarks/bench_sms.py
    PYTHONPATH=plugins .venv/bin/python benchmarks/bench_sms.py --recipients 20000 --repeat 1 --out /tmp/s.md

- **ours**: ``SmsBroadcastOperator`` on a 100,000-row CSV cohort, every text personalised
  (``Hi {{first_name}}, your code is {{code}}``): 100 requests of 1000 messages, each batch written
  to the ledger (fsync) before it leaves and acknowledged after. *Task wall*: the whole ``execute``
  (CSV, phone normalisation, rendering, segment counting, ledger); *send wall*: first request's
  arrival at the sandbox to the last answer (the sandbox's journal).
- **naive baseline**: one ``POST /sms/3/messages`` per recipient, sequential, on one kept-alive
  session, no ledger. Measured on ``--naive-recipients`` (default 2,000) and **extrapolated** to
  the full cohort at the measured rate.

After each of our runs the sandbox's store is checked: exactly one message per recipient.
The median of ``--repeat`` runs is reported; results go to ``benchmarks/results/sms.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "plugins"))
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-sms-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")

from infobip_provider.sandbox.testing import SandboxProcess  # noqa: E402

DEFAULT_OUT = ROOT / "benchmarks" / "results" / "sms.md"
TEXT = "Hi {{first_name}}, your code is {{code}}. Show it at the till before {{day}}."
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")


class _TI:
    def xcom_push(self, key: str, value: Any) -> None:
        pass


def number(i: int) -> str:
    return f"4179{3000000 + i:07d}"


def write_cohort(path: Path, n: int) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("phone,first_name,code,day\n")
        for i in range(n):
            fh.write(f"+{number(i)},Name{i},C{i * 7919 % 1000003:07d},{DAYS[i % 5]}\n")


def ours(sandbox: SandboxProcess, state: Path, cohort: Path, run_id: str) -> dict[str, Any]:
    from infobip_provider.operators.sms import SmsBroadcastOperator

    os.environ["AIRFLOW_CONN_INFOBIP_DEFAULT"] = sandbox.conn_json(
        cooldown_scale=sandbox.cooldown_scale, cooldown_backend="file", state_uri=str(state), sender="InfoSMS"
    )
    operator = SmsBroadcastOperator(task_id="broadcast", text=TEXT, cohort_path=str(cohort))
    since = max((e["seq"] for e in sandbox.journal()), default=0)
    started = time.monotonic()
    summary = operator.execute({"run_id": run_id, "ti": _TI()})  # type: ignore[arg-type]
    task_wall = time.monotonic() - started
    sends = [e for e in sandbox.journal(since=since) if e["endpoint"] == "sms.send"]
    send_wall = max(e["arrival"] + (e["duration"] or 0) for e in sends) - min(e["arrival"] for e in sends)
    return {"summary": summary, "task_wall": task_wall, "send_wall": send_wall, "requests": len(sends)}


def check_exactly_once(sandbox: SandboxProcess, bulk_id: str, n: int) -> None:
    per_number = Counter(m["destination"] for m in sandbox.state()["messages"] if m["bulkId"] == bulk_id)
    assert len(per_number) == n and max(per_number.values()) == 1, "not exactly one message per recipient"


def naive(sandbox: SandboxProcess, n: int) -> dict[str, Any]:
    import requests

    session = requests.Session()
    session.headers["Authorization"] = f"App {sandbox.api_key}"
    url = sandbox.url("/sms/3/messages")
    started = time.monotonic()
    for i in range(n):
        body = {
            "messages": [
                {
                    "sender": "InfoSMS",
                    "destinations": [{"to": number(i)}],
                    "content": {
                        "text": f"Hi Name{i}, your code is C{i * 7919 % 1000003:07d}. Show it at the till."
                    },
                }
            ]
        }
        response = session.post(url, json=body, timeout=30)
        response.raise_for_status()
    wall = time.monotonic() - started
    return {"wall": wall, "requests": n, "rate": n / wall}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--naive-recipients", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    begun = time.monotonic()
    runs: list[dict[str, Any]] = []
    naive_runs: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="bench-sms-") as tmp,
        SandboxProcess(api_key="bench-key", cooldown_scale=0.01) as sandbox,
    ):
        cohort = Path(tmp) / "cohort.csv"
        write_cohort(cohort, args.recipients)
        for i in range(args.repeat):
            sandbox.reset()
            run = ours(sandbox, Path(tmp) / f"state{i}", cohort, f"manual__bench{i}")
            check_exactly_once(sandbox, run["summary"]["bulk_id"], args.recipients)
            runs.append(run)
            print(
                f"ours run {i + 1}: task {run['task_wall']:.2f} s, send {run['send_wall']:.2f} s, "
                f"{run['requests']} requests",
                flush=True,
            )
            sandbox.reset()
            naive_runs.append(naive(sandbox, args.naive_recipients))
            print(f"naive run {i + 1}: {naive_runs[-1]['rate']:.0f} messages/s", flush=True)

    n = args.recipients
    task = statistics.median(r["task_wall"] for r in runs)
    send = statistics.median(r["send_wall"] for r in runs)
    requests = statistics.median(r["requests"] for r in runs)
    naive_rate = statistics.median(r["rate"] for r in naive_runs)
    naive_wall = n / naive_rate
    segments = runs[0]["summary"]["segments"]
    load = os.getloadavg()[0]
    lines = [
        "# SMS broadcast benchmark",
        "",
        f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `benchmarks/bench_sms.py --recipients {n} "
        f"--naive-recipients {args.naive_recipients} --repeat {args.repeat}`.",
        f"Machine: {platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"load average at the end {load:.1f} (other work shared the machine; the sandbox runs on the same CPUs).",
        "",
        f"{n:,} recipients, every text personalised (`{TEXT}`), {segments:,} segments. "
        f"Medians of {args.repeat} runs. After every run of ours the sandbox held exactly one message per "
        "recipient.",
        "",
        "| run | requests | wall s | messages/s |",
        "|---|---:|---:|---:|",
        f"| ours: SmsBroadcastOperator, task (CSV, normalise, render, count, ledger, send) | {requests:,.0f} "
        f"| {task:.2f} | {n / task:,.0f} |",
        f"| ours: the sending part (first request to last answer) | {requests:,.0f} | {send:.2f} | {n / send:,.0f} |",
        f"| naive: one request per recipient, measured on {args.naive_recipients:,}, **extrapolated** to {n:,} "
        f"| {n:,} | {naive_wall:.1f} | {naive_rate:,.0f} |",
        "",
        f"Ours makes {n / requests:,.0f}× fewer requests and is {naive_wall / task:.1f}× faster end to end "
        f"({naive_wall / send:.1f}× on the sending part), with a durable ledger entry before and after every "
        "request (the naive loop has none: a crash in it cannot tell who already got a message).",
        "",
        f"Total benchmark time: {time.monotonic() - begun:.0f} s.",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
