"""SMS: send (``/sms/3/messages``), logs, delivery reports (each handed out once) and preview.

Routes touching the store do that work on the store thread (``core.run``); preview touches none.
"""

from __future__ import annotations

import base64
import unicodedata
import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from infobip_provider.sandbox import sms
from infobip_provider.sandbox.segments import GSM7_BASIC, GSM7_EXTENSION, count_segments
from infobip_provider.sandbox.shapes import ApiError, bad_request, sms3
from infobip_provider.sandbox.web import core_of, int_param, json_body, parse_json

router = APIRouter()


def _new_id() -> str:
    return uuid.uuid4().hex


@router.post("/sms/3/messages", tags=["sms"])
async def send(request: Request) -> JSONResponse:
    raw = await request.body()
    return await core_of(request).run(lambda: _send(request, raw))


def _send(request: Request, raw: bytes) -> JSONResponse:
    core = core_of(request)
    now = core.clock()
    req = sms.parse_send(parse_json(raw, "sms3"), now)
    if req.violations:
        raise ApiError(400, sms3(400, req.violations))
    bulk_id = req.bulk_id or _new_id()
    leaves_at = max(now, req.send_at or now)
    answers: list[dict[str, Any]] = []
    prefixes = core.config.undeliverable_prefixes
    for item in req.messages:
        message = {
            **item,
            "messageId": item["messageId"] or _new_id(),
            "bulkId": bulk_id,
            "sentAt": leaves_at,
            "doneAt": leaves_at + core.config.delivery_delay,
            "undeliverable": item["destination"].startswith(prefixes),
            "outcome": sms.outcome_for(item["destination"], core.store.sms_outcomes),
            "reported": False,
        }
        core.store.messages.append(message)
        answer: dict[str, Any] = {
            "messageId": message["messageId"],
            "destination": message["destination"],
            "status": sms.PENDING,
        }
        if req.include_count:
            answer["details"] = {"messageCount": message["messageCount"]}
        answers.append(answer)
    return JSONResponse({"bulkId": bulk_id, "messages": answers})


def _selected(request: Request, now: float, horizon_key: str) -> list[dict[str, Any]]:
    """Messages of the last 48 h matching ``bulkId`` and any of the ``messageId`` parameters.

    A scheduled message is left out until its ``sendAt`` (its ``sentAt``): like Infobip, whose
    logs may not show an accepted message before it leaves.
    """
    bulk_id = request.query_params.get("bulkId")
    message_ids = set(request.query_params.getlist("messageId"))
    since = now - sms.RETENTION
    return [
        m
        for m in core_of(request).store.messages
        if m[horizon_key] >= since
        and m["sentAt"] <= now
        and (bulk_id is None or m.get("bulkId") == bulk_id)
        and (not message_ids or m["messageId"] in message_ids)
    ]


@router.get("/sms/3/logs", tags=["sms"])
async def logs(request: Request) -> JSONResponse:
    return await core_of(request).run(lambda: _logs(request))


def _logs(request: Request) -> JSONResponse:
    """One page of logs, newest first. Like Infobip, only ``useCursor=true`` pages: the answer then carries
    ``cursor.nextCursor`` (opaque) while more remain, and ``cursor`` asks for the page after; without
    it the answer is the first ``limit`` logs, no cursor."""
    core = core_of(request)
    now = core.clock()
    limit = int_param(request, "limit", 50, 1, 1000, "sms3")
    paging = request.query_params.get("useCursor", "").lower() == "true"
    offset = _cursor_offset(request.query_params.get("cursor")) if paging else 0
    found = list(reversed(_selected(request, now, "sentAt")))  # newest first
    page = found[offset : offset + limit]
    body: dict[str, Any] = {"results": [sms.render_log(m, now, core.config.currency) for m in page]}
    if paging:
        more = offset + limit < len(found)
        body["cursor"] = {"limit": limit, **({"nextCursor": _cursor(offset + limit)} if more else {})}
    return JSONResponse(body)


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"logs:{offset}".encode()).decode()


def _cursor_offset(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        kind, _, offset = base64.urlsafe_b64decode(cursor.encode()).decode().partition(":")
        if kind == "logs" and offset.isdigit():
            return int(offset)
    except (ValueError, UnicodeDecodeError):
        pass
    raise ApiError(
        400, sms3(400, [{"property": "cursor", "violation": "is not a cursor this API handed out"}])
    )


@router.get("/sms/3/reports", tags=["sms"])
async def reports(request: Request) -> JSONResponse:
    return await core_of(request).run(lambda: _reports(request))


def _reports(request: Request) -> JSONResponse:
    core = core_of(request)
    now = core.clock()
    limit = int_param(request, "limit", 50, 1, 1000, "sms3")
    ready = [m for m in _selected(request, now, "doneAt") if not m["reported"] and sms.is_final(m, now)]
    ready.sort(key=lambda m: m["doneAt"])
    results = []
    for message in ready[:limit]:
        message["reported"] = True
        results.append(sms.render_report(message, now, core.config.currency))
    return JSONResponse({"results": results})


def _fold(text: str) -> str:
    """A crude transliteration: characters outside GSM-7 lose their accents or become ``?``."""
    out = []
    for ch in text:
        if ch in GSM7_BASIC or ch in GSM7_EXTENSION:
            out.append(ch)
            continue
        base = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
        out.append(base or "?")
    return "".join(out)


def _preview(text: str, configuration: dict[str, Any]) -> dict[str, Any]:
    count = count_segments(text)
    return {
        "textPreview": text,
        "messageCount": count.message_count,
        "charactersRemaining": count.characters_remaining,
        "configuration": configuration,
    }


@router.post("/sms/1/preview", tags=["sms"])
async def preview(request: Request) -> JSONResponse:
    body = await json_body(request, "legacy")
    text = body.get("text") if isinstance(body, dict) else None
    if not isinstance(text, str) or not text:
        raise bad_request("legacy", {"text": ["property not found or blank"]})
    previews = [_preview(text, {})]
    transliteration = body.get("transliteration")
    if transliteration not in (None, "", "NONE"):
        previews.append(_preview(_fold(text), {"transliteration": transliteration}))
    return JSONResponse({"originalText": text, "previews": previews})
