"""CohortToListOperator: keep an Infobip list equal to a cohort, sending only what changed."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from infobip_provider.engines.sync import SyncOperator, Tally
from infobip_provider.operators.base import CohortOperator
from infobip_provider.values import as_text

if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import Context

    from infobip_provider.checkpoint import Lane, Recovery
    from infobip_provider.cohorts import PreparedCohort
    from infobip_provider.state import TargetState

MODES = ("mirror", "add_only")
MEMBER, REFUSED, UNCERTAIN = "member", "refused", "uncertain"
SNAPSHOT_COLUMNS = {"id": "string", "status": "string"}


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


class CohortToListOperator(SyncOperator["pd.DataFrame", "list[str]", ListPlan]):
    """Mirror a cohort (file or SQL) into an Infobip list, incrementally and crash-safe.

    The first run creates the list and sends every member; later runs send only who entered and
    (in ``mirror`` mode) who left. Adds and removes run side by side, each paced by its cooldown.
    Built on the sync engine (:class:`~infobip_provider.engines.sync.SyncOperator`): this class
    supplies the list's snapshot, plan, lanes and words.

    :param list_name: the Infobip list to keep in step (templated). Its id is remembered in the state store.
    :param id_column: the column holding the list's user ids (emails) (templated).
    :param mode: ``mirror`` (add and remove) or ``add_only`` (templated).

    The cohort, batch and safety params are those of
    :class:`~infobip_provider.operators.base.CohortOperator` and the sync engine.
    """

    kind = "lists"
    template_fields: Sequence[str] = (
        "list_name",
        *CohortOperator.cohort_fields,
        "id_column",
        "mode",
        "batch_size",
        "max_removal_ratio",
    )
    history_counts = ("added", "removed", "unchanged", "rejected")
    planned_counts = ("to_add", "to_remove")

    def __init__(
        self, *, list_name: str, id_column: str = "email", mode: str = "mirror", **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.list_name = list_name
        self.id_column = id_column
        self.mode = mode

    @property
    def missing_errors(self) -> tuple[type[Exception], ...]:  # type: ignore[override]
        from infobip_provider.errors import InfobipListNotFoundError

        return (InfobipListNotFoundError,)

    def target_name(self) -> str:
        # Native rendering turns a name like "2026" into a number: names are text.
        self.list_name, self.id_column, self.mode = (
            as_text(v) or "" for v in (self.list_name, self.id_column, self.mode)
        )
        if self.mode not in MODES:
            raise AirflowFailException(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if not self.list_name:
            raise AirflowFailException("list_name must not be empty")
        return self.list_name

    def what(self, name: str) -> str:
        return f"the list {name!r}"

    # ----------------------------------------------------------------- snapshot
    def read_snapshot(self, target: TargetState) -> pd.DataFrame:
        return target.read_snapshot(SNAPSHOT_COLUMNS)

    def write_snapshot(self, target: TargetState, snapshot: pd.DataFrame) -> None:
        target.write_snapshot(snapshot)

    def fold(self, snapshot: pd.DataFrame, recovery: Recovery) -> pd.DataFrame:
        return fold_recovery(snapshot, recovery) if not recovery.empty else snapshot

    def confirmed(self, snapshot: pd.DataFrame) -> int:
        return int((snapshot["status"] == MEMBER).sum())

    def forget_target(self, target: TargetState, facts: dict[str, Any]) -> pd.DataFrame:
        facts.pop("list_id", None)
        return self.read_snapshot(target).iloc[0:0]

    # --------------------------------------------------------------------- plan
    def prepare(self, context: Context) -> tuple[PreparedCohort, list[str], pd.DataFrame]:
        from infobip_provider.cohorts import IdentityColumns

        prepared = self.read_cohort(context, IdentityColumns(email=self.id_column, phone=None), key="email")
        return prepared, prepared.members["key"].tolist(), prepared.rejects

    def plan(self, work: list[str], snapshot: pd.DataFrame) -> ListPlan:
        return plan_list(work, snapshot, self.mode)

    def removals(self, plan: ListPlan) -> int:
        return len(plan.removes)

    def calls(self, plan: ListPlan, batch_size: int) -> dict[str, int]:
        return {
            "lists.add": math.ceil(len(plan.adds) / batch_size),
            "lists.remove": math.ceil(len(plan.removes) / batch_size),
        }

    def describe(self, name: str, plan: ListPlan, snapshot: pd.DataFrame) -> tuple[dict[str, Any], str]:
        facts = {
            "list_name": name,
            "mode": self.mode,
            "to_add": len(plan.adds),
            "to_remove": len(plan.removes),
        }
        facts["unchanged"] = plan.unchanged
        line = (
            f"Plan for the list {name!r} ({self.confirmed(snapshot)} members confirmed): {len(plan.adds)} to "
            f"add, {len(plan.removes)} to remove, {plan.unchanged} unchanged"
        )
        return facts, line

    # -------------------------------------------------------------------- apply
    def ensure_target(self, target: TargetState, facts: dict[str, Any], plan: ListPlan) -> None:
        if facts.get("list_id") or not (plan.adds or plan.removes):
            return
        facts.update(list_id=self.hook.create_list(self.list_name), list_name=self.list_name)
        target.write_json("target.json", facts)
        self.log.info("Created the Infobip list %r with id %s", self.list_name, facts["list_id"])

    def lanes(self, plan: ListPlan, batch_size: int, facts: dict[str, Any], tally: Tally) -> list[Lane]:
        from infobip_provider.checkpoint import Lane, batches

        hook, list_id = self.hook, facts.get("list_id") or 0

        def add(ids: list[str]) -> dict[str, str]:
            answer = hook.list_add(list_id, ids)
            failed = (answer.get("errors") or {}).get("failed") or {}
            refused = {str(i): reason for reason, items in failed.items() for i in items}
            tally.add("added", len(ids) - len(refused))
            tally.refuse(refused)
            return refused

        def remove(ids: list[str]) -> dict[str, str]:
            hook.list_remove(list_id, ids)
            tally.add("removed", len(ids))
            return {}

        return [
            Lane("add", batches(plan.adds, batch_size), add, hook.interval("lists.add")),
            Lane("remove", batches(plan.removes, batch_size), remove, hook.interval("lists.remove")),
        ]

    def outcome(self, plan: ListPlan, tally: Tally, facts: dict[str, Any]) -> dict[str, Any]:
        return {
            "list_id": facts.get("list_id") or None,
            "added": tally.counts["added"],
            "removed": tally.counts["removed"],
            "unchanged": plan.unchanged,
        }

    def outcome_line(self, name: str, summary: dict[str, Any], size: int) -> str:
        return (
            f"List {name!r} (id {summary['list_id']}) now has {size} members: {summary['added']} added, "
            f"{summary['removed']} removed, {summary['unchanged']} unchanged"
        )

    def refused_frame(self, refused: dict[str, str]) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(
            {"row": None, "key": list(refused), "value": list(refused), "reason": list(refused.values())}
        )
