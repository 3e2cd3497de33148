"""SMS rules: validate a ``POST /sms/3/messages`` body, and describe a stored message's status.

A stored message is a dict with ``messageId``, ``bulkId``, ``destination``, ``sender``, ``text``,
``messageCount``, ``sentAt`` and ``doneAt`` (epoch seconds: when it leaves PENDING),
``undeliverable``, ``outcome`` (a name of :data:`OUTCOMES`, or none) and ``reported``. Its status is computed from the clock, so a fake clock moves
messages from PENDING to DELIVERED (or UNDELIVERABLE) without any background task.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from infobip_provider.sandbox.people import normalise_phone
from infobip_provider.sandbox.segments import count_segments
from infobip_provider.sandbox.store import sms_time

MAX_DESTINATIONS = 1000
MAX_SCHEDULE_DAYS = 180
PRICE_PER_MESSAGE = 0.01
RETENTION = 48 * 3600.0

PENDING = {
    "groupId": 1,
    "groupName": "PENDING",
    "id": 26,
    "name": "PENDING_ACCEPTED",
    "description": "Message sent to next instance",
}
DELIVERED = {
    "groupId": 3,
    "groupName": "DELIVERED",
    "id": 5,
    "name": "DELIVERED_TO_HANDSET",
    "description": "Message delivered to handset",
}
UNDELIVERABLE = {
    "groupId": 2,
    "groupName": "UNDELIVERABLE",
    "id": 9,
    "name": "UNDELIVERABLE_NOT_DELIVERED",
    "description": "Message sent not delivered",
}
NO_ERROR = {
    "groupId": 0,
    "groupName": "OK",
    "id": 0,
    "name": "NO_ERROR",
    "description": "No Error",
    "permanent": False,
}
UNKNOWN_SUBSCRIBER = {
    "groupId": 1,
    "groupName": "HANDSET_ERRORS",
    "id": 1,
    "name": "EC_UNKNOWN_SUBSCRIBER",
    "description": "Unknown Subscriber",
    "permanent": True,
}

#: Final outcomes a test can give SMS to numbers with a prefix (``POST /_sandbox/sms/outcomes``):
#: name -> (status, error). Error names and ids follow Infobip's published SMS error codes.
OUTCOMES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "delivered": (DELIVERED, NO_ERROR),
    "unknown_subscriber": (UNDELIVERABLE, UNKNOWN_SUBSCRIBER),
    "absent_subscriber": (
        UNDELIVERABLE,
        {
            "groupId": 1,
            "groupName": "HANDSET_ERRORS",
            "id": 27,
            "name": "EC_ABSENT_SUBSCRIBER",
            "description": "Absent Subscriber",
            "permanent": False,
        },
    ),
    "operator_failure": (
        UNDELIVERABLE,
        {
            "groupId": 3,
            "groupName": "OPERATOR_ERRORS",
            "id": 2049,
            "name": "EC_SYSTEM_FAILURE",
            "description": "System Failure",
            "permanent": False,
        },
    ),
    "barred": (
        UNDELIVERABLE,
        {
            "groupId": 2,
            "groupName": "USER_ERRORS",
            "id": 13,
            "name": "EC_CALL_BARRED",
            "description": "Call Barred",
            "permanent": True,
        },
    ),
    "expired": (
        {
            "groupId": 4,
            "groupName": "EXPIRED",
            "id": 15,
            "name": "EXPIRED_EXPIRED",
            "description": "Message expired",
        },
        {
            "groupId": 1,
            "groupName": "HANDSET_ERRORS",
            "id": 27,
            "name": "EC_ABSENT_SUBSCRIBER",
            "description": "Absent Subscriber",
            "permanent": False,
        },
    ),
    "rejected": (
        {
            "groupId": 5,
            "groupName": "REJECTED",
            "id": 14,
            "name": "REJECTED_DESTINATION_BLOCKLISTED",
            "description": "Destination is blocklisted",
        },
        NO_ERROR,
    ),
}

ALPHANUMERIC_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ._&-]{3,11}$")
NUMERIC_SENDER = re.compile(r"^\+?[0-9]{3,16}$")
DAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")
TIME_UNITS = {"SECONDS": 1, "MINUTES": 60, "HOURS": 3600}


def valid_sender(sender: Any) -> bool:
    return isinstance(sender, str) and bool(ALPHANUMERIC_SENDER.match(sender) or NUMERIC_SENDER.match(sender))


def parse_send_at(value: Any) -> float | None:
    """``2026-11-23T09:00:00.000+0000`` (or any ISO 8601 variant; no zone means UTC) as epoch seconds."""
    if not isinstance(value, str):
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            return datetime.strptime(value, fmt).timestamp()
        except ValueError:
            pass
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@dataclass
class SendRequest:
    """A validated send: the messages to store (without ids yet) and the request-wide options."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    bulk_id: str | None = None
    send_at: float | None = None
    include_count: bool = False
    violations: list[dict[str, str]] = field(default_factory=list)

    def violate(self, prop: str, text: str) -> None:
        self.violations.append({"property": prop, "violation": text})


def _minutes(point: Any) -> int | None:
    if not isinstance(point, dict):
        return None
    hour, minute = point.get("hour"), point.get("minute", 0)
    if (
        not isinstance(hour, int)
        or not isinstance(minute, int)
        or not (0 <= hour <= 23 and 0 <= minute <= 59)
    ):
        return None
    return hour * 60 + minute


def _check_window(window: Any, prefix: str, req: SendRequest) -> None:
    if not isinstance(window, dict):
        req.violate(prefix, "must be an object")
        return
    days = window.get("days")
    if not isinstance(days, list) or not days or any(d not in DAYS for d in days):
        req.violate(f"{prefix}.days", "must be a non-empty list of " + ", ".join(DAYS))
    if "from" in window or "to" in window:
        start, end = _minutes(window.get("from")), _minutes(window.get("to"))
        if start is None or end is None:
            req.violate(prefix, "from and to need hour 0-23 and minute 0-59")
        elif end - start < 60:
            req.violate(prefix, "from and to must be at least one hour apart (to after from)")


def _check_message(msg: Any, i: int, req: SendRequest) -> list[dict[str, Any]]:
    prefix = f"messages[{i}]"
    if not isinstance(msg, dict):
        req.violate(prefix, "must be an object")
        return []
    sender = msg.get("sender")
    if sender is not None and not valid_sender(sender):
        req.violate(f"{prefix}.sender", "must be alphanumeric 3-11 characters or numeric 3-16 digits")
    content = msg.get("content")
    text = content.get("text") if isinstance(content, dict) else None
    if not isinstance(text, str) or not text:
        req.violate(f"{prefix}.content.text", "must not be blank")
        text = ""
    options = msg.get("options") or {}
    if not isinstance(options, dict):
        req.violate(f"{prefix}.options", "must be an object")
        options = {}
    validity = options.get("validityPeriod")
    if validity is not None and (
        not isinstance(validity, dict)
        or not isinstance(validity.get("amount"), int)
        or validity["amount"] < 1
        or validity.get("timeUnit", "MINUTES") not in TIME_UNITS
    ):
        req.violate(f"{prefix}.options.validityPeriod", "needs a positive amount and a timeUnit")
    if options.get("deliveryTimeWindow") is not None:
        _check_window(options["deliveryTimeWindow"], f"{prefix}.options.deliveryTimeWindow", req)
    platform: dict[str, Any] = options["platform"] if isinstance(options.get("platform"), dict) else {}
    webhooks: dict[str, Any] = msg["webhooks"] if isinstance(msg.get("webhooks"), dict) else {}
    destinations = msg.get("destinations")
    if not isinstance(destinations, list) or not destinations:
        req.violate(f"{prefix}.destinations", "must not be empty")
        return []
    out: list[dict[str, Any]] = []
    segments = count_segments(text).message_count if text else 0
    for j, dest in enumerate(destinations):
        where = f"{prefix}.destinations[{j}]"
        to = normalise_phone(dest.get("to")) if isinstance(dest, dict) else None
        if to is None:
            req.violate(f"{where}.to", "must be a phone number (E.164 digits)")
            continue
        message_id = dest.get("messageId")
        if message_id is not None and (not isinstance(message_id, str) or not 0 < len(message_id) <= 200):
            req.violate(f"{where}.messageId", "must be a text of 1 to 200 characters")
            continue
        out.append(
            {
                "messageId": message_id,
                "destination": to,
                "sender": sender if sender is not None else "InfoSMS",
                "text": text,
                "messageCount": segments,
                "callbackData": webhooks.get("callbackData"),
                "platform": {k: platform[k] for k in ("entityId", "applicationId") if platform.get(k)}
                or None,
                "campaignReferenceId": options.get("campaignReferenceId"),
            }
        )
    return out


def parse_send(body: Any, now: float) -> SendRequest:
    """Validate a send body; ``violations`` lists every problem (empty means valid)."""
    req = SendRequest()
    if not isinstance(body, dict):
        req.violate("body", "must be a JSON object")
        return req
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        req.violate("messages", "must not be empty")
        return req
    for i, msg in enumerate(messages):
        req.messages.extend(_check_message(msg, i, req))
    total = sum(len(m.get("destinations") or []) for m in messages if isinstance(m, dict))
    if total > MAX_DESTINATIONS:
        req.violate(
            "messages", f"at most {MAX_DESTINATIONS} messages x destinations per request, got {total}"
        )
    options = body.get("options") or {}
    if not isinstance(options, dict):
        req.violate("options", "must be an object")
        return req
    schedule = options.get("schedule") or {}
    bulk_id = schedule.get("bulkId") if isinstance(schedule, dict) else None
    if bulk_id is not None and (not isinstance(bulk_id, str) or not 0 < len(bulk_id) <= 100):
        req.violate("options.schedule.bulkId", "must be a text of 1 to 100 characters")
    req.bulk_id = bulk_id if isinstance(bulk_id, str) else None
    if isinstance(schedule, dict) and schedule.get("sendAt") is not None:
        send_at = parse_send_at(schedule["sendAt"])
        if send_at is None:
            req.violate("options.schedule.sendAt", "must be a date-time like 2026-11-23T09:00:00.000+0000")
        elif send_at > now + timedelta(days=MAX_SCHEDULE_DAYS).total_seconds():
            req.violate("options.schedule.sendAt", f"must be at most {MAX_SCHEDULE_DAYS} days ahead")
        else:
            req.send_at = send_at
    req.include_count = bool(options.get("includeSmsCountInResponse", False))
    return req


def is_final(message: dict[str, Any], now: float) -> bool:
    return now >= message["doneAt"]


def sms_status_fields(message: dict[str, Any], now: float) -> dict[str, Any]:
    """``status`` and ``error`` of a stored message at time ``now``."""
    if not is_final(message, now):
        return {"status": PENDING, "error": NO_ERROR}
    if message.get("outcome") in OUTCOMES:
        status, error = OUTCOMES[message["outcome"]]
        return {"status": status, "error": error}
    if message.get("undeliverable"):
        return {"status": UNDELIVERABLE, "error": UNKNOWN_SUBSCRIBER}
    return {"status": DELIVERED, "error": NO_ERROR}


def _item(message: dict[str, Any], now: float, currency: str) -> dict[str, Any]:
    return {
        "bulkId": message.get("bulkId"),
        "messageId": message["messageId"],
        "sender": message.get("sender"),
        "sentAt": sms_time(message["sentAt"]),
        "doneAt": sms_time(message["doneAt"]) if is_final(message, now) else None,
        "messageCount": message["messageCount"],
        "price": {"pricePerMessage": PRICE_PER_MESSAGE, "currency": currency},
        **sms_status_fields(message, now),
        "platform": message.get("platform"),
        "campaignReferenceId": message.get("campaignReferenceId"),
    }


def render_log(message: dict[str, Any], now: float, currency: str) -> dict[str, Any]:
    """A ``/sms/3/logs`` item: the recipient is ``destination``, the text is in ``content``; no
    ``callbackData`` (Infobip's log items carry none)."""
    item = {**_item(message, now, currency), "destination": message["destination"]}
    item["content"] = {"text": message.get("text", "")}
    return {k: v for k, v in item.items() if v is not None}


def render_report(message: dict[str, Any], now: float, currency: str) -> dict[str, Any]:
    """A delivery report (``/sms/3/reports``): the recipient is ``to``, and ``callbackData`` comes back."""
    item = {**_item(message, now, currency), "to": message["destination"]}
    item["callbackData"] = message.get("callbackData")
    return {k: v for k, v in item.items() if v is not None}


def outcome_for(destination: str, outcomes: dict[str, str]) -> str | None:
    """The outcome the longest matching prefix of ``outcomes`` gives ``destination``, if any."""
    for prefix in sorted(outcomes, key=len, reverse=True):
        if destination.startswith(prefix):
            return outcomes[prefix]
    return None
