"""Email: send (``POST /email/4/messages``, a JSON body), logs (cursor paging) and delivery reports
(each handed out once). Errors use the newer ``errorCode``/``violations`` shape.

A stored email is a dict with ``messageId``, ``bulkId``, ``destination``, ``sender``, ``subject`` or
``templateId``, ``placeholders`` (the JSON string as sent), ``sentAt`` and ``doneAt`` (epoch seconds),
``callbackData``, ``platform``, ``campaignReferenceId``, ``outcome`` and ``reported``. Its status comes
from the clock: PENDING until ``doneAt``, then DELIVERED, or the final status and error of its
``outcome`` (:data:`EMAIL_OUTCOMES`, given by address prefix through ``POST /_sandbox/email/outcomes``).
A scheduled email is left out of the logs until it leaves, as Infobip may.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from infobip_provider.sandbox import sms
from infobip_provider.sandbox.shapes import ApiError, sms3
from infobip_provider.sandbox.store import sms_time
from infobip_provider.sandbox.web import core_of, int_param, parse_json

router = APIRouter()

MAX_RECIPIENTS = 1000  # [assumed] per request, as for SMS
MAX_SUBJECT = 1000
PRICE_PER_EMAIL = 0.001
ADDRESS = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[A-Za-z]{2,}$")
SENDER = re.compile(r"^\s*(?:[^<>]*<(?P<angle>[^<>\s]+)>|(?P<bare>[^<>\s]+))\s*$")


def _error(group_id: int, group: str, error_id: int, name: str, permanent: bool) -> dict[str, Any]:
    return {
        "groupId": group_id,
        "groupName": group,
        "id": error_id,
        "name": name,
        "description": name.removeprefix("EC_").replace("_", " ").capitalize(),
        "permanent": permanent,
    }


_REJECTED = {"groupId": 5, "groupName": "REJECTED", "id": 12, "name": "REJECTED_NOT_ENOUGH_CREDITS"}
_EXPIRED = {"groupId": 4, "groupName": "EXPIRED", "id": 15, "name": "EXPIRED_EXPIRED"}

#: Final outcomes a test can give emails sent to addresses with a prefix: name -> (status, error).
#: The error groups and names are those Synerise's bounce mapping reads (seed 001); the ids are the
#: sandbox's own. [assumed] a bounced or dropped email ends UNDELIVERABLE or REJECTED.
EMAIL_OUTCOMES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "delivered": (sms.DELIVERED, sms.NO_ERROR),
    "bounced": (sms.UNDELIVERABLE, _error(4, "BOUNCED", 4001, "EC_MAILBOX_UNAVAILABLE", True)),
    "inbox_full": (sms.UNDELIVERABLE, _error(4, "BOUNCED", 4002, "EC_RECIPIENT_INBOX_FULL", False)),
    "soft_bounce": (sms.UNDELIVERABLE, _error(4, "BOUNCED", 4003, "EC_SOFT_BOUNCE", False)),
    "blocked_as_spam": (sms.UNDELIVERABLE, _error(4, "BOUNCED", 4004, "EC_BLOCKED_AS_SPAM", True)),
    "ip_blacklisted": (sms.UNDELIVERABLE, _error(4, "BOUNCED", 4005, "EC_SENDER_IP_BLACKLISTED", True)),
    "spam_detected": (_REJECTED, _error(5, "DROPPED", 5001, "EC_SPAM_DETECTED", True)),
    "suppressed_bounce": (_REJECTED, _error(5, "DROPPED", 5002, "EC_SUPPRESSED_BOUNCE", True)),
    "suppressed_unsubscribe": (_REJECTED, _error(5, "DROPPED", 5003, "EC_SUPPRESSED_UNSUBSCRIBE", True)),
    "invalid_address": (sms.UNDELIVERABLE, _error(1, "HANDSET_ERRORS", 1001, "EC_INVALID_EMAIL", True)),
    "user_error": (sms.UNDELIVERABLE, _error(2, "USER_ERRORS", 2001, "EC_DOMAIN_NOT_FOUND", True)),
    "operator_error": (_EXPIRED, _error(3, "OPERATOR_ERRORS", 3001, "EC_CONNECTION_TIMEOUT", False)),
    "rejected": (_REJECTED, sms.NO_ERROR),
}


def valid_sender(sender: Any) -> bool:
    """``Name <address>`` or an address."""
    found = SENDER.match(sender) if isinstance(sender, str) else None
    return bool(found and ADDRESS.match(found.group("angle") or found.group("bare")))


@dataclass
class EmailSend:
    messages: list[dict[str, Any]] = field(default_factory=list)
    bulk_id: str | None = None
    send_at: float | None = None
    violations: list[dict[str, str]] = field(default_factory=list)

    def violate(self, prop: str, text: str) -> None:
        self.violations.append({"property": prop, "violation": text})


def _check_placeholders(value: Any, where: str, req: EmailSend) -> None:
    if value is None:
        return
    if not isinstance(value, str):
        req.violate(where, "must be a JSON string (an object serialised as text), not an object")
        return
    try:
        decoded = json.loads(value)
    except ValueError:
        req.violate(where, "must be a JSON object serialised as text")
        return
    if not isinstance(decoded, dict):
        req.violate(where, "must be a JSON object serialised as text")


def _check_content(content: Any, prefix: str, req: EmailSend) -> dict[str, Any]:
    if not isinstance(content, dict):
        req.violate(f"{prefix}.content", "must be an object")
        return {}
    if content.get("templateId") is not None:
        if not isinstance(content["templateId"], str) or not content["templateId"]:
            req.violate(f"{prefix}.content.templateId", "must be a text")
        return {"templateId": content.get("templateId")}
    subject = content.get("subject")
    if not isinstance(subject, str) or not 0 < len(subject) <= MAX_SUBJECT:
        req.violate(f"{prefix}.content.subject", f"must be a text of 1 to {MAX_SUBJECT} characters")
    if not any(isinstance(content.get(k), str) and content[k] for k in ("html", "text")):
        req.violate(f"{prefix}.content", "needs templateId, or html or text")
    return {"subject": subject}


def _check_message(msg: Any, i: int, req: EmailSend) -> list[dict[str, Any]]:
    prefix = f"messages[{i}]"
    if not isinstance(msg, dict):
        req.violate(prefix, "must be an object")
        return []
    content = _check_content(msg.get("content"), prefix, req)
    sender = msg.get("sender")
    if sender is None and "templateId" not in content:
        req.violate(f"{prefix}.sender", "is required unless the template defines it")
    elif sender is not None and not valid_sender(sender):
        req.violate(f"{prefix}.sender", "must be 'Name <address>' or an address")
    options: dict[str, Any] = msg["options"] if isinstance(msg.get("options"), dict) else {}
    platform: dict[str, Any] = options["platform"] if isinstance(options.get("platform"), dict) else {}
    webhooks: dict[str, Any] = msg["webhooks"] if isinstance(msg.get("webhooks"), dict) else {}
    destinations = msg.get("destinations")
    if not isinstance(destinations, list) or not destinations:
        req.violate(f"{prefix}.destinations", "must not be empty")
        return []
    out: list[dict[str, Any]] = []
    for j, dest in enumerate(destinations):
        to_list = dest.get("to") if isinstance(dest, dict) else None
        if not isinstance(to_list, list) or not to_list:
            req.violate(f"{prefix}.destinations[{j}].to", "must not be empty")
            continue
        for k, to in enumerate(to_list):
            where = f"{prefix}.destinations[{j}].to[{k}]"
            address = to.get("destination") if isinstance(to, dict) else None
            if not isinstance(address, str) or not ADDRESS.match(address):
                req.violate(f"{where}.destination", "must be an email address")
                continue
            message_id = to.get("messageId")
            if message_id is not None and (not isinstance(message_id, str) or not 0 < len(message_id) <= 200):
                req.violate(f"{where}.messageId", "must be a text of 1 to 200 characters")
                continue
            _check_placeholders(to.get("placeholders"), f"{where}.placeholders", req)
            out.append(
                {
                    "messageId": message_id,
                    "destination": address.lower(),
                    "sender": sender,
                    **content,
                    "placeholders": to.get("placeholders"),
                    "callbackData": webhooks.get("callbackData"),
                    "platform": {k: platform[k] for k in ("entityId", "applicationId") if platform.get(k)}
                    or None,
                    "campaignReferenceId": options.get("campaignReferenceId"),
                }
            )
    return out


def parse_send(body: Any, now: float) -> EmailSend:
    """Validate a send body; ``violations`` lists every problem (empty means valid)."""
    req = EmailSend()
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or not body["messages"]:
        req.violate("messages", "must not be empty")
        return req
    for i, msg in enumerate(body["messages"]):
        req.messages.extend(_check_message(msg, i, req))
    if len(req.messages) > MAX_RECIPIENTS:
        req.violate("messages", f"at most {MAX_RECIPIENTS} recipients per request, got {len(req.messages)}")
    options = body.get("options") or {}
    schedule = options.get("schedule") if isinstance(options, dict) else None
    schedule = schedule if isinstance(schedule, dict) else {}
    bulk_id = schedule.get("bulkId")
    if bulk_id is not None and (not isinstance(bulk_id, str) or not 0 < len(bulk_id) <= 100):
        req.violate("options.schedule.bulkId", "must be a text of 1 to 100 characters")
    req.bulk_id = bulk_id if isinstance(bulk_id, str) else None
    if schedule.get("sendAt") is not None:
        send_at = sms.parse_send_at(schedule["sendAt"])
        if send_at is None:
            req.violate("options.schedule.sendAt", "must be a date-time like 2026-11-23T09:00:00.000+0000")
        elif send_at > now + timedelta(days=sms.MAX_SCHEDULE_DAYS).total_seconds():
            req.violate("options.schedule.sendAt", f"must be at most {sms.MAX_SCHEDULE_DAYS} days ahead")
        else:
            req.send_at = send_at
    return req


@router.post("/email/4/messages", tags=["email"])
async def send(request: Request) -> JSONResponse:
    raw = await request.body()
    return await core_of(request).run(lambda: _send(request, raw))


def _send(request: Request, raw: bytes) -> JSONResponse:
    core = core_of(request)
    now = core.clock()
    req = parse_send(parse_json(raw, "sms3"), now)
    if req.violations:
        raise ApiError(400, sms3(400, req.violations))
    bulk_id = req.bulk_id or uuid.uuid4().hex
    leaves_at = max(now, req.send_at or now)
    answers = []
    for item in req.messages:
        email = {
            **item,
            "messageId": item["messageId"] or uuid.uuid4().hex,
            "bulkId": bulk_id,
            "sentAt": leaves_at,
            "doneAt": leaves_at + core.config.delivery_delay,
            "outcome": sms.outcome_for(item["destination"], core.store.email_outcomes),
            "reported": False,
        }
        core.store.emails.append(email)
        answers.append(
            {"messageId": email["messageId"], "destination": email["destination"], "status": sms.PENDING}
        )
    return JSONResponse({"bulkId": bulk_id, "messages": answers})


def _status(email: dict[str, Any], now: float) -> dict[str, Any]:
    if now < email["doneAt"]:
        return {"status": sms.PENDING, "error": sms.NO_ERROR}
    status, error = EMAIL_OUTCOMES.get(email.get("outcome") or "delivered", EMAIL_OUTCOMES["delivered"])
    return {"status": status, "error": error}


def _item(email: dict[str, Any], now: float, currency: str) -> dict[str, Any]:
    item = {
        "bulkId": email["bulkId"],
        "messageId": email["messageId"],
        "sender": email.get("sender"),
        "sentAt": sms_time(email["sentAt"]),
        "doneAt": sms_time(email["doneAt"]) if now >= email["doneAt"] else None,
        "messageCount": 1,
        "price": {"pricePerMessage": PRICE_PER_EMAIL, "currency": currency},
        **_status(email, now),
        "platform": email.get("platform"),
        "campaignReferenceId": email.get("campaignReferenceId"),
    }
    return item


def render_log(email: dict[str, Any], now: float, currency: str) -> dict[str, Any]:
    """A ``/email/4/logs`` item: the recipient is ``destination``; no ``callbackData``."""
    item = {**_item(email, now, currency), "destination": email["destination"]}
    return {k: v for k, v in item.items() if v is not None}


def render_report(email: dict[str, Any], now: float, currency: str) -> dict[str, Any]:
    """A ``/email/4/reports`` item: the recipient is ``to``; ``callbackData`` comes back."""
    item = {
        **_item(email, now, currency),
        "to": email["destination"],
        "callbackData": email.get("callbackData"),
    }
    item["attemptCount"] = 1
    return {k: v for k, v in item.items() if v is not None}


def _selected(request: Request, now: float, horizon_key: str) -> list[dict[str, Any]]:
    bulk_id = request.query_params.get("bulkId")
    message_ids = set(request.query_params.getlist("messageId"))
    since = now - sms.RETENTION
    return [
        m
        for m in core_of(request).store.emails
        if m[horizon_key] >= since
        and m["sentAt"] <= now
        and (bulk_id is None or m["bulkId"] == bulk_id)
        and (not message_ids or m["messageId"] in message_ids)
    ]


@router.get("/email/4/logs", tags=["email"])
async def logs(request: Request) -> JSONResponse:
    return await core_of(request).run(lambda: _logs(request))


def _logs(request: Request) -> JSONResponse:
    """One page, newest first; paged by ``cursor.nextCursor`` only when ``useCursor=true``."""
    core = core_of(request)
    now = core.clock()
    limit = int_param(request, "limit", 50, 1, 1000, "sms3")
    paging = request.query_params.get("useCursor", "").lower() == "true"
    offset = _cursor_offset(request.query_params.get("cursor")) if paging else 0
    found = list(reversed(_selected(request, now, "sentAt")))
    page = found[offset : offset + limit]
    body: dict[str, Any] = {"results": [render_log(m, now, core.config.currency) for m in page]}
    if paging:
        more = offset + limit < len(found)
        body["cursor"] = {"limit": limit, **({"nextCursor": _cursor(offset + limit)} if more else {})}
    return JSONResponse(body)


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"email-logs:{offset}".encode()).decode()


def _cursor_offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        kind, _, offset = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if kind == "email-logs" and offset.isdigit():
            return int(offset)
    except (ValueError, UnicodeDecodeError):
        pass
    raise ApiError(
        400, sms3(400, [{"property": "cursor", "violation": "is not a cursor this API handed out"}])
    )


@router.get("/email/4/reports", tags=["email"])
async def reports(request: Request) -> JSONResponse:
    return await core_of(request).run(lambda: _reports(request))


def _reports(request: Request) -> JSONResponse:
    core = core_of(request)
    now = core.clock()
    limit = int_param(request, "limit", 50, 1, 1000, "sms3")
    ready = [m for m in _selected(request, now, "doneAt") if not m["reported"] and now >= m["doneAt"]]
    ready.sort(key=lambda m: m["doneAt"])
    results = []
    for email in ready[:limit]:
        email["reported"] = True
        results.append(render_report(email, now, core.config.currency))
    return JSONResponse({"results": results})
