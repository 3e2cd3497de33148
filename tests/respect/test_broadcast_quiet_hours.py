"""Quiet hours on every broadcast, through the engine: members grouped by zone, each group's requests
carrying its UTC window, the dry run showing members per zone, ids the same on a resumed try."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import pytest
from airflow.sdk.exceptions import AirflowFailException

from tests.operators import test_email_operator as email_tests
from tests.operators import test_sms_operator as sms_tests
from tests.operators import test_whatsapp_operator as whatsapp_tests

EVENINGS = {"from": "21:00", "to": "09:00"}
# Tuesday 2026-11-24 08:30 UTC: 00:30 in Los Angeles, 03:30 in New York, 08:30 in London (all quiet),
# 14:00 in Kolkata (open)
AT = datetime(2026, 11, 24, 8, 30, tzinfo=UTC).timestamp()

PEOPLE = [
    # phone, timezone column, the zone the member must get
    ("+14155550100", "", "America/Los_Angeles"),
    ("+14155550101", "", "America/Los_Angeles"),
    ("+12125550100", "", "America/New_York"),
    ("+447911123400", "Europe/London", "Europe/London"),
    ("+919812345600", "", "Asia/Calcutta"),
    ("+41793026700", "Asia/Kathmandu", "Asia/Kathmandu"),  # the column wins over the Swiss number
]


def phone_cohort(path) -> str:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("phone,first_name,plan,timezone\n")
        for i, (phone, zone, _) in enumerate(PEOPLE):
            fh.write(f"{phone},Ana{i},pro,{zone}\n")
    return str(path)


def windows_by_number(bodies) -> dict[str, dict]:
    out = {}
    for body in bodies:
        for message in body["messages"]:
            window = (message.get("options") or {}).get("deliveryTimeWindow")
            for dest in message["destinations"]:
                out[dest["to"]] = window
    return out


def window_text(window: dict) -> str:
    f, t = window["from"], window["to"]
    return f"{f['hour']:02d}:{f['minute']:02d}-{t['hour']:02d}:{t['minute']:02d}"


@pytest.fixture
def sms(tmp_path, monkeypatch):
    fake = sms_tests.FakeInfobip(str(tmp_path / "state"))
    return fake


def sms_operator(fake, cohort, **kwargs):
    op = sms_tests.make(fake, cohort, text="Hi {{first_name}}", quiet_hours=EVENINGS, **kwargs)
    op._clock = lambda: AT
    return op


def test_sms_members_get_their_zones_window_one_request_per_window_group(sms, tmp_path):
    summary = sms_tests.run(sms_operator(sms, phone_cohort(tmp_path / "c.csv")))
    assert summary["sent"] == 6
    got = windows_by_number(sms.bodies)
    assert window_text(got["14155550100"]) == window_text(got["14155550101"]) == "17:00-23:59"
    assert window_text(got["12125550100"]) == "14:00-23:59"
    assert window_text(got["447911123400"]) == "09:00-21:00"
    assert window_text(got["919812345600"]) == "03:30-15:30"
    assert window_text(got["41793026700"]) == "03:15-15:15"
    # a request never mixes groups (sendAt is per request): five groups, five requests
    assert len(sms.bodies) == 5
    for body in sms.bodies:
        windows = {window_text(m["options"]["deliveryTimeWindow"]) for m in body["messages"]}
        assert len(windows) == 1
    respect = summary["plan"]["respect"]["quiet_hours"]
    assert respect["zones"]["America/Los_Angeles"]["members"] == 2
    assert respect["zone_sources"] == {"column": 2, "phone": 4}
    assert respect["groups"] == 5


def test_the_dry_run_shows_members_per_zone_and_the_utc_windows(sms, tmp_path, caplog, capfd):
    op = sms_operator(sms, phone_cohort(tmp_path / "c.csv"), dry_run=True)
    with caplog.at_level("INFO"):
        summary = sms_tests.run(op)
    out, err = capfd.readouterr()
    assert sms.bodies == []
    assert summary["requests_planned"] == 5
    zones = summary["plan"]["respect"]["quiet_hours"]["zones"]
    assert zones["America/Los_Angeles"]["delivery_time_window"]["from"] == {"hour": 17, "minute": 0}
    assert zones["Asia/Kathmandu"]["open_now"] is True and zones["Europe/London"]["open_now"] is False
    text = caplog.text + out + err
    assert "Quiet hours: sending 09:00-21:00 local time, every day" in text
    assert "2 members in America/Los_Angeles (UTC-08:00): window MONDAY-SUNDAY 17:00-23:59 UTC" in text
    assert "14155550100" not in text  # counts, never numbers


def test_a_resumed_try_names_the_same_messages_and_sends_only_the_rest(sms, tmp_path):
    cohort = phone_cohort(tmp_path / "c.csv")
    sms.faults = ["ok", "die_after"]  # the second group's request was taken, then the process died
    with pytest.raises(sms_tests.Crash):
        sms_tests.run(sms_operator(sms, cohort))
    first = {m["to"]: m["messageId"] for m in sms.messages}
    assert len(first) == 2
    # held in their windows, the messages are not in the logs yet: nothing is sent again
    with pytest.raises(sms_tests.BroadcastUncertainError, match="quiet_hours"):
        sms_tests.run(sms_operator(sms, cohort))
    assert len(sms.messages) == 2
    sms.release()  # they left: the logs show them
    summary = sms_tests.run(sms_operator(sms, cohort))
    per_number = Counter(m["to"] for m in sms.messages)
    assert set(per_number) == {p.lstrip("+") for p, _, _ in PEOPLE} and max(per_number.values()) == 1
    again = {m["to"]: m["messageId"] for m in sms.messages}
    assert all(again[k] == v for k, v in first.items())
    assert summary["sent"] == 6 and summary["already_sent"] == 2 and summary["reconciled"] == 1


def test_quiet_hours_and_a_utc_delivery_window_are_refused_together(sms, tmp_path):
    op = sms_operator(
        sms, phone_cohort(tmp_path / "c.csv"), delivery_time_window={"from": "09:00", "to": "17:00"}
    )
    with pytest.raises(AirflowFailException, match="not both"):
        sms_tests.run(op)
    assert sms.bodies == []


def test_without_quiet_hours_nothing_changes(sms, tmp_path):
    summary = sms_tests.run(sms_tests.make(sms, phone_cohort(tmp_path / "c.csv"), text="Hi"))
    assert len(sms.bodies) == 1 and "deliveryTimeWindow" not in str(sms.bodies)
    assert summary["plan"]["respect"]["skipped"] == {} and "quiet_hours" not in summary["plan"]["respect"]


def test_email_members_get_zones_from_their_column_and_phone(tmp_path):
    fake = email_tests.FakeEmail(str(tmp_path / "state"))
    path = tmp_path / "e.csv"
    path.write_text(
        "email,first_name,plan,timezone,phone\n"
        "a@x.example,A,pro,Asia/Kolkata,\n"
        "b@x.example,B,pro,,+12125550100\n"
        "c@x.example,C,pro,,\n"
    )
    op = email_tests.make(fake, str(path), quiet_hours=EVENINGS, default_timezone="Europe/London")
    op._clock = lambda: AT
    summary = email_tests.run(op)
    assert summary["sent"] == 3
    windows = {}
    for body in fake.bodies:
        for message in body["messages"]:
            for destination in message["destinations"]:
                for to in destination["to"]:
                    windows[to["destination"]] = window_text(message["options"]["deliveryTimeWindow"])
    assert windows == {
        "a@x.example": "03:30-15:30",
        "b@x.example": "14:00-23:59",
        "c@x.example": "09:00-21:00",
    }
    assert summary["plan"]["respect"]["quiet_hours"]["zone_sources"] == {
        "column": 1,
        "default": 1,
        "phone": 1,
    }


def test_whatsapp_holds_back_members_in_their_quiet_hours_and_a_later_try_sends_them(tmp_path):
    fake = whatsapp_tests.FakeWhatsApp(str(tmp_path / "state"))
    cohort = phone_cohort(tmp_path / "c.csv")
    op = whatsapp_tests.make(fake, cohort, quiet_hours=EVENINGS)
    op._clock = lambda: AT  # only Kolkata and Kathmandu are awake
    summary = whatsapp_tests.run(op)
    assert {m["to"] for m in fake.messages} == {"919812345600", "41793026700"}
    assert summary["skipped_by_reason"]["quiet_hours"] == 4
    assert "deliveryTimeWindow" not in str(fake.bodies)
    # 20:00 UTC: noon in Los Angeles, 15:00 in New York, 20:00 in London; Kolkata is asleep now
    later = whatsapp_tests.make(fake, cohort, quiet_hours=EVENINGS)
    later._clock = lambda: datetime(2026, 11, 24, 20, 0, tzinfo=UTC).timestamp()
    again = whatsapp_tests.run(later)
    per_number = Counter(m["to"] for m in fake.messages)
    assert len(per_number) == 6 and max(per_number.values()) == 1
    assert again["sent_this_try"] == 4
    # Kolkata and Kathmandu, asleep now, were sent by the first try: not held back, not rejected
    assert again["sent"] == 6 and "quiet_hours" not in again["skipped_by_reason"]


def test_a_short_validity_period_holds_members_until_their_window_opens(sms, tmp_path):
    # kept 4 hours only, the messages of Los Angeles (window 17:00 UTC, 8.5 hours away) and New York
    # (14:00 UTC) would expire before their windows open: they carry sendAt at the opening
    summary = sms_tests.run(sms_operator(sms, phone_cohort(tmp_path / "c.csv"), validity_period="4h"))
    assert summary["sent"] == 6
    send_at = {}
    for body in sms.bodies:
        at = ((body.get("options") or {}).get("schedule") or {}).get("sendAt")
        for message in body["messages"]:
            for dest in message["destinations"]:
                send_at[dest["to"]] = at
    assert send_at["14155550100"] == "2026-11-24T17:00:00.000+0000"
    assert send_at["12125550100"] == "2026-11-24T14:00:00.000+0000"
    assert send_at["447911123400"] is None  # London's window opens in half an hour
    assert send_at["919812345600"] is None  # Kolkata's is open now
