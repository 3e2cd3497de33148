"""Admin endpoints for the return path: inbound SMS, SMS outcomes by number prefix, bulk People.

- ``POST /_sandbox/sms/inbound`` ``{"messages": [{"from", "to", "text", "keyword"?, "callbackData"?}]}``:
  replies that ``GET /sms/1/inbox/reports`` hands out (once each); answers their ``messageIds``.
  ``keyword`` is what the number's keyword configuration matched (Infobip fills it only when the
  text starts with a configured keyword); ``cleanText`` is the text without it.
- ``POST /_sandbox/sms/outcomes`` ``{"outcomes": {"prefix": "outcome"}}`` (``DELETE`` clears):
  SMS sent later to a destination with that prefix end in that outcome (``sms.OUTCOMES``: delivered,
  unknown_subscriber, absent_subscriber, operator_failure, barred, expired, rejected).
- ``POST /_sandbox/email/outcomes`` ``{"outcomes": {"prefix": "outcome"}}`` (``DELETE`` clears):
  emails sent later to an address with that prefix end in that outcome (``api_email.EMAIL_OUTCOMES``).
- ``POST /_sandbox/people/generate`` ``{"count": N, "tags": [...], "prefix": "p"}``: N people made at
  once, without the People API's cooldowns (seeding large tests and benchmarks).
- ``POST /_sandbox/people/modify`` ``{"ids": [...], "customAttributes": {...}}``: changes those
  people as an update through the API would (``modifiedAt`` becomes now).
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from infobip_provider.sandbox import people as rules
from infobip_provider.sandbox import sms
from infobip_provider.sandbox.api_email import EMAIL_OUTCOMES
from infobip_provider.sandbox.store import people_time
from infobip_provider.sandbox.web import core_of, parse_json

router = APIRouter(prefix="/_sandbox", tags=["sandbox admin"])


def _bad(text: str) -> JSONResponse:
    return JSONResponse({"error": text}, status_code=400)


@router.post("/sms/inbound")
async def add_inbound(request: Request) -> JSONResponse:
    raw = await request.body()
    return await core_of(request).run(lambda: _add_inbound(request, raw))


def _add_inbound(request: Request, raw: bytes) -> JSONResponse:
    core = core_of(request)
    body = parse_json(raw, "legacy")
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list):
        return _bad("give {'messages': [{'from', 'to', 'text'}]}")
    now = core.clock()
    ids: list[str] = []
    stored: list[dict[str, Any]] = []
    for item in messages:
        if not isinstance(item, dict) or not all(
            isinstance(item.get(k), str) for k in ("from", "to", "text")
        ):
            return _bad("every inbound message needs text fields from, to and text")
        keyword = str(item.get("keyword") or "")
        text = item["text"]
        clean = text[len(keyword) :].strip() if keyword and text.upper().startswith(keyword.upper()) else text
        message = {
            "messageId": str(item.get("messageId") or uuid.uuid4().hex),
            "from": item["from"].lstrip("+"),
            "to": item["to"].lstrip("+"),
            "text": text,
            "cleanText": clean,
            "keyword": keyword,
            "receivedAt": now,
            "smsCount": 1,
            "callbackData": item.get("callbackData"),
            "reported": False,
        }
        stored.append(message)
        ids.append(message["messageId"])
    core.store.inbound.extend(stored)
    core.mark_dirty()
    return JSONResponse({"messageIds": ids})


@router.post("/sms/outcomes")
async def set_outcomes(request: Request) -> JSONResponse:
    raw = await request.body()
    return await core_of(request).run(lambda: _set_outcomes(request, raw))


def _set_outcomes(request: Request, raw: bytes) -> JSONResponse:
    core = core_of(request)
    body = parse_json(raw, "legacy")
    outcomes = body.get("outcomes") if isinstance(body, dict) else None
    if not isinstance(outcomes, dict) or not all(
        isinstance(p, str) and p and o in sms.OUTCOMES for p, o in outcomes.items()
    ):
        return _bad("give {'outcomes': {prefix: outcome}} with outcomes among " + ", ".join(sms.OUTCOMES))
    core.store.sms_outcomes.update(outcomes)
    core.mark_dirty()
    return JSONResponse({"outcomes": core.store.sms_outcomes})


@router.delete("/sms/outcomes")
async def clear_outcomes(request: Request) -> JSONResponse:
    core = core_of(request)

    def clear() -> JSONResponse:
        core.store.sms_outcomes.clear()
        core.mark_dirty()
        return JSONResponse({"outcomes": {}})

    return await core.run(clear)


@router.post("/email/outcomes")
async def set_email_outcomes(request: Request) -> JSONResponse:
    raw = await request.body()
    return await core_of(request).run(lambda: _set_email_outcomes(request, raw))


def _set_email_outcomes(request: Request, raw: bytes) -> JSONResponse:
    core = core_of(request)
    body = parse_json(raw, "legacy")
    outcomes = body.get("outcomes") if isinstance(body, dict) else None
    if not isinstance(outcomes, dict) or not all(
        isinstance(p, str) and p and o in EMAIL_OUTCOMES for p, o in outcomes.items()
    ):
        return _bad("give {'outcomes': {prefix: outcome}} with outcomes among " + ", ".join(EMAIL_OUTCOMES))
    core.store.email_outcomes.update({p.lower(): o for p, o in outcomes.items()})
    core.mark_dirty()
    return JSONResponse({"outcomes": core.store.email_outcomes})


@router.delete("/email/outcomes")
async def clear_email_outcomes(request: Request) -> JSONResponse:
    core = core_of(request)

    def clear() -> JSONResponse:
        core.store.email_outcomes.clear()
        core.mark_dirty()
        return JSONResponse({"outcomes": {}})

    return await core.run(clear)


@router.post("/people/generate")
async def generate_people(request: Request) -> JSONResponse:
    raw = await request.body()
    return await core_of(request).run(lambda: _generate(request, raw))


_FIRST = ("Ana", "Ivan", "Emma", "Liam", "Mia", "Noah", "Lena", "Luka", "Priya", "Arjun")
_LAST = ("Horvat", "Smith", "Mueller", "Taylor", "Sharma", "Silva", "Babic", "Jones")
_CITIES = ("Zagreb", "Split", "Berlin", "London", "Austin", "Mumbai")


def _generate(request: Request, raw: bytes) -> JSONResponse:
    core = core_of(request)
    body = parse_json(raw, "legacy")
    count = body.get("count") if isinstance(body, dict) else None
    tags = body.get("tags", []) if isinstance(body, dict) else []
    prefix = str(body.get("prefix") or "p") if isinstance(body, dict) else "p"
    if not isinstance(count, int) or not 0 < count <= 1_000_000 or not isinstance(tags, list):
        return _bad("give {'count': 1..1000000, 'tags': [names]}")
    now = core.clock()
    stamp = people_time(now)
    for name in tags:
        core.store.ensure_tag(str(name), now)
    first_id = core.store.next_ids["person"]
    for _ in range(count):
        person_id = core.store.new_id("person")
        n = person_id
        fields: dict[str, Any] = {
            "externalId": f"{prefix}-{n}",
            "firstName": _FIRST[n % len(_FIRST)],
            "lastName": _LAST[n % len(_LAST)],
            "city": _CITIES[n % len(_CITIES)],
            "tags": [str(t) for t in tags],
            "customAttributes": {"plan": ("free", "pro")[n % 2], "score": n % 100},
            "contactInformation": {
                "email": [{"address": f"{prefix}{n}@example.com"}],
                "phone": [{"number": f"4179{n:07d}"}],
            },
        }
        core.store.put_person(rules.new_person(person_id, fields, stamp))
    core.mark_dirty()
    return JSONResponse({"first": first_id, "last": first_id + count - 1})


@router.post("/people/modify")
async def modify_people(request: Request) -> JSONResponse:
    raw = await request.body()
    return await core_of(request).run(lambda: _modify(request, raw))


def _modify(request: Request, raw: bytes) -> JSONResponse:
    core = core_of(request)
    body = parse_json(raw, "legacy")
    ids = body.get("ids") if isinstance(body, dict) else None
    attributes = body.get("customAttributes", {}) if isinstance(body, dict) else {}
    if not isinstance(ids, list) or not isinstance(attributes, dict):
        return _bad("give {'ids': [person ids], 'customAttributes': {...}}")
    stamp = people_time(core.clock())
    modified = 0
    for person_id in ids:
        person = core.store.people.get(int(person_id))
        if person is None:
            continue
        person["customAttributes"] = {**person.get("customAttributes", {}), **attributes}
        person["modifiedAt"] = stamp
        modified += 1
    core.mark_dirty()
    return JSONResponse({"modified": modified})
