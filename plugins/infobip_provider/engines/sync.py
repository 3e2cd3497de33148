"""The sync engine: keep a target in Infobip (a list, a tag) equal to a cohort, sending only changes.

One sequence for every such flow: fold what an interrupted try's journal says into the snapshot,
read the cohort and write its rejects, plan against the snapshot, refuse a plan that would wipe the
audience, stop after the plan in a dry run, send the plan's batches on checkpointed lanes (side by
side, each paced by its endpoint's cooldown), fold the acknowledged batches into the snapshot
whatever happened, and start the target afresh once when Infobip says it no longer exists.

A flow subclasses :class:`SyncOperator` and supplies only what is its own: how its snapshot is
stored and folded, how the cohort becomes its plan, its lanes, and its words for the log.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from infobip_provider.cohorts.columnar import release_memory
from infobip_provider.operators.base import CohortOperator
from infobip_provider.operators.common import check_removal_guard, run_key, validate_sync_args

if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import Context

    from infobip_provider.checkpoint import Lane, Recovery
    from infobip_provider.cohorts import PreparedCohort
    from infobip_provider.state import TargetState

S = TypeVar("S")  # a flow's snapshot: what Infobip confirmed
W = TypeVar("W")  # a flow's work: the prepared cohort as the flow plans it
P = TypeVar("P")  # a flow's plan


def _peak_rss_mb() -> float:
    """The task process's peak resident memory so far, in MB (0 where the platform does not say)."""
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    except (ImportError, OSError):
        return 0.0


@dataclass
class Tally:
    """What Infobip answered during one task, counted from the lanes' threads."""

    counts: Counter[str] = field(default_factory=Counter)
    refused: dict[str, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counts[name] += n

    def refuse(self, refused: dict[str, str]) -> None:
        with self._lock:
            self.refused.update(refused)


class SyncOperator(CohortOperator, Generic[S, W, P]):
    """Keep a target equal to a cohort; subclasses are the flows (lists, tags ...).

    :param batch_size: items per request, at most 1000.
    :param max_removal_ratio: refuse a plan that removes more than this share of the confirmed members.
    """

    #: Errors meaning the target no longer exists in Infobip: it is started afresh, once.
    missing_errors: tuple[type[Exception], ...] = ()

    def __init__(self, *, batch_size: int = 1000, max_removal_ratio: float = 0.5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.batch_size = batch_size
        self.max_removal_ratio = max_removal_ratio

    # ------------------------------------------------------------- what a flow supplies
    def target_name(self) -> str:
        """The target's name (checks the flow's own arguments first: nothing is called before)."""
        raise NotImplementedError

    def what(self, name: str) -> str:
        """The target in words, for the log: ``the list 'VIP'``."""
        raise NotImplementedError

    def read_snapshot(self, target: TargetState) -> S:
        raise NotImplementedError

    def write_snapshot(self, target: TargetState, snapshot: S) -> None:
        raise NotImplementedError

    def fold(self, snapshot: S, recovery: Recovery) -> S:
        """The snapshot once a journal's acknowledged and unanswered batches are applied."""
        raise NotImplementedError

    def prepare(self, context: Context) -> tuple[PreparedCohort, W, pd.DataFrame]:
        """Read the cohort: the prepared cohort, the flow's work, and every row not used."""
        raise NotImplementedError

    def snapshot_first(self) -> bool:
        """The flow reads its cohort knowing the snapshot (:meth:`prepare_against`, e.g. a diff the
        warehouse runs): the snapshot is read first. Default: the cohort first, then the snapshot."""
        return False

    def prepare_against(self, context: Context, snapshot: S) -> tuple[PreparedCohort, W, pd.DataFrame]:
        """Read the cohort knowing the snapshot (called instead of :meth:`prepare` when
        :meth:`snapshot_first`); default :meth:`prepare`."""
        return self.prepare(context)

    def check_work(self, prepared: PreparedCohort, work: W) -> None:
        """Fail on the flow's own bad rows once the rejects file is written (default: nothing to check)."""

    def plan(self, work: W, snapshot: S) -> P:
        raise NotImplementedError

    def confirmed(self, snapshot: S) -> int:
        """Members Infobip confirmed: the target's size, and the base of the removal guard."""
        raise NotImplementedError

    def removals(self, plan: P) -> int:
        raise NotImplementedError

    def calls(self, plan: P, batch_size: int) -> dict[str, int]:
        """Requests per endpoint the plan takes."""
        raise NotImplementedError

    def describe(self, name: str, plan: P, snapshot: S) -> tuple[dict[str, Any], str]:
        """The plan's counts for the summary, and the log line that says them."""
        raise NotImplementedError

    def before_apply(self, snapshot: S, plan: P) -> S:
        """The snapshot as the plan leaves it before anything is sent (default: unchanged)."""
        return snapshot

    def ensure_target(self, target: TargetState, facts: dict[str, Any], plan: P) -> None:
        """Create (or find) the target in Infobip when the plan needs it; remember its id in ``facts``."""
        raise NotImplementedError

    def lanes(self, plan: P, batch_size: int, facts: dict[str, Any], tally: Tally) -> list[Lane]:
        raise NotImplementedError

    def forget_target(self, target: TargetState, facts: dict[str, Any]) -> S:
        """The snapshot to start from once the target vanished (its id is dropped from ``facts``)."""
        raise NotImplementedError

    def outcome(self, plan: P, tally: Tally, facts: dict[str, Any]) -> dict[str, Any]:
        """What the run did, for the summary (counts the history records are taken from)."""
        raise NotImplementedError

    def outcome_line(self, name: str, summary: dict[str, Any], size: int) -> str:
        """What the run did, in words (the engine adds the rows not used, calls and waits)."""
        raise NotImplementedError

    def refused_frame(self, refused: dict[str, str]) -> pd.DataFrame:
        """Items Infobip refused, as rejects rows."""
        raise NotImplementedError

    #: Summary keys of a finished run kept in the target's history (its chart).
    history_counts: tuple[str, ...] = ()
    #: Summary keys of a dry run kept in the target's history.
    planned_counts: tuple[str, ...] = ()

    # ------------------------------------------------------------------------ engine
    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Time one phase of the run (resume, prepare, plan, send, fold) for the summary and the log."""
        started = time.monotonic()
        try:
            yield
        finally:
            phases = self.__dict__.setdefault("_phases", {})
            phases[name] = phases.get(name, 0.0) + time.monotonic() - started
            self.__dict__.setdefault("_peaks", {})[name] = _peak_rss_mb()

    def phase_seconds(self) -> dict[str, float]:
        phases, peaks = self.__dict__.get("_phases", {}), self.__dict__.get("_peaks", {})
        self.log.info(
            "Time by phase (and the task's peak memory at its end): %s",
            ", ".join(f"{k} {v:.2f} s ({peaks.get(k, 0):.0f} MB)" for k, v in phases.items()),
        )
        return {k: round(v, 3) for k, v in phases.items()}

    def phase_peaks(self) -> dict[str, int]:
        """The task's peak memory (MB) at the end of each phase: where the peak was reached."""
        return {k: round(v) for k, v in self.__dict__.get("_peaks", {}).items()}

    def execute(self, context: Context) -> dict[str, Any]:
        self.__dict__["_phases"] = {}
        batch_size, max_removal_ratio = validate_sync_args(self.batch_size, self.max_removal_ratio)
        name = self.target_name()
        dry_run = self.is_dry_run()
        target = self.target(name)
        with self.locked(target, self.what(name)):
            return self.sync(context, target, name, batch_size, max_removal_ratio, dry_run)

    def resume(self, target: TargetState, dry_run: bool) -> S:
        """The snapshot, with what an interrupted try's journal says folded in."""
        from infobip_provider.checkpoint import recover

        snapshot = self.read_snapshot(target)
        recovery = recover(target)
        if recovery.empty:
            return snapshot
        snapshot = self.fold(snapshot, recovery)
        self.log.info(
            "Resuming an interrupted run: %d acknowledged batches folded into the snapshot; %d items of "
            "unanswered batches will be sent again",
            sum(len(v) for v in recovery.acked.values()),
            sum(len(v) for v in recovery.unacked.values()),
        )
        if not dry_run:
            self.write_snapshot(target, snapshot)
            target.clear_journal()
        return snapshot

    def sync(
        self,
        context: Context,
        target: TargetState,
        name: str,
        batch_size: int,
        max_removal_ratio: float,
        dry_run: bool,
    ) -> dict[str, Any]:
        facts = target.read_json("target.json", {}) or {}
        first = self.snapshot_first()
        if first:  # the cohort is read against the snapshot
            with self.phase("resume"):
                snapshot = self.resume(target, dry_run)
        with self.phase("prepare"):  # the cohort first: its peak does not stand on the snapshot's
            prepared, work, rejects = (
                self.prepare_against(context, snapshot) if first else self.prepare(context)
            )
            rejects_uri = self.report_rejects(context, target, prepared, rejects)
            release_memory()
        if not first:
            with self.phase("resume"):
                snapshot = self.resume(target, dry_run)
                release_memory()
        self.check_work(prepared, work)
        with self.phase("plan"):
            plan = self.plan(work, snapshot)
            stats = prepared.stats
            del prepared, work  # the plan holds what is sent; a vanished target reads the cohort again
            release_memory()
        check_removal_guard(self.removals(plan), self.confirmed(snapshot), max_removal_ratio, self.what(name))
        counts, line = self.describe(name, plan, snapshot)
        calls = self.calls(plan, batch_size)
        bound = round(max([(n - 1) * self.hook.interval(e) for e, n in calls.items() if n] or [0.0]), 3)
        requests = sum(calls.values())
        self.log.info(
            "%s; %d %s, at least %.0f s at Infobip's pace",
            line,
            requests,
            "request" if requests == 1 else "requests",
            bound,
        )
        summary: dict[str, Any] = {
            "dry_run": dry_run,
            "cohort": stats,
            **counts,
            "rejects_uri": rejects_uri,
        }
        if dry_run:
            summary.update(
                calls_planned=calls,
                seconds_bound=bound,
                phases=self.phase_seconds(),
                peak_memory_mb=self.phase_peaks(),
            )
            self.log.info("Dry run, nothing sent. Turn dry_run off to apply this plan.")
            planned = {k: summary[k] for k in self.planned_counts} | {"not_used": len(rejects)}
            return self.finish(
                context, target, name, summary, counts=planned, size=self.confirmed(snapshot), dry_run=True
            )
        summary.update(self.apply_plan(context, target, name, facts, snapshot, plan, batch_size))
        summary["phases"] = self.phase_seconds()
        summary["peak_memory_mb"] = self.phase_peaks()
        summary["rejected"] = len(rejects) + summary["refused_by_infobip"]
        size = int(summary.pop("_size"))
        self.log.info(
            "%s; %d not used (%d refused by Infobip); %d calls, %.1f s waiting for cooldowns",
            self.outcome_line(name, summary, size),
            summary["rejected"],
            summary["refused_by_infobip"],
            sum(self.hook.calls.values()),
            sum(self.hook.waited.values()),
        )
        done = {k: summary[k] for k in self.history_counts}
        return self.finish(context, target, name, summary, counts=done, size=size, dry_run=False)

    def apply_plan(
        self,
        context: Context,
        target: TargetState,
        name: str,
        facts: dict[str, Any],
        snapshot: S,
        plan: P,
        batch_size: int,
    ) -> dict[str, Any]:
        """Send the plan; if the target vanished, start it afresh once and send the whole cohort
        (read again: the cohort is not kept in memory while the plan is sent)."""
        run = run_key(context)
        tally = Tally()
        recreated = False
        try:
            snapshot = self.apply(target, facts, snapshot, plan, batch_size, run, tally)
        except self.missing_errors:
            self.log.warning(
                "%s no longer exists in Infobip: creating it again and sending every member",
                self.what(name).capitalize(),
            )
            snapshot = self.forget_target(target, facts)
            self.write_snapshot(target, snapshot)
            target.clear_journal()
            plan = self.plan(self.prepare(context)[1], snapshot)
            refused, tally = tally.refused, Tally()  # count what the new target got, not the vanished one
            tally.refuse(refused)
            snapshot = self.apply(target, facts, snapshot, plan, batch_size, run, tally)
            recreated = True
        if tally.refused:
            self.log.warning("Infobip refused %d items (see the rejects)", len(tally.refused))
            target.write_rejects(run + "-refused", self.refused_frame(tally.refused))
        out = self.outcome(plan, tally, facts)
        out.update(refused_by_infobip=len(tally.refused), _size=self.confirmed(snapshot))
        if recreated:
            out["recreated"] = True
        return out

    def apply(
        self,
        target: TargetState,
        facts: dict[str, Any],
        snapshot: S,
        plan: P,
        batch_size: int,
        run: str,
        tally: Tally,
    ) -> S:
        """Send the plan's lanes; whatever happened, what Infobip acknowledged becomes the snapshot."""
        from infobip_provider.checkpoint import BatchLanes, recover

        snapshot = self.before_apply(snapshot, plan)
        self.ensure_target(target, facts, plan)
        lanes = self.lanes(plan, batch_size, facts, tally)
        answered = False
        try:
            with self.phase("send"):
                BatchLanes(target, f"{run}:{uuid.uuid4().hex[:8]}").run(lanes)
            answered = True
        finally:
            with self.phase("fold"):
                folded = self.fold_answered(snapshot, plan, lanes) if answered else None
                snapshot = folded if folded is not None else self.fold(snapshot, recover(target))
                self.write_snapshot(target, snapshot)
                target.clear_journal()
        return snapshot

    def fold_answered(self, snapshot: S, plan: P, lanes: list[Lane]) -> S | None:
        """The snapshot once every batch of the plan was answered (each lane's ``refused`` says what
        Infobip refused), computed from the plan instead of the journal; ``None``: read the journal."""
        return None
