"""An ASGI app built on its first request, for the plugin's ``fastapi_apps`` entries.

Airflow 3 loads ``plugins/infobip_plugin.py`` in every process (scheduler, workers, DAG processor),
so what the plugin registers must be cheap to import: the FastAPI app behind each entry (the Infobip
page, the push receiver) is imported and built only when the api-server routes a request to it.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class LazyApp:
    """An ASGI app that builds ``module.create_app()`` on its first request."""

    def __init__(self, module: str) -> None:
        self.module = module
        self._app: Callable[[Scope, Receive, Send], Awaitable[None]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            self._app = importlib.import_module(self.module).create_app()
        await self._app(scope, receive, send)
