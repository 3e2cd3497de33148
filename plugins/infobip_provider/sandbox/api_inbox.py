"""Inbound SMS (replies): ``GET /sms/1/inbox/reports``, each message handed out once.

Messages get there through the admin endpoint ``POST /_sandbox/sms/inbound`` (see
:mod:`infobip_provider.sandbox.admin_returns`): a test plays the person who replies.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from infobip_provider.sandbox import sms
from infobip_provider.sandbox.store import sms_time
from infobip_provider.sandbox.web import core_of, int_param

router = APIRouter()


def render_inbound(message: dict[str, Any], currency: str) -> dict[str, Any]:
    """An inbox item as Infobip answers it (``results[]`` of ``/sms/1/inbox/reports``)."""
    item = {
        "messageId": message["messageId"],
        "from": message["from"],
        "to": message["to"],
        "text": message["text"],
        "cleanText": message.get("cleanText", message["text"]),
        "keyword": message.get("keyword", ""),
        "receivedAt": sms_time(message["receivedAt"]),
        "smsCount": message.get("smsCount", 1),
        "price": {"pricePerMessage": 0.0, "currency": currency},
        "callbackData": message.get("callbackData"),
        "applicationId": message.get("applicationId"),
        "entityId": message.get("entityId"),
        "campaignReferenceId": message.get("campaignReferenceId"),
    }
    return {k: v for k, v in item.items() if v is not None}


@router.get("/sms/1/inbox/reports", tags=["sms"])
async def inbox(request: Request) -> JSONResponse:
    return await core_of(request).run(lambda: _inbox(request))


def _inbox(request: Request) -> JSONResponse:
    core = core_of(request)
    limit = int_param(request, "limit", 50, 1, 1000, "legacy")
    since = core.clock() - sms.RETENTION
    waiting = [m for m in core.store.inbound if not m["reported"] and m["receivedAt"] >= since]
    results = []
    for message in waiting[:limit]:
        message["reported"] = True
        results.append(render_inbound(message, core.config.currency))
    return JSONResponse(
        {
            "results": results,
            "messageCount": len(results),
            "pendingMessageCount": max(0, len(waiting) - len(results)),
        }
    )
