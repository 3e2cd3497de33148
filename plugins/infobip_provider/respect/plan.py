"""What respecting the recipients did to one broadcast's plan: who was skipped and why (suppressed,
frequency cap, quiet hours on a channel without delivery windows), and, with quiet hours, each
member's zone and each zone's window in UTC. Pure; the broadcast engine fills it and sends by it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from infobip_provider.respect.quiet_hours import QuietHours, ZoneWindow

#: Zones named one by one in the log (the summary names them all).
LOG_ZONES = 20

#: Why a member of the cohort was not sent, as the rejects file and the summary say it.
SUPPRESSED = "suppressed"
FREQUENCY_CAP = "frequency_cap"
QUIET_HOURS = "quiet_hours"


@dataclass
class RespectPlan:
    """The recipients' side of a broadcast's plan.

    :ivar skipped: reason -> members not sent (:data:`SUPPRESSED`, :data:`FREQUENCY_CAP`,
        :data:`QUIET_HOURS`).
    :ivar skipped_ids: message id -> reason, for the rejects file.
    :ivar quiet: the quiet hours, or None.
    :ivar at: the send time the windows are for (ISO 8601), or None.
    :ivar zone_members: zone -> members (of those sent).
    :ivar zone_sources: where the zones came from (``column``, ``phone``, ``default``, ``ambiguous``,
        ``invalid_timezone``).
    :ivar windows: zone -> its window.
    :ivar group_of: message id -> group key (members whose zones share a window share requests);
        empty when messages need no window.
    :ivar notes: further lines for the log (the suppression list's size, the cap's window ...).
    :ivar facts: further summary fields.
    """

    skipped: Counter[str] = field(default_factory=Counter)
    skipped_ids: dict[str, str] = field(default_factory=dict)
    quiet: QuietHours | None = None
    at: str | None = None
    zone_members: Counter[str] = field(default_factory=Counter)
    zone_sources: Counter[str] = field(default_factory=Counter)
    windows: dict[str, ZoneWindow] = field(default_factory=dict)
    group_of: dict[str, tuple[str, str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def skip(self, message_id: str, reason: str) -> None:
        self.skipped[reason] += 1
        self.skipped_ids[message_id] = reason

    def keep(self, recipients: Sequence[Any]) -> list[Any]:
        """The recipients not skipped."""
        if not self.skipped_ids:
            return list(recipients)
        return [r for r in recipients if r.message_id not in self.skipped_ids]

    @property
    def groups(self) -> dict[tuple[str, str], ZoneWindow]:
        """Group key -> a window of that group (every zone of a group has the same window)."""
        out: dict[tuple[str, str], ZoneWindow] = {}
        for zone in sorted(self.windows):
            out.setdefault(self.windows[zone].key, self.windows[zone])
        return out

    def count_requests(self, recipients: Sequence[Any], requests: Callable[[Sequence[Any]], int]) -> int:
        """Requests the recipients take when each group goes in its own requests."""
        if not self.group_of:
            return requests(recipients)
        keys = [self.group_of[r.message_id] for r in recipients]
        if len(set(keys)) == 1:  # one group (one window for everyone): no need to split them
            return requests(recipients)
        by_group: dict[tuple[str, str], list[Any]] = {}
        for r, key in zip(recipients, keys):
            members = by_group.get(key)
            if members is None:
                members = by_group[key] = []
            members.append(r)
        return sum(requests(members) for members in by_group.values())

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"skipped": dict(sorted(self.skipped.items())), **self.facts}
        if self.quiet is not None:
            out["quiet_hours"] = {
                **self.quiet.as_dict(),
                "send_time": self.at,
                "zone_sources": dict(sorted(self.zone_sources.items())),
                "zones": {
                    zone: {"members": self.zone_members[zone], **self.windows[zone].as_dict()}
                    for zone in sorted(self.windows, key=lambda z: (-self.zone_members[z], z))
                },
                "groups": len(self.groups),
            }
        return out

    def lines(self) -> list[str]:
        """The plan's lines for the log: counts, zones and UTC windows; never a person's address."""
        lines = list(self.notes)
        if self.quiet is not None:
            sources = ", ".join(f"{n} {k}" for k, n in sorted(self.zone_sources.items())) or "none"
            lines.append(
                f"Quiet hours: sending {self.quiet.describe()}, for a send at {self.at}; members' time "
                f"zones from: {sources}; {len(self.windows)} zones in {len(self.groups)} window groups"
            )
            ranked = sorted(self.windows, key=lambda z: (-self.zone_members[z], z))
            for zone in ranked[:LOG_ZONES]:
                lines.append(f"  {self.zone_members[zone]} members in {self.windows[zone].describe()}")
            if len(ranked) > LOG_ZONES:
                rest = sum(self.zone_members[z] for z in ranked[LOG_ZONES:])
                lines.append(f"  {rest} members in {len(ranked) - LOG_ZONES} more zones (see the summary)")
        if self.skipped:
            lines.append(
                "Not sent, to respect the recipients: "
                + ", ".join(f"{n} {reason}" for reason, n in sorted(self.skipped.items()))
            )
        return lines
