"""The Infobip page in the Airflow UI: every list, tag and broadcast of the state stores, with its runs.

Airflow 3 loads ``plugins/infobip_plugin.py`` in every process (scheduler, workers, DAG processor),
so this module stays cheap: it imports neither FastAPI nor the rest of the library. The page's app
(:mod:`infobip_provider.ui.app`) is built on the first request the api-server routes to it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

#: Where the api-server mounts the page (``fastapi_apps``); the navigation's iframe opens it.
URL_PREFIX = "/infobip"
#: The label of the page in Airflow's navigation (and the iframe's title).
NAV_LABEL = "Infobip"
#: The React UI shows the page at ``/plugin/<URL_ROUTE>``.
URL_ROUTE = "infobip"

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class LazyApp:
    """An ASGI app that builds the page's FastAPI app on its first request."""

    def __init__(self) -> None:
        self._app: Callable[[Scope, Receive, Send], Awaitable[None]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            from infobip_provider.ui.app import create_app

            self._app = create_app()
        await self._app(scope, receive, send)


def fastapi_apps() -> list[dict[str, Any]]:
    """The plugin's ``fastapi_apps`` entry (mounted by the api-server at :data:`URL_PREFIX`)."""
    return [{"app": LazyApp(), "url_prefix": URL_PREFIX, "name": NAV_LABEL}]


def external_views() -> list[dict[str, Any]]:
    """The plugin's ``external_views`` entry: a top-level navigation item opening the page in an iframe."""
    return [
        {
            "name": NAV_LABEL,
            "href": URL_PREFIX + "/",
            "destination": "nav",
            "url_route": URL_ROUTE,
            "nav_top_level": True,
            "icon": URL_PREFIX + "/icon.svg",
        }
    ]
