"""Benchmark: a list synced from a SQL cohort, full read against ``diff_in_warehouse`` side by side.

Run from the repository root::

    PYTHONPATH=plugins .venv/bin/python benchmarks/bench_pushdown.py --members 1000000

For each warehouse (a SQLite file, and PostgreSQL at ``--postgres`` when it answers) a table of
``--members`` emails is written; two lists are synced from ``SELECT email FROM <table> ORDER BY n``
into the sandbox, one reading the cohort in full every run, one with ``diff_in_warehouse=True`` (its
first run reads in full: there is no snapshot yet). Then 0.5 % of the rows are deleted and as many
inserted, and both lists sync again: task wall, peak RSS (``wait4``) and the rows that travelled
from the warehouse. Each run is a fresh process (``bench_scale.py``'s worker). Results go to
``benchmarks/results/pushdown.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_scale import ROOT, run_worker

DEFAULT_OUT = ROOT / "benchmarks" / "results" / "pushdown.md"
TABLE = "bench_pushdown_cohort"


def _fill(execute: Any, executemany: Any, start: int, stop: int) -> None:
    block = 100_000
    for first in range(start, stop, block):
        rows = [(i, f"member{i}@example.com") for i in range(first, min(first + block, stop))]
        executemany(f"INSERT INTO {TABLE} (n, email) VALUES (?, ?)", rows)


def sqlite_warehouse(folder: Path, members: int) -> tuple[str, Any, Any]:
    path = folder / "warehouse.db"
    db = sqlite3.connect(path)
    db.execute(f"CREATE TABLE {TABLE} (n INTEGER PRIMARY KEY, email TEXT)")
    _fill(db.execute, db.executemany, 0, members)
    db.commit()

    def change(step: int) -> None:
        db.execute(f"DELETE FROM {TABLE} WHERE n < ?", (step,))
        _fill(db.execute, db.executemany, members, members + step)
        db.commit()

    return json.dumps({"conn_type": "sqlite", "host": str(path)}), change, db.close


def postgres_warehouse(dsn: dict[str, Any], members: int) -> tuple[str, Any, Any] | None:
    try:
        import psycopg2
    except ImportError:
        return None
    try:
        db = psycopg2.connect(connect_timeout=3, **dsn)
    except psycopg2.OperationalError:
        return None
    cursor = db.cursor()
    cursor.execute(f"DROP TABLE IF EXISTS {TABLE}")
    cursor.execute(f"CREATE TABLE {TABLE} (n INTEGER PRIMARY KEY, email TEXT)")

    def many(sql: str, rows: list[tuple[Any, ...]]) -> None:
        cursor.executemany(sql.replace("?", "%s"), rows)

    _fill(cursor.execute, many, 0, members)
    db.commit()

    def change(step: int) -> None:
        cursor.execute(f"DELETE FROM {TABLE} WHERE n < %s", (step,))
        _fill(cursor.execute, many, members, members + step)
        db.commit()

    def drop() -> None:
        cursor.execute(f"DROP TABLE IF EXISTS {TABLE}")
        db.commit()
        db.close()

    conn = {
        "conn_type": "postgres",
        "host": dsn["host"],
        "port": dsn["port"],
        "login": dsn["user"],
        "schema": dsn["dbname"],
    }
    return json.dumps(conn), change, drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--scale", type=float, default=0.0005)
    parser.add_argument("--postgres", default="host=127.0.0.1 port=5432 user=postgres dbname=test")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()

    import sys

    sys.path.insert(0, str(ROOT / "plugins"))
    from infobip_provider.sandbox.testing import SandboxProcess

    dsn: dict[str, Any] = dict(part.split("=", 1) for part in args.postgres.split())
    dsn["port"] = int(dsn.get("port", 5432))
    lines: list[str] = []
    started = time.monotonic()
    sql = f"SELECT email FROM {TABLE} ORDER BY n"
    with (
        SandboxProcess(api_key="pushdown-key", cooldown_scale=args.scale) as sandbox,
        tempfile.TemporaryDirectory() as tmp,
    ):
        work = Path(tmp)
        warehouses = [("SQLite file", sqlite_warehouse(work, args.members))]
        postgres = postgres_warehouse(dsn, args.members)
        if postgres is not None:
            warehouses.append(("PostgreSQL (loopback)", postgres))
        for label, (conn_json, change, close) in warehouses:
            sandbox.reset()
            conn = sandbox.conn_json(
                cooldown_scale=args.scale, cooldown_backend="file", state_uri=str(work / label)
            )
            ways = [("full read", []), ("diff_in_warehouse", ["--pushdown"])]
            for run in ("first sync", "rerun"):
                if run == "rerun":
                    change(args.members // 200)  # 0.5 % leave, 0.5 % join
                for way, flag in ways:
                    extra = ["--cohort-sql", sql, "--warehouse", conn_json, "--list-name", way, *flag]
                    result = run_worker("list", ROOT, None, conn, f"{way}-{run}".replace(" ", "-"), extra)
                    summary = result["summary"]
                    pushed = summary.get("diff_in_warehouse") or {}
                    travelled = (
                        f"{pushed.get('rows_travelled', 0):,} rows + {pushed.get('snapshot_ids_travelled', 0):,} ids "
                        f"(warehouse {pushed.get('seconds', 0):.1f} s, of which writing the snapshot "
                        f"{pushed.get('seconds_writing_snapshot', 0):.1f} s)"
                        if pushed
                        else f"{args.members:,} rows"
                    )
                    lines.append(
                        f"| {label} | {way} | {run} | {result['wall']:.1f} | {result['rss_gb']:.2f} | "
                        f"{summary.get('added', 0)} / {summary.get('removed', 0)} | {travelled} |"
                    )
                    print(lines[-1], flush=True)
            close()
        too_many = sum(r["429s"] for r in sandbox.counters().values())
    header = [
        "# Diff in the warehouse: a list from a SQL cohort, full read against push-down",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · Python {platform.python_version()} · {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} at the end · `python benchmarks/bench_pushdown.py --members "
        f"{args.members}` · one run each, {time.monotonic() - started:.0f} s in all · 429 answers: **{too_many}**",
        "",
        "Each run is a fresh process; *peak RSS* is its own (`wait4`). The rerun follows 0.5 % of the rows "
        "deleted and as many inserted. *Travelled*: what came from the warehouse into the task.",
        "",
        "| warehouse | how | run | task wall s | peak RSS GB | added / removed | travelled |",
        "|---|---|---|---:|---:|---|---|",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(header + lines) + "\n")
    print("\n".join(header + lines))


if __name__ == "__main__":
    main()
