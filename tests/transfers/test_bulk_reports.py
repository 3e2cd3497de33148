"""The WhatsApp broadcasts' index of pushed reports keeps 30 days, then is pruned."""

from __future__ import annotations

import time

from infobip_provider.pushes import bulk_reports, land_page, land_push, prune_bulk_reports, reported
from infobip_provider.state import StateStore


def _report(message_id: str, bulk_id: str | None) -> dict:
    item = {"messageId": message_id, "status": {"groupName": "DELIVERED"}}
    return item if bulk_id is None else {**item, "bulkId": bulk_id}


def test_reports_older_than_the_kept_days_go_and_empty_bulk_folders_with_them(tmp_path):
    store = StateStore(str(tmp_path))
    land_push(store, "acct", "reports", "whatsapp", [_report("new-1", "b1"), _report("new-2", None)])
    day = 86400 * 10**9
    old = f"push-{time.time_ns() - 31 * day:020d}-0000abcd.json"
    land_page(bulk_reports(store, "acct", "b1"), old, {"messageIds": {"old-1": "DELIVERED"}})
    land_page(bulk_reports(store, "acct", "b0"), old, {"messageIds": {"old-0": "DELIVERED"}})
    land_page(bulk_reports(store, "acct", None), old, {"messageIds": {"old-2": "DELIVERED"}})
    assert {r["messageId"] for r in reported(store, "acct", "b1", ["new-1", "old-1", "old-2"])} == {
        "new-1",
        "old-1",
        "old-2",
    }

    assert prune_bulk_reports(store, "acct") == 3
    assert {r["messageId"] for r in reported(store, "acct", "b1", ["new-1", "old-1", "new-2", "old-2"])} == {
        "new-1",
        "new-2",
    }
    assert not bulk_reports(store, "acct", "b0").root.exists()  # nothing left in it: the folder goes
    assert bulk_reports(store, "acct", "b1").root.exists()
    inbox = tmp_path / "acct" / "pushes"
    assert any(p.name.startswith("reports-whatsapp-") for p in inbox.iterdir())  # the inbox is untouched
    assert prune_bulk_reports(store, "acct") == 0
    assert prune_bulk_reports(store, "other-account") == 0


def test_a_shorter_keep_prunes_yesterdays_reports(tmp_path):
    store = StateStore(str(tmp_path))
    land_push(store, "acct", "reports", "whatsapp", [_report("m-1", "b1")])
    assert prune_bulk_reports(store, "acct", keep_days=1) == 0
    assert prune_bulk_reports(store, "acct", keep_days=1, now=time.time() + 2 * 86400) == 1
    assert reported(store, "acct", "b1", ["m-1"]) == []
