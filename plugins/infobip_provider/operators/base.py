"""CohortOperator: what every operator that reads a cohort and keeps state in Infobip shares.

The cohort params and their template fields, one cached hook, the target's state (and its lock,
waited for within a bound), reading and preparing the cohort with its rejects, and the end of a run
(calls and waits in the summary, the extra links, the run's line in the target's history). The sync
engine (:mod:`infobip_provider.engines.sync`) and the broadcast operators extend it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator

from infobip_provider.links import LINKS, set_links
from infobip_provider.operators.common import (
    cohort_source_for,
    record_run,
    run_key,
    target_state,
)
from infobip_provider.values import as_flag

if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import Context

    from infobip_provider.cohorts import IdentityColumns, PreparedCohort
    from infobip_provider.hooks.infobip import InfobipHook
    from infobip_provider.state import TargetState

#: How long a try waits for an earlier try of the same target that still holds its lock (an
#: orphaned task process after its supervisor was killed) before it gives up.
LOCK_WAIT = 600.0


class CohortOperator(BaseOperator):
    """Base of the operators that read a cohort (a file or a query) and keep a target in Infobip.

    :param cohort_path: a CSV/Parquet/JSONL file, relative to ``include/`` or any URI (templated).
    :param cohort_sql: SQL or a ``.sql`` file under ``include/sql`` (templated); give this or
        ``cohort_path``, not both.
    :param cohort_conn_id: the warehouse connection for ``cohort_sql`` (any common.sql database).
    :param max_reject_ratio: fail when more than this share of the cohort rows is unusable (None: warn).
    :param dry_run: compute and return the plan without any call to Infobip (templated).
    :param lock_wait: seconds to wait for an earlier try that still holds the target's lock.
    :param infobip_conn_id: the ``infobip`` connection.
    """

    #: The target's kind in the state store: ``lists``, ``tags`` or ``broadcasts``.
    kind: ClassVar[str] = ""
    cohort_fields: ClassVar[tuple[str, ...]] = ("cohort_path", "cohort_sql", "cohort_conn_id", "dry_run")
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers = {"cohort_sql": "sql"}
    ui_color = "#ff8a3d"
    operator_extra_links = LINKS

    def __init__(
        self,
        *,
        cohort_path: str | None = None,
        cohort_sql: str | None = None,
        cohort_conn_id: str = "warehouse_default",
        max_reject_ratio: float | None = None,
        dry_run: bool | str = False,
        lock_wait: float = LOCK_WAIT,
        infobip_conn_id: str = "infobip_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.cohort_path = cohort_path
        self.cohort_sql = cohort_sql
        self.cohort_conn_id = cohort_conn_id
        self.max_reject_ratio = max_reject_ratio
        self.dry_run = dry_run  # type: ignore[assignment,method-assign]  # the param users know
        self.lock_wait = lock_wait
        self.infobip_conn_id = infobip_conn_id

    @cached_property
    def hook(self) -> InfobipHook:
        """One hook per task: its session, gate and counters serve every call of the run."""
        from infobip_provider.hooks.infobip import InfobipHook

        return InfobipHook(self.infobip_conn_id)

    def is_dry_run(self) -> bool:
        return as_flag(self.dry_run, "dry_run")

    # -------------------------------------------------------------------- state
    def target(self, name: str) -> TargetState:
        """The state of the target ``name`` of this operator's kind, in the hook's account."""
        return target_state(self.hook, self.kind, name, self.log)

    @contextlib.contextmanager
    def locked(self, target: TargetState, what: str) -> Iterator[None]:
        """Hold the target's lock, waiting up to ``lock_wait`` for an earlier try that holds it."""
        with target.lock(what, wait=float(self.lock_wait), log=self.log):
            yield

    # ------------------------------------------------------------------- cohort
    def read_cohort(
        self,
        context: Context,
        columns: IdentityColumns,
        key: str,
        default_region: str | None = "US",
        keep_columns: Sequence[str] | None = None,
    ) -> PreparedCohort:
        """Read and normalise the cohort the user named (rejects are kept, not yet written);
        ``keep_columns``: the other columns the flow uses (``None``: all)."""
        from infobip_provider.cohorts import prepare_cohort

        source = cohort_source_for(self, context)
        return prepare_cohort(
            source, columns, key=key, default_region=default_region, keep_columns=keep_columns
        )

    def report_rejects(
        self,
        context: Context,
        target: TargetState,
        prepared: PreparedCohort,
        rejects: pd.DataFrame | None = None,
    ) -> str | None:
        """Write the rows not used (``rejects``, default the cohort's) with their reasons, log what
        became of the cohort, and fail above ``max_reject_ratio``; returns the rejects file's URI."""
        frame = prepared.rejects if rejects is None else rejects
        uri = target.write_rejects(run_key(context), frame)
        prepared.check_reject_ratio(self.max_reject_ratio, self.log)
        if uri:
            self.log.info("Cohort rows not used, with reasons: %s", uri)
        return uri

    # ---------------------------------------------------------------------- end
    def finish(
        self,
        context: Context,
        target: TargetState,
        name: str,
        summary: dict[str, Any],
        *,
        counts: dict[str, int],
        size: int | None,
        dry_run: bool,
    ) -> dict[str, Any]:
        """Close a run: calls and waits into the summary, the extra links, the run's history line."""
        if not dry_run:
            summary["calls"] = dict(self.hook.calls)
            summary["seconds_waited"] = round(sum(self.hook.waited.values()), 3)
        link = set_links(context, self.hook, target, dry_run=dry_run)
        record_run(
            target,
            context,
            kind=self.kind,
            name=name,
            dry_run=dry_run,
            size=size,
            counts=counts,
            rejects_uri=summary.get("rejects_uri"),
            link=link,
        )
        return summary
