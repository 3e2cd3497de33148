"""Admin endpoint that pushes webhooks as Infobip does: ``POST /_sandbox/webhooks/push``.

Body: ``{"url": "http://...", "channel": "sms"|"email"|"whatsapp", "kind": "reports"|"seen",
"bulkId"?: "...", "messageIds"?: [...], "batch"?: 100, "headers"?: {...}}`` builds the delivery
(or seen) reports of the stored messages of that channel (of the bulk, or those ids; all when
neither is given) and POSTs them to ``url`` as ``{"results": [...]}``, ``batch`` items per request.
SMS and email reports are pushed once their message is final, and once only: a report pushed is not
handed out again by the pull endpoints (nor pushed again), as Infobip sends each report one way. ``{"url": ..., "results": [...]}`` pushes the given items as they
are (an inbound message, a shape a test wants to try).

Answers ``{"requests": n, "items": n, "statuses": [http status of each request]}``. The POSTs leave
from a worker thread, not the store thread: a slow receiver holds up nothing else.
"""

from __future__ import annotations

import asyncio
from typing import Any

import requests
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from infobip_provider.sandbox import sms
from infobip_provider.sandbox.api_email import render_report as email_report
from infobip_provider.sandbox.store import sms_time
from infobip_provider.sandbox.web import core_of, parse_json

router = APIRouter(prefix="/_sandbox", tags=["sandbox admin"])
PRICE_PER_WHATSAPP = 0.005
#: Seconds after the send a WhatsApp message counts as delivered, and as seen, in a pushed report.
WHATSAPP_DONE_AFTER = 1.0
WHATSAPP_SEEN_AFTER = 5.0


def whatsapp_report(message: dict[str, Any], currency: str) -> dict[str, Any]:
    """A WhatsApp delivery report as Infobip pushes it to ``notifyUrl``."""
    return {
        "bulkId": message.get("bulkId"),
        "messageId": message["messageId"],
        "to": message["to"],
        "sentAt": sms_time(message["sentAt"]),
        "doneAt": sms_time(message["sentAt"] + WHATSAPP_DONE_AFTER),
        "messageCount": 1,
        "price": {"pricePerMessage": PRICE_PER_WHATSAPP, "currency": currency},
        "status": {
            "groupId": 3,
            "groupName": "DELIVERED",
            "id": 5,
            "name": "DELIVERED_TO_HANDSET",
            "description": "Message delivered to handset",
        },
        "error": dict(sms.NO_ERROR),
        "contact": {"name": ""},
        **({"callbackData": message["callbackData"]} if message.get("callbackData") else {}),
    }


def seen_report(message: dict[str, Any], recipient: str) -> dict[str, Any]:
    return {
        "messageId": message["messageId"],
        "to": recipient,
        "sentAt": sms_time(message["sentAt"]),
        "seenAt": sms_time(message["sentAt"] + WHATSAPP_SEEN_AFTER),
    }


def _bad(text: str) -> JSONResponse:
    return JSONResponse({"error": text}, status_code=400)


@router.post("/webhooks/push")
async def push(request: Request) -> JSONResponse:
    raw = await request.body()
    core = core_of(request)
    built = await core.run(lambda: _build(request, raw))
    if isinstance(built, JSONResponse):
        return built
    url, headers, batches = built
    statuses = await asyncio.to_thread(_post_all, url, headers, batches)
    return JSONResponse(
        {"requests": len(batches), "items": sum(len(b) for b in batches), "statuses": statuses}
    )


def _build(
    request: Request, raw: bytes
) -> JSONResponse | tuple[str, dict[str, str], list[list[dict[str, Any]]]]:
    core = core_of(request)
    body = parse_json(raw, "legacy")
    if (
        not isinstance(body, dict)
        or not isinstance(body.get("url"), str)
        or not body["url"].startswith("http")
    ):
        return _bad("give {'url': 'http://...', 'channel': ..., 'kind': ...} or {'url', 'results'}")
    batch = body.get("batch", 100)
    headers = body.get("headers") or {}
    if not isinstance(batch, int) or batch < 1 or not isinstance(headers, dict):
        return _bad("batch must be a positive number and headers an object")
    if isinstance(body.get("results"), list):
        items = list(body["results"])
    else:
        found = _items(core, body)
        if isinstance(found, JSONResponse):
            return found
        items = found
    batches = [items[i : i + batch] for i in range(0, len(items), batch)]
    return body["url"], {str(k): str(v) for k, v in headers.items()}, batches


def _items(core: Any, body: dict[str, Any]) -> list[dict[str, Any]] | JSONResponse:
    channel, kind = body.get("channel"), body.get("kind", "reports")
    stored = {"sms": core.store.messages, "email": core.store.emails, "whatsapp": core.store.whatsapp}
    if channel not in stored or kind not in ("reports", "seen"):
        return _bad("channel must be sms, email or whatsapp and kind reports or seen")
    bulk_id = body.get("bulkId")
    ids = set(body.get("messageIds") or [])
    now = core.clock()
    currency = core.config.currency
    chosen = [
        m
        for m in stored[channel]
        if (bulk_id is None or m.get("bulkId") == bulk_id) and (not ids or m["messageId"] in ids)
    ]
    if kind == "seen":
        return [seen_report(m, m.get("to") or m.get("destination") or "") for m in chosen]
    if channel == "whatsapp":
        return [whatsapp_report(m, currency) for m in chosen]
    items = []
    for message in chosen:
        if now < message["doneAt"] or message.get("reported"):
            continue  # not final yet (pushed once it is), or already handed out
        message["reported"] = True
        render = sms.render_report if channel == "sms" else email_report
        items.append(render(message, now, currency))
    core.mark_dirty()
    return items


def _post_all(url: str, headers: dict[str, str], batches: list[list[dict[str, Any]]]) -> list[int]:
    statuses = []
    with requests.Session() as session:
        for batch in batches:
            try:
                answer = session.post(url, json={"results": batch}, headers=headers, timeout=30)
                statuses.append(answer.status_code)
            except requests.RequestException:
                statuses.append(0)
    return statuses
