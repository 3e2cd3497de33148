"""Scoped API keys: a key without the scope an endpoint needs gets 403 in the endpoint's error shape."""

from __future__ import annotations

import pytest

from infobip_provider.sandbox import SandboxConfig
from infobip_provider.sandbox.endpoints import BY_NAME
from tests.sandbox.conftest import API_KEY, Api

PEOPLE_SMS = {"Authorization": "App people-sms"}
NOTHING = {"Authorization": "App authenticates-only"}
SEND_BODY = {"messages": [{"destinations": [{"to": "41793026727"}], "content": {"text": "hi"}}]}


@pytest.fixture
def scoped(make_api) -> Api:
    return make_api(
        scoped_keys={"people-sms": ("people:manage", "sms:message:send"), "authenticates-only": ()}
    )


def test_a_scoped_key_opens_what_its_scopes_open(scoped: Api) -> None:
    assert scoped.get("/people/2/persons", params={"limit": 1}, auth=PEOPLE_SMS).status_code == 200
    assert scoped.post("/sms/3/messages", json=SEND_BODY, auth=PEOPLE_SMS).status_code == 200
    assert scoped.post("/saas/amplitude/1/lists", json={"name": "L"}, auth=PEOPLE_SMS).status_code == 200


def test_a_scoped_key_gets_403_in_the_endpoint_shape_and_changes_nothing(scoped: Api) -> None:
    balance = scoped.get("/account/1/balance", auth=PEOPLE_SMS)
    assert balance.status_code == 403
    legacy = balance.json()["requestError"]["serviceException"]
    assert legacy["messageId"] == "FORBIDDEN" and "account-management:manage" in legacy["text"]
    logs = scoped.get("/sms/3/logs", params={"limit": 1}, auth=PEOPLE_SMS)
    assert logs.status_code == 403
    assert logs.json()["errorCode"] == "E403" and "sms:logs:read" in logs.json()["description"]
    upsert = scoped.patch("/people/3/persons/upsert", json={"persons": [{"externalId": "e"}]}, auth=NOTHING)
    assert upsert.status_code == 403 and "requestError" in upsert.json()  # legacy: only 400s use {code, ...}
    assert scoped.admin("GET", "/state")["people"] == []
    assert scoped.admin("GET", "/counters")["account.balance"]["by_status"] == {"403": 1}


def test_full_keys_open_everything_and_unknown_keys_get_401(scoped: Api) -> None:
    assert scoped.get("/account/1/balance").status_code == 200  # API_KEY: full access
    assert scoped.get("/account/1/balance", auth={"Authorization": "App nobody"}).status_code == 401


def test_every_endpoint_names_its_scopes() -> None:
    assert all(spec.scopes for spec in BY_NAME.values())


def test_a_key_is_full_or_scoped_not_both() -> None:
    with pytest.raises(ValueError, match="not both"):
        SandboxConfig(api_keys=[API_KEY], scoped_keys={API_KEY: ("people:manage",)})
    assert SandboxConfig(api_keys=[], scoped_keys={"only": ("people:manage",)}).api_keys == []
