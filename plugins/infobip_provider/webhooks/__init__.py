"""The receiver of Infobip's push notifications, mounted on Airflow's api-server (``fastapi_apps``).

Airflow 3 loads ``plugins/infobip_plugin.py`` in every process, so this module stays cheap: the
receiver's FastAPI app (:mod:`infobip_provider.webhooks.app`) is built on its first request.

Infobip posts to ``<api-server>/infobip-webhooks/<conn_id>/<kind>/<channel>?secret=<webhook_secret>``:
``kind`` is ``reports`` (delivery reports), ``seen`` (seen reports) or ``inbound`` (inbound messages);
``channel`` is ``sms``, ``email`` or ``whatsapp``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

#: Where the api-server mounts the receiver.
URL_PREFIX = "/infobip-webhooks"
NAME = "Infobip webhooks"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class LazyApp:
    """An ASGI app that builds the receiver's FastAPI app on its first request."""

    def __init__(self) -> None:
        self._app: Callable[[Scope, Receive, Send], Awaitable[None]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            from infobip_provider.webhooks.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)


def fastapi_apps() -> list[dict[str, Any]]:
    """The plugin's ``fastapi_apps`` entry for the receiver (mounted at :data:`URL_PREFIX`)."""
    return [{"app": LazyApp(), "url_prefix": URL_PREFIX, "name": NAME}]
