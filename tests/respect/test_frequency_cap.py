"""The frequency cap: a member who got ``count`` messages on a channel within ``hours`` (the account's
ledgers say so) is skipped with the reason ``frequency_cap``; the dry run counts them first."""

from __future__ import annotations

import csv
from datetime import UTC, datetime

import pytest

from infobip_provider.engines.broadcast import message_id
from infobip_provider.respect.frequency import (
    FrequencyCap,
    FrequencyCapError,
    LedgerView,
    accepted_since,
    recent_counts,
)
from tests.operators import test_sms_operator as sms_tests
from tests.operators import test_whatsapp_operator as whatsapp_tests

CAP = {"count": 1, "hours": 24}
T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC).timestamp()


def test_parse():
    assert FrequencyCap.parse(None) is None and FrequencyCap.parse("") is None
    assert FrequencyCap.parse('{"count": 2, "hours": 12}') == FrequencyCap(2, 12.0)
    for bad in ({"count": 0, "hours": 24}, {"count": 1, "hours": -1}, {"times": 1}, "[1]"):
        with pytest.raises(FrequencyCapError):
            FrequencyCap.parse(bad)


@pytest.mark.parametrize("count", [1.7, "1.5", True, "one", None])
def test_a_count_that_is_not_a_whole_number_is_refused(count):
    with pytest.raises(FrequencyCapError, match="whole"):
        FrequencyCap.parse({"count": count, "hours": 24})


def test_a_whole_count_written_as_a_float_or_text_is_taken():
    assert FrequencyCap.parse({"count": 2.0, "hours": 24}) == FrequencyCap(2, 24.0)
    assert FrequencyCap.parse({"count": "3", "hours": "12"}) == FrequencyCap(3, 12.0)


def test_accepted_since_counts_confirmed_batches_started_in_the_window():
    records = [
        {"state": "intent", "batch": "a", "t": 100.0, "ids": ["m1", "m2"]},
        {"state": "ack", "batch": "a"},
        {"state": "intent", "batch": "b", "t": 200.0, "ids": ["m3"]},
        {"state": "ack", "batch": "b"},
        {"state": "intent", "batch": "c", "t": 300.0, "ids": ["m4", "m5"]},
        {"state": "reconciled", "batch": "c", "known": ["m4"]},
        {"state": "intent", "batch": "d", "t": 300.0, "ids": ["m6"]},
        {"state": "not_sent", "batch": "d"},
        {"state": "intent", "batch": "e", "t": 300.0, "ids": ["m7"]},  # still open: not counted
    ]
    assert accepted_since(records, 150.0) == {"m3", "m4"}
    assert accepted_since(records, 0.0) == {"m1", "m2", "m3", "m4"}


def test_recent_counts_per_channel_without_the_current_bulk_or_test_sends():
    def ledger(bulk, channel, addresses, test=False):
        ids = [message_id(bulk, a) for a in addresses]
        records = [{"state": "intent", "batch": "1", "t": 500.0, "ids": ids}, {"state": "ack", "batch": "1"}]
        return LedgerView(bulk, channel, test, records)

    ledgers = [
        ledger("b1", "sms", ["41790000001", "41790000002"]),
        ledger("b2", "sms", ["41790000001"]),
        ledger("b3", "whatsapp", ["41790000002"]),  # another channel
        ledger("b4", "sms", ["41790000003"], test=True),  # a test send
        ledger("b5", None, ["41790000003"]),  # recorded before ledgers named their channel
        ledger("now", "sms", ["41790000004"]),  # the broadcast being sent
    ]
    counts, broadcasts = recent_counts(
        ledgers,
        ["41790000001", "41790000002", "41790000003", "41790000004"],
        channel="sms",
        since=0.0,
        exclude_bulk="now",
    )
    assert counts == {"41790000001": 2, "41790000002": 1, "41790000003": 1}
    assert broadcasts == 3


def cohort(path, phones) -> str:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["phone", "first_name", "plan"])
        for i, phone in enumerate(phones):
            writer.writerow([f"+{phone}", f"N{i}", "pro"])
    return str(path)


def sms_run(fake, path, run_id, clock, **kwargs):
    op = sms_tests.make(fake, path, text="Hi {{first_name}}", max_per_person=CAP, **kwargs)
    op._clock = lambda: clock
    return sms_tests.run(op, run_id)


def test_a_second_broadcast_the_same_day_sends_to_nobody_who_got_the_first(tmp_path, caplog, capfd):
    fake = sms_tests.FakeInfobip(str(tmp_path / "state"))
    first_cohort = cohort(tmp_path / "a.csv", sms_tests.numbers(30))
    second_cohort = cohort(tmp_path / "b.csv", sms_tests.numbers(40))  # 10 new members
    sms_run(fake, first_cohort, "manual__1", T0)
    with caplog.at_level("INFO"):
        plan = sms_run(fake, second_cohort, "manual__2", T0 + 3600, dry_run=True)
    out, err = capfd.readouterr()
    assert plan["recipients"] == 10
    assert plan["skipped_by_reason"]["frequency_cap"] == 30
    assert plan["plan"]["respect"]["frequency_cap"]["members_at_cap"] == 30
    assert "30 members are at the cap" in caplog.text + out + err
    summary = sms_run(fake, second_cohort, "manual__2", T0 + 3600)
    second = sms_tests.bulk("manual__2")
    got = {m["to"] for m in fake.messages if m["bulkId"] == second}
    assert got == set(sms_tests.numbers(40)[30:])
    assert summary["sent"] == 10 and summary["skipped_by_reason"]["frequency_cap"] == 30
    # the members at the cap are in the rejects file, with the reason
    with open(summary["rejects_uri"].removeprefix("file://"), encoding="utf-8") as fh:
        reasons = [row["reason"] for row in csv.DictReader(fh)]
    assert reasons.count("frequency_cap") == 30
    # a day after the second broadcast the cap no longer holds: a third broadcast reaches everyone
    third = sms_run(fake, second_cohort, "manual__3", T0 + 26 * 3600)
    assert third["sent"] == 40 and "frequency_cap" not in third["skipped_by_reason"]


def test_a_resumed_try_of_the_same_broadcast_is_not_capped_by_itself(tmp_path):
    fake = sms_tests.FakeInfobip(str(tmp_path / "state"))
    path = cohort(tmp_path / "a.csv", sms_tests.numbers(30))
    fake.faults = ["ok", "die_before"]
    with pytest.raises(sms_tests.Crash):
        sms_run(fake, path, "manual__1", T0, batch_size=10)
    summary = sms_run(fake, path, "manual__1", T0 + 60, batch_size=10)
    assert summary["sent"] == 30 and "frequency_cap" not in summary["skipped_by_reason"]
    assert max(fake.per_number(sms_tests.bulk()).values()) == 1


def test_the_cap_is_per_channel_and_test_sends_do_not_count(tmp_path):
    state = str(tmp_path / "state")
    sms = sms_tests.FakeInfobip(state)
    path = cohort(tmp_path / "a.csv", sms_tests.numbers(5))
    sms_run(sms, path, "manual__1", T0, test_recipients=["+41793000001"])  # a test send
    assert sms_run(sms, path, "manual__2", T0)["sent"] == 5  # the test send did not count
    whatsapp = whatsapp_tests.FakeWhatsApp(state)
    op = whatsapp_tests.make(whatsapp, path, placeholders=["first_name"], max_per_person=CAP)
    op._clock = lambda: T0 + 60
    summary = whatsapp_tests.run(op)
    assert summary["sent"] == 5  # SMS messages do not cap WhatsApp
    again = sms_run(sms, path, "manual__3", T0 + 120)
    assert again["sent"] == 0 and again["skipped_by_reason"]["frequency_cap"] == 5
