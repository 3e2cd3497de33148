"""What every cohort operator shares: argument checks, the removal guard, the cohort source."""

from __future__ import annotations

import ast
import json
import os
from typing import Any

from airflow.sdk.exceptions import AirflowFailException


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


def as_bool(value: Any, name: str) -> bool:
    """A rendered template gives strings: accept true/false words as well as booleans."""
    if isinstance(value, str):
        word = value.strip().lower()
        if word in ("true", "1", "yes", "on"):
            return True
        if word in ("false", "0", "no", "off", "", "none"):
            return False
        raise AirflowFailException(f"{name} must be true or false, got {value!r}")
    return bool(value)


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
    """The cohort source an operator names: ``cohort_sql`` (with ``cohort_conn_id``) or ``cohort_path``."""
    from infobip_provider.cohorts import cohort_source

    sql = operator.cohort_sql
    if sql and str(sql).strip():
        return cohort_source(sql=sql_text(str(sql), operator, context), conn_id=operator.cohort_conn_id)
    if operator.cohort_path and str(operator.cohort_path).strip():
        return cohort_source(path=str(operator.cohort_path).strip())
    raise AirflowFailException("Give the cohort as cohort_path (a file) or cohort_sql (a query)")


def read_literal(text: str) -> Any:
    """What a list or object rendered as text stands for: JSON, else a Python literal (``str()`` of it).

    Airflow renders templated fields to text unless the DAG sets ``render_template_as_native_obj``.

    :raises ValueError: the text is neither.
    """
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise ValueError(f"neither JSON nor a Python literal: {text[:200]!r}") from None
