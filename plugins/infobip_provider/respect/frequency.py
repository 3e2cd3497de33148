"""The frequency cap: who already got ``count`` messages of this library's broadcasts on a channel
within ``hours``, read from the broadcasts' ledgers in the account's state store.

A ledger (a broadcast's ``journal.jsonl``) names messages by id only, never by address; a message id
is a hash of the bulk id and the address (the engine's own
:func:`~infobip_provider.engines.broadcast.message_ids` computes them), so the cap recomputes each
member's id in every recent broadcast of the channel and looks it up among the messages Infobip
accepted (answered, or found in its logs) since the cap's start. The broadcast being sent (its own
bulk id) and sends to test recipients never count. A broadcast recorded before ledgers named their
channel counts for every channel (the cap errs on the recipient's side).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from infobip_provider.values import BadValue, as_literal


class FrequencyCapError(BadValue):
    """``max_per_person`` cannot be read."""


@dataclass(frozen=True)
class FrequencyCap:
    """At most ``count`` messages per person and channel within ``hours``."""

    count: int
    hours: float

    @classmethod
    def parse(cls, value: Any) -> FrequencyCap | None:
        """``{"count": 1, "hours": 24}`` (JSON or Python-literal text too); None for nothing given."""
        value = as_literal(value, "max_per_person")
        if value in (None, "", {}):
            return None
        if not isinstance(value, Mapping) or set(value) - {"count", "hours"}:
            raise FrequencyCapError(
                f'max_per_person must be {{"count": n, "hours": h}}, e.g. {{"count": 1, "hours": 24}}, got {value!r}'
            )
        raw_count = value.get("count", 1)
        try:
            number = float(str(raw_count).strip()) if not isinstance(raw_count, bool) else None
            hours = float(value.get("hours", 24))
        except (TypeError, ValueError):
            raise FrequencyCapError(f"max_per_person needs a whole count and hours, got {value!r}") from None
        if number is None or not number.is_integer() or hours != hours:
            raise FrequencyCapError(
                f"max_per_person needs a whole number of messages as count, got {raw_count!r}"
            )
        count = int(number)
        if count < 1 or not 0 < hours <= 24 * 366:
            raise FrequencyCapError(
                f"max_per_person needs a count of at least 1 and hours above 0 (a year at most), got {value!r}"
            )
        return cls(count, hours)

    def describe(self) -> str:
        return f"at most {self.count} message{'s' if self.count > 1 else ''} per person in {self.hours:g} h"


def accepted_since(records: Iterable[Mapping[str, Any]], since: float) -> set[str]:
    """Message ids a journal says Infobip accepted in batches started at or after ``since`` (epoch s)."""
    started: dict[str, tuple[float, list[str]]] = {}
    accepted: set[str] = set()
    for record in records:
        state, key = record.get("state"), str(record.get("batch"))
        if state == "intent":
            started[key] = (float(record.get("t", 0.0)), list(record.get("ids") or []))
        elif state in ("ack", "reconciled") and key in started:
            t, ids = started.pop(key)
            if t >= since:
                accepted.update(ids if state == "ack" else (record.get("known") or []))
        elif state in ("not_sent", "unconfirmed"):
            started.pop(key, None)
    return accepted


@dataclass(frozen=True)
class LedgerView:
    """What the cap needs of one broadcast: its bulk id, channel (None: unknown), whether it went to
    test recipients, and its journal."""

    bulk_id: str
    channel: str | None
    test: bool
    records: Sequence[Mapping[str, Any]]


def recent_counts(
    ledgers: Iterable[LedgerView],
    addresses: Sequence[str],
    *,
    channel: str,
    since: float,
    exclude_bulk: str,
    message_ids: Callable[[str, Sequence[str]], Sequence[str]] | None = None,
) -> tuple[Counter[str], int]:
    """Messages each address got from the ``ledgers`` of ``channel`` since ``since``; and how many
    broadcasts had any in that time.

    :param message_ids: each address's message id in a bulk (default: the broadcast engine's
        :func:`~infobip_provider.engines.broadcast.message_ids`, the ids its ledgers hold).
    """
    if message_ids is None:
        from infobip_provider.engines.broadcast import message_ids as engine_ids

        message_ids = engine_ids
    counts: Counter[str] = Counter()
    broadcasts = 0
    for ledger in ledgers:
        if ledger.bulk_id == exclude_bulk or ledger.test:
            continue
        if ledger.channel not in (None, "", channel):
            continue
        accepted = accepted_since(ledger.records, since)
        if not accepted:
            continue
        broadcasts += 1
        counts.update(
            address
            for address, mid in zip(addresses, message_ids(ledger.bulk_id, addresses))
            if mid in accepted
        )
    return counts, broadcasts
