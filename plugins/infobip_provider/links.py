"""Operator extra links to the Infobip portal."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

#: [assumed] The portal has no documented deep link to one list; lists are People tags, so the
#: link opens People filtered by the list's name.
PORTAL_PEOPLE_URL = "https://portal.infobip.com/people/persons?tags={name}"


def list_portal_url(list_name: str) -> str:
    return PORTAL_PEOPLE_URL.format(name=quote(list_name, safe=""))


class InfobipListLink(BaseOperatorLink):
    """The synced list in the Infobip portal. The operator stores the URL in XCom at run time."""

    name = "Infobip list"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        return XCom.get_value(ti_key=ti_key, key=self.xcom_key) or ""
