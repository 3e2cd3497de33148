"""The WhatsApp channel's confirmation by delivery reports, as journal records the engine folds."""

from __future__ import annotations

from infobip_provider.checkpoint import journal_record
from infobip_provider.engines.broadcast import fold_ledger
from infobip_provider.whatsapp import confirmation_records


def journal() -> list[dict]:
    return [
        journal_record("a", "send", "a-1", "intent", ids=["m1", "m2", "m3"], t=100.0),
        journal_record("a", "send", "a-2", "intent", ids=["m4", "m5"], t=101.0),
        journal_record("a", "send", "a-2", "ack", statuses={"PENDING": 2}),
        journal_record("a", "send", "a-3", "intent", ids=["m6", "m7"], t=102.0),
        journal_record("b", "send", "a-3", "unconfirmed"),
        journal_record("a", "send", "a-4", "intent", ids=["m8"], t=103.0),
    ]


def test_reported_members_of_open_and_skipped_batches_become_sent_the_rest_stays():
    records = journal()
    ledger = fold_ledger(records)
    assert ledger.open_ids == {"m1", "m2", "m3", "m8"} and ledger.unconfirmed == {"m6", "m7"}
    found = {"m1": "DELIVERED", "m3": "UNDELIVERABLE", "m6": "DELIVERED", "m4": "DELIVERED"}
    extra, confirmed = confirmation_records(ledger, found, "r")
    after = fold_ledger([*records, *extra])
    assert after.sent == {"m1", "m3", "m4", "m5", "m6"}
    assert after.open_ids == {"m2", "m8"}, "a member without a report stays open, with its batch's time"
    assert [t for t, ids in after.open.values() if ids == ["m2"]] == [100.0]
    assert after.statuses["DELIVERED"] == 2 and after.statuses["UNDELIVERABLE"] == 1
    assert confirmed.open == {"m1", "m3"} and confirmed.skipped == {"m6"} and len(confirmed) == 3
    # folding the confirmation again (a later run) changes nothing: nothing is left to confirm
    again, none = confirmation_records(after, found, "s")
    assert again == [] and len(none) == 0


def test_no_report_no_record():
    ledger = fold_ledger(journal())
    assert confirmation_records(ledger, {}, "r")[0] == []
    assert confirmation_records(ledger, {"m9": "DELIVERED"}, "r")[0] == []
