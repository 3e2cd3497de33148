"""WhatsApp: template sends (``POST /whatsapp/1/message/template``, many messages per request) and text
sends (``POST /whatsapp/1/message/text``, one per request). Errors use the legacy
``requestError.serviceException`` shape. Like Infobip, there is **no logs or reports endpoint**: what
was sent is only visible through the admin state (``whatsapp``), never through the API.

A stored message: ``messageId``, ``bulkId``, ``from``, ``to``, ``templateName``, ``language`` and
``placeholders`` (template) or ``text``, ``smsFailover``, ``callbackData``, ``notifyUrl`` and ``sentAt``.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from infobip_provider.sandbox.shapes import bad_request
from infobip_provider.sandbox.web import core_of, parse_json

router = APIRouter()

MAX_MESSAGES = 1000  # [assumed] per template request, as for SMS
NUMBER = re.compile(r"^\+?[0-9]{3,24}$")
TO = re.compile(r"^\+?[0-9]{3,150}$")
TEMPLATE_NAME = re.compile(r"^[a-z0-9_]{1,512}$")
PENDING = {
    "groupId": 1,
    "groupName": "PENDING",
    "id": 7,
    "name": "PENDING_ENROUTE",
    "description": "Message sent to next instance",
}


def _text(value: Any, low: int, high: int) -> bool:
    return isinstance(value, str) and low <= len(value) <= high


def _check_common(msg: Any, where: str, problems: dict[str, list[str]]) -> None:
    if not isinstance(msg, dict):
        problems.setdefault(where, []).append("must be an object")
        return
    if not isinstance(msg.get("from"), str) or not NUMBER.match(msg["from"]):
        problems.setdefault(f"{where}.from", []).append("must be a sender number of at most 24 digits")
    if not isinstance(msg.get("to"), str) or not TO.match(msg["to"]):
        problems.setdefault(f"{where}.to", []).append("must be a phone number")
    if msg.get("messageId") is not None and not _text(msg["messageId"], 1, 200):
        problems.setdefault(f"{where}.messageId", []).append("size must be between 1 and 200")
    if msg.get("callbackData") is not None and not _text(msg["callbackData"], 0, 4000):
        problems.setdefault(f"{where}.callbackData", []).append("size must be between 0 and 4000")
    if msg.get("notifyUrl") is not None and not _text(msg["notifyUrl"], 1, 2048):
        problems.setdefault(f"{where}.notifyUrl", []).append("size must be between 1 and 2048")
    failover = msg.get("smsFailover")
    if failover is not None and (
        not isinstance(failover, dict)
        or not _text(failover.get("from"), 1, 24)
        or not _text(failover.get("text"), 1, 4096)
    ):
        problems.setdefault(f"{where}.smsFailover", []).append("needs from (≤ 24) and text (≤ 4096)")


def _check_template(msg: dict[str, Any], where: str, problems: dict[str, list[str]]) -> None:
    content = msg.get("content")
    if not isinstance(content, dict):
        problems.setdefault(f"{where}.content", []).append("must not be null")
        return
    if not isinstance(content.get("templateName"), str) or not TEMPLATE_NAME.match(content["templateName"]):
        problems.setdefault(f"{where}.content.templateName", []).append(
            "must be lowercase letters, digits and underscores"
        )
    if not _text(content.get("language"), 2, 10):
        problems.setdefault(f"{where}.content.language", []).append("must not be blank")
    data = content.get("templateData")
    body = data.get("body") if isinstance(data, dict) else None
    placeholders = body.get("placeholders") if isinstance(body, dict) else None
    if not isinstance(placeholders, list):
        problems.setdefault(f"{where}.content.templateData.body.placeholders", []).append("must not be null")
    elif any(not isinstance(p, str) or not p.strip() for p in placeholders):
        problems.setdefault(f"{where}.content.templateData.body.placeholders", []).append(
            "must not contain empty values"
        )


def _store(core: Any, msg: dict[str, Any], bulk_id: str | None, now: float, **content: Any) -> dict[str, Any]:
    message = {
        "messageId": msg.get("messageId") or uuid.uuid4().hex,
        "bulkId": bulk_id,
        "from": msg["from"],
        "to": msg["to"].lstrip("+"),
        **content,
        "smsFailover": msg.get("smsFailover"),
        "callbackData": msg.get("callbackData"),
        "notifyUrl": msg.get("notifyUrl"),
        "sentAt": now,
    }
    core.store.whatsapp.append(message)
    return {"to": message["to"], "messageCount": 1, "messageId": message["messageId"], "status": PENDING}


@router.post("/whatsapp/1/message/template", tags=["whatsapp"])
async def send_template(request: Request) -> JSONResponse:
    raw = await request.body()
    return await core_of(request).run(lambda: _send_template(request, raw))


def _send_template(request: Request, raw: bytes) -> JSONResponse:
    core = core_of(request)
    body = parse_json(raw, "legacy")
    messages = body.get("messages") if isinstance(body, dict) else None
    problems: dict[str, list[str]] = {}
    if not isinstance(messages, list) or not messages:
        raise bad_request("legacy", {"messages": ["must not be empty"]})
    if len(messages) > MAX_MESSAGES:
        problems["messages"] = [f"at most {MAX_MESSAGES} messages per request"]
    for i, msg in enumerate(messages):
        _check_common(msg, f"messages[{i}]", problems)
        if isinstance(msg, dict):
            _check_template(msg, f"messages[{i}]", problems)
    bulk_id = body.get("bulkId")
    if bulk_id is not None and not _text(bulk_id, 1, 100):
        problems["bulkId"] = ["size must be between 1 and 100"]
    if problems:
        raise bad_request("legacy", problems)
    bulk_id = bulk_id or uuid.uuid4().hex
    now = core.clock()
    answers = []
    for msg in messages:
        content = msg["content"]
        answers.append(
            _store(
                core,
                msg,
                bulk_id,
                now,
                templateName=content["templateName"],
                language=content["language"],
                placeholders=list(content["templateData"]["body"]["placeholders"]),
            )
        )
    return JSONResponse({"messages": answers, "bulkId": bulk_id})


@router.post("/whatsapp/1/message/text", tags=["whatsapp"])
async def send_text(request: Request) -> JSONResponse:
    raw = await request.body()
    return await core_of(request).run(lambda: _send_text(request, raw))


def _send_text(request: Request, raw: bytes) -> JSONResponse:
    core = core_of(request)
    msg = parse_json(raw, "legacy")
    problems: dict[str, list[str]] = {}
    _check_common(msg, "message", problems)
    content = msg.get("content") if isinstance(msg, dict) else None
    if not isinstance(content, dict) or not _text(content.get("text"), 1, 4096):
        problems.setdefault("content.text", []).append("size must be between 1 and 4096")
    if problems:
        raise bad_request("legacy", problems)
    return JSONResponse(_store(core, msg, None, core.clock(), text=content["text"]))  # type: ignore[index]
