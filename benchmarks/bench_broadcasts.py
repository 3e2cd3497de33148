"""Benchmark: 100,000 personalised emails and WhatsApp template messages to the sandbox, beside a naive baseline.

Run from the repository root::

    PYTHONPATH=plugins .venv/bin/python benchmarks/bench_broadcasts.py
    PYTHONPATH=plugins .venv/bin/python benchmarks/bench_broadcasts.py --channel email --recipients 20000 --repeat 1

- **ours**: ``EmailBroadcastOperator`` (inline subject and HTML, three placeholders per recipient sent
  as a JSON string) or ``WhatsAppBroadcastOperator`` (a template with two body placeholders) on a
  100,000-row CSV cohort: 100 requests of 1000 messages, each written to the ledger (fsync) before it
  leaves and acknowledged after. *Task wall*: the whole ``execute`` (CSV, normalisation, placeholders,
  ledger, send); *send wall*: first request's arrival at the sandbox to the last answer (its journal).
- **naive baseline**: one request per recipient, sequential, on one kept-alive session, no ledger.
  Measured on ``--naive-recipients`` (default 2,000) and **extrapolated** to the full cohort.

After each of our runs the sandbox's store is checked: exactly one message per recipient.
Medians of ``--repeat`` runs go to ``benchmarks/results/email.md`` and ``whatsapp.md``.
"""

from __future__ import annotations

import argparse
import json
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
os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-broadcasts-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")

from infobip_provider.sandbox.testing import SandboxProcess  # noqa: E402

SUBJECT = "{{first_name}}, your code {{code}}"
HTML = "<p>Hi {{first_name}}, show {{code}} at the till before {{day}}.</p>"
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")
ENDPOINT = {"email": "email.send", "whatsapp": "whatsapp.template"}
STORE = {"email": ("emails", "destination"), "whatsapp": ("whatsapp", "to")}


class _TI:
    def xcom_push(self, key: str, value: Any) -> None:
        pass


def number(i: int) -> str:
    return f"4179{3000000 + i:07d}"


def address(i: int) -> str:
    return f"member{i}@example.com"


def code(i: int) -> str:
    return f"C{i * 7919 % 1000003:07d}"


def write_cohort(path: Path, n: int) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("email,phone,first_name,code,day\n")
        for i in range(n):
            fh.write(f"{address(i)},+{number(i)},Name{i},{code(i)},{DAYS[i % 5]}\n")


def operator(channel: str, cohort: Path) -> Any:
    if channel == "email":
        from infobip_provider.operators.email import EmailBroadcastOperator

        return EmailBroadcastOperator(
            task_id="broadcast",
            cohort_path=str(cohort),
            sender="Acme <no-reply@acme.example>",
            subject=SUBJECT,
            html=HTML,
        )
    from infobip_provider.operators.whatsapp import WhatsAppBroadcastOperator

    return WhatsAppBroadcastOperator(
        task_id="broadcast",
        cohort_path=str(cohort),
        sender="447860099299",
        template_name="code_reminder",
        language="en",
        placeholders=["first_name", "code"],
    )


def ours(channel: str, sandbox: SandboxProcess, state: Path, cohort: Path, run_id: str) -> dict[str, Any]:
    os.environ["AIRFLOW_CONN_INFOBIP_DEFAULT"] = sandbox.conn_json(
        cooldown_scale=sandbox.cooldown_scale, cooldown_backend="file", state_uri=str(state)
    )
    task = operator(channel, cohort)
    since = max((e["seq"] for e in sandbox.journal()), default=0)
    started = time.monotonic()
    summary = task.execute({"run_id": run_id, "ti": _TI()})
    task_wall = time.monotonic() - started
    sends = [e for e in sandbox.journal(since=since) if e["endpoint"] == ENDPOINT[channel]]
    send_wall = max(e["arrival"] + (e["duration"] or 0) for e in sends) - min(e["arrival"] for e in sends)
    return {"summary": summary, "task_wall": task_wall, "send_wall": send_wall, "requests": len(sends)}


def check_exactly_once(channel: str, sandbox: SandboxProcess, bulk_id: str, n: int) -> None:
    kind, key = STORE[channel]
    per = Counter(m[key] for m in sandbox.state()[kind] if m["bulkId"] == bulk_id)
    assert len(per) == n and max(per.values()) == 1, "not exactly one message per recipient"


def naive_body(channel: str, i: int) -> dict[str, Any]:
    if channel == "email":
        values = {"first_name": f"Name{i}", "code": code(i), "day": DAYS[i % 5]}
        return {
            "messages": [
                {
                    "sender": "Acme <no-reply@acme.example>",
                    "destinations": [
                        {"to": [{"destination": address(i), "placeholders": json.dumps(values)}]}
                    ],
                    "content": {"subject": SUBJECT, "html": HTML},
                }
            ]
        }
    return {
        "messages": [
            {
                "from": "447860099299",
                "to": number(i),
                "content": {
                    "templateName": "code_reminder",
                    "templateData": {"body": {"placeholders": [f"Name{i}", code(i)]}},
                    "language": "en",
                },
            }
        ]
    }


def naive(channel: str, sandbox: SandboxProcess, n: int) -> dict[str, Any]:
    import requests

    session = requests.Session()
    session.headers["Authorization"] = f"App {sandbox.api_key}"
    url = sandbox.url("/email/4/messages" if channel == "email" else "/whatsapp/1/message/template")
    started = time.monotonic()
    for i in range(n):
        response = session.post(url, json=naive_body(channel, i), timeout=30)
        response.raise_for_status()
    wall = time.monotonic() - started
    return {"wall": wall, "requests": n, "rate": n / wall}


def report(
    channel: str, args: argparse.Namespace, runs: list[dict], naive_runs: list[dict], took: float
) -> str:
    n = args.recipients
    task = statistics.median(r["task_wall"] for r in runs)
    send = statistics.median(r["send_wall"] for r in runs)
    requests = statistics.median(r["requests"] for r in runs)
    naive_rate = statistics.median(r["rate"] for r in naive_runs)
    naive_wall = n / naive_rate
    name = "EmailBroadcastOperator" if channel == "email" else "WhatsAppBroadcastOperator"
    what = (
        f"an inline subject and HTML (`{SUBJECT}`), three placeholders per recipient as a JSON string"
        if channel == "email"
        else "a template with two body placeholders per recipient"
    )
    lines = [
        f"# {'Email' if channel == 'email' else 'WhatsApp'} broadcast benchmark",
        "",
        f"Generated {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `benchmarks/bench_broadcasts.py --channel {channel} "
        f"--recipients {n} --naive-recipients {args.naive_recipients} --repeat {args.repeat}`.",
        f"Machine: {platform.platform()}, Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"load average at the end {os.getloadavg()[0]:.1f} (the sandbox runs on the same CPUs).",
        "",
        f"{n:,} recipients, {what}. Medians of {args.repeat} runs. After every run of ours the sandbox held "
        "exactly one message per recipient.",
        "",
        "| run | requests | wall s | messages/s |",
        "|---|---:|---:|---:|",
        f"| ours: {name}, task (CSV, normalise, placeholders, ledger, send) | {requests:,.0f} "
        f"| {task:.2f} | {n / task:,.0f} |",
        f"| ours: the sending part (first request to last answer) | {requests:,.0f} | {send:.2f} | {n / send:,.0f} |",
        f"| naive: one request per recipient, measured on {args.naive_recipients:,}, **extrapolated** to {n:,} "
        f"| {n:,} | {naive_wall:.1f} | {naive_rate:,.0f} |",
        "",
        f"Ours makes {n / requests:,.0f}× fewer requests and is {naive_wall / task:.1f}× faster end to end "
        f"({naive_wall / send:.1f}× on the sending part), with a durable ledger entry before and after every "
        "request.",
        "",
        f"Benchmark time for this channel: {took:.0f} s.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--channel", choices=("email", "whatsapp", "both"), default="both")
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--naive-recipients", type=int, default=2_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    channels = ("email", "whatsapp") if args.channel == "both" else (args.channel,)
    with (
        tempfile.TemporaryDirectory(prefix="bench-broadcasts-") as tmp,
        SandboxProcess(api_key="bench-key", cooldown_scale=0.01) as sandbox,
    ):
        cohort = Path(tmp) / "cohort.csv"
        write_cohort(cohort, args.recipients)
        for channel in channels:
            begun = time.monotonic()
            runs: list[dict[str, Any]] = []
            naive_runs: list[dict[str, Any]] = []
            for i in range(args.repeat):
                sandbox.reset()
                run = ours(channel, sandbox, Path(tmp) / f"{channel}-state{i}", cohort, f"manual__bench{i}")
                check_exactly_once(channel, sandbox, run["summary"]["bulk_id"], args.recipients)
                runs.append(run)
                print(
                    f"{channel} ours run {i + 1}: task {run['task_wall']:.2f} s, send {run['send_wall']:.2f} s, "
                    f"{run['requests']} requests",
                    flush=True,
                )
                sandbox.reset()
                naive_runs.append(naive(channel, sandbox, args.naive_recipients))
                print(f"{channel} naive run {i + 1}: {naive_runs[-1]['rate']:.0f} messages/s", flush=True)
            text = report(channel, args, runs, naive_runs, time.monotonic() - begun)
            args.out_dir.mkdir(parents=True, exist_ok=True)
            (args.out_dir / f"{channel}.md").write_text(text)
            print(text, flush=True)


if __name__ == "__main__":
    main()
