"""The Infobip page in the Airflow UI: every list, tag and broadcast of the state stores, with its runs.

Airflow 3 loads ``plugins/infobip_plugin.py`` in every process (scheduler, workers, DAG processor),
so this module stays cheap: it imports neither FastAPI nor the rest of the library. The page's app
(:mod:`infobip_provider.ui.app`) is built on the first request the api-server routes to it.
"""

from __future__ import annotations

from typing import Any

from infobip_provider.lazy_app import LazyApp

#: Where the api-server mounts the page (``fastapi_apps``); the navigation's iframe opens it.
URL_PREFIX = "/infobip"
#: The label of the page in Airflow's navigation (and the iframe's title).
NAV_LABEL = "Infobip"
#: The React UI shows the page at ``/plugin/<URL_ROUTE>``.
URL_ROUTE = "infobip"


def fastapi_apps() -> list[dict[str, Any]]:
    """The plugin's ``fastapi_apps`` entry (mounted by the api-server at :data:`URL_PREFIX`)."""
    return [{"app": LazyApp("infobip_provider.ui.app"), "url_prefix": URL_PREFIX, "name": NAV_LABEL}]


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
