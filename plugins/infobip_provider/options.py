"""Option checks every channel shares: flags, choices, lengths, platform ids, validity period,
delivery time window, send time and sending speed, each appending what is wrong to ``problems`` so
that a channel's options report every problem at once. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from infobip_provider.values import BadValue, as_literal, as_text

MAX_SCHEDULE_DAYS = 180
MAX_CALLBACK_DATA = 4000
MAX_PLATFORM_ID = 255
MAX_CAMPAIGN_REFERENCE = 255
VALIDITY_CAP = timedelta(hours=48)
DAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")
VALIDITY_UNITS = {"SECONDS": 1, "MINUTES": 60, "HOURS": 3600}
SPEED_UNITS = ("MINUTE", "HOUR", "DAY")


def time_of_day(
    value: Any, what: str, problems: list[str], name: str = "delivery_time_window"
) -> dict[str, int] | None:
    """``"HH:MM"`` or ``{"hour": h, "minute": m}`` as Infobip's ``{"hour", "minute"}``; ``name`` and
    ``what`` (``from``, ``to``) name the value in a problem."""
    hour: Any
    minute: Any
    if isinstance(value, Mapping):
        hour, minute = value.get("hour"), value.get("minute", 0)
    elif isinstance(value, str) and re.fullmatch(r"\d{1,2}(:\d{2})?", value.strip()):
        hour_text, _, minute_text = value.strip().partition(":")
        hour, minute = int(hour_text), int(minute_text or 0)
    else:
        problems.append(f"{name} {what} must be 'HH:MM' or {{'hour': h, 'minute': m}}, got {value!r}")
        return None
    try:
        hour, minute = int(hour), int(minute)
    except (TypeError, ValueError):
        problems.append(f"{name} {what} needs whole hour and minute, got {value!r}")
        return None
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        problems.append(f"{name} {what} must be between 00:00 and 23:59, got {value!r}")
        return None
    return {"hour": hour, "minute": minute}


def week_day(value: Any) -> str | None:
    """``MONDAY`` ... ``SUNDAY`` for a day's name or its first three or more letters; None otherwise."""
    word = str(value).strip().upper()
    for day in DAYS:
        if word == day or (len(word) >= 3 and day.startswith(word)):
            return day
    return None


def parse_delivery_time_window(value: Any, problems: list[str]) -> dict[str, Any] | None:
    """``{"days": [...], "from": "09:00", "to": "20:00"}`` (UTC) as Infobip's object; days default to all.

    The object may come as JSON or Python-literal text (see :func:`infobip_provider.values.literal`).
    """
    try:
        value = as_literal(value, "delivery_time_window")
    except BadValue as exc:
        problems.append(str(exc))
        return None
    if value in (None, "", {}):
        return None
    if not isinstance(value, Mapping):
        problems.append(f"delivery_time_window must be an object with days, from and to, got {value!r}")
        return None
    unknown = set(value) - {"days", "from", "to"}
    if unknown:
        problems.append(f"delivery_time_window has unknown keys {sorted(unknown)}: use days, from, to")
    raw_days = value.get("days") or list(DAYS)
    if isinstance(raw_days, str):
        raw_days = [d for d in re.split(r"[,\s]+", raw_days) if d]
    days = [week_day(d) for d in raw_days]
    if any(d is None for d in days):
        bad = [d for d, ok in zip(raw_days, days) if ok is None]
        problems.append(f"delivery_time_window days must be week days (MONDAY ... SUNDAY), got {bad}")
        return None
    window: dict[str, Any] = {"days": [d for d in DAYS if d in days]}
    has_from, has_to = value.get("from") not in (None, ""), value.get("to") not in (None, "")
    if has_from != has_to:
        problems.append("delivery_time_window needs both from and to, or neither")
        return window
    if has_from:
        start = time_of_day(value["from"], "from", problems)
        end = time_of_day(value["to"], "to", problems)
        if start and end:
            minutes = (end["hour"] * 60 + end["minute"]) - (start["hour"] * 60 + start["minute"])
            if minutes < 60:
                problems.append(
                    "delivery_time_window from and to must be at least one hour apart, to after from "
                    f"(UTC), got {start['hour']:02d}:{start['minute']:02d}-{end['hour']:02d}:{end['minute']:02d}"
                )
            window["from"], window["to"] = start, end
    return window


def parse_validity_period(value: Any, problems: list[str], warnings: list[str]) -> dict[str, Any] | None:
    """Minutes (int), a timedelta, ``"48h"``/``"30m"``/``"90s"`` or ``{"amount", "timeUnit"}``."""
    if value in (None, "", {}):
        return None
    amount: Any
    unit = "MINUTES"
    if isinstance(value, timedelta):
        amount, unit = int(value.total_seconds()), "SECONDS"
        if amount % 3600 == 0:
            amount, unit = amount // 3600, "HOURS"
        elif amount % 60 == 0:
            amount, unit = amount // 60, "MINUTES"
    elif isinstance(value, Mapping):
        amount, unit = value.get("amount"), str(value.get("timeUnit", "MINUTES")).upper()
    elif isinstance(value, str) and re.fullmatch(r"\s*\d+\s*[hms]?\s*", value, re.I):
        text = value.strip().lower()
        unit = {"h": "HOURS", "m": "MINUTES", "s": "SECONDS"}.get(text[-1], "MINUTES")
        amount = int(text.rstrip("hms").strip())
    else:
        amount = value
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1 or unit not in VALIDITY_UNITS:
        problems.append(
            "validity_period must be a positive number of minutes, a timedelta, '48h'/'30m'/'90s' or "
            f"{{'amount': n, 'timeUnit': SECONDS|MINUTES|HOURS}}, got {value!r}"
        )
        return None
    if amount * VALIDITY_UNITS[unit] > VALIDITY_CAP.total_seconds():
        warnings.append("validity_period above 48 hours: Infobip cuts it to 48 hours")
    return {"amount": amount, "timeUnit": unit}


def read_moment(value: Any) -> datetime | None:
    """A datetime or ISO 8601 text as an aware UTC datetime (no zone means UTC); ``None`` when it is
    neither."""
    moment: datetime | None = None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def parse_send_at(value: Any, now: datetime, problems: list[str], warnings: list[str]) -> str | None:
    """A datetime or ISO 8601 text (no zone means UTC) as ``yyyy-MM-ddTHH:mm:ss.SSS+0000``."""
    if value in (None, ""):
        return None
    moment = read_moment(value)
    if moment is None:
        problems.append(f"send_at must be a datetime or an ISO 8601 date-time, got {value!r}")
        return None
    if moment > now + timedelta(days=MAX_SCHEDULE_DAYS):
        problems.append(f"send_at must be at most {MAX_SCHEDULE_DAYS} days ahead, got {moment.isoformat()}")
    elif moment < now:
        warnings.append("send_at is in the past: Infobip sends at once")
    return format_send_at(moment)


def format_send_at(moment: datetime) -> str:
    """A moment as Infobip's ``sendAt``: ``yyyy-MM-ddTHH:mm:ss.SSS+0000`` in UTC."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def parse_sending_speed_limit(value: Any, problems: list[str]) -> dict[str, Any] | None:
    """Messages per minute (int) or ``{"amount": n, "timeUnit": MINUTE|HOUR|DAY}``."""
    if value in (None, "", {}, 0):
        return None
    if isinstance(value, Mapping):
        amount, unit = value.get("amount"), str(value.get("timeUnit", "MINUTE")).upper()
    else:
        amount, unit = value, "MINUTE"
    if isinstance(amount, str) and amount.strip().isdigit():
        amount = int(amount)
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < 1 or unit not in SPEED_UNITS:
        problems.append(
            "sending_speed_limit must be messages per minute or {'amount': n, 'timeUnit': MINUTE|HOUR|DAY}, "
            f"got {value!r}"
        )
        return None
    return {"amount": amount, "timeUnit": unit}


def whole_number(value: Any, name: str, problems: list[str]) -> int | None:
    if value in (None, ""):
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        return int(str(value).strip())
    except ValueError:
        problems.append(f"{name} must be a whole number, got {value!r}")
        return None


def choice(value: Any, name: str, choices: Sequence[str], problems: list[str]) -> str | None:
    text = as_text(value)
    if text is None:
        return None
    if text.upper() not in choices:
        problems.append(f"{name} must be one of {', '.join(choices)}, got {value!r}")
        return None
    return text.upper()


def flag(value: Any, name: str, problems: list[str]) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in ("true", "1", "yes", "on"):
        return True
    if word in ("false", "0", "no", "off"):
        return False
    problems.append(f"{name} must be true or false, got {value!r}")
    return None


def max_len(value: str | None, name: str, limit: int, problems: list[str]) -> None:
    if value is not None and len(value) > limit:
        problems.append(f"{name} must have at most {limit} characters, got {len(value)}")


def platform_options(entity_id: Any, application_id: Any, problems: list[str]) -> dict[str, str]:
    """The ``platform`` option: the entity and application ids, each at most 255 characters."""
    platform = {}
    for key, value, name in (
        ("entityId", entity_id, "entity_id"),
        ("applicationId", application_id, "application_id"),
    ):
        text = as_text(value)
        max_len(text, name, MAX_PLATFORM_ID, problems)
        if text:
            platform[key] = text
    return platform


def message_options(
    problems: list[str],
    warnings: list[str],
    *,
    entity_id: Any,
    application_id: Any,
    validity_period: Any,
    delivery_time_window: Any,
    campaign_reference_id: Any,
) -> dict[str, Any]:
    """A message's ``options`` every channel with them shares: platform ids, validity period,
    delivery time window, campaign reference id."""
    options: dict[str, Any] = {}
    platform = platform_options(entity_id, application_id, problems)
    if platform:
        options["platform"] = platform
    validity = parse_validity_period(validity_period, problems, warnings)
    if validity:
        options["validityPeriod"] = validity
    window = parse_delivery_time_window(delivery_time_window, problems)
    if window:
        options["deliveryTimeWindow"] = window
    campaign = as_text(campaign_reference_id)
    max_len(campaign, "campaign_reference_id", MAX_CAMPAIGN_REFERENCE, problems)
    if campaign:
        options["campaignReferenceId"] = campaign
    return options


def cell_text(value: Any) -> str:
    """A cohort cell as the text a message shows: empty for a missing value (None or NaN)."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value)


class ChannelBase:
    """The part every channel shares: the hook it sends through and its checked options (whose
    ``deferral`` names the options that let Infobip hold messages back). See the broadcast engine's
    ``Channel`` protocol for the rest a channel supplies."""

    def __init__(self, hook: Any, options: Any) -> None:
        self.hook = hook
        self.options = options

    @property
    def deferral(self) -> tuple[str, ...]:
        return tuple(getattr(self.options, "deferral", ()))

    def scheduled(self, window: Mapping[str, Any] | None, send_at: str | None) -> ChannelBase:
        """This channel with a delivery window and/or send time for every message (a zone group's quiet
        hours in UTC); for channels whose options carry ``message_options`` and ``schedule``."""
        import copy
        import dataclasses

        options = self.options
        message = dict(options.message_options)
        schedule = dict(options.schedule)
        if window:
            message["deliveryTimeWindow"] = dict(window)
        if send_at:
            schedule["sendAt"] = send_at
        clone = copy.copy(self)
        clone.options = dataclasses.replace(options, message_options=message, schedule=schedule)
        return clone
