"""Airflow plugin of the Infobip provider: operator extra links only (hooks and operators are a package)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from infobip_provider.links import InfobipListLink


class InfobipPlugin(AirflowPlugin):
    name = "infobip"
    operator_extra_links = [InfobipListLink()]
