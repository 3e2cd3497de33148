"""The account's blocklist (``/platform/1/blocklists``, one request per second) and email suppressions
(``/email/1/suppressions``, 100 requests per second): what the suppression mirror keeps equal to the
library's suppression list.

- ``POST /platform/1/blocklists`` ``{"blocklist": [{"channel": "SMS", "destinations": [{"to": ...}],
  "sender"?}]}``: saved (Infobip saves asynchronously; the sandbox at once), duplicates ignored;
  answers ``{"blocklist": [...]}`` as taken. ``DELETE`` with the same body removes them; ``GET`` lists
  ``{"blocklist": [{"channel", "to", "sender"}]}``. [assumed] DELETE takes the POST body.
- ``POST /email/1/suppressions`` ``{"suppressions": [{"domainName", "emailAddress": [...], "type":
  BOUNCE|COMPLAINT|UNSUBSCRIBE}]}``; ``DELETE`` the same; ``GET ?domainName=&type=`` lists
  ``{"results": [{"domainName", "emailAddress", "type", "createdDate"}]}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from infobip_provider.sandbox.shapes import bad_request
from infobip_provider.sandbox.web import core_of, parse_json

router = APIRouter()

CHANNELS = ("SMS", "WHATSAPP", "EMAIL", "VIBER", "RCS", "VOICE")
SUPPRESSION_TYPES = ("BOUNCE", "COMPLAINT", "UNSUBSCRIBE")
MAX_ITEMS = 1000


def _blocklist_items(raw: bytes) -> list[tuple[str, str, str]]:
    body = parse_json(raw, "legacy")
    entries = body.get("blocklist") if isinstance(body, dict) else None
    if not isinstance(entries, list) or not entries:
        raise bad_request("legacy", {"blocklist": ["must be a non-empty list"]})
    items = []
    for i, entry in enumerate(entries):
        channel = str((entry or {}).get("channel") or "").upper()
        destinations = (entry or {}).get("destinations")
        if channel not in CHANNELS or not isinstance(destinations, list) or not destinations:
            raise bad_request("legacy", {f"blocklist[{i}]": ["needs a channel and destinations"]})
        for destination in destinations:
            to = str((destination or {}).get("to") or "").strip()
            if not to:
                raise bad_request("legacy", {f"blocklist[{i}].destinations": ["to is required"]})
            items.append((channel, to.lower(), str(entry.get("sender") or "")))
    if len(items) > MAX_ITEMS:
        raise bad_request("legacy", {"blocklist": [f"at most {MAX_ITEMS} destinations per request"]})
    return items


@router.post("/platform/1/blocklists", tags=["blocklist"])
async def add_blocklist(request: Request) -> JSONResponse:
    raw = await request.body()
    return await core_of(request).run(lambda: _change_blocklist(request, raw, add=True))


@router.delete("/platform/1/blocklists", tags=["blocklist"])
async def remove_blocklist(request: Request) -> JSONResponse:
    raw = await request.body()
    return await core_of(request).run(lambda: _change_blocklist(request, raw, add=False))


def _change_blocklist(request: Request, raw: bytes, *, add: bool) -> JSONResponse:
    items = _blocklist_items(raw)
    store = core_of(request).store
    for item in items:
        if add:
            store.blocklist.add(item)
        else:
            store.blocklist.discard(item)
    return JSONResponse({"blocklist": [{"channel": c, "to": t, "sender": s or None} for c, t, s in items]})


@router.get("/platform/1/blocklists", tags=["blocklist"])
async def get_blocklist(request: Request) -> JSONResponse:
    return await core_of(request).run(lambda: _get_blocklist(request))


def _get_blocklist(request: Request) -> JSONResponse:
    items = sorted(core_of(request).store.blocklist)
    return JSONResponse({"blocklist": [{"channel": c, "to": t, "sender": s or None} for c, t, s in items]})


def _suppression_items(raw: bytes) -> list[tuple[str, str, str]]:
    body = parse_json(raw, "sms3")
    entries = body.get("suppressions") if isinstance(body, dict) else None
    if not isinstance(entries, list) or not entries:
        raise bad_request("sms3", {"suppressions": ["must be a non-empty list"]})
    items: list[tuple[str, str, str]] = []
    for i, entry in enumerate(entries):
        domain = str((entry or {}).get("domainName") or "").strip().lower()
        kind = str((entry or {}).get("type") or "").upper()
        addresses = (entry or {}).get("emailAddress")
        if not domain or kind not in SUPPRESSION_TYPES or not isinstance(addresses, list) or not addresses:
            raise bad_request("sms3", {f"suppressions[{i}]": ["needs domainName, type and emailAddress"]})
        items.extend((domain, str(a).strip().lower(), kind) for a in addresses)
    if len(items) > MAX_ITEMS:
        raise bad_request("sms3", {"suppressions": [f"at most {MAX_ITEMS} addresses per request"]})
    return items


@router.post("/email/1/suppressions", tags=["email"])
async def add_suppressions(request: Request) -> JSONResponse:
    raw = await request.body()
    return await core_of(request).run(lambda: _change_suppressions(request, raw, add=True))


@router.delete("/email/1/suppressions", tags=["email"])
async def remove_suppressions(request: Request) -> JSONResponse:
    raw = await request.body()
    return await core_of(request).run(lambda: _change_suppressions(request, raw, add=False))


def _change_suppressions(request: Request, raw: bytes, *, add: bool) -> JSONResponse:
    items = _suppression_items(raw)
    core = core_of(request)
    for domain, address, kind in items:
        key = f"{domain}|{address}|{kind}"
        if add:
            core.store.email_suppressions.setdefault(key, core.clock())
        else:
            core.store.email_suppressions.pop(key, None)
    return JSONResponse({"processed": len(items)})


@router.get("/email/1/suppressions", tags=["email"])
async def get_suppressions(request: Request) -> JSONResponse:
    return await core_of(request).run(lambda: _get_suppressions(request))


def _get_suppressions(request: Request) -> JSONResponse:
    domain = (request.query_params.get("domainName") or "").lower()
    kind = (request.query_params.get("type") or "").upper()
    results: list[dict[str, Any]] = []
    for key, created in sorted(core_of(request).store.email_suppressions.items()):
        d, address, k = key.split("|")
        if (domain and d != domain) or (kind and k != kind):
            continue
        results.append({"domainName": d, "emailAddress": address, "type": k, "createdDate": created})
    return JSONResponse({"results": results})
