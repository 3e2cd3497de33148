"""People v2 (get, list, create, PATCH), the v3 upsert and the tag endpoints.

Sandbox choices where the contract is silent: creating a person whose email, phone or external id
already belongs to someone answers 409 ``CONFLICT``; creating an existing tag answers 409 too;
tag names given on a person are created on the fly; tag add/remove ignore people that do not
exist and answer ``{}``.

Each route reads its raw body on the event loop and does the rest (decoding, store work, the JSON
answer) on the store thread, through ``core.run``.
"""

from __future__ import annotations

import json
import operator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from infobip_provider.sandbox import people as rules
from infobip_provider.sandbox.people_filter import FilterError, compile_filter
from infobip_provider.sandbox.people_keyset import KEYSET_ORDER, keyset_page, keyset_start
from infobip_provider.sandbox.shapes import ApiError, bad_request, legacy, v3
from infobip_provider.sandbox.store import people_time
from infobip_provider.sandbox.web import core_of, int_param, parse_json, required_name

MAX_BATCH = 1000
router = APIRouter()


def _not_found(what: str) -> ApiError:
    return ApiError(404, legacy(404, "NOT_FOUND", f"{what} not found"))


def _conflict(text: str) -> ApiError:
    return ApiError(409, legacy(409, "CONFLICT", text))


def _lookup(request: Request) -> dict[str, Any]:
    identifier = request.query_params.get("identifier")
    id_type = request.query_params.get("type")
    if not identifier:
        raise bad_request("legacy", {"identifier": ["must not be blank"]})
    if id_type not in rules.ID_TYPES:
        raise bad_request("legacy", {"type": ["must be one of " + ", ".join(rules.ID_TYPES)]})
    person = core_of(request).store.find_person(id_type, identifier)
    if person is None:
        raise _not_found("Person")
    return person


@router.get("/people/2/persons", tags=["people"])
async def get_people(request: Request) -> JSONResponse:
    return await core_of(request).run(lambda: _get_people(request))


def _get_people(request: Request) -> JSONResponse:
    if "identifier" in request.query_params:
        return JSONResponse(_lookup(request))
    store = core_of(request).store
    limit = int_param(request, "limit", 20, 1, MAX_BATCH, "legacy")
    page = int_param(request, "page", 1, 1, None, "legacy")
    matches = list(store.people.values())
    raw_filter = request.query_params.get("filter")
    order_by = request.query_params.get("orderBy")
    if raw_filter:
        try:
            spec = json.loads(raw_filter)
            predicate = compile_filter(spec)
        except (ValueError, FilterError) as exc:
            raise bad_request("legacy", {"filter": [str(exc)]}) from exc
        start = keyset_start(spec) if page == 1 and order_by in KEYSET_ORDER else None
        if start is not None:  # the People export's keyset page: see people_keyset
            chunk = keyset_page(matches, start, predicate, limit)
            return JSONResponse({"persons": chunk, "limit": limit, "page": page})
        matches = [p for p in matches if predicate(p)]
    matches = _ordered(matches, order_by)
    chunk = matches[(page - 1) * limit : page * limit]
    return JSONResponse({"persons": chunk, "limit": limit, "page": page})


def _ordered(persons: list[dict[str, Any]], order_by: str | None) -> list[dict[str, Any]]:
    persons = sorted(persons, key=lambda p: p["id"])
    if not order_by:
        return persons
    keys: list[tuple[str, bool]] = []
    for part in order_by.split(","):
        field, _, direction = part.strip().partition(":")
        direction = direction.lower() or "asc"
        if not field or direction not in ("asc", "desc"):
            raise bad_request("legacy", {"orderBy": ["must look like field:asc or field:desc"]})
        keys.append((field, direction == "desc"))
    for field, descending in reversed(keys):
        present = [p for p in persons if p.get(field) is not None]
        missing = [p for p in persons if p.get(field) is None]
        try:
            present.sort(key=operator.itemgetter(field), reverse=descending)
        except TypeError as exc:
            raise bad_request("legacy", {"orderBy": [f"cannot order by {field}"]}) from exc
        persons = present + missing
    return persons


def _ensure_tags(request: Request, fields: dict[str, Any]) -> None:
    core = core_of(request)
    for name in fields.get("tags", []):
        core.store.ensure_tag(name, core.clock())


@router.post("/people/2/persons", tags=["people"])
async def create_person(request: Request) -> JSONResponse:
    raw = await request.body()
    return await core_of(request).run(lambda: _create_person(request, raw))


def _create_person(request: Request, raw: bytes) -> JSONResponse:
    core = core_of(request)
    fields, problems = rules.parse_person(parse_json(raw, "legacy"))
    if problems:
        raise bad_request("legacy", problems)
    if not rules.has_identifier(fields):
        raise bad_request(
            "legacy", {"contactInformation": ["a person needs an email, a phone or an externalId"]}
        )
    if core.store.owners(fields):
        raise _conflict("A person with this email, phone or externalId already exists")
    _ensure_tags(request, fields)
    person = rules.new_person(core.store.new_id("person"), fields, people_time(core.clock()))
    core.store.put_person(person)
    return JSONResponse(person)


@router.patch("/people/2/persons", tags=["people"])
async def update_person(request: Request) -> JSONResponse:
    raw = await request.body()
    return await core_of(request).run(lambda: _update_person(request, raw))


def _update_person(request: Request, raw: bytes) -> JSONResponse:
    core = core_of(request)
    person = _lookup(request)
    fields, problems = rules.parse_person(parse_json(raw, "legacy"))
    if problems:
        raise bad_request("legacy", problems)
    if core.store.owners(fields) - {person["id"]}:
        raise _conflict("Another person already has this email, phone or externalId")
    _ensure_tags(request, fields)
    if rules.merge(person, fields):
        person["modifiedAt"] = people_time(core.clock())
        core.store.put_person(person)
    return JSONResponse(person)


def _upsert_error(index: int, code: int, message: str, details: dict[str, list[str]]) -> dict[str, Any]:
    flat = [{"property": prop, "message": text} for prop, texts in details.items() for text in texts]
    return {"index": index, "code": code, "message": message, "details": flat}


@router.patch("/people/3/persons/upsert", tags=["people"])
async def upsert_people(request: Request) -> JSONResponse:
    raw = await request.body()
    return await core_of(request).run(lambda: _upsert_people(request, raw))


def _upsert_people(request: Request, raw: bytes) -> JSONResponse:
    core = core_of(request)
    body = parse_json(raw, "v3")
    batch = body.get("persons") if isinstance(body, dict) else None
    if not isinstance(batch, list) or not 1 <= len(batch) <= MAX_BATCH:
        detail = [{"property": "persons", "message": f"size must be between 1 and {MAX_BATCH}"}]
        raise ApiError(400, v3(400, detail))
    results: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for index, item in enumerate(batch):
        fields, problems = rules.parse_person(item, v3=True)
        if problems:
            errors.append(_upsert_error(index, 400105, "Invalid person.", problems))
            continue
        owners = core.store.owners(fields)
        if len(owners) > 1:
            ambiguous = {
                "contactInformation": [
                    "identifiers belong to different people: " + ", ".join(map(str, sorted(owners)))
                ]
            }
            errors.append(_upsert_error(index, 400106, "Ambiguous person.", ambiguous))
            continue
        now = people_time(core.clock())
        if not owners:
            if not rules.has_identifier(fields):
                missing = {"contactInformation": ["a person needs an email, a phone or an externalId"]}
                errors.append(_upsert_error(index, 400105, "Invalid person.", missing))
                continue
            _ensure_tags(request, fields)
            person = rules.new_person(core.store.new_id("person"), fields, now)
            core.store.put_person(person)
            results.append({"index": index, "id": person["id"], "status": "CREATED"})
            continue
        person = core.store.people[owners.pop()]
        _ensure_tags(request, fields)
        if rules.merge(person, fields):
            person["modifiedAt"] = now
            core.store.put_person(person)
            results.append({"index": index, "id": person["id"], "status": "UPDATED"})
        else:
            results.append({"index": index, "id": person["id"], "status": "NOT_MODIFIED"})
    return JSONResponse({"results": results, "errors": errors}, status_code=207)


@router.get("/people/2/tags/{name:path}", tags=["tags"])
async def get_tag(name: str, request: Request) -> JSONResponse:
    return await core_of(request).run(lambda: _get_tag(request, name))


def _get_tag(request: Request, name: str) -> JSONResponse:
    tag = core_of(request).store.tags.get(name)
    if tag is None:
        raise _not_found("Tag")
    return JSONResponse(tag)


@router.post("/people/2/tags", tags=["tags"])
async def create_tag(request: Request) -> JSONResponse:
    raw = await request.body()
    return await core_of(request).run(lambda: _create_tag(request, raw))


def _create_tag(request: Request, raw: bytes) -> JSONResponse:
    core = core_of(request)
    body = parse_json(raw, "legacy")
    name = required_name(body, rules.TAG_MAX)
    if name in core.store.tags:
        raise _conflict(f"Tag {name!r} already exists")
    return JSONResponse(core.store.ensure_tag(name, core.clock()))


def _tagged_people(request: Request, name: str, raw: bytes) -> list[dict[str, Any]]:
    core = core_of(request)
    if name not in core.store.tags:
        raise _not_found("Tag")
    body = parse_json(raw, "legacy")
    people = body.get("people") if isinstance(body, dict) else None
    if not isinstance(people, list) or not 1 <= len(people) <= MAX_BATCH:
        raise bad_request("legacy", {"people": [f"size must be between 1 and {MAX_BATCH}"]})
    problems: dict[str, list[str]] = {}
    found: list[dict[str, Any]] = []
    for i, item in enumerate(people):
        query = item.get("query") if isinstance(item, dict) else None
        id_type = query.get("type") if isinstance(query, dict) else None
        identifier = query.get("identifier") if isinstance(query, dict) else None
        if id_type not in rules.ID_TYPES or not isinstance(identifier, str | int) or identifier == "":
            problems[f"people[{i}].query"] = ["needs type (ID, EXTERNAL_ID, EMAIL, PHONE) and identifier"]
            continue
        person = core.store.find_person(id_type, str(identifier))
        if person is not None:
            found.append(person)
    if problems:
        raise bad_request("legacy", problems)
    return found


@router.patch("/people/2/tags/{name:path}/persons", tags=["tags"])
async def add_tag(name: str, request: Request) -> JSONResponse:
    raw = await request.body()
    return await core_of(request).run(lambda: _add_tag(request, name, raw))


def _add_tag(request: Request, name: str, raw: bytes) -> JSONResponse:
    core = core_of(request)
    stamp = people_time(core.clock())
    for person in _tagged_people(request, name, raw):
        if name not in person["tags"]:
            person["tags"].append(name)
            person["modifiedAt"] = stamp
    return JSONResponse({})


@router.delete("/people/2/tags/{name:path}/persons", tags=["tags"])
async def remove_tag(name: str, request: Request) -> JSONResponse:
    raw = await request.body()
    return await core_of(request).run(lambda: _remove_tag(request, name, raw))


def _remove_tag(request: Request, name: str, raw: bytes) -> JSONResponse:
    core = core_of(request)
    stamp = people_time(core.clock())
    for person in _tagged_people(request, name, raw):
        if name in person["tags"]:
            person["tags"].remove(name)
            person["modifiedAt"] = stamp
    return JSONResponse({})
