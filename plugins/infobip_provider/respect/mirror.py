"""SuppressionMirrorOperator: keep Infobip's own blocklist and email suppressions equal to the
account's suppression list, on the sync engine, so that sends from outside Airflow respect it too.

Each entry of the list (:mod:`infobip_provider.respect.suppression`) becomes items Infobip keeps:

- a number suppressed on every channel goes on the blocklist for each of ``channels`` (default SMS and
  WhatsApp); one suppressed on SMS or WhatsApp only, for that channel
  (``POST /platform/1/blocklists``, one request per second, up to 1000 destinations each);
- an email address goes to ``/email/1/suppressions`` of ``email_domain`` (an opt-out or a listed
  address as UNSUBSCRIBE, a hard bounce as BOUNCE, a spam bounce as COMPLAINT; 100 requests/s);
  without ``email_domain`` email addresses are counted and left alone.

Like a list sync, a run sends only the difference from what Infobip confirmed at the end of the
last one (its snapshot): items new on the list are added, items gone from it (a row deleted by
hand, a file that no longer lists an address) are removed; an interrupted run resumes from its
journal (both calls change nothing when repeated).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from infobip_provider.engines.sync import SyncOperator, Tally
from infobip_provider.values import as_text

if TYPE_CHECKING:
    import pandas as pd
    from airflow.sdk import Context

    from infobip_provider.checkpoint import Lane, Recovery
    from infobip_provider.cohorts import PreparedCohort
    from infobip_provider.state import TargetState

#: What the suppression list's reasons become among Infobip's email suppression types.
EMAIL_TYPES = {
    "opt_out": "UNSUBSCRIBE",
    "listed": "UNSUBSCRIBE",
    "hard_bounce": "BOUNCE",
    "spam_bounce": "COMPLAINT",
}
PHONE_CHANNELS = ("SMS", "WHATSAPP")
SNAPSHOT = "mirrored.json"
BLOCKLIST, EMAIL = "bl", "es"


def mirror_items(
    rows: Sequence[tuple[Any, ...]], channels: Sequence[str], email_domain: str | None
) -> tuple[set[str], int]:
    """The items Infobip should keep for the list's rows ``(channel, address, reason, ...)``, and how
    many email rows have no domain to go to.

    Items: ``bl|<CHANNEL>|<number>`` on the blocklist, ``es|<domain>|<TYPE>|<address>`` in email
    suppressions.
    """
    items: set[str] = set()
    unmirrored = 0
    for row in rows:
        channel, address, reason = str(row[0]), str(row[1]), str(row[2])
        if "@" in address:
            if not email_domain:
                unmirrored += 1
                continue
            items.add(f"{EMAIL}|{email_domain}|{EMAIL_TYPES.get(reason, 'UNSUBSCRIBE')}|{address}")
            continue
        wanted = channels if channel == "*" else [channel.upper()]
        items.update(f"{BLOCKLIST}|{c}|{address}" for c in wanted if c in channels)
    return items, unmirrored


def blocklist_entries(items: Sequence[str]) -> list[dict[str, Any]]:
    """``bl|...`` items as the blocklist's entries: one per channel with its destinations."""
    by_channel: dict[str, list[dict[str, str]]] = {}
    for item in items:
        _, channel, to = item.split("|", 2)
        by_channel.setdefault(channel, []).append({"to": to})
    return [{"channel": c, "destinations": d} for c, d in sorted(by_channel.items())]


def suppression_entries(items: Sequence[str]) -> list[dict[str, Any]]:
    """``es|...`` items as email suppressions: one per domain and type with its addresses."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for item in items:
        _, domain, kind, address = item.split("|", 3)
        grouped.setdefault((domain, kind), []).append(address)
    return [{"domainName": d, "type": k, "emailAddress": a} for (d, k), a in sorted(grouped.items())]


@dataclass
class ListRows:
    """The suppression list in the place of a prepared cohort: its counts, no rejects."""

    stats: dict[str, Any]
    rejects: Any
    source: str

    def check_reject_ratio(self, max_reject_ratio: float | None, log: Any = None) -> None:
        if log is not None:
            log.info("Suppression list %s: %d entries", self.source, self.stats["rows_read"])


@dataclass(frozen=True)
class MirrorPlan:
    """Items to add to Infobip and to remove from it; ``unchanged`` confirmed ones stay."""

    adds: list[str]
    removes: list[str]
    unchanged: int


class SuppressionMirrorOperator(SyncOperator[set[str], set[str], MirrorPlan]):
    """Mirror the account's suppression list into Infobip's blocklist and email suppressions.

    :param channels: blocklist channels for numbers suppressed on every channel (``SMS``, ``WHATSAPP``).
    :param email_domain: the sending domain whose email suppressions take the list's addresses
        (templated); empty: addresses are not mirrored (counted).
    :param batch_size: items per request, at most 1000.
    :param max_removal_ratio: refuse a run that would remove more than this share of the mirrored items.
    :param dry_run: plan only (templated).

    The summary: ``to_add``, ``to_remove``, ``unchanged``; after a run ``added``, ``removed`` and
    ``emails_not_mirrored``.
    """

    kind = "mirrors"
    template_fields: Sequence[str] = ("email_domain", "dry_run")
    ui_color = "#e76f51"
    history_counts = ("added", "removed", "unchanged")
    planned_counts = ("to_add", "to_remove", "unchanged")

    def __init__(
        self,
        *,
        channels: Sequence[str] = PHONE_CHANNELS,
        email_domain: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.channels = channels
        self.email_domain = email_domain
        self._unmirrored = 0

    # ----------------------------------------------------------------- names
    def target_name(self) -> str:
        channels = [str(c).strip().upper() for c in (self.channels or ())]
        bad = [c for c in channels if c not in PHONE_CHANNELS]
        if bad or not channels:
            raise AirflowFailException(
                f"channels must be among {', '.join(PHONE_CHANNELS)}, got {bad or channels}"
            )
        self.channels = channels
        domain = as_text(self.email_domain)
        self.email_domain = domain.lower() if domain else None
        return "suppression list mirror"

    def what(self, name: str) -> str:
        return "Infobip's blocklist and email suppressions"

    # -------------------------------------------------------------- snapshot
    def read_snapshot(self, target: TargetState) -> set[str]:
        return set(target.read_json(SNAPSHOT) or [])

    def write_snapshot(self, target: TargetState, snapshot: set[str]) -> None:
        target.write_json(SNAPSHOT, sorted(snapshot))

    def fold(self, snapshot: set[str], recovery: Recovery) -> set[str]:
        out = set(snapshot)
        for ids, refused in recovery.acked.get("add", []):
            out.update(i for i in ids if i not in refused)
        for ids, _ in recovery.acked.get("remove", []):
            out.difference_update(ids)
        return out  # unanswered batches: adds are not confirmed, removes stay; both go again

    def confirmed(self, snapshot: set[str]) -> int:
        return len(snapshot)

    def forget_target(self, target: TargetState, facts: dict[str, Any]) -> set[str]:
        return set()

    def ensure_target(self, target: TargetState, facts: dict[str, Any], plan: MirrorPlan) -> None:
        return None  # the blocklist and the suppressions always exist

    # ------------------------------------------------------------------ plan
    def prepare(self, context: Context) -> tuple[PreparedCohort, set[str], pd.DataFrame]:  # type: ignore[override]
        import pandas as pd

        from infobip_provider.respect.suppression import SuppressionList
        from infobip_provider.state import StateStore, TargetState

        listing = SuppressionList(
            TargetState(StateStore(self.hook.state_uri).root / self.hook.state_scope / "suppression")
        )
        frame = listing.read()
        rows = list(frame.itertuples(index=False, name=None))
        items, self._unmirrored = mirror_items(rows, self.channels, self.email_domain)
        stats = {
            "rows_read": len(rows),
            "members": len(rows),
            "rejected": 0,
            "invalid": 0,
            "duplicates": 0,
            "rejected_by_reason": {},
            "empty": not rows,
        }
        rejects = pd.DataFrame({c: pd.Series(dtype=object) for c in ("row", "key", "value", "reason")})
        prepared = ListRows(stats, rejects, listing.uri)
        if self._unmirrored:
            self.log.warning(
                "%d email addresses are not mirrored: give email_domain (your sending domain) to put them "
                "in Infobip's email suppressions",
                self._unmirrored,
            )
        return prepared, items, rejects  # type: ignore[return-value]  # a cohort's counts, no members

    def plan(self, work: set[str], snapshot: set[str]) -> MirrorPlan:
        return MirrorPlan(sorted(work - snapshot), sorted(snapshot - work), len(work & snapshot))

    def removals(self, plan: MirrorPlan) -> int:
        return len(plan.removes)

    def calls(self, plan: MirrorPlan, batch_size: int) -> dict[str, int]:
        def count(items: list[str], prefix: str) -> int:
            return math.ceil(sum(1 for i in items if i.startswith(prefix + "|")) / batch_size)

        return {
            "blocklist.add": count(plan.adds, BLOCKLIST),
            "blocklist.remove": count(plan.removes, BLOCKLIST),
            "email.suppressions.add": count(plan.adds, EMAIL),
            "email.suppressions.remove": count(plan.removes, EMAIL),
        }

    def describe(self, name: str, plan: MirrorPlan, snapshot: set[str]) -> tuple[dict[str, Any], str]:
        counts = {
            "to_add": len(plan.adds),
            "to_remove": len(plan.removes),
            "unchanged": plan.unchanged,
            "emails_not_mirrored": self._unmirrored,
        }
        line = (
            f"Plan for {self.what(name)} ({len(snapshot)} items mirrored): {len(plan.adds)} to add, "
            f"{len(plan.removes)} to remove, {plan.unchanged} unchanged"
        )
        return counts, line

    # ------------------------------------------------------------------ send
    def lanes(self, plan: MirrorPlan, batch_size: int, facts: dict[str, Any], tally: Tally) -> list[Lane]:
        from infobip_provider.checkpoint import Lane, batches

        hook = self.hook

        def send(ids: list[str], add: bool) -> dict[str, str]:
            blocked = [i for i in ids if i.startswith(BLOCKLIST + "|")]
            emails = [i for i in ids if i.startswith(EMAIL + "|")]
            if blocked:
                entries = blocklist_entries(blocked)
                hook.blocklist_add(entries) if add else hook.blocklist_remove(entries)
            if emails:
                entries = suppression_entries(emails)
                hook.email_suppressions_add(entries) if add else hook.email_suppressions_remove(entries)
            tally.add("added" if add else "removed", len(ids))
            return {}

        # blocklist items first, then email ones, so a batch mostly takes one kind of request
        adds = sorted(plan.adds, key=lambda i: (not i.startswith(BLOCKLIST), i))
        removes = sorted(plan.removes, key=lambda i: (not i.startswith(BLOCKLIST), i))
        return [
            Lane(
                "add", batches(adds, batch_size), lambda ids: send(ids, True), hook.interval("blocklist.add")
            ),
            Lane(
                "remove",
                batches(removes, batch_size),
                lambda ids: send(ids, False),
                hook.interval("blocklist.remove"),
            ),
        ]

    def outcome(self, plan: MirrorPlan, tally: Tally, facts: dict[str, Any]) -> dict[str, Any]:
        return {
            "added": tally.counts["added"],
            "removed": tally.counts["removed"],
            "unchanged": plan.unchanged,
            "emails_not_mirrored": self._unmirrored,
        }

    def outcome_line(self, name: str, summary: dict[str, Any], size: int) -> str:
        return (
            f"{self.what(name).capitalize()} now mirror {size} items: {summary['added']} added, "
            f"{summary['removed']} removed, {summary['unchanged']} unchanged"
        )

    def refused_frame(self, refused: dict[str, str]) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame(
            {"row": None, "key": list(refused), "value": list(refused), "reason": list(refused.values())}
        )
