"""CohortToListOperator: keep an Infobip list equal to a cohort, sending only what changed."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from infobip_provider.engines.sync import SyncOperator, Tally
from infobip_provider.operators.base import CohortOperator
from infobip_provider.values import as_flag, as_text

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    from airflow.sdk import Context

    from infobip_provider.checkpoint import Lane, Recovery
    from infobip_provider.cohorts import PreparedCohort
    from infobip_provider.cohorts.columnar import Ids
    from infobip_provider.state import TargetState

MODES = ("mirror", "add_only")
MEMBER, REFUSED, UNCERTAIN = "member", "refused", "uncertain"


def snapshot_schema() -> pa.Schema:
    """The list snapshot: each id Infobip confirmed (``member``), refused, or left ``uncertain`` (a
    dictionary column: a byte per id), with the id's 64-bit hash (kept so that the next plan hashes
    only the cohort)."""
    import pyarrow as pa

    return pa.schema(
        [("id", pa.string()), ("status", pa.dictionary(pa.int8(), pa.string())), ("h", pa.uint64())]
    )


def _snapshot(
    ids: pa.Array | pa.ChunkedArray, status: pa.Array, hashes: np.ndarray | None = None
) -> pa.Table:
    import pyarrow as pa

    from infobip_provider.cohorts.columnar import hash_keys

    h = hash_keys(ids) if hashes is None else hashes
    schema = snapshot_schema()
    status = status.cast(schema.field("status").type)
    return pa.Table.from_arrays([ids, status, pa.array(h, type=pa.uint64())], schema=schema)


def as_table(snapshot: pa.Table | pd.DataFrame) -> pa.Table:
    """The snapshot as its Arrow table (a frame, or a table written before the hashes were kept)."""
    import pyarrow as pa

    from infobip_provider.cohorts.columnar import text_array

    schema = snapshot_schema()
    if isinstance(snapshot, pa.Table) and "h" in snapshot.column_names:
        return snapshot if snapshot.schema.equals(schema) else snapshot.cast(schema)
    if not isinstance(snapshot, pa.Table):
        snapshot = pa.Table.from_pandas(snapshot[["id", "status"]], preserve_index=False)
    ids = text_array(snapshot["id"].cast(pa.string()))
    return _snapshot(ids, text_array(snapshot["status"].cast(pa.string())))


@dataclass(frozen=True)
class ListPlan:
    """What one sync sends: ``adds`` and ``removes`` in batches; ``unchanged`` confirmed members stay.
    ``warehouse``: the diff ran in the warehouse (what travelled), else ``None``."""

    adds: Sequence[str]
    removes: Sequence[str]
    unchanged: int
    warehouse: dict[str, Any] | None = None


@dataclass(frozen=True)
class WarehouseWork:
    """A cohort diffed in the warehouse (:mod:`infobip_provider.cohorts.pushdown`): the ids of the rows
    that travelled, the snapshot ids that may leave, and the confirmed members whose rows stayed behind."""

    ids: Ids
    leaving: pa.Array
    unchanged: int
    facts: dict[str, Any]


def plan_pushed(work: WarehouseWork, snapshot: pa.Table | pd.DataFrame, mode: str) -> ListPlan:
    """The plan of a diff run in the warehouse: :func:`plan_list` of the ids that travelled against the
    part of the snapshot they and the leaving ids name. The same plan as a full read: a cohort row
    that stayed behind is a settled id's only row (not an add, not a remove), and every other id of
    the snapshot is either named by a row that travelled or among those that may leave."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from infobip_provider.cohorts.columnar import text_array

    table = as_table(snapshot)
    named = pa.concat_arrays([text_array(work.ids.array), text_array(work.leaving)])
    if len(table):
        table = table.filter(pc.is_in(table["id"], value_set=named))
    plan = plan_list(work.ids, table, mode, distinct=True)
    return ListPlan(plan.adds, plan.removes, plan.unchanged + work.unchanged, warehouse=work.facts)


def plan_list(
    cohort_ids: Sequence[str] | pa.Array, snapshot: pa.Table | pd.DataFrame, mode: str, distinct: bool = False
) -> ListPlan:
    """Adds (in the cohort, not yet confirmed) and removes (confirmed members no longer in it).

    Ids Infobip refused earlier are not sent again while they stay in the cohort. Ids of a batch
    that was sent without an answer (``uncertain``: Infobip may or may not have applied it) are
    sent again either way: added when in the cohort, removed when not (mirror mode); both calls
    change nothing when repeated. ``distinct``: the cohort's ids are known to be distinct (a
    prepared cohort's keys), so they are not deduplicated again.

    Column-wise: the snapshot's ids are hashed once and each cohort id looked up in them, so a plan
    over millions costs a few seconds and no Python object per member.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from infobip_provider.cohorts.columnar import Ids, first_rows, positions, text_column

    cohort = text_column(cohort_ids.array if isinstance(cohort_ids, Ids) else cohort_ids)
    hashes = cohort_ids.hashes if isinstance(cohort_ids, Ids) else None
    if not distinct:
        order = np.arange(len(cohort))
        first = first_rows(cohort, hashes)
        if (first != order).any():  # keep each id's first place
            cohort = cohort.filter(pa.array(first == order))
            hashes = None if hashes is None else hashes[first == order]
        del first, order
    table = as_table(snapshot)
    ids, status = table["id"], table["status"]  # as read: in row groups, not copied into one array
    member = np.asarray(pc.equal(status, MEMBER).to_numpy(zero_copy_only=False), dtype=bool)
    refused = np.asarray(pc.equal(status, REFUSED).to_numpy(zero_copy_only=False), dtype=bool)
    where = positions(cohort, ids, hashes, table["h"].to_numpy())  # each cohort id's place (-1: new)
    del hashes
    found = where >= 0
    np.maximum(where, 0, out=where)  # a place to look up for every id (masked by ``found``)
    settled = found & (member | refused)[where] if len(ids) else found
    adds = cohort.filter(pa.array(~settled))
    del settled
    unchanged = int((found & member[where]).sum()) if len(ids) else 0
    removes = pa.array([], type=pa.string())
    if mode == "mirror" and len(ids):
        in_cohort = np.zeros(len(ids), dtype=bool)
        in_cohort[where[found]] = True
        uncertain = np.asarray(pc.equal(status, UNCERTAIN).to_numpy(zero_copy_only=False), dtype=bool)
        leaving = (member | uncertain) & ~in_cohort
        removes = ids.filter(pa.array(leaving))
        removes = removes.take(pc.sort_indices(removes))
    return ListPlan(Ids(adds), Ids(removes), unchanged)


def fold_into_snapshot(
    snapshot: pa.Table | pd.DataFrame,
    added: Sequence[tuple[Sequence[str], dict[str, str]]],
    removed: Sequence[Sequence[str]],
    uncertain: Sequence[str] = (),
) -> pa.Table:
    """Apply a journal to the snapshot: acknowledged adds become members (or refused), acknowledged
    removes leave, and ids of unanswered batches become ``uncertain`` (sent again next time).

    The same as applying them one id at a time in that order, computed column-wise: the ids the
    journal touches are dropped from the snapshot and appended with their new status.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from infobip_provider.cohorts.columnar import first_rows

    table = as_table(snapshot)
    add_ids = [i for ids, _ in added for i in ids]
    add_status = [REFUSED if i in refused else MEMBER for ids, refused in added for i in ids]
    gone = [i for ids in removed for i in ids]
    touched = pa.array([*add_ids, *gone, *uncertain], type=pa.string())
    if not len(touched):
        return table
    ids = table["id"]
    kept = table.filter(pc.invert(pc.is_in(ids, value_set=touched))) if len(ids) else table
    # The last add of an id wins; a later remove or an unanswered batch overrides it.
    new_ids = pa.array(add_ids[::-1], type=pa.string())
    last = first_rows(new_ids) == np.arange(len(new_ids))
    later = pa.array([*gone, *uncertain], type=pa.string())
    stays = last & ~np.asarray(pc.is_in(new_ids, value_set=later).to_numpy(zero_copy_only=False), dtype=bool)
    order = np.flatnonzero(stays)[::-1]  # back in the journal's order
    added_table = _snapshot(
        new_ids.take(pa.array(order)), pa.array(add_status[::-1], pa.string()).take(pa.array(order))
    )
    unsure = pa.array(list(dict.fromkeys(uncertain)), type=pa.string())
    unsure_table = _snapshot(unsure, pa.array([UNCERTAIN] * len(unsure), pa.string()))
    return pa.concat_tables([kept, added_table, unsure_table])


def fold_plan(snapshot: pa.Table | pd.DataFrame, plan: ListPlan, refused: dict[str, str]) -> pa.Table:
    """The snapshot once every batch of ``plan`` was answered: the adds are members (or refused),
    the removes are gone. The same as folding the finished journal, without reading it back: a
    first sync of millions folds from the plan's Arrow arrays, not from a list per batch."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from infobip_provider.cohorts.columnar import Ids, text_array, text_column

    table = as_table(snapshot)
    adds = text_column(plan.adds.array if isinstance(plan.adds, Ids) else plan.adds)
    removes = text_column(plan.removes.array if isinstance(plan.removes, Ids) else plan.removes)
    if len(table) and (len(adds) or len(removes)):
        touched = pa.concat_arrays([text_array(adds), text_array(removes)])
        table = table.filter(pc.invert(pc.is_in(table["id"], value_set=touched)))
    status = np.zeros(len(adds), dtype=np.int8)  # the dictionary's first value: member
    if refused:
        refused_ids = pa.array(list(refused), type=pa.string())
        status[
            np.asarray(pc.is_in(adds, value_set=refused_ids).to_numpy(zero_copy_only=False), dtype=bool)
        ] = 1
    dictionary = pa.array([MEMBER, REFUSED, UNCERTAIN], type=pa.string())
    added = _snapshot(adds, pa.DictionaryArray.from_arrays(pa.array(status, type=pa.int8()), dictionary))
    return pa.concat_tables([table, added])


def fold_recovery(snapshot: pa.Table | pd.DataFrame, recovery: Recovery) -> pa.Table:
    """Fold everything an interrupted or finished sync's journal says into the snapshot."""
    return fold_into_snapshot(
        snapshot,
        recovery.acked.get("add", []),
        [ids for ids, _ in recovery.acked.get("remove", [])],
        [i for ids in recovery.unacked.values() for i in ids],
    )


class CohortToListOperator(SyncOperator["pa.Table", "Ids | WarehouseWork", ListPlan]):
    """Mirror a cohort (file or SQL) into an Infobip list, incrementally and crash-safe.

    The first run creates the list and sends every member; later runs send only who entered and
    (in ``mirror`` mode) who left. Adds and removes run side by side, each paced by its cooldown.
    Built on the sync engine (:class:`~infobip_provider.engines.sync.SyncOperator`): this class
    supplies the list's snapshot, plan, lanes and words.

    :param list_name: the Infobip list to keep in step (templated). Its id is remembered in the state store.
    :param id_column: the column holding the list's user ids (emails) (templated).
    :param mode: ``mirror`` (add and remove) or ``add_only`` (templated).
    :param diff_in_warehouse: with a ``cohort_sql`` on SQLite or PostgreSQL, write the snapshot's ids
        to a table in the warehouse and run the difference there, so that only the rows that may have
        changed travel (templated; :mod:`~infobip_provider.cohorts.pushdown`). The plan is the one a
        full read makes. A cohort file, another database, or a warehouse that refuses the table stops
        the task with a clear error.

    The cohort, batch and safety params are those of
    :class:`~infobip_provider.operators.base.CohortOperator` and the sync engine.
    """

    kind = "lists"
    template_fields: Sequence[str] = (
        "list_name",
        *CohortOperator.cohort_fields,
        "id_column",
        "mode",
        "diff_in_warehouse",
        "batch_size",
        "max_removal_ratio",
    )
    history_counts = ("added", "removed", "unchanged", "rejected")
    planned_counts = ("to_add", "to_remove")

    def __init__(
        self,
        *,
        list_name: str,
        id_column: str = "email",
        mode: str = "mirror",
        diff_in_warehouse: bool | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.list_name = list_name
        self.id_column = id_column
        self.mode = mode
        self.diff_in_warehouse = diff_in_warehouse

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
    def read_snapshot(self, target: TargetState) -> pa.Table:
        return as_table(target.read_snapshot_table(snapshot_schema()))

    def write_snapshot(self, target: TargetState, snapshot: pa.Table) -> None:
        target.write_snapshot_table(snapshot)

    def fold(self, snapshot: pa.Table, recovery: Recovery) -> pa.Table:
        return fold_recovery(snapshot, recovery) if not recovery.empty else snapshot

    def fold_answered(self, snapshot: pa.Table, plan: ListPlan, lanes: list[Lane]) -> pa.Table:
        refused = {i: r for lane in lanes if lane.name == "add" for i, r in lane.refused.items()}
        return fold_plan(snapshot, plan, refused)

    def confirmed(self, snapshot: pa.Table) -> int:
        import pyarrow.compute as pc

        return int(pc.sum(pc.equal(snapshot["status"], MEMBER)).as_py() or 0)

    def forget_target(self, target: TargetState, facts: dict[str, Any]) -> pa.Table:
        facts.pop("list_id", None)
        return snapshot_schema().empty_table()

    # --------------------------------------------------------------------- plan
    def prepare(self, context: Context) -> tuple[PreparedCohort, Ids, pd.DataFrame]:
        from infobip_provider.cohorts import IdentityColumns
        from infobip_provider.cohorts.columnar import Ids

        prepared = self.read_cohort(
            context, IdentityColumns(email=self.id_column, phone=None), key="email", keep_columns=()
        )
        return prepared, Ids(prepared.keys, prepared.key_hashes), prepared.rejects

    def snapshot_first(self) -> bool:
        return as_flag(self.diff_in_warehouse, "diff_in_warehouse")

    def prepare_against(
        self, context: Context, snapshot: pa.Table
    ) -> tuple[PreparedCohort, Ids | WarehouseWork, pd.DataFrame]:
        """The cohort diffed in the warehouse (``diff_in_warehouse``): only a SQL cohort can be."""
        from infobip_provider.cohorts import CohortError, SqlSource
        from infobip_provider.cohorts.columnar import Ids
        from infobip_provider.cohorts.pushdown import diff_in_warehouse, snapshot_table
        from infobip_provider.operators.common import cohort_source_for

        source = cohort_source_for(self, context)
        if not isinstance(source, SqlSource):
            raise CohortError(
                f"diff_in_warehouse needs the cohort as a query (cohort_sql), and the cohort is the "
                f"{source.describe()}: give a query, or turn diff_in_warehouse off"
            )
        if not len(snapshot):
            self.log.info(
                "diff_in_warehouse: the list has no snapshot yet, so every row is new: the cohort is read "
                "in full"
            )
            return self.prepare(context)
        pushed = diff_in_warehouse(
            source,
            snapshot,
            self.id_column,
            snapshot_table(self.hook.state_scope, self.list_name),
            removals=self.mode == "mirror",
            log=self.log,
        )
        prepared = pushed.prepared
        work = WarehouseWork(
            Ids(prepared.keys, prepared.key_hashes), pushed.leaving, pushed.unchanged, pushed.facts
        )
        return prepared, work, prepared.rejects

    def plan(self, work: Ids | WarehouseWork, snapshot: pa.Table) -> ListPlan:
        if isinstance(work, WarehouseWork):
            return plan_pushed(work, snapshot, self.mode)
        return plan_list(work, snapshot, self.mode, distinct=True)

    def removals(self, plan: ListPlan) -> int:
        return len(plan.removes)

    def calls(self, plan: ListPlan, batch_size: int) -> dict[str, int]:
        return {
            "lists.add": math.ceil(len(plan.adds) / batch_size),
            "lists.remove": math.ceil(len(plan.removes) / batch_size),
        }

    def describe(self, name: str, plan: ListPlan, snapshot: pa.Table) -> tuple[dict[str, Any], str]:
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
        if plan.warehouse is not None:
            facts["diff_in_warehouse"] = plan.warehouse
            line += (
                f" (diff run in the warehouse: {plan.warehouse['rows_travelled']} of "
                f"{plan.warehouse['rows_in_cohort']} cohort rows and {plan.warehouse['snapshot_ids_travelled']} "
                "snapshot ids travelled)"
            )
        return facts, line

    # -------------------------------------------------------------------- apply
    def ensure_target(self, target: TargetState, facts: dict[str, Any], plan: ListPlan) -> None:
        if facts.get("list_id") or not (len(plan.adds) or len(plan.removes)):
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
