"""Operator extra links: the target's page in the Airflow UI, and the Infobip portal.

A link points at the right place or is absent. The operator stores each URL in XCom at run time from
what the run knows; the portal link is stored only for Infobip's own hosts (never for a sandbox) and
never for a dry run, which changed nothing there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

from infobip_provider.ui import URL_PREFIX, URL_ROUTE

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

#: The Infobip portal (it opens the account the browser is signed in to).
PORTAL_URL = "https://portal.infobip.com/"
#: The Infobip page inside Airflow's UI: the navigation's ``/plugin/infobip`` route framing the app the
#: api-server mounts at ``/infobip`` (see ``infobip_provider.ui``).
UI_PAGE = f"/plugin/{URL_ROUTE}{URL_PREFIX}"


def sync_page_path(scope: str, kind: str, folder: str) -> str:
    """The Infobip page's view of one target (its runs, counts and rejects), inside Airflow's UI."""
    return f"{UI_PAGE}/targets/{scope}/{kind}/{folder}"


class _XComLink(BaseOperatorLink):
    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        return XCom.get_value(ti_key=ti_key, key=self.xcom_key) or ""


class InfobipSyncLink(_XComLink):
    """This target's page in the Airflow UI: every run with its counts, and the rejects files."""

    name = "Infobip sync"


class InfobipPortalLink(_XComLink):
    """The Infobip portal, for runs against a real Infobip account."""

    name = "Infobip portal"


LINKS = (InfobipSyncLink(), InfobipPortalLink())


def set_links(context: Any, hook: Any, target: Any, *, dry_run: bool) -> str | None:
    """Store this run's link URLs in XCom; return the portal URL (None when there is none)."""
    portal = PORTAL_URL if hook.is_infobip_host and not dry_run else None
    ti = context.get("ti")
    if ti is None:  # executed outside a task instance
        return portal
    parts = str(target.root).rstrip("/").split("/")
    ti.xcom_push(key=InfobipSyncLink().xcom_key, value=sync_page_path(*parts[-3:]))
    if portal:
        ti.xcom_push(key=InfobipPortalLink().xcom_key, value=portal)
    return portal
