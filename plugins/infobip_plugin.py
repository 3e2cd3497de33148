"""Airflow plugin of the Infobip provider: operator extra links and the "Infobip" page of syncs.

Every Airflow process loads this file, so it stays cheap: the page's FastAPI app is built by the
api-server on its first request (see ``infobip_provider.ui``).
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from infobip_provider import ui
from infobip_provider.links import LINKS


class InfobipPlugin(AirflowPlugin):
    name = "infobip"
    operator_extra_links = list(LINKS)
    fastapi_apps = ui.fastapi_apps()
    external_views = ui.external_views()
