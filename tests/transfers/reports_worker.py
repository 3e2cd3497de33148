"""Run InfobipReportsToSqlOperator once in its own process (the kill test's victim).

Environment: the Infobip and warehouse connections, ``REPORTS_TABLE``; prints ``ready`` once imported.
"""

from __future__ import annotations

import os
import sys

from infobip_provider.transfers.reports_to_sql import InfobipReportsToSqlOperator
from tests.integration.conftest import run_operator

if __name__ == "__main__":
    operator = InfobipReportsToSqlOperator(
        task_id="collect_reports",
        sql_conn_id="warehouse_default",
        table=os.environ["REPORTS_TABLE"],
        page_size=int(os.environ.get("REPORTS_PAGE_SIZE", "100")),
    )
    print("ready", flush=True)
    run_operator(operator)
    print("done", flush=True)
    sys.exit(0)
