"""Small helpers shared by the route modules: reach the core, read a JSON body, parse query numbers.

Route handlers read the raw body on the event loop (``raw = await request.body()``) and hand the
rest to the store thread: ``return await core_of(request).run(lambda: _work(request, raw))``, where
``_work`` decodes it with :func:`parse_json`, touches the store and builds the response.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from infobip_provider.sandbox.core import SandboxCore
from infobip_provider.sandbox.shapes import Shape, bad_request


def core_of(request: Request) -> SandboxCore:
    core: SandboxCore = request.app.state.sandbox
    return core


async def json_body(request: Request, shape: Shape, *, required: bool = True) -> Any:
    """The decoded JSON body; a 400 in ``shape`` when it is missing or not JSON."""
    return parse_json(await request.body(), shape, required=required)


def parse_json(raw: bytes, shape: Shape, *, required: bool = True) -> Any:
    """``raw`` decoded as JSON; a 400 in ``shape`` when it is empty or not JSON."""
    if not raw.strip():
        if required:
            raise bad_request(shape, {"body": ["request body is required"]})
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(shape, {"body": [f"malformed JSON: {exc}"]}) from exc


def int_param(request: Request, name: str, default: int, low: int, high: int | None, shape: Shape) -> int:
    """An integer query parameter within ``[low, high]``, else a 400 in ``shape``."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise bad_request(shape, {name: ["must be an integer"]}) from exc
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise bad_request(shape, {name: [f"must be {bound}"]})
    return value


def required_name(body: Any, limit: int) -> str:
    """The ``name`` of a list or tag create body, checked as Infobip does (legacy 400 otherwise)."""
    name = body.get("name") if isinstance(body, dict) else None
    if not isinstance(name, str) or not name.strip():
        raise bad_request("legacy", {"name": ["property not found or blank"]})
    if len(name) > limit:
        raise bad_request("legacy", {"name": [f"size must be between 1 and {limit}"]})
    return name
