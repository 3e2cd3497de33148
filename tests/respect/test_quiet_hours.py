"""Quiet hours in the recipient's local time: every zone gets a UTC window that lies inside 09:00-21:00
*its* time on the right days, at the offset of the actual send date (fixed clocks, DST included)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from infobip_provider.options import DAYS
from infobip_provider.respect.quiet_hours import (
    MIN_WINDOW_MINUTES,
    QuietHours,
    QuietHoursError,
    ZoneResolver,
    utc_pieces,
    window_for,
)

EVENINGS = {"from": "21:00", "to": "09:00"}
WEEKDAYS = ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY"]
# Tuesday 2026-11-24 12:00 UTC: no DST change near (northern winter, southern summer)
TUESDAY_NOON = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def local_allowed(quiet: QuietHours, moment: datetime) -> bool:
    """``moment`` (local, aware) lies in an allowed local window (which belongs to its start day)."""
    minutes = moment.hour * 60 + moment.minute
    for back in (0, 1):
        start_day = (moment - timedelta(days=back)).weekday()
        since = minutes + back * 1440 - quiet.start
        if start_day in quiet.days and 0 <= since < quiet.length:
            return True
    return False


def assert_inside(quiet: QuietHours, zone: str, window: dict, at: datetime, days: int = 3) -> int:
    """Every minute of the UTC window on its days within ``days`` of ``at`` is local allowed time;
    returns how many UTC days of the window were checked."""
    tz = ZoneInfo(zone)
    start = window["from"]["hour"] * 60 + window["from"]["minute"]
    end = window["to"]["hour"] * 60 + window["to"]["minute"]
    assert end - start >= MIN_WINDOW_MINUTES
    checked = 0
    for delta in range(days):
        day = (at + timedelta(days=delta)).date()
        if DAYS[day.weekday()] not in window["days"]:
            continue
        checked += 1
        base = datetime(day.year, day.month, day.day, tzinfo=UTC)
        for minute in [*range(start, end, 5), end - 1]:  # to is where it ends
            local = (base + timedelta(minutes=minute)).astimezone(tz)
            assert local_allowed(quiet, local), f"{zone}: {base + timedelta(minutes=minute)} is {local} local"
    return checked


def hm(value: dict) -> str:
    return f"{value['hour']:02d}:{value['minute']:02d}"


@pytest.mark.parametrize(
    ("zone", "days", "start", "end"),
    [
        # PST (UTC-8): 09:00-21:00 is 17:00-05:00 UTC; the longer piece, on every day
        pytest.param("America/Los_Angeles", DAYS, "17:00", "23:59", id="los-angeles"),
        pytest.param("America/New_York", DAYS, "14:00", "23:59", id="new-york"),
        pytest.param("Europe/London", DAYS, "09:00", "21:00", id="london"),
        pytest.param("Asia/Kolkata", DAYS, "03:30", "15:30", id="kolkata"),
        pytest.param("Asia/Kathmandu", DAYS, "03:15", "15:15", id="kathmandu"),
        # NZDT (UTC+13): 09:00-21:00 is 20:00-08:00 UTC of the day before; 00:00-08:00 is longer
        pytest.param("Pacific/Auckland", DAYS, "00:00", "08:00", id="auckland"),
        # HST (UTC-10): 19:00-07:00 UTC; 00:00-07:00 is longer than 19:00-23:59
        pytest.param("Pacific/Honolulu", DAYS, "00:00", "07:00", id="honolulu"),
    ],
)
def test_every_zone_gets_a_window_inside_its_own_nine_to_nine(zone, days, start, end):
    quiet = QuietHours.parse(EVENINGS)
    # 08:30 UTC: closed in the Americas, London and Auckland (21:30), open in Kolkata and Kathmandu
    at = datetime(2026, 11, 24, 8, 30, tzinfo=UTC)
    got = window_for(quiet, zone, at)
    assert got.window is not None
    assert got.window["days"] == list(days)
    assert (hm(got.window["from"]), hm(got.window["to"])) == (start, end)
    assert got.send_at is None
    assert assert_inside(quiet, zone, got.window, at) == 3


def test_days_shift_across_the_date_line():
    quiet = QuietHours.parse({**EVENINGS, "days": WEEKDAYS})
    # Auckland's Monday 09:00-21:00 is Sunday 20:00 - Monday 08:00 UTC: the longer piece is on the
    # same UTC days (Monday-Friday) at 00:00-08:00 (local 13:00-21:00)
    auckland = window_for(quiet, "Pacific/Auckland", TUESDAY_NOON)
    assert auckland.window["days"] == WEEKDAYS
    assert (hm(auckland.window["from"]), hm(auckland.window["to"])) == ("00:00", "08:00")
    # Honolulu's Monday 09:00-21:00 is Monday 19:00 - Tuesday 07:00 UTC: the longer piece falls on
    # the next UTC day, so the days shift to Tuesday-Saturday
    honolulu = window_for(quiet, "Pacific/Honolulu", TUESDAY_NOON)
    assert honolulu.window["days"] == ["TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY"]
    assert (hm(honolulu.window["from"]), hm(honolulu.window["to"])) == ("00:00", "07:00")
    for zone, got in (("Pacific/Auckland", auckland), ("Pacific/Honolulu", honolulu)):
        assert assert_inside(quiet, zone, got.window, TUESDAY_NOON, days=7) == 5
    # Kolkata's window stays on the same days, shifted by 5:30
    kolkata = window_for(quiet, "Asia/Kolkata", TUESDAY_NOON)
    assert kolkata.window["days"] == WEEKDAYS
    assert assert_inside(quiet, "Asia/Kolkata", kolkata.window, TUESDAY_NOON, days=7) == 5


def test_the_open_piece_wins_so_members_get_it_now():
    quiet = QuietHours.parse(EVENINGS)
    # 02:00 UTC is 18:00 in Los Angeles (PST): 00:00-05:00 UTC is open now, 17:00-23:59 would wait a day
    at = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
    got = window_for(quiet, "America/Los_Angeles", at)
    assert got.open_now
    assert (hm(got.window["from"]), hm(got.window["to"])) == ("00:00", "05:00")
    assert assert_inside(quiet, "America/Los_Angeles", got.window, at) == 3


@pytest.mark.parametrize(
    ("at", "start", "offset"),
    [
        # Wednesday 2026-10-28: the windows of the next days are all PDT (UTC-7)
        pytest.param(datetime(2026, 10, 28, 12, 0, tzinfo=UTC), "16:00", "UTC-07:00", id="before"),
        # Saturday 2026-10-31 noon UTC: Saturday's window is PDT, Sunday's PST: the part allowed at both
        pytest.param(datetime(2026, 10, 31, 12, 0, tzinfo=UTC), "17:00", "UTC-07:00", id="across"),
        # Saturday 23:00 PDT: the next window is Sunday 09:00 *PST* (DST ended at 02:00): UTC-8
        pytest.param(datetime(2026, 11, 1, 6, 0, tzinfo=UTC), "17:00", "UTC-08:00", id="eve-of-change"),
    ],
)
def test_los_angeles_across_the_end_of_dst(at, start, offset):
    quiet = QuietHours.parse(EVENINGS)
    got = window_for(quiet, "America/Los_Angeles", at)
    assert got.offset == offset
    assert hm(got.window["from"]) == start
    assert assert_inside(quiet, "America/Los_Angeles", got.window, at, days=3) == 3


def test_london_across_the_start_of_summer_time():
    quiet = QuietHours.parse(EVENINGS)
    # Saturday 2026-03-28 (GMT) and Monday 2026-03-30 (BST, since Sunday 01:00 UTC)
    winter = window_for(quiet, "Europe/London", datetime(2026, 3, 28, 6, 0, tzinfo=UTC))
    summer = window_for(quiet, "Europe/London", datetime(2026, 3, 30, 6, 0, tzinfo=UTC))
    # Saturday's window is GMT, Sunday's and Monday's BST: the part allowed at both offsets
    assert (hm(winter.window["from"]), hm(winter.window["to"])) == ("09:00", "20:00")
    assert assert_inside(quiet, "Europe/London", winter.window, datetime(2026, 3, 28, 6, tzinfo=UTC)) == 3
    assert (hm(summer.window["from"]), hm(summer.window["to"])) == ("08:00", "20:00")
    # sent Saturday night after 21:00: the next window is Sunday 09:00 BST, but the messages wait
    # while it is still GMT too, so the window suits both offsets
    eve = window_for(quiet, "Europe/London", datetime(2026, 3, 28, 22, 0, tzinfo=UTC))
    assert eve.offset == "UTC+01:00" and (hm(eve.window["from"]), hm(eve.window["to"])) == ("09:00", "20:00")


def test_new_york_and_auckland_on_both_sides_of_their_changes():
    quiet = QuietHours.parse(EVENINGS)
    # New York: EDT (UTC-4) in October, EST (UTC-5) in November
    october = window_for(quiet, "America/New_York", datetime(2026, 10, 20, 12, tzinfo=UTC))
    november = window_for(quiet, "America/New_York", datetime(2026, 11, 20, 12, tzinfo=UTC))
    assert hm(october.window["from"]) == "13:00" and hm(november.window["from"]) == "14:00"
    # Auckland: NZST (UTC+12) in June, NZDT (UTC+13) in November
    june = window_for(quiet, "Pacific/Auckland", datetime(2026, 6, 16, 12, tzinfo=UTC))
    assert june.offset == "UTC+12:00" and hm(june.window["to"]) == "09:00"
    assert assert_inside(quiet, "Pacific/Auckland", june.window, datetime(2026, 6, 16, 12, tzinfo=UTC)) == 3


def test_a_window_crossing_local_midnight_is_split_on_the_right_days():
    # quiet during the working day: allowed Friday 17:00 until Saturday 09:00, London time (GMT)
    quiet = QuietHours.parse({"from": "09:00", "to": "17:00", "days": ["FRIDAY"]})
    assert quiet.length == 16 * 60
    at = datetime(2026, 11, 24, 12, tzinfo=UTC)  # a Tuesday
    got = window_for(quiet, "Europe/London", at)
    # pieces: Friday 17:00-24:00 (7 h) and Saturday 00:00-09:00 (9 h): Saturday's is taken
    assert utc_pieces(quiet, 0) == [(4, 17 * 60, 1440), (5, 0, 9 * 60)]
    assert got.window["days"] == ["SATURDAY"]
    assert (hm(got.window["from"]), hm(got.window["to"])) == ("00:00", "09:00")
    # the window opens more than a day after the send: sendAt holds the messages until it opens
    assert got.send_at == "2026-11-28T00:00:00.000+0000"
    assert assert_inside(quiet, "Europe/London", got.window, at, days=7) == 1
    # in Kolkata (UTC+5:30) the same local window is Friday 11:30-24:00 and Saturday 00:00-03:30 UTC
    kolkata = window_for(quiet, "Asia/Kolkata", at)
    assert kolkata.window["days"] == ["FRIDAY"]
    assert (hm(kolkata.window["from"]), hm(kolkata.window["to"])) == ("11:30", "23:59")
    assert assert_inside(quiet, "Asia/Kolkata", kolkata.window, at, days=7) == 1


def test_no_hour_long_piece_falls_back_to_send_at():
    # allowed 23:30-00:30 local in London (GMT): 30 minutes on each side of UTC midnight
    quiet = QuietHours.parse({"from": "00:30", "to": "23:30"})
    at = datetime(2026, 11, 24, 12, tzinfo=UTC)
    got = window_for(quiet, "Europe/London", at)
    assert got.window is None
    assert got.send_at == "2026-11-24T23:30:00.000+0000"
    assert not got.open_now


@pytest.mark.parametrize(
    ("value", "match"),
    [
        pytest.param({"from": "21:00"}, "needs from and to", id="no-to"),
        pytest.param({"from": "21:00", "to": "20:30"}, "30 minutes a day", id="under-an-hour"),
        pytest.param({"from": "25:00", "to": "09:00"}, "between 00:00 and 23:59", id="bad-hour"),
        pytest.param({"from": "21:00", "to": "09:00", "days": ["FUNDAY"]}, "week days", id="bad-day"),
        pytest.param({"from": "21:00", "to": "09:00", "when": 1}, "unknown keys", id="unknown-key"),
        pytest.param("[1, 2]", "must be an object", id="not-an-object"),
        pytest.param({"from": "21:00", "to": "09:00", "days": []}, "at least one week day", id="no-days"),
        pytest.param({"from": "21:00", "to": "09:00", "days": ""}, "at least one week day", id="blank-days"),
    ],
)
def test_bad_quiet_hours_are_refused_with_the_reason(value, match):
    with pytest.raises(QuietHoursError, match=match):
        QuietHours.parse(value)


def test_quiet_hours_read_from_text_and_empty_means_none():
    assert QuietHours.parse(None) is None and QuietHours.parse("") is None and QuietHours.parse({}) is None
    quiet = QuietHours.parse('{"from": "21:00", "to": "09:00", "days": "mon, tue"}')
    assert quiet == QuietHours(21 * 60, 9 * 60, (0, 1))
    assert quiet.describe() == "09:00-21:00 local time, MONDAY, TUESDAY"


def test_zones_come_from_the_column_then_the_number_then_the_default():
    resolver = ZoneResolver("Europe/Berlin", TUESDAY_NOON)
    phones = ["14155550134", "12125550134", "919812345678", "9779812345678", "14155550134", "", "41793026727"]
    column = ["Asia/Tokyo", None, "Not/AZone", "", None, None, None]
    zones = resolver.zones(phones, column, len(phones))
    assert zones[0] == "Asia/Tokyo"  # the column wins over the number
    assert zones[1] == "America/New_York"
    assert zones[2] in ("Asia/Calcutta", "Asia/Kolkata")  # an unknown column value falls to the number
    assert zones[3] in ("Asia/Katmandu", "Asia/Kathmandu")
    assert zones[4] == "America/Los_Angeles"
    assert zones[5] == "Europe/Berlin"  # no number, no column: the default
    assert zones[6] == "Europe/Zurich"
    assert resolver.counts == {"column": 1, "phone": 5, "default": 1, "invalid_timezone": 1}


def test_an_ambiguous_prefix_takes_the_most_populous_zone_and_is_counted():
    resolver = ZoneResolver("UTC", TUESDAY_NOON)
    # a US toll-free number's prefix names every North American zone: New York, counted; a UK mobile's
    # names four zones of one offset (London, not ambiguous); a Russian mobile's prefix names Moscow
    zones = resolver.zones(["18005551234", "447911123456", "79161234567"], None, 3)
    assert zones == ["America/New_York", "Europe/London", "Europe/Moscow"]
    assert resolver.counts["ambiguous"] == 1


def test_the_most_populous_zone_is_taken_only_among_the_prefixs_zones():
    resolver = ZoneResolver("UTC", TUESDAY_NOON)
    preferred, ambiguous = resolver._lookup_key("1", "18005551234")
    assert (preferred, ambiguous) == ("America/New_York", True)


def test_zones_are_looked_up_once_per_prefix_key(monkeypatch):
    from infobip_provider.respect import quiet_hours

    calls = []
    real = quiet_hours.ZoneResolver._lookup_key
    monkeypatch.setattr(
        quiet_hours.ZoneResolver, "_lookup_key", lambda self, key, n: calls.append(key) or real(self, key, n)
    )
    resolver = ZoneResolver("UTC", TUESDAY_NOON)
    phones = [f"1415555{i:04d}" for i in range(5000)] + [f"1212555{i:04d}" for i in range(5000)]
    zones = resolver.zones(phones, None, len(phones))
    assert zones[:1] == ["America/Los_Angeles"] and zones[-1:] == ["America/New_York"]
    assert Counter(zones) == {"America/Los_Angeles": 5000, "America/New_York": 5000}
    assert sorted(calls) == ["1212", "1415"]  # one look-up per prefix key, not per member
    # a second batch reuses them
    resolver.zones(["14155550000"], None, 1)
    assert len(calls) == 2


def test_a_bad_default_zone_is_refused():
    with pytest.raises(QuietHoursError, match="default_timezone"):
        ZoneResolver("Mars/Olympus", TUESDAY_NOON)
