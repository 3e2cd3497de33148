"""Account balance and the Amplitude-style cohort lists (create, add, remove).

Lists are kept apart from People tags. Members are user ids, in practice emails: an id that is not
a syntactically valid email is reported under ``errors.failed.VALIDATION_ERROR`` and not added.
The list routes do their work on the store thread (``core.run``); the balance touches no store.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from infobip_provider.sandbox.people import is_email
from infobip_provider.sandbox.shapes import bad_request, tag_not_found
from infobip_provider.sandbox.web import core_of, parse_json, required_name

MAX_IDS = 1000
NAME_MAX = 256

router = APIRouter()


@router.get("/account/1/balance", tags=["account"])
async def balance(request: Request) -> JSONResponse:
    config = core_of(request).config
    return JSONResponse({"balance": config.balance, "currency": config.currency})


@router.post("/saas/amplitude/1/lists", tags=["lists"])
async def create_list(request: Request) -> JSONResponse:
    raw = await request.body()
    return await core_of(request).run(lambda: _create_list(request, raw))


def _create_list(request: Request, raw: bytes) -> JSONResponse:
    core = core_of(request)
    body = parse_json(raw, "legacy")
    name = required_name(body, NAME_MAX)
    record = core.store.create_list(name, core.clock())
    return JSONResponse({"listId": record["listId"]})


def _user_ids(raw: bytes) -> list[Any]:
    body = parse_json(raw, "legacy")
    ids = body.get("userIds") if isinstance(body, dict) else None
    if not isinstance(ids, list):
        raise bad_request("legacy", {"userIds": ["property not found or not a list"]})
    if not 1 <= len(ids) <= MAX_IDS:
        raise bad_request("legacy", {"userIds": [f"size must be between 1 and {MAX_IDS}"]})
    return ids


def _members(request: Request, list_id: str) -> set[str]:
    store = core_of(request).store
    record = store.lists.get(int(list_id)) if list_id.isdigit() else None
    if record is None:
        raise tag_not_found(list_id)
    members: set[str] = record["members"]
    return members


@router.post("/saas/amplitude/1/lists/{list_id}/add", tags=["lists"])
async def add_to_list(list_id: str, request: Request) -> JSONResponse:
    raw = await request.body()
    return await core_of(request).run(lambda: _add_to_list(request, list_id, raw))


def _add_to_list(request: Request, list_id: str, raw: bytes) -> JSONResponse:
    ids = _user_ids(raw)
    members = _members(request, list_id)
    created = modified = 0
    failed: list[str] = []
    for user_id in ids:
        if not is_email(user_id):
            failed.append(user_id if isinstance(user_id, str) else str(user_id))
            continue
        key = user_id.lower()
        if key in members:
            modified += 1
        else:
            members.add(key)
            created += 1
    answer: dict[str, Any] = {"modifiedCount": modified, "createdCount": created}
    if failed:
        answer["errors"] = {"count": len(failed), "failed": {"VALIDATION_ERROR": failed}}
    return JSONResponse(answer)


@router.post("/saas/amplitude/1/lists/{list_id}/remove", tags=["lists"])
async def remove_from_list(list_id: str, request: Request) -> Response:
    raw = await request.body()
    return await core_of(request).run(lambda: _remove_from_list(request, list_id, raw))


def _remove_from_list(request: Request, list_id: str, raw: bytes) -> Response:
    ids = _user_ids(raw)
    members = _members(request, list_id)
    for user_id in ids:
        if isinstance(user_id, str):
            members.discard(user_id.lower())
    return Response(status_code=200)
