"""What every cohort operator shares: argument checks, the removal guard, the cohort source."""

from __future__ import annotations

import os
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

from infobip_provider.values import as_text


def validate_batch_size(batch_size: Any) -> int:
    """Items per request: a whole number from 1 to 1000 (Infobip's limit on every batch endpoint)."""
    try:
        size = int(batch_size)
    except (TypeError, ValueError):
        raise AirflowFailException(f"batch_size must be a whole number, got {batch_size!r}") from None
    if not 1 <= size <= 1000:
        raise AirflowFailException(f"batch_size must be between 1 and 1000 (Infobip's limit), got {size}")
    return size


def validate_sync_args(batch_size: Any, max_removal_ratio: Any) -> tuple[int, float]:
    """Check the knobs every sync operator shares; return them as numbers."""
    size = validate_batch_size(batch_size)
    try:
        ratio = float(max_removal_ratio)
    except (TypeError, ValueError):
        raise AirflowFailException(f"max_removal_ratio must be a number, got {max_removal_ratio!r}") from None
    if ratio < 0:
        raise AirflowFailException(f"max_removal_ratio must be 0 or more, got {ratio}")
    return size, ratio


def check_removal_guard(removals: int, confirmed: int, max_removal_ratio: float, what: str) -> None:
    """Refuse a plan that would take more than ``max_removal_ratio`` of the confirmed audience away."""
    if confirmed and removals / confirmed > max_removal_ratio:
        raise AirflowFailException(
            f"Refusing to remove {removals} of {confirmed} members of {what} "
            f"({removals / confirmed:.0%} > max_removal_ratio {max_removal_ratio:.0%}). A broken cohort "
            "query must not wipe an audience: check the cohort, or raise max_removal_ratio for this run."
        )


def sql_text(sql: str, operator: Any, context: Any) -> str:
    """The SQL to run: a rendered query, or the rendered contents of a ``.sql`` file under include/.

    ``template_ext`` loads a ``.sql`` file named in the DAG; this also loads one named by a param
    at trigger time (``sql/active_customers.sql``), relative to ``include/`` or ``include/sql``.
    """
    text = sql.strip()
    if text.endswith(".sql") and not any(c.isspace() for c in text):
        from infobip_provider.cohorts import INCLUDE_DIR

        for candidate in (text, os.path.join(INCLUDE_DIR, text), os.path.join(INCLUDE_DIR, "sql", text)):
            if os.path.isfile(candidate):
                with open(candidate, encoding="utf-8") as fh:
                    return operator.render_template(fh.read(), context)
        raise AirflowFailException(f"The SQL file {text!r} was not found under {INCLUDE_DIR}")
    return text


def cohort_source_for(operator: Any, context: Any) -> Any:
    """The cohort the user named: ``cohort_path`` (a file) or ``cohort_sql`` (a query on
    ``cohort_conn_id``), exactly one of them.

    :raises CohortError: both or neither are given.
    """
    from infobip_provider.cohorts import CohortError, cohort_source

    path, sql = as_text(operator.cohort_path), as_text(operator.cohort_sql)
    if path and sql:
        raise CohortError(
            f"Both a cohort file ({path!r}) and a cohort SQL were given: give one of cohort_path and "
            "cohort_sql, and leave the other empty"
        )
    if sql:
        return cohort_source(
            sql=sql_text(sql, operator, context),
            conn_id=as_text(operator.cohort_conn_id) or "warehouse_default",
        )
    if path:
        return cohort_source(path=path)
    raise CohortError("Give the cohort as cohort_path (a file or URI) or cohort_sql (a query or a .sql file)")


#: ``airflow tasks test`` runs a task in a new temporary DAG run on every call.
TEMPORARY_RUN_PREFIX = "__airflow_temporary_run_"


def run_key(context: Any) -> str:
    """The run a task's state belongs to: its ``run_id``, or for ``airflow tasks test`` (a new
    temporary run id on every call) the logical date, so that two calls for one date are one run."""
    run_id = str(context.get("run_id") or "manual")
    logical = context.get("logical_date")
    if run_id.startswith(TEMPORARY_RUN_PREFIX) and logical is not None:
        return f"tasks_test__{logical.isoformat()}"
    return run_id


def target_state(hook: Any, kind: str, name: str, log: Any) -> Any:
    """The state of one target of the hook's account (moved from the API-key folder of earlier
    versions on first use); logs where it lives."""
    from infobip_provider.state import StateStore

    target = StateStore(hook.state_uri).target(
        hook.state_scope, kind, name, legacy_scope=hook.key_fingerprint
    )
    log.info("State of %s %r: %s", kind.rstrip("s"), name, target.root)
    return target


def record_run(
    target: Any,
    context: Any,
    *,
    kind: str,
    name: str,
    dry_run: bool,
    size: int | None,
    counts: dict[str, int],
    rejects_uri: str | None,
    link: str | None = None,
    outcome: str = "success",
) -> None:
    """Append the run to the target's history (``runs.jsonl``), which the Infobip page draws."""
    from datetime import UTC, datetime

    ti = context.get("ti")
    map_index = getattr(ti, "map_index", -1)
    target.append_run(
        {
            "kind": kind,
            "name": name,
            "dag_id": getattr(ti, "dag_id", None),
            "run_id": str(context.get("run_id") or ""),
            "task_id": getattr(ti, "task_id", None),
            "map_index": map_index if isinstance(map_index, int) else -1,
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "dry_run": dry_run,
            "outcome": outcome,
            "size": size,
            "counts": {k: int(v) for k, v in counts.items()},
            "rejects": [rejects_uri.rsplit("/", 1)[-1]] if rejects_uri else [],
            "link": link,
        }
    )
