"""Quiet hours around DST changes, checked densely: for many send times in the weeks around the changes
of Los Angeles, London and Auckland, and around the year's changes in many zones, every moment at
which Infobip may deliver (the UTC window's days and hours, from ``sendAt`` or the send time until
the validity ends) is allowed local time, and the messages can be delivered for an hour at least
before they expire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from infobip_provider.options import DAYS
from infobip_provider.respect.quiet_hours import (
    MIN_WINDOW_MINUTES,
    QuietHours,
    ZoneWindow,
    window_for,
)

STEP = timedelta(minutes=15)  # every offset, quiet-hours bound and window bound here is on a quarter hour
VALIDITY = timedelta(hours=48)

QUIETS = {
    "evenings": {"from": "21:00", "to": "09:00"},
    "weekdays": {
        "from": "21:00",
        "to": "09:00",
        "days": ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY"],
    },
    "late": {"from": "22:30", "to": "08:15", "days": ["SATURDAY", "SUNDAY", "WEDNESDAY"]},
    "working-day": {"from": "09:00", "to": "17:00"},
}

# the 2026 changes: (zone, the change's UTC moment)
CHANGES = [
    ("America/Los_Angeles", datetime(2026, 3, 8, 10, tzinfo=UTC)),
    ("America/Los_Angeles", datetime(2026, 11, 1, 9, tzinfo=UTC)),
    ("Europe/London", datetime(2026, 3, 29, 1, tzinfo=UTC)),
    ("Europe/London", datetime(2026, 10, 25, 1, tzinfo=UTC)),
    ("Pacific/Auckland", datetime(2026, 4, 4, 14, tzinfo=UTC)),
    ("Pacific/Auckland", datetime(2026, 9, 26, 14, tzinfo=UTC)),
]

ZONES = [
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Halifax",
    "America/St_Johns",
    "America/Sao_Paulo",
    "America/Santiago",
    "America/Havana",
    "Europe/Paris",
    "Europe/Lisbon",
    "Europe/Helsinki",
    "Africa/Cairo",
    "Asia/Beirut",
    "Asia/Jerusalem",
    "Asia/Tehran",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Sydney",
    "Australia/Adelaide",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Pacific/Apia",
    "Pacific/Honolulu",
    "Pacific/Kiritimati",
]


def local_allowed(quiet: QuietHours, moment: datetime) -> bool:
    """``moment`` (local, aware) lies in an allowed local window (which belongs to its start day)."""
    minutes = moment.hour * 60 + moment.minute
    for back in (0, 1):
        start_day = (moment - timedelta(days=back)).weekday()
        since = minutes + back * 1440 - quiet.start
        if start_day in quiet.days and 0 <= since < quiet.length:
            return True
    return False


def window_open(window: dict, moment: datetime) -> bool:
    minutes = moment.hour * 60 + moment.minute
    start = window["from"]["hour"] * 60 + window["from"]["minute"]
    end = window["to"]["hour"] * 60 + window["to"]["minute"]
    return DAYS[moment.weekday()] in window["days"] and start <= minutes < end


def check(quiet: QuietHours, zone: str, at: datetime, got: ZoneWindow) -> None:
    """Every moment Infobip may deliver is allowed local time; an hour of it at least before expiry."""
    tz = ZoneInfo(zone)
    first = datetime.strptime(got.send_at, "%Y-%m-%dT%H:%M:%S.%f%z") if got.send_at else at
    assert first >= at
    if got.window is None:
        # no window: Infobip delivers at sendAt (or now), which is the local window's start
        assert local_allowed(quiet, first.astimezone(tz)), f"{zone} at {at}: {first} is quiet"
        return
    expires = first + VALIDITY
    # the moments between two grid points are like the earlier one: check the first and each point
    aligned = first + (-(first - datetime(2000, 1, 1, tzinfo=UTC))) % STEP
    moments = [first] + [aligned + STEP * i for i in range(int((expires - aligned) / STEP) + 1)]
    deliverable = 0
    for moment in moments:
        if moment >= expires or not window_open(got.window, moment):
            continue
        local = moment.astimezone(tz)
        assert local_allowed(quiet, local), (
            f"{zone}, sent {at:%Y-%m-%d %H:%M} UTC with {got.describe()}: delivered at {moment:%a %H:%M} "
            f"UTC is {local:%a %H:%M %Z} local, quiet"
        )
        deliverable += 1
    assert deliverable * STEP >= timedelta(minutes=MIN_WINDOW_MINUTES - 15), (
        f"{zone}, sent {at} with {got.describe()}: the messages expire before an hour of window"
    )


@pytest.mark.parametrize(("zone", "change"), [pytest.param(z, c, id=f"{z}-{c:%m}") for z, c in CHANGES])
@pytest.mark.parametrize("name", sorted(QUIETS))
def test_around_dst_changes_no_delivery_falls_in_quiet_hours(zone, change, name):
    quiet = QuietHours.parse(QUIETS[name])
    # every 37 minutes from ten days before the change to four days after
    at = change - timedelta(days=10)
    while at < change + timedelta(days=4):
        check(quiet, zone, at, window_for(quiet, zone, at))
        at += timedelta(minutes=37)


@pytest.mark.parametrize("zone", ZONES)
def test_many_zones_through_the_year_no_delivery_falls_in_quiet_hours(zone):
    tz = ZoneInfo(zone)
    quiet = QuietHours.parse(QUIETS["evenings"])
    weekdays = QuietHours.parse(QUIETS["weekdays"])
    # the zone's changes in 2026, found hour by hour; then send times around each (and a few without)
    changes = []
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    while moment < datetime(2027, 1, 1, tzinfo=UTC):
        if moment.astimezone(tz).utcoffset() != (moment + timedelta(hours=1)).astimezone(tz).utcoffset():
            changes.append(moment)
        moment += timedelta(hours=1)
    for change in changes or [datetime(2026, 6, 15, tzinfo=UTC)]:
        at = change - timedelta(days=3)
        while at < change + timedelta(days=1):
            for q in (quiet, weekdays):
                check(q, zone, at, window_for(q, zone, at))
            at += timedelta(minutes=53)


def test_los_angeles_on_the_night_dst_ends_is_not_open_in_its_quiet_hours():
    # 2026-11-01 04:42 UTC is Saturday 21:42 PDT in Los Angeles: quiet. The offset then (UTC-7) must
    # count, not only the offset of Sunday's window (UTC-8)
    quiet = QuietHours.parse(QUIETS["evenings"])
    at = datetime(2026, 11, 1, 4, 42, tzinfo=UTC)
    got = window_for(quiet, "America/Los_Angeles", at)
    assert got.window is not None
    assert not window_open(got.window, at) or got.send_at is not None
    check(quiet, "America/Los_Angeles", at, got)


def test_a_friday_evening_send_to_a_weekday_window_is_held_until_monday():
    # Friday 2026-03-27 20:21 UTC (London GMT, 20:21 local): Mon-Fri 09:00-20:00 UTC next opens on
    # Monday 09:00 UTC, 60.6 hours ahead, beyond the 48 hours Infobip keeps a message: sendAt holds them
    quiet = QuietHours.parse(QUIETS["weekdays"])
    at = datetime(2026, 3, 27, 20, 21, tzinfo=UTC)
    got = window_for(quiet, "Europe/London", at)
    assert got.window is not None and got.window["days"][0] == "MONDAY"
    # the window suits GMT (now) and BST (from Sunday): its opening is Monday 09:00 UTC (10:00 BST)
    assert got.send_at == "2026-03-30T09:00:00.000+0000"
    check(quiet, "Europe/London", at, got)


def test_a_short_validity_gets_send_at_sooner():
    # Tuesday 08:30 UTC: Los Angeles' 17:00-23:59 UTC window opens in 8.5 hours; messages kept 4 hours
    # would expire first, so they are held until it opens
    quiet = QuietHours.parse(QUIETS["evenings"])
    at = datetime(2026, 11, 24, 8, 30, tzinfo=UTC)
    assert window_for(quiet, "America/Los_Angeles", at).send_at is None
    short = window_for(quiet, "America/Los_Angeles", at, timedelta(hours=4))
    assert short.send_at == "2026-11-24T17:00:00.000+0000"
