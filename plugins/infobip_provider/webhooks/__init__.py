"""The receiver of Infobip's push notifications, mounted on Airflow's api-server (``fastapi_apps``).

Airflow 3 loads ``plugins/infobip_plugin.py`` in every process, so this module stays cheap: the
receiver's FastAPI app (:mod:`infobip_provider.webhooks.app`) is built on its first request.

Infobip posts to ``<api-server>/infobip-webhooks/<conn_id>/<kind>/<channel>?secret=<webhook_secret>``:
``kind`` is ``reports`` (delivery reports), ``seen`` (seen reports) or ``inbound`` (inbound messages);
``channel`` is ``sms``, ``email`` or ``whatsapp``.
"""

from __future__ import annotations

from typing import Any

from infobip_provider.lazy_app import LazyApp

#: Where the api-server mounts the receiver.
URL_PREFIX = "/infobip-webhooks"
NAME = "Infobip webhooks"


def fastapi_apps() -> list[dict[str, Any]]:
    """The plugin's ``fastapi_apps`` entry for the receiver (mounted at :data:`URL_PREFIX`)."""
    return [{"app": LazyApp("infobip_provider.webhooks.app"), "url_prefix": URL_PREFIX, "name": NAME}]
