"""Run InfobipReportsToSqlOperator once in its own process (the kill tests' victim).

Environment: the Infobip and warehouse connections, ``REPORTS_TABLE``, optionally
``REPORTS_PAGE_SIZE`` (default 100) and ``REPORTS_CHANNELS`` (``sms,email``; default ``sms``);
prints ``ready`` once imported.

``KILL_AT=<point>:<n>`` makes the process SIGKILL itself the ``n``-th time it reaches ``point``
between fetching a page and inserting it: ``fetched`` (a non-empty page came back, nothing written
yet: the answer is lost with the process), ``landed`` (the page is in the state store),
``upserting`` (the rows are written, the transaction is not committed) or ``upserted`` (committed,
the landed page not yet removed).
"""

from __future__ import annotations

import os
import signal
import sys
from contextlib import closing
from typing import Any

from infobip_provider.state import TargetState
from infobip_provider.transfers.reports_to_sql import InfobipReportsToSqlOperator
from infobip_provider.warehouse import SqlTable
from tests.integration.conftest import run_operator

KILL_POINTS = ("fetched", "landed", "upserting", "upserted")


def die() -> None:
    print("killed", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


def arm(point: str, n: int) -> None:
    """Patch the transfer so that the process kills itself the ``n``-th time it reaches ``point``."""
    reached = [0]

    def hit() -> bool:
        reached[0] += 1
        return reached[0] == n

    if point == "fetched":
        fetch = InfobipReportsToSqlOperator.fetch

        def fetched(self: Any, hook: Any, channel: str, limit: int) -> list[dict[str, Any]]:
            items = fetch(self, hook, channel, limit)
            if items and hit():
                die()
            return items

        InfobipReportsToSqlOperator.fetch = fetched  # type: ignore[method-assign]
    elif point == "landed":
        atomic_write = TargetState._atomic_write

        def landed(self: TargetState, name: str, data: bytes) -> None:
            atomic_write(self, name, data)
            if name.startswith("landed-") and hit():
                die()

        TargetState._atomic_write = landed  # type: ignore[method-assign]
    elif point in ("upserting", "upserted"):
        upsert = SqlTable.upsert

        def upserting(self: SqlTable, rows: Any) -> int:
            if not rows or not hit():
                return upsert(self, rows)
            if point == "upserted":
                upsert(self, rows)
                die()
            with closing(self.hook.get_conn()) as conn, closing(conn.cursor()) as cursor:
                cursor.executemany(self.upsert_sql, [tuple(row) for row in rows])
                die()  # written, never committed
            return 0

        SqlTable.upsert = upserting  # type: ignore[method-assign]
    else:
        raise SystemExit(f"KILL_AT point must be one of {', '.join(KILL_POINTS)}, got {point!r}")


if __name__ == "__main__":
    if os.environ.get("KILL_AT"):
        where, _, count = os.environ["KILL_AT"].partition(":")
        arm(where, int(count or "1"))
    operator = InfobipReportsToSqlOperator(
        task_id="collect_reports",
        sql_conn_id="warehouse_default",
        table=os.environ["REPORTS_TABLE"],
        channels=os.environ.get("REPORTS_CHANNELS", "sms"),
        page_size=int(os.environ.get("REPORTS_PAGE_SIZE", "100")),
    )
    print("ready", flush=True)
    run_operator(operator)
    print("done", flush=True)
    sys.exit(0)
