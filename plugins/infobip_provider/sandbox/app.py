"""The sandbox's FastAPI app: the gate middleware, the admin endpoints and :func:`create_app`.

Every API request passes :class:`GateMiddleware`, a pure ASGI middleware whose first act is to
stamp the arrival time. It then names the endpoint, checks the API key (401) and its scopes (403),
the endpoint's cooldown (429, measured at arrival), consumes a pending fault, records the request in the journal
and the counters, and only then hands the request to the route. Nothing awaits between the arrival
stamp and the cooldown decision, so concurrent requests are judged in arrival order.

A request that passed the cooldown check moves that endpoint's window even if a fault or a
validation error answers it: the server accepted it.

The event loop only stamps, judges, reads bodies and ships bytes: every handler's store work (and
the admin state, reset and save, and the autosave) runs as a job on the core's single store thread
(:meth:`SandboxCore.run`), so a 1000-person batch never delays the next request's arrival stamp.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from email.utils import formatdate
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from infobip_provider.sandbox import (
    admin_pushes,
    admin_returns,
    api_blocklist,
    api_email,
    api_inbox,
    api_lists,
    api_people,
    api_sms,
    api_whatsapp,
)
from infobip_provider.sandbox.config import SandboxConfig
from infobip_provider.sandbox.core import Fault, SandboxCore
from infobip_provider.sandbox.endpoints import BY_NAME, EndpointSpec, classify, fingerprint
from infobip_provider.sandbox.shapes import ApiError, for_shape, forbidden, legacy

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ADMIN_PREFIX = "/_sandbox"
MAX_BODY = 16 * 1024 * 1024
_RAN_HANDLER = ("ok", "error", "fault:slow", "fault:commit_then_500")


def _api_key(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"authorization":
            scheme, _, key = value.decode("latin-1").strip().partition(" ")
            return key.strip() if scheme.lower() == "app" and key.strip() else None
    return None


async def _respond(send: Send, status: int, body: dict[str, Any] | None) -> None:
    payload = b"" if body is None else json.dumps(body).encode()
    headers = [(b"content-length", str(len(payload)).encode())]
    if body is not None:
        headers.append((b"content-type", b"application/json"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class GateMiddleware:
    """Arrival stamp, auth, cooldown, faults, journal and counters for every API request."""

    def __init__(self, app: ASGIApp, core: SandboxCore) -> None:
        self.app = app
        self.core = core

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        arrival = self.core.clock()  # first thing: the arrival stamp the cooldowns are judged on
        if scope["type"] != "http" or scope["path"].startswith(ADMIN_PREFIX):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        core = self.core
        raw_path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"").decode("latin-1")
        match = classify(scope["method"], raw_path.decode("latin-1"), query)
        spec = match.spec if match else None
        entry = core.journal.open(arrival, scope["method"], scope["path"], query, spec.name if spec else None)
        answered: list[int] = []

        async def tracked_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                answered.append(message["status"])
                # Date from the clock that stamps modifiedAt, as Infobip's answers carry it (uvicorn's
                # own header is refreshed once a second and may lag by up to a second).
                stamp = formatdate(core.clock(), usegmt=True).encode()
                message = {**message, "headers": [*message.get("headers", []), (b"date", stamp)]}
            await send(message)

        outcome = "ok"
        try:
            outcome = await self._handle(scope, receive, tracked_send, spec, arrival, entry)
        except Exception:
            outcome = "error"
            if not answered:
                answered.append(500)
            raise
        finally:
            status = answered[0] if answered else None
            entry.update(status=status, outcome=outcome, duration=round(time.perf_counter() - started, 6))
            if spec is not None and spec.mutating and outcome in _RAN_HANDLER:
                core.mark_dirty()  # after the change, so an autosave cannot slip in between
            core.counters.record(spec.name if spec else None, status, outcome)

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        spec: EndpointSpec | None,
        arrival: float,
        entry: dict,
    ) -> str:
        core = self.core
        if spec is None:
            await self.app(scope, receive, send)
            return "unmatched"
        key = _api_key(scope)
        entry["key"] = fingerprint(key) if key else None
        if key is None or not core.knows(key):
            core.journal.attach_body(entry, await self._read_raw(receive))
            await _respond(send, 401, for_shape(spec.shape, 401))
            return "unauthorized"
        if not core.may_call(key, spec.scopes):
            core.journal.attach_body(entry, await self._read_raw(receive))
            await _respond(send, 403, forbidden(spec.shape, spec.scopes))
            return "forbidden"
        bucket = entry["key"] if spec.scope == "key" else "account"
        verdict = core.ledger.admit(bucket, spec.name, spec.interval, arrival)
        if verdict.interval > 0:
            entry["cooldown"] = {"interval": verdict.interval, "elapsed": verdict.elapsed}
        if not verdict.accepted:
            core.journal.attach_body(entry, await self._read_raw(receive))
            await _respond(send, 429, for_shape(spec.shape, 429))
            return "cooldown"
        raw = await self._read_raw(receive)
        if raw is None:
            await _respond(send, 413, for_shape(spec.shape, 413))
            return "too_large"
        core.journal.attach_body(entry, raw)
        fault = core.faults.take(spec.name)
        replay = _replay(raw, receive)
        if fault is None:
            await self.app(scope, replay, send)
            return "ok"
        await self._fault(fault, spec, scope, replay, send, entry)
        return f"fault:{fault.kind}"

    async def _fault(
        self, fault: Fault, spec: EndpointSpec, scope: Scope, receive: Receive, send: Send, entry: dict
    ) -> None:
        delay = fault.delay
        if fault.kind == "slow":
            await asyncio.sleep(self.core.config.slow_default_delay if delay is None else delay)
            await self.app(scope, receive, send)
            return
        if fault.kind == "commit_then_500":
            inner: list[int] = []

            async def swallow(message: Message) -> None:
                if message["type"] == "http.response.start":
                    inner.append(message["status"])

            await self.app(scope, receive, swallow)
            entry["committed_status"] = inner[0] if inner else None
        if delay:
            await asyncio.sleep(delay)
        status = 429 if fault.kind == "error_429" else 500
        await _respond(send, status, for_shape(spec.shape, status))

    @staticmethod
    async def _read_raw(receive: Receive) -> bytes | None:
        """The whole request body; ``None`` when larger than ``MAX_BODY``."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size <= MAX_BODY:
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks) if size <= MAX_BODY else None


def _replay(raw: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        return await receive()

    return replay


# ---- admin ----------------------------------------------------------------------------------------
admin = APIRouter(prefix=ADMIN_PREFIX, tags=["sandbox admin"])


def _core(request: Request) -> SandboxCore:
    core: SandboxCore = request.app.state.sandbox
    return core


def _flag(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes", "on")


@admin.get("/state")
async def state(request: Request) -> JSONResponse:
    core = _core(request)
    return await core.run(lambda: JSONResponse(core.dump()))


@admin.get("/journal")
async def journal(request: Request) -> JSONResponse:
    params = request.query_params
    try:
        since = int(params.get("since", "0"))
        limit = int(params["limit"]) if params.get("limit") else None
    except ValueError:
        return JSONResponse({"error": "since and limit must be integers"}, status_code=400)
    entries = _core(request).journal.entries(
        bodies=_flag(params.get("bodies")), endpoint=params.get("endpoint"), since=since, limit=limit
    )
    return JSONResponse({"entries": entries})


@admin.get("/counters")
async def counters(request: Request) -> JSONResponse:
    return JSONResponse(_core(request).counters.snapshot())


@admin.post("/reset")
async def reset(request: Request) -> JSONResponse:
    await _core(request).reset()
    return JSONResponse({"reset": True})


@admin.post("/save")
async def save(request: Request) -> JSONResponse:
    return JSONResponse({"saved": await _core(request).save_async()})


@admin.get("/faults")
async def list_faults(request: Request) -> JSONResponse:
    return JSONResponse({"faults": _core(request).faults.pending()})


@admin.delete("/faults")
async def clear_faults(request: Request) -> JSONResponse:
    _core(request).faults.clear()
    return JSONResponse({"faults": []})


@admin.post("/faults")
async def add_fault(request: Request) -> JSONResponse:
    core = _core(request)
    try:
        body = json.loads(await request.body() or b"{}")
        fault = Fault(
            endpoint=str(body["endpoint"]),
            kind=str(body["kind"]),
            count=int(body.get("count", 1)),
            delay=None if body.get("delay") is None else float(body["delay"]),
        )
        core.faults.add(fault)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        return JSONResponse({"error": f"bad fault: {exc}"}, status_code=400)
    return JSONResponse({"faults": core.faults.pending()})


@admin.get("/info")
async def info(request: Request) -> JSONResponse:
    config = _core(request).config
    return JSONResponse(
        {
            "cooldown_scale": config.cooldown_scale,
            "state_file": config.state_file,
            "undeliverable_prefixes": list(config.undeliverable_prefixes),
            "delivery_delay": config.delivery_delay,
            "endpoints": {
                name: {
                    "method": spec.method,
                    "path": spec.template,
                    "interval": spec.interval,
                    "scaled_interval": spec.interval * config.cooldown_scale,
                    "scope": spec.scope,
                    "scopes": list(spec.scopes),
                }
                for name, spec in BY_NAME.items()
            },
        }
    )


# ---- the app ----------------------------------------------------------------------------------------
async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return JSONResponse(exc.body, status_code=exc.status)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(legacy(exc.status_code, text=str(exc.detail)), status_code=exc.status_code)


def create_app(config: SandboxConfig) -> FastAPI:
    """A sandbox app; its state is loaded from ``config.state_file`` when that file exists."""
    core = SandboxCore(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        saver = asyncio.create_task(core.autosave()) if config.state_file else None
        try:
            yield
        finally:
            if saver is not None:
                saver.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await saver
            core.shutdown()  # waits for the store thread's last jobs: nothing changes the store any more
            core.save_if_dirty()

    app = FastAPI(
        title="Infobip sandbox",
        description="A local simulator of the Infobip endpoints used by airflow-provider-infobip.",
        lifespan=lifespan,
        docs_url=f"{ADMIN_PREFIX}/docs",
        redoc_url=None,
        openapi_url=f"{ADMIN_PREFIX}/openapi.json",
    )
    app.state.sandbox = core
    app.include_router(api_lists.router)
    app.include_router(api_people.router)
    app.include_router(api_sms.router)
    app.include_router(api_inbox.router)
    app.include_router(api_email.router)
    app.include_router(api_whatsapp.router)
    app.include_router(api_blocklist.router)
    app.include_router(admin)
    app.include_router(admin_returns.router)
    app.include_router(admin_pushes.router)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(GateMiddleware, core=core)
    return app
