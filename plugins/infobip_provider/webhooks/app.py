"""The FastAPI app that receives Infobip's pushes: delivery and seen reports, inbound messages.

``POST /<conn_id>/<kind>/<channel>`` (under ``/infobip-webhooks`` on the api-server), ``kind`` one of
``reports``, ``seen``, ``inbound`` and ``channel`` one of ``sms``, ``email``, ``whatsapp`` (inbound:
``sms`` and ``whatsapp``); the body is Infobip's ``{"results": [...]}``.

Airflow mounts a plugin's app without authentication, and Infobip cannot log in: a push is
accepted only with the ``webhook_secret`` extra of the Infobip connection ``conn_id``, given as the
query parameter ``secret`` (what a ``notifyUrl`` can carry), the header ``X-Webhook-Secret``, or the
password of HTTP Basic authentication (what Infobip's webhook subscriptions can send). Without it
the answer is 401; a connection that is unknown, not of type ``infobip`` or without a
``webhook_secret`` answers 403: the receiver is off for it. The body of a push is never logged,
never echoed in an error, and read only after the secret matched.

An accepted push is written whole and durably to the connection's state store
(:func:`infobip_provider.pushes.land_push`) before the 200 goes out: an answer Infobip never got
makes it push again, which lands the same reports twice, still one row per message.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from infobip_provider.outcomes import REPLY_CHANNELS
from infobip_provider.pushes import PUSH_CHANNELS

log = logging.getLogger(__name__)

#: URL kind -> the kind a push is landed as.
KINDS = {"reports": "reports", "seen": "seen", "inbound": "replies"}
#: The largest push accepted (Infobip batches reports; a page of 1000 items is far below this).
MAX_BODY = 16 * 1024 * 1024
SECRET_HEADER = "X-Webhook-Secret"


@dataclass(frozen=True)
class ConnectionInfo:
    """What the receiver needs of an Infobip connection."""

    conn_type: str | None
    host: str | None
    password: str | None
    extras: dict[str, Any] = field(default_factory=dict)


def airflow_connection(conn_id: str) -> ConnectionInfo | None:
    """The connection ``conn_id`` as the api-server finds it (environment, secrets backends, database)."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.models.connection import Connection

    try:
        conn = Connection.get_connection_from_secrets(conn_id)
    except AirflowNotFoundException:
        return None
    return ConnectionInfo(conn.conn_type, conn.host, conn.password, conn.extra_dejson or {})


def _refuse(status: int, text: str) -> JSONResponse:
    return JSONResponse({"error": text}, status_code=status)


def given_secrets(request: Request) -> list[str]:
    """The secrets a request carries: ``?secret=``, ``X-Webhook-Secret`` and a Basic password."""
    found = [request.query_params.get("secret"), request.headers.get(SECRET_HEADER)]
    auth = request.headers.get("Authorization") or ""
    if auth[:6].lower() == "basic ":
        with contextlib.suppress(binascii.Error, UnicodeDecodeError):
            found.append(base64.b64decode(auth[6:].strip(), validate=True).decode().partition(":")[2])
    return [s for s in found if s]


def secret_matches(expected: str, given: list[str]) -> bool:
    wanted = expected.encode()
    return any(hmac.compare_digest(wanted, s.encode()) for s in given)


def parse_results(raw: bytes) -> list[dict[str, Any]] | None:
    """The items of ``{"results": [...]}`` (each an object with a ``messageId``), or None."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    results = body.get("results") if isinstance(body, dict) else None
    if not isinstance(results, list):
        return None
    if not all(
        isinstance(i, dict) and isinstance(i.get("messageId"), str) and i["messageId"] for i in results
    ):
        return None
    return results


def _land(info: ConnectionInfo, kind: str, channel: str, items: list[dict[str, Any]]) -> str | None:
    """Write the push under the connection's account; None when its host or key make no account."""
    from infobip_provider.hooks.infobip import connection_scope, default_state_uri
    from infobip_provider.pushes import land_push
    from infobip_provider.state import StateStore

    scope = connection_scope(info.host, info.password)
    if scope is None:
        return None
    store = StateStore(str(info.extras.get("state_uri") or default_state_uri()))
    return land_push(store, scope, kind, channel, items)


def create_app(connection_of: Callable[[str], ConnectionInfo | None] = airflow_connection) -> FastAPI:
    """The receiver; ``connection_of`` finds a connection by id (tests give their own)."""
    app = FastAPI(title="Infobip webhooks", docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/{conn_id}/{kind}/{channel}")
    async def receive(conn_id: str, kind: str, channel: str, request: Request) -> JSONResponse:
        if (
            kind not in KINDS
            or channel not in PUSH_CHANNELS
            or (kind == "inbound" and channel not in REPLY_CHANNELS)
        ):
            return _refuse(
                404,
                f"POST /<conn_id>/{{reports|seen}}/{{{'|'.join(PUSH_CHANNELS)}}} or "
                f"/<conn_id>/inbound/{{{'|'.join(REPLY_CHANNELS)}}}",
            )
        info = await run_in_threadpool(connection_of, conn_id)
        expected = (info.extras.get("webhook_secret") if info else None) or None
        if info is None or info.conn_type != "infobip" or not expected or not info.password or not info.host:
            log.warning("Refused a push to %r: no infobip connection with a webhook_secret", conn_id)
            return _refuse(403, "this connection does not receive pushes")
        if not secret_matches(str(expected), given_secrets(request)):
            log.warning("Refused a %s %s push to %r: missing or wrong secret", channel, kind, conn_id)
            return _refuse(401, "missing or wrong webhook secret")
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > MAX_BODY:
            return _refuse(413, f"a push may have at most {MAX_BODY} bytes")
        raw = await request.body()
        if len(raw) > MAX_BODY:
            return _refuse(413, f"a push may have at most {MAX_BODY} bytes")
        items = parse_results(raw)
        if items is None:
            log.warning("Refused a %s %s push to %r: not {'results': [...]}", channel, kind, conn_id)
            return _refuse(400, "the body must be {'results': [{'messageId': ...}, ...]}")
        name = await run_in_threadpool(_land, info, KINDS[kind], channel, items)
        if name is None:
            log.warning("Refused a push to %r: its Base URL names no Infobip account", conn_id)
            return _refuse(403, "this connection's Base URL is not usable")
        log.info("Accepted a push of %d %s %s for %r (%s)", len(items), channel, kind, conn_id, name)
        return JSONResponse({"accepted": len(items)})

    return app
