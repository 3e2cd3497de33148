"""CohortToListOperator: keep an Infobip list equal to a cohort, sending only what changed."""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from infobip_provider.links import LINKS, set_links
from infobip_provider.operators.common import (
    check_removal_guard,
    cohort_source_for,
    record_run,
    run_key,
    target_state,
    validate_sync_args,
)
from infobip_provider.values import as_flag

if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import Context

    from infobip_provider.checkpoint import Recovery
    from infobip_provider.hooks.infobip import InfobipHook
    from infobip_provider.state import TargetState

MODES = ("mirror", "add_only")
MEMBER, REFUSED, UNCERTAIN = "member", "refused", "uncertain"


@dataclass(frozen=True)
class ListPlan:
    """What one sync sends: ``adds`` and ``removes`` in batches; ``unchanged`` confirmed members stay."""

    adds: list[str]
    removes: list[str]
    unchanged: int


def plan_list(cohort_ids: Sequence[str], snapshot: pd.DataFrame, mode: str) -> ListPlan:
    """Adds (in the cohort, not yet confirmed) and removes (confirmed members no longer in it).

    Ids Infobip refused earlier are not sent again while they stay in the cohort. Ids of a batch
    that was sent without an answer (``uncertain``: Infobip may or may not have applied it) are
    sent again either way: added when in the cohort, removed when not (mirror mode); both calls
    change nothing when repeated.
    """
    status = dict(zip(snapshot["id"], snapshot["status"]))
    cohort = dict.fromkeys(cohort_ids)  # keeps the cohort's order
    adds = [i for i in cohort if status.get(i) not in (MEMBER, REFUSED)]
    leaving = (i for i, s in status.items() if s in (MEMBER, UNCERTAIN) and i not in cohort)
    removes = sorted(leaving) if mode == "mirror" else []
    unchanged = sum(1 for i in cohort if status.get(i) == MEMBER)
    return ListPlan(adds, removes, unchanged)


def fold_into_snapshot(
    snapshot: pd.DataFrame,
    added: list[tuple[list[str], dict[str, str]]],
    removed: list[list[str]],
    uncertain: Sequence[str] = (),
) -> pd.DataFrame:
    """Apply a journal to the snapshot: acknowledged adds become members (or refused), acknowledged
    removes leave, and ids of unanswered batches become ``uncertain`` (sent again next time)."""
    import pandas as pd

    status = dict(zip(snapshot["id"], snapshot["status"]))
    for ids, refused in added:
        for i in ids:
            status[i] = REFUSED if i in refused else MEMBER
    for ids in removed:
        for i in ids:
            status.pop(i, None)
    for i in uncertain:
        status[i] = UNCERTAIN
    return pd.DataFrame(
        {
            "id": pd.Series(list(status), dtype="string"),
            "status": pd.Series(list(status.values()), dtype="string"),
        }
    )


def fold_recovery(snapshot: pd.DataFrame, recovery: Recovery) -> pd.DataFrame:
    """Fold everything an interrupted or finished sync's journal says into the snapshot."""
    return fold_into_snapshot(
        snapshot,
        recovery.acked.get("add", []),
        [ids for ids, _ in recovery.acked.get("remove", [])],
        [i for ids in recovery.unacked.values() for i in ids],
    )


class CohortToListOperator(BaseOperator):
    """Mirror a cohort (file or SQL) into an Infobip list, incrementally and crash-safe.

    The first run creates the list and sends every member; later runs send only who entered and
    (in ``mirror`` mode) who left. Adds and removes run side by side, each paced by its cooldown.

    :param list_name: the Infobip list to keep in step (templated). Its id is remembered in the state store.
    :param cohort_path: a CSV/Parquet/JSONL file, relative to ``include/`` or any URI (templated).
    :param cohort_sql: SQL or a ``.sql`` file under ``include/sql`` (templated); give this or ``cohort_path``.
    :param cohort_conn_id: the warehouse connection for ``cohort_sql`` (any common.sql database).
    :param id_column: the column holding the list's user ids (emails) (templated).
    :param mode: ``mirror`` (add and remove) or ``add_only`` (templated).
    :param batch_size: ids per request, at most 1000.
    :param max_removal_ratio: refuse to remove more than this share of the confirmed members.
    :param max_reject_ratio: fail when more than this share of cohort rows is unusable (None: warn only).
    :param dry_run: compute and return the plan without any call to Infobip (templated).
    :param infobip_conn_id: the ``infobip`` connection.
    """

    template_fields: Sequence[str] = (
        "list_name",
        "cohort_path",
        "cohort_sql",
        "cohort_conn_id",
        "id_column",
        "mode",
        "dry_run",
        "batch_size",
        "max_removal_ratio",
    )
    template_ext: Sequence[str] = (".sql",)
    template_fields_renderers = {"cohort_sql": "sql"}
    ui_color = "#ff8a3d"
    operator_extra_links = LINKS

    def __init__(
        self,
        *,
        list_name: str,
        cohort_path: str | None = None,
        cohort_sql: str | None = None,
        cohort_conn_id: str = "warehouse_default",
        id_column: str = "email",
        mode: str = "mirror",
        batch_size: int = 1000,
        max_removal_ratio: float = 0.5,
        max_reject_ratio: float | None = None,
        dry_run: bool = False,
        infobip_conn_id: str = "infobip_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.list_name = list_name
        self.cohort_path = cohort_path
        self.cohort_sql = cohort_sql
        self.cohort_conn_id = cohort_conn_id
        self.id_column = id_column
        self.mode = mode
        self.batch_size = batch_size
        self.max_removal_ratio = max_removal_ratio
        self.max_reject_ratio = max_reject_ratio
        self.dry_run = dry_run  # type: ignore[assignment,method-assign]  # the param users know
        self.infobip_conn_id = infobip_conn_id

    # ------------------------------------------------------------------ execute
    def execute(self, context: Context) -> dict[str, Any]:
        from infobip_provider.hooks.infobip import InfobipHook

        # Native rendering turns a name like "2026" into a number: names are text.
        self.list_name, self.id_column, self.mode = (
            "" if v is None else str(v).strip() for v in (self.list_name, self.id_column, self.mode)
        )
        batch_size, max_removal_ratio = validate_sync_args(self.batch_size, self.max_removal_ratio)
        if self.mode not in MODES:
            raise AirflowFailException(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if not self.list_name:
            raise AirflowFailException("list_name must not be empty")
        dry_run = as_flag(self.dry_run, "dry_run")
        hook = InfobipHook(self.infobip_conn_id)
        target = target_state(hook, "lists", self.list_name, self.log)
        with target.lock(f"the list {self.list_name!r}"):
            return self._sync(hook, target, context, batch_size, max_removal_ratio, dry_run)

    def _read_cohort(self, context: Context) -> Any:
        from infobip_provider.cohorts import IdentityColumns, prepare_cohort

        source = cohort_source_for(self, context)
        return prepare_cohort(source, IdentityColumns(email=self.id_column, phone=None), key="email")

    def _sync(
        self,
        hook: InfobipHook,
        target: TargetState,
        context: Context,
        batch_size: int,
        max_removal_ratio: float,
        dry_run: bool,
    ) -> dict[str, Any]:
        from infobip_provider.checkpoint import recover

        facts = target.read_json("target.json", {}) or {}
        snapshot = target.read_snapshot({"id": "string", "status": "string"})
        recovery = recover(target)
        if not recovery.empty:
            snapshot = fold_recovery(snapshot, recovery)
            self.log.info(
                "Resuming an interrupted sync: %d acknowledged batches folded into the snapshot; "
                "%d ids of unacknowledged batches will be sent again",
                sum(len(v) for v in recovery.acked.values()),
                sum(len(v) for v in recovery.unacked.values()),
            )
            if not dry_run:
                target.write_snapshot(snapshot)
                target.clear_journal()

        prepared = self._read_cohort(context)
        run_id = run_key(context)
        rejects_uri = target.write_rejects(run_id, prepared.rejects)
        prepared.check_reject_ratio(self.max_reject_ratio, self.log)
        if rejects_uri:
            self.log.info("Cohort rows not used, with reasons: %s", rejects_uri)
        cohort_ids = prepared.members["key"].tolist()
        plan = plan_list(cohort_ids, snapshot, self.mode)
        confirmed = int((snapshot["status"] == MEMBER).sum())
        check_removal_guard(len(plan.removes), confirmed, max_removal_ratio, f"the list {self.list_name!r}")
        summary: dict[str, Any] = {
            "list_name": self.list_name,
            "list_id": facts.get("list_id"),
            "mode": self.mode,
            "dry_run": dry_run,
            "cohort": prepared.stats,
            "to_add": len(plan.adds),
            "to_remove": len(plan.removes),
            "unchanged": plan.unchanged,
            "rejects_uri": rejects_uri,
        }
        calls = {
            "lists.add": math.ceil(len(plan.adds) / batch_size),
            "lists.remove": math.ceil(len(plan.removes) / batch_size),
        }
        bound = max((n - 1) * hook.interval(e) for e, n in calls.items())
        self.log.info(
            "Plan for the list %r (%s members confirmed): %d to add in %d requests, %d to remove in %d "
            "requests, %d unchanged; at least %.0f s at Infobip's pace",
            self.list_name,
            confirmed,
            len(plan.adds),
            calls["lists.add"],
            len(plan.removes),
            calls["lists.remove"],
            plan.unchanged,
            max(bound, 0),
        )
        if dry_run:
            summary["calls_planned"] = calls
            summary["seconds_bound"] = max(bound, 0)
            self.log.info("Dry run, nothing sent. Turn dry_run off to apply this plan.")
            record_run(
                target,
                context,
                kind="lists",
                name=self.list_name,
                dry_run=True,
                size=confirmed,
                counts={
                    "to_add": len(plan.adds),
                    "to_remove": len(plan.removes),
                    "not_used": prepared.stats["rejected"],
                },
                rejects_uri=rejects_uri,
            )
            set_links(context, hook, target, dry_run=True)
            return summary

        from infobip_provider.errors import InfobipListNotFoundError

        try:
            result = self._apply(hook, target, facts, snapshot, plan, batch_size, run_id)
        except InfobipListNotFoundError:
            self.log.warning(
                "The list %r (id %s) no longer exists in Infobip: creating it again and sending the whole "
                "cohort (%d members)",
                self.list_name,
                facts.get("list_id"),
                len(cohort_ids),
            )
            facts.pop("list_id", None)
            snapshot = snapshot.iloc[0:0]
            target.write_snapshot(snapshot)
            target.clear_journal()
            plan = plan_list(cohort_ids, snapshot, self.mode)
            result = self._apply(hook, target, facts, snapshot, plan, batch_size, run_id)
            result["recreated"] = True
        summary.update(result)
        summary["rejected"] = int(prepared.stats.get("rejected", 0)) + result["refused_by_infobip"]
        summary["calls"] = dict(hook.calls)
        summary["seconds_waited"] = round(sum(hook.waited.values()), 3)
        size = int((target.read_snapshot({"id": "string", "status": "string"})["status"] == MEMBER).sum())
        link = set_links(context, hook, target, dry_run=False)
        record_run(
            target,
            context,
            kind="lists",
            name=self.list_name,
            dry_run=False,
            size=size,
            counts={
                "added": summary["added"],
                "removed": summary["removed"],
                "unchanged": summary["unchanged"],
                "rejected": summary["rejected"],
            },
            rejects_uri=rejects_uri,
            link=link,
        )
        self.log.info(
            "List %r (id %s) now has %d members: %d added, %d removed, %d unchanged; %d cohort rows not "
            "used, %d ids refused by Infobip; %d calls, %.1f s waiting for cooldowns",
            self.list_name,
            summary["list_id"],
            size,
            summary["added"],
            summary["removed"],
            summary["unchanged"],
            int(prepared.stats.get("rejected", 0)),
            result["refused_by_infobip"],
            sum(hook.calls.values()),
            summary["seconds_waited"],
        )
        return summary

    def _apply(
        self,
        hook: InfobipHook,
        target: TargetState,
        facts: dict[str, Any],
        snapshot: pd.DataFrame,
        plan: ListPlan,
        batch_size: int,
        run_id: str,
    ) -> dict[str, Any]:
        from infobip_provider.checkpoint import BatchLanes, Lane, batches, recover

        list_id: int = facts.get("list_id") or 0
        if not list_id and (plan.adds or plan.removes):
            list_id = hook.create_list(self.list_name)
            facts.update(list_id=list_id, list_name=self.list_name)
            target.write_json("target.json", facts)
            self.log.info("Created the Infobip list %r with id %s", self.list_name, list_id)

        def add(ids: list[str]) -> dict[str, str]:
            answer = hook.list_add(list_id, ids)
            failed = (answer.get("errors") or {}).get("failed") or {}
            return {str(i): reason for reason, refused in failed.items() for i in refused}

        def remove(ids: list[str]) -> dict[str, str]:
            hook.list_remove(list_id, ids)
            return {}

        lanes = [
            Lane("add", batches(plan.adds, batch_size), add, hook.interval("lists.add")),
            Lane("remove", batches(plan.removes, batch_size), remove, hook.interval("lists.remove")),
        ]
        attempt = f"{run_id}:{uuid.uuid4().hex[:8]}"
        try:
            BatchLanes(target, attempt).run(lanes)
        finally:
            # Whatever happened, what Infobip acknowledged becomes the snapshot.
            recovery = recover(target)
            if not recovery.empty:
                target.write_snapshot(fold_recovery(snapshot, recovery))
                target.clear_journal()
        refused = lanes[0].refused
        if refused:
            self.log.warning("Infobip refused %d ids (kept out of the list; see the rejects)", len(refused))
            import pandas as pd

            target.write_rejects(
                run_id + "-refused",
                pd.DataFrame(
                    {
                        "row": None,
                        "key": list(refused),
                        "value": list(refused),
                        "reason": list(refused.values()),
                    }
                ),
            )
        return {
            "list_id": list_id or None,
            "added": lanes[0].sent_ids - len(refused),
            "removed": lanes[1].sent_ids,
            "refused_by_infobip": len(refused),
        }
