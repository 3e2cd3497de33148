"""System-test DAG: six lists synced side by side with one API key, on a Celery cluster.

Every task shares the ``lists.add`` cooldown of the one key, whichever worker runs it; the cooldown
gate named by the connection (``redis`` in CI) is what keeps their calls apart. The trigger's conf
gives the folder of the six cohort files (``cohort_0.csv`` .. ``cohort_5.csv``) and the list names'
prefix, so the file itself touches nothing at parse time.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag

from infobip_provider.operators.lists import CohortToListOperator

DAG_ID = "infobip_cluster_lists"
LISTS = 6


@dag(
    dag_id=DAG_ID,
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_tasks=LISTS,
    default_args={"retries": 0},
    tags=["infobip", "system-test"],
    doc_md=__doc__,
    params={
        "cohort_dir": Param("/nonexistent", type="string", description="folder of cohort_<i>.csv"),
        "list_prefix": Param("cluster", type="string", description="list i is named <prefix>-<i>"),
        "batch_size": Param(100, type="integer", minimum=1, maximum=1000),
    },
)
def infobip_cluster_lists():
    for i in range(LISTS):
        CohortToListOperator(
            task_id=f"sync_list_{i}",
            list_name=f"{{{{ params.list_prefix }}}}-{i}",
            cohort_path=f"{{{{ params.cohort_dir }}}}/cohort_{i}.csv",
            batch_size="{{ params.batch_size }}",
        )


infobip_cluster_lists()
