"""Pushed notifications in the state store: what the receiver lands and the return path collects.

Infobip pushes delivery reports, seen reports and inbound messages as ``{"results": [...]}`` to a URL
(``notifyUrl``, ``webhooks.delivery.url``, a number's forwarding URL). The receiver
(:mod:`infobip_provider.webhooks`) writes every accepted push whole, durably, before it answers 2xx,
under the account's scope of the connection's state store::

    <state_uri>/<scope>/pushes/<kind>-<channel>-<hash>/push-<time_ns>-<random>.json   {"kind", "channel", "items", "received_at"}
    <state_uri>/<scope>/pushes/whatsapp-bulk-<bulk>-<hash>/push-<...>.json               {"messageIds": {id: status group}}

The first folder is an inbox: the reports and replies operators take each file into their own
state folder as a landed page (copy, then delete: a crash in between upserts the page twice, still
one row per message) and upsert it like a pulled page. The second is kept for the WhatsApp
broadcast, which has no logs to ask: a report that arrived is the proof that Infobip took the
message (:func:`reported`), read by :class:`infobip_provider.whatsapp.WhatsAppChannel`.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from infobip_provider.state import StateStore, TargetState

#: The state store kind of the pushed notifications' folders.
PUSHES = "pushes"
#: What a push carries, in the inbox's name: delivery reports, seen reports, inbound messages.
PUSH_KINDS = ("reports", "seen", "replies")
PUSH_CHANNELS = ("sms", "email", "whatsapp")
PUSH_PREFIX = "push-"
#: The bulk folder of WhatsApp reports that name no bulk (text messages have none).
NO_BULK = "-"
#: How long the per-bulk index keeps a WhatsApp report for the broadcast that waits on it: a member
#: whose report has not come in 30 days stays unconfirmed (and is never sent again by itself).
BULK_REPORTS_KEPT_DAYS = 30
#: How the folders of :func:`bulk_reports` begin (``slug("whatsapp bulk <id>")``).
_BULK_FOLDERS = "whatsapp-bulk-"


def inbox(store: StateStore, scope: str, kind: str, channel: str) -> TargetState:
    """The folder of ``kind`` pushes of ``channel`` not yet collected."""
    return store.target(scope, PUSHES, f"{kind} {channel}")


def bulk_reports(store: StateStore, scope: str, bulk_id: str | None) -> TargetState:
    """The folder of WhatsApp delivery reports that arrived for ``bulk_id``."""
    return store.target(scope, PUSHES, f"whatsapp bulk {bulk_id or NO_BULK}")


def prune_bulk_reports(
    store: StateStore, scope: str, *, keep_days: float = BULK_REPORTS_KEPT_DAYS, now: float | None = None
) -> int:
    """Delete the WhatsApp report index files that arrived more than ``keep_days`` ago (the arrival
    time is in each file's name) and the bulk folders left empty; the number of files deleted. The
    inboxes are not touched: the reports task empties them as it collects."""
    folder = store.root / scope / PUSHES
    if not folder.exists():
        return 0
    cutoff_ns = int(((time.time() if now is None else now) - keep_days * 86400) * 1e9)
    deleted = 0
    for bulk in folder.iterdir():
        if not bulk.name.startswith(_BULK_FOLDERS) or not bulk.is_dir():
            continue
        state = TargetState(bulk)
        names = push_names(state)
        for name in names:
            arrived = name[len(PUSH_PREFIX) :].split("-", 1)[0]
            if arrived.isdigit() and int(arrived) < cutoff_ns:
                state.delete(name)
                deleted += 1
        if names and not any(bulk.iterdir()):
            bulk.rmdir()
    return deleted


def push_name() -> str:
    """A push file's name: sorts by arrival, never collides."""
    return f"{PUSH_PREFIX}{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.json"


def push_names(folder: TargetState) -> list[str]:
    """The push files of ``folder``, oldest first."""
    if not folder.root.exists():
        return []
    return sorted(
        p.name for p in folder.root.iterdir() if p.name.startswith(PUSH_PREFIX) and p.name.endswith(".json")
    )


def _group(item: Mapping[str, Any]) -> str:
    return str((item.get("status") or {}).get("groupName") or "UNKNOWN")


def land_page(state: TargetState, name: str, page: Mapping[str, Any]) -> None:
    """Write a page of items durably and atomically (temporary file, fsync, rename), as compact JSON:
    a page of 1000 reports is written in milliseconds (``write_json``'s indented form takes ten times
    longer)."""
    state._atomic_write(name, json.dumps(page, separators=(",", ":"), ensure_ascii=False).encode())


def land_push(
    store: StateStore, scope: str, kind: str, channel: str, items: Sequence[Mapping[str, Any]]
) -> str:
    """Write one accepted push durably (each file atomic and fsync'd); the inbox file's name.

    WhatsApp delivery reports are also written per bulk id, for the broadcast that waits for them.
    """
    name = push_name()
    if kind == "reports" and channel == "whatsapp":
        by_bulk: dict[str | None, dict[str, str]] = {}
        for item in items:
            by_bulk.setdefault(item.get("bulkId") or None, {})[str(item["messageId"])] = _group(item)
        for bulk_id, ids in by_bulk.items():
            land_page(bulk_reports(store, scope, bulk_id), name, {"messageIds": ids})
    land_page(
        inbox(store, scope, kind, channel),
        name,
        {"kind": kind, "channel": channel, "items": list(items), "received_at": time.time()},
    )
    return name


def push_groups(
    folder: TargetState, names: Sequence[str], size: int
) -> Iterator[tuple[list[str], list[dict[str, Any]]]]:
    """The pushes ``names`` of ``folder`` in groups of about ``size`` items: ``(names, items)``."""
    group: list[str] = []
    items: list[dict[str, Any]] = []
    for name in names:
        group.append(name)
        items.extend((folder.read_json(name) or {}).get("items") or [])
        if len(items) >= size:
            yield group, items
            group, items = [], []
    if group:
        yield group, items


def take_pushes(
    source: TargetState,
    names: Sequence[str],
    items: list[dict[str, Any]],
    target: TargetState,
    landed: str,
    channel: str,
) -> None:
    """Move the pushes ``names`` (holding ``items``) from an inbox into ``target`` as one landed page
    ``landed``: the page is written durably before any push is deleted."""
    land_page(target, landed, {"channel": channel, "items": items, "source": "push"})
    for name in names:
        source.delete(name)


def reported(store: StateStore, scope: str, bulk_id: str, ids: Iterable[str]) -> list[dict[str, Any]]:
    """WhatsApp delivery reports that arrived for the messages ``ids`` of ``bulk_id`` (also those that
    named no bulk), as log-like items ``{"messageId", "bulkId", "status": {"groupName"}}``."""
    wanted = set(ids)
    found: dict[str, str] = {}
    for folder in (bulk_reports(store, scope, bulk_id), bulk_reports(store, scope, None)):
        for name in push_names(folder):
            for message_id, group in ((folder.read_json(name) or {}).get("messageIds") or {}).items():
                if message_id in wanted:
                    found.setdefault(message_id, group)
        if len(found) == len(wanted):
            break
    return [{"messageId": m, "bulkId": bulk_id, "status": {"groupName": g}} for m, g in found.items()]
