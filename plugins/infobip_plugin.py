"""Airflow plugin of the Infobip provider: operator extra links, the "Infobip" page of syncs and the
receiver of Infobip's pushes (``/infobip-webhooks``).

Every Airflow process loads this file, so it stays cheap: the FastAPI apps are built by the
api-server on their first request (see ``infobip_provider.ui`` and ``infobip_provider.webhooks``).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from infobip_provider import ui, webhooks
from infobip_provider.links import LINKS


class InfobipPlugin(AirflowPlugin):
    name = "infobip"
    operator_extra_links = list(LINKS)
    fastapi_apps = ui.fastapi_apps() + webhooks.fastapi_apps()
    external_views = ui.external_views()
