"""Runs one CohortToListOperator sync in its own process (the kill-and-resume test SIGKILLs it)."""

from __future__ import annotations

import json
import sys

from infobip_provider.operators.lists import CohortToListOperator
from tests.integration.conftest import run_operator


def main(cohort_path: str, list_name: str, run_id: str) -> None:
    operator = CohortToListOperator(
        task_id="sync_list", list_name=list_name, cohort_path=cohort_path, batch_size=100
    )
    print(json.dumps(run_operator(operator, run_id)), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
