"""Quiet hours in the recipient's local time, as Infobip delivery windows in UTC. Pure.

``quiet_hours={"from": "21:00", "to": "09:00", "days": [...]}`` means: quiet from 21:00 until 09:00,
so a message may arrive from 09:00 to 21:00 *local* time, on ``days`` (default every day). A local
window that crosses local midnight (quiet ``09:00``-``17:00`` allows 17:00-09:00) belongs to the day
it starts on.

**Time zones.** :class:`ZoneResolver` gives each member a zone: a ``timezone`` column's value when it
names a zone; else the phone number's own prefix in ``phonenumbers``' time-zone data (countries with
several zones name them by area code); a prefix that still names several zones of different offsets
takes the country's most populous zone among them (:data:`MOST_POPULOUS`) and is counted as
ambiguous; else the default zone. Zones are looked up once per *distinct* value and per prefix key
of the time-zone data (the longest one a number starts with, found for all numbers at once), never
per member.

**Infobip's window.** ``deliveryTimeWindow`` is one ``from``/``to`` in UTC (hour and minute, ``from``
before ``to``, at least one hour apart) for a set of week days. A local window becomes one or two
pieces per UTC day (two when the zone's offset pushes it over UTC midnight, on the next UTC day for
the second). Infobip takes one ``from``/``to`` only, so :func:`window_for` gives each zone the piece
that lies wholly inside the local window on the most days for the most minutes, on those UTC days:
never a minute of quiet hours, sometimes less than the whole local window (Los Angeles' 09:00-21:00
is 17:00-05:00 UTC; the broadcast uses 17:00-23:59 UTC, or 00:00-05:00 while that one is open). The
window must suit every UTC offset the zone has from the send time until the messages expire (their
validity, 48 hours unless shorter, from ``sendAt`` when there is one): the offset in force at the
send time and after every change in that time, so a DST change never moves it into quiet hours. When
no piece is an hour long (a short local window split by UTC midnight), the group gets ``sendAt`` at
the start of its next local window instead; and when the UTC window is not open now and next opens
more than a day (or the validity less an hour) after the send time, ``sendAt`` holds the messages
until that opening so that they do not expire waiting.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from infobip_provider.options import DAYS, format_send_at, time_of_day, week_day
from infobip_provider.values import BadValue, as_literal

MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY
#: Infobip's shortest delivery window.
MIN_WINDOW_MINUTES = 60
#: The latest ``to`` Infobip takes (23:59): a window to UTC midnight ends there.
LAST_MINUTE = MINUTES_PER_DAY - 1
#: A UTC window that opens later than this after the send time gets ``sendAt`` at its opening
#: (messages must not wait out their validity).
HOLD_BEYOND = timedelta(hours=24)
#: How long Infobip keeps a message by default, and at most (longer validity is cut to this).
VALIDITY = timedelta(hours=48)
#: Days ahead whose offsets a window must suit (Infobip keeps a message at most 48 hours).
WAIT_DAYS = 3
#: How often :func:`offsets_between` reads a zone's offset.
OFFSET_STEP = timedelta(minutes=30)
#: phonenumbers' prefix keys are at most this long (country code included).
PHONE_PREFIX_DIGITS = 9

#: The most populous zone of each country with several, by ISO region: a number whose prefix names
#: zones of different offsets takes this one when it is among them.
MOST_POPULOUS = {
    "US": "America/New_York",
    "CA": "America/Toronto",
    "MX": "America/Mexico_City",
    "BR": "America/Sao_Paulo",
    "AR": "America/Argentina/Buenos_Aires",
    "CL": "America/Santiago",
    "EC": "America/Guayaquil",
    "RU": "Europe/Moscow",
    "KZ": "Asia/Almaty",
    "UA": "Europe/Kyiv",
    "AU": "Australia/Sydney",
    "NZ": "Pacific/Auckland",
    "ID": "Asia/Jakarta",
    "MN": "Asia/Ulaanbaatar",
    "CD": "Africa/Kinshasa",
    "ES": "Europe/Madrid",
    "PT": "Europe/Lisbon",
    "GB": "Europe/London",
    "FR": "Europe/Paris",
    "DK": "Europe/Copenhagen",
    "NL": "Europe/Amsterdam",
    "CN": "Asia/Shanghai",
    "MY": "Asia/Kuala_Lumpur",
    "PG": "Pacific/Port_Moresby",
    "KI": "Pacific/Tarawa",
    "FM": "Pacific/Chuuk",
    "PF": "Pacific/Tahiti",
    "GL": "America/Nuuk",
}


class QuietHoursError(BadValue):
    """``quiet_hours`` or ``default_timezone`` cannot be read."""


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@dataclass(frozen=True)
class QuietHours:
    """Quiet from ``quiet_from`` to ``quiet_to`` (minutes after local midnight); messages may arrive
    from ``quiet_to`` for :attr:`length` minutes, on the local week ``days`` (0 = Monday)."""

    quiet_from: int
    quiet_to: int
    days: tuple[int, ...] = tuple(range(7))

    @property
    def start(self) -> int:
        """Where the allowed local window starts (minutes after local midnight)."""
        return self.quiet_to

    @property
    def length(self) -> int:
        """The allowed local window's length in minutes."""
        return (self.quiet_from - self.quiet_to) % MINUTES_PER_DAY

    @classmethod
    def parse(cls, value: Any) -> QuietHours | None:
        """``{"from": "21:00", "to": "09:00", "days": ["MONDAY", ...]}`` (JSON or Python-literal text
        too); ``None`` for nothing given."""
        value = as_literal(value, "quiet_hours")
        if value in (None, "", {}):
            return None
        if not isinstance(value, Mapping):
            raise QuietHoursError(f"quiet_hours must be an object with from, to and days, got {value!r}")
        problems: list[str] = []
        unknown = set(value) - {"from", "to", "days"}
        if unknown:
            problems.append(f"quiet_hours has unknown keys {sorted(unknown)}: use from, to, days")
        if value.get("from") in (None, "") or value.get("to") in (None, ""):
            raise QuietHoursError('quiet_hours needs from and to, e.g. {"from": "21:00", "to": "09:00"}')
        start = time_of_day(value["from"], "from", problems, name="quiet_hours")
        end = time_of_day(value["to"], "to", problems, name="quiet_hours")
        raw_days = value.get("days")
        if raw_days is None:
            raw_days = list(DAYS)
        if isinstance(raw_days, str):
            raw_days = [d for d in raw_days.replace(",", " ").split() if d]
        if not isinstance(raw_days, (list, tuple, set)) or not raw_days:
            raise QuietHoursError(
                f"quiet_hours days must name at least one week day (leave days out for every day), got {value['days']!r}"
            )
        days = [week_day(d) for d in raw_days]
        if any(d is None for d in days):
            problems.append(f"quiet_hours days must be week days (MONDAY ... SUNDAY), got {list(raw_days)}")
        if problems or start is None or end is None:
            raise QuietHoursError(f"{len(problems)} problem(s) with quiet_hours: " + "; ".join(problems))
        quiet = cls(
            start["hour"] * 60 + start["minute"],
            end["hour"] * 60 + end["minute"],
            tuple(sorted({DAYS.index(d) for d in days if d})),
        )
        if quiet.length < MIN_WINDOW_MINUTES:
            raise QuietHoursError(
                f"quiet_hours from {_clock(quiet.quiet_from)} to {_clock(quiet.quiet_to)} leaves "
                f"{quiet.length} minutes a day to send in; Infobip's shortest window is one hour"
            )
        return quiet

    def describe(self) -> str:
        days = "every day" if len(self.days) == 7 else ", ".join(DAYS[d] for d in self.days)
        end = (self.start + self.length) % MINUTES_PER_DAY
        return f"{_clock(self.start)}-{_clock(end)} local time, {days}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": _clock(self.quiet_from),
            "to": _clock(self.quiet_to),
            "days": [DAYS[d] for d in self.days],
        }


# ------------------------------------------------------------------------------------- windows
@dataclass(frozen=True)
class ZoneWindow:
    """What a zone's members get: Infobip's ``deliveryTimeWindow`` (UTC) and/or ``sendAt``.

    :ivar offset_minutes: the zone's UTC offset at the start of its next local window.
    :ivar window: ``{"days": [...], "from": {"hour", "minute"}, "to": {...}}``, or None.
    :ivar send_at: Infobip's ``sendAt`` text, or None (send now).
    :ivar open_now: the local window is open at the send time.
    :ivar next_start: the start of the current or next local window, UTC.
    """

    zone: str
    offset_minutes: int
    window: dict[str, Any] | None
    send_at: str | None
    open_now: bool
    next_start: datetime

    @property
    def key(self) -> tuple[str, str]:
        """Members of zones with the same key can share a request (same window, same send time)."""
        return (describe_window(self.window), self.send_at or "")

    @property
    def offset(self) -> str:
        sign = "-" if self.offset_minutes < 0 else "+"
        return f"UTC{sign}{_clock(abs(self.offset_minutes))}"

    def describe(self) -> str:
        parts = [f"{self.zone} ({self.offset})"]
        if self.window:
            parts.append(f"window {describe_window(self.window)}")
        if self.send_at:
            parts.append(f"sendAt {self.send_at}")
        if not self.window and not self.send_at:
            parts.append("no window needed")
        return ": ".join(parts[:1]) + ": " + ", ".join(parts[1:])

    def as_dict(self) -> dict[str, Any]:
        return {
            "offset": self.offset,
            "delivery_time_window": self.window,
            "send_at": self.send_at,
            "open_now": self.open_now,
        }


def describe_window(window: Mapping[str, Any] | None) -> str:
    """``MONDAY-SUNDAY 17:00-23:59 UTC`` (or every listed day)."""
    if not window:
        return "any time"
    days = list(window.get("days") or DAYS)
    indexes = [DAYS.index(d) for d in days]
    run = indexes == list(range(indexes[0], indexes[0] + len(indexes)))
    shown = f"{days[0]}-{days[-1]}" if run and len(days) > 2 else ", ".join(days)
    start, end = window["from"], window["to"]
    return f"{shown} {start['hour']:02d}:{start['minute']:02d}-{end['hour']:02d}:{end['minute']:02d} UTC"


def _local_moment(day: date, minutes: int, zone: ZoneInfo) -> datetime:
    return (datetime.combine(day, time()) + timedelta(minutes=minutes)).replace(tzinfo=zone)


def next_local_window(quiet: QuietHours, zone: ZoneInfo, at: datetime) -> tuple[datetime, datetime]:
    """The local window (start, end; aware, in ``zone``) open at ``at`` or the next one after it."""
    local = at.astimezone(zone)
    for delta in range(-1, 9):
        day = local.date() + timedelta(days=delta)
        if day.weekday() not in quiet.days:
            continue
        start = _local_moment(day, quiet.start, zone)
        end = _local_moment(day, quiet.start + quiet.length, zone)
        if end.astimezone(UTC) > at:
            return start, end
    raise QuietHoursError("quiet_hours names no day to send on")  # days is never empty


def utc_pieces(quiet: QuietHours, offset_minutes: int) -> list[tuple[int, int, int]]:
    """The allowed local windows of a week as UTC pieces ``(UTC week day, from, to)``, each within one
    UTC day (``to`` up to 1440), at a fixed offset."""
    pieces = []
    for day in quiet.days:
        begin = (day * MINUTES_PER_DAY + quiet.start - offset_minutes) % MINUTES_PER_WEEK
        remaining = quiet.length
        while remaining > 0:
            utc_day, minute = divmod(begin, MINUTES_PER_DAY)
            take = min(remaining, MINUTES_PER_DAY - minute)
            pieces.append((utc_day, minute, minute + take))
            begin = (begin + take) % MINUTES_PER_WEEK
            remaining -= take
    return pieces


def best_window(
    piece_sets: Sequence[Sequence[tuple[int, int, int]]], at: datetime
) -> tuple[tuple[int, ...], int, int] | None:
    """The UTC ``(days, from, to)`` Infobip can take (one span, at least an hour, ``to`` at most 23:59)
    that lies inside the pieces of *every* set (one set per offset the zone has while the messages may
    wait: a DST change then never moves it into quiet hours): the one open at ``at`` if any, else the
    most minutes over the week; None if none."""
    now_day, now_minute = at.weekday(), at.hour * 60 + at.minute
    best: tuple[tuple[Any, ...], tuple[tuple[int, ...], int, int]] | None = None
    starts = {f for pieces in piece_sets for _, f, _t in pieces}
    ends = {t for pieces in piece_sets for _, _f, t in pieces}
    spans = sorted((f, t) for f in starts for t in ends if t > f)
    for start, end in spans:
        end = min(end, LAST_MINUTE)
        if end - start < MIN_WINDOW_MINUTES:
            continue
        found: set[int] | None = None
        for pieces in piece_sets:
            days = {d for d, f, t in pieces if f <= start and min(t, LAST_MINUTE) >= end}
            found = days if found is None else found & days
        if not found:
            continue
        days_sorted = tuple(sorted(found))
        open_now = now_day in found and start <= now_minute < end
        score = (open_now, (end - start) * len(found), end - start, -start)
        if best is None or score > best[0]:
            best = (score, (days_sorted, start, end))
    return None if best is None else best[1]


def offsets_between(zone: ZoneInfo, begin: datetime, end: datetime) -> list[int]:
    """The zone's UTC offsets (minutes) in force at some moment from ``begin`` to ``end``: the one at
    ``begin`` and after every change until ``end`` (read every :data:`OFFSET_STEP`; no zone keeps an
    offset for less)."""
    found = set()
    moment = begin
    while True:
        found.add(int((moment.astimezone(zone).utcoffset() or timedelta()).total_seconds() // 60))
        if moment >= end:
            break
        moment = min(moment + OFFSET_STEP, end)
    return sorted(found)


def offsets_ahead(quiet: QuietHours, zone: ZoneInfo, at: datetime, days: int = WAIT_DAYS) -> list[int]:
    """The zone's UTC offsets (minutes) from ``at`` for ``days``: the offsets messages sent at ``at``
    may meet while Infobip holds them (the one in force at ``at`` included)."""
    return offsets_between(zone, at, at + timedelta(days=days))


def openings(found: tuple[tuple[int, ...], int, int], at: datetime) -> list[tuple[datetime, datetime]]:
    """The UTC window's openings (open, close) from the one before ``at`` to a week and a day after."""
    days, begin, finish = found
    base = datetime.combine(at.astimezone(UTC).date(), time(), tzinfo=UTC)
    out = []
    for delta in range(-1, 9):
        day = base + timedelta(days=delta)
        if day.weekday() in days:
            out.append((day + timedelta(minutes=begin), day + timedelta(minutes=finish)))
    return out


def first_delivery(
    found: tuple[tuple[int, ...], int, int], at: datetime, hold: timedelta
) -> tuple[datetime | None, datetime]:
    """Whether messages sent at ``at`` with the UTC window ``found`` need ``sendAt``, and when they can
    first be delivered: ``(None, at)`` when the window is open at ``at`` for at least an hour more or
    opens within ``hold``; else ``(opening, opening)``, the window's next opening after ``at``."""
    spans = openings(found, at)
    for start, end in spans:
        if start <= at and end - at >= timedelta(minutes=MIN_WINDOW_MINUTES):
            return None, at
    upcoming = next(start for start, _end in spans if start > at)
    if upcoming - at <= hold:
        return None, upcoming
    return upcoming, upcoming


def window_for(quiet: QuietHours, zone_name: str, at: datetime, validity: timedelta = VALIDITY) -> ZoneWindow:
    """The delivery window (and send time) that keeps ``zone_name``'s members out of their quiet hours
    for a broadcast sent at ``at`` (aware), whose messages Infobip keeps for ``validity``.

    The UTC window suits every offset the zone has from ``at`` until the messages expire (their
    validity runs from ``sendAt`` when there is one); ``sendAt`` is the window's next opening when the
    window is not open now (for an hour at least) and opens later than :data:`HOLD_BEYOND` (or than
    the validity less an hour) after ``at``, so messages never expire waiting for it."""
    zone = load_zone(zone_name)
    if zone is None:
        raise QuietHoursError(f"unknown time zone {zone_name!r}")
    at = at.astimezone(UTC)
    validity = min(validity, VALIDITY)
    hold = min(HOLD_BEYOND, validity - timedelta(minutes=MIN_WINDOW_MINUTES))
    start, _end = next_local_window(quiet, zone, at)
    start_utc = start.astimezone(UTC)
    offset = int((start.utcoffset() or timedelta()).total_seconds() // 60)
    open_now = start_utc <= at
    window = None
    send_at = None
    offsets = set(offsets_between(zone, at, at + validity))
    found = None
    for _ in range(8):  # the offsets only grow; two or three rounds settle them
        found = best_window([utc_pieces(quiet, o) for o in sorted(offsets)], at)
        if found is None:
            break
        held, _first = first_delivery(found, at, hold)
        more = set(offsets_between(zone, at, (held or at) + validity))
        if more <= offsets:
            send_at = None if held is None else format_send_at(held)
            break
        offsets |= more
    if found is None:
        # no hour-long piece: hold the messages until the local window opens
        send_at = None if open_now else format_send_at(start_utc)
    else:
        days, begin, finish = found
        window = {
            "days": [DAYS[d] for d in days],
            "from": {"hour": begin // 60, "minute": begin % 60},
            "to": {"hour": finish // 60, "minute": finish % 60},
        }
    return ZoneWindow(zone_name, offset, window, send_at, open_now, start_utc)


# --------------------------------------------------------------------------------------- zones
@lru_cache(maxsize=4096)
def load_zone(name: str) -> ZoneInfo | None:
    """The zone called ``name``, or None when there is none (or the name is no zone name)."""
    text = str(name).strip()
    if not text or text.startswith("/") or ".." in text:
        return None
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


@lru_cache(maxsize=16)
def _keys_of_length(length: int) -> frozenset[str]:
    """The prefix keys of ``phonenumbers``' time-zone data that are ``length`` digits long."""
    from phonenumbers.tzdata import TIMEZONE_DATA

    return frozenset(k for k in TIMEZONE_DATA if len(k) == length)


def _offset_at(zone_name: str, at: datetime) -> timedelta | None:
    zone = load_zone(zone_name)
    return None if zone is None else at.astimezone(zone).utcoffset()


@dataclass
class ZoneResolver:
    """Members' time zones, looked up once per distinct column value and phone prefix.

    :param default: the zone of members with neither a usable column value nor a number that names one.
    :param at: the send time (an ambiguous prefix is one whose zones differ in offset then).
    :ivar counts: members by where their zone came from: ``column``, ``phone``, ``default``; and
        ``ambiguous`` (numbers whose prefix names zones of different offsets) and
        ``invalid_timezone`` (column values that name no zone).
    """

    default: str
    at: datetime
    counts: Counter[str] = field(default_factory=Counter)
    _by_prefix: dict[str, tuple[str | None, bool]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if load_zone(self.default) is None:
            raise QuietHoursError(
                f"default_timezone {self.default!r} is not a time zone (e.g. Europe/London)"
            )

    def zones(self, phones: Sequence[Any] | None, column: Sequence[Any] | None, count: int) -> list[str]:
        """Each member's zone: the ``column`` value, else the phone's, else the default."""
        from_column = self._column_zones(column, count)
        by_phone = self._phone_zones(phones, from_column, count)
        default = self.default
        out = [
            zone if zone is not None else phone if phone is not None else default
            for zone, phone in zip(from_column, by_phone)
        ]
        named = len(from_column) - from_column.count(None)
        if named:
            numbered = sum(
                1 for zone, phone in zip(from_column, by_phone) if zone is None and phone is not None
            )
        else:
            numbered = len(by_phone) - by_phone.count(None)
        for source, members in (
            ("column", named),
            ("phone", numbered),
            ("default", len(out) - named - numbered),
        ):
            if members:
                self.counts[source] += members
        return out

    def _column_zones(self, column: Sequence[Any] | None, count: int) -> list[str | None]:
        if column is None:
            return [None] * count
        known: dict[Any, str | None] = {}
        out: list[str | None] = []
        for value in column:
            if value is None or (isinstance(value, float) and value != value) or not str(value).strip():
                out.append(None)
                continue
            if value not in known:
                known[value] = str(value).strip() if load_zone(str(value)) is not None else None
            if known[value] is None:
                self.counts["invalid_timezone"] += 1
            out.append(known[value])
        return out

    def _phone_zones(
        self, phones: Sequence[Any] | None, taken: list[str | None], count: int
    ) -> list[str | None]:
        """Each number's zone, looked up once per *prefix key* of ``phonenumbers``' time-zone data (the
        longest key the number starts with). Keys are at most :data:`PHONE_PREFIX_DIGITS` digits long,
        so a number's first digits decide its key: the key is found once per distinct head."""
        if phones is None:
            return [None] * count
        numbers = [
            None if zone is not None else (str(p or "").lstrip("+") or None) for p, zone in zip(phones, taken)
        ]
        heads = [n[:PHONE_PREFIX_DIGITS] if n is not None and n.isdigit() else None for n in numbers]
        first: dict[str, int] = {}  # head -> its first row, in row order
        for row, head in enumerate(heads):
            if head is not None and head not in first:
                first[head] = row
        lengths = range(PHONE_PREFIX_DIGITS, 0, -1)
        by_head: dict[str | None, tuple[str | None, bool]] = {}
        for head, row in first.items():
            key = next((head[:n] for n in lengths if head[:n] in _keys_of_length(n)), None)
            if key is None:
                continue
            if key not in self._by_prefix:  # its first number, as the first row of the key has it
                self._by_prefix[key] = self._lookup_key(key, str(numbers[row]))
            by_head[head] = self._by_prefix[key]
        ambiguous = {head for head, (_zone, unsure) in by_head.items() if unsure}
        if ambiguous:
            self.counts["ambiguous"] += sum(1 for head in heads if head in ambiguous)
        zone_of = {head: zone for head, (zone, _unsure) in by_head.items()}
        return [zone_of.get(head) for head in heads]

    def _lookup_key(self, key: str, number: str) -> tuple[str | None, bool]:
        """The zone of the numbers whose longest prefix key is ``key``, and whether it was ambiguous."""
        import phonenumbers
        from phonenumbers.tzdata import TIMEZONE_DATA

        zones = sorted(z for z in TIMEZONE_DATA[key] if z != "Etc/Unknown" and load_zone(z))
        if not zones:
            return None, False
        if len(zones) == 1:
            return zones[0], False
        region = next(
            (
                phonenumbers.region_code_for_country_code(int(number[:n]))
                for n in (1, 2, 3)
                if int(number[:n]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE
            ),
            None,
        )
        preferred = MOST_POPULOUS.get(region or "")
        if preferred not in zones:
            preferred = next((z for z in zones if _same_zone(z, preferred)), zones[0])
        offsets = {_offset_at(z, self.at) for z in zones}
        return preferred, len(offsets) > 1


def _same_zone(name: str, other: str | None) -> bool:
    """Two names of one zone (``Asia/Calcutta`` and ``Asia/Kolkata``; ``Europe/Kiev`` and ``Europe/Kyiv``)."""
    if other is None:
        return False
    a, b = load_zone(name), load_zone(other)
    if a is None or b is None:
        return False
    probe = [datetime(2026, month, 15, 12, tzinfo=UTC) for month in (1, 4, 7, 10)]
    return all(p.astimezone(a).utcoffset() == p.astimezone(b).utcoffset() for p in probe) and (
        name.split("/")[0] == other.split("/")[0]
    )


def windows_for_zones(
    quiet: QuietHours, zones: Iterable[str], at: datetime, validity: timedelta = VALIDITY
) -> dict[str, ZoneWindow]:
    """One :class:`ZoneWindow` per distinct zone."""
    return {zone: window_for(quiet, zone, at, validity) for zone in sorted(set(zones))}
