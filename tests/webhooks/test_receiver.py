"""The receiver of Infobip's pushes: the secret, the shapes it accepts, what it writes, what it logs."""

from __future__ import annotations

import base64
import json
import logging

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from infobip_provider import webhooks
from infobip_provider.cooldown import fingerprint
from infobip_provider.pushes import bulk_reports, inbox, push_names, reported
from infobip_provider.state import StateStore, state_scope
from infobip_provider.webhooks.app import ConnectionInfo, create_app

SECRET = "s3cret-for-the-receiver-0123"
KEY = "receiver-key"
HOST = "http://127.0.0.1:8765"
#: Infobip's published WhatsApp delivery report example (the shape pushed to notifyUrl).
WHATSAPP_DLR = {
    "results": [
        {
            "bulkId": "BULK-ID-123-xyz",
            "price": {"pricePerMessage": 0, "currency": "EUR"},
            "status": {
                "id": 5,
                "groupId": 3,
                "groupName": "DELIVERED",
                "name": "DELIVERED_TO_HANDSET",
                "description": "Message delivered to handset",
            },
            "error": {
                "id": 0,
                "name": "NO_ERROR",
                "description": "No Error",
                "groupId": 0,
                "groupName": "OK",
                "permanent": False,
            },
            "messageId": "a28dd97c-1ffb-4fcf-99f1-0b557ed381da",
            "doneAt": "2019-08-21T10:00:25.220+0000",
            "messageCount": 1,
            "sentAt": "2019-08-21T10:00:24.810+0000",
            "to": "441134960001",
            "contact": {"name": "Jane"},
        }
    ]
}
#: A body whose text must never reach a log line.
PRIVATE = "private-body-marker-41793026727"


@pytest.fixture
def state(tmp_path):
    return tmp_path / "state"


@pytest.fixture
def connections(state):
    known = {
        "infobip_default": ConnectionInfo(
            "infobip", HOST, KEY, {"webhook_secret": SECRET, "state_uri": str(state)}
        ),
        "no_secret": ConnectionInfo("infobip", HOST, KEY, {"state_uri": str(state)}),
        "warehouse": ConnectionInfo("postgres", "db", "pw", {"webhook_secret": SECRET}),
    }
    return known


@pytest.fixture
def client(connections):
    parent = FastAPI()  # as the api-server mounts a plugin's app
    parent.mount(webhooks.URL_PREFIX, create_app(connections.get))
    return TestClient(parent)


def scope() -> str:
    return state_scope(HOST, fingerprint(KEY))


def url(kind: str = "reports", channel: str = "whatsapp", conn_id: str = "infobip_default") -> str:
    return f"{webhooks.URL_PREFIX}/{conn_id}/{kind}/{channel}"


def landed(state, kind: str, channel: str) -> list[dict]:
    folder = inbox(StateStore(str(state)), scope(), kind, channel)
    return [folder.read_json(name) for name in push_names(folder)]


def test_the_plugin_mounts_the_receiver_lazily():
    from infobip_plugin import InfobipPlugin

    prefixes = [app["url_prefix"] for app in InfobipPlugin.fastapi_apps]
    assert webhooks.URL_PREFIX in prefixes and "/infobip" in prefixes


@pytest.mark.parametrize(
    "how",
    [
        pytest.param({"params": {"secret": SECRET}}, id="query"),
        pytest.param({"headers": {"X-Webhook-Secret": SECRET}}, id="header"),
        pytest.param(
            {
                "headers": {
                    "Authorization": "Basic " + base64.b64encode(f"infobip:{SECRET}".encode()).decode()
                }
            },
            id="basic",
        ),
    ],
)
def test_accepts_infobips_whatsapp_dlr_and_lands_it_before_answering(client, state, how):
    answer = client.post(url(), json=WHATSAPP_DLR, **how)
    assert answer.status_code == 200 and answer.json() == {"accepted": 1}
    (page,) = landed(state, "reports", "whatsapp")
    assert page["items"] == WHATSAPP_DLR["results"] and page["channel"] == "whatsapp"
    found = reported(
        StateStore(str(state)), scope(), "BULK-ID-123-xyz", ["a28dd97c-1ffb-4fcf-99f1-0b557ed381da", "x"]
    )
    assert found == [
        {
            "messageId": "a28dd97c-1ffb-4fcf-99f1-0b557ed381da",
            "bulkId": "BULK-ID-123-xyz",
            "status": {"groupName": "DELIVERED"},
        }
    ]


@pytest.mark.parametrize(
    "how",
    [
        pytest.param({}, id="no secret"),
        pytest.param({"params": {"secret": SECRET[:-1]}}, id="wrong query"),
        pytest.param({"headers": {"X-Webhook-Secret": "nope"}}, id="wrong header"),
        pytest.param({"headers": {"Authorization": "Basic !!notbase64"}}, id="broken basic"),
    ],
)
def test_refuses_without_the_secret_and_logs_no_body(client, state, caplog, how):
    caplog.set_level(logging.DEBUG)
    body = {"results": [{**WHATSAPP_DLR["results"][0], "to": PRIVATE}]}
    answer = client.post(url(), json=body, **how)
    assert answer.status_code == 401
    assert PRIVATE not in answer.text
    assert landed(state, "reports", "whatsapp") == []
    assert caplog.records, "a refusal is logged"
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert PRIVATE not in text and SECRET not in text and "a28dd97c" not in text


def test_a_connection_without_a_secret_or_not_infobip_receives_nothing(client, state):
    for conn_id in ("no_secret", "warehouse", "unknown"):
        answer = client.post(url(conn_id=conn_id), json=WHATSAPP_DLR, params={"secret": SECRET})
        assert answer.status_code == 403, conn_id
    assert landed(state, "reports", "whatsapp") == []


def test_refuses_what_is_not_a_push_without_echoing_it(client, state, caplog):
    caplog.set_level(logging.DEBUG)
    for raw in (b"not json " + PRIVATE.encode(), json.dumps({"results": [{"to": PRIVATE}]}).encode()):
        answer = client.post(url(), content=raw, params={"secret": SECRET})
        assert answer.status_code == 400 and PRIVATE not in answer.text
    assert client.post(url(kind="clicks"), json=WHATSAPP_DLR, params={"secret": SECRET}).status_code == 404
    assert (
        client.post(url("inbound", "email"), json=WHATSAPP_DLR, params={"secret": SECRET}).status_code == 404
    )
    assert PRIVATE not in caplog.text
    assert landed(state, "reports", "whatsapp") == []


def test_lands_every_kind_and_channel_under_the_accounts_scope(client, state):
    inbound = {
        "results": [{"messageId": "in-1", "from": "41793026727", "to": "447860099299", "text": "STOP"}]
    }
    seen = {"results": [{"messageId": "m-1", "to": "41793026727", "sentAt": "x", "seenAt": "y"}]}
    sms = {"results": [{"messageId": "m-2", "to": "41793026727", "status": {"groupName": "DELIVERED"}}]}
    for kind, channel, body in (
        ("inbound", "sms", inbound),
        ("inbound", "whatsapp", inbound),
        ("seen", "whatsapp", seen),
        ("reports", "sms", sms),
        ("reports", "email", sms),
    ):
        assert client.post(url(kind, channel), json=body, params={"secret": SECRET}).status_code == 200
    assert [p["items"][0]["messageId"] for p in landed(state, "replies", "sms")] == ["in-1"]
    assert len(landed(state, "replies", "whatsapp")) == 1
    assert len(landed(state, "seen", "whatsapp")) == 1
    assert len(landed(state, "reports", "email")) == 1
    assert (state / scope() / "pushes").is_dir()
    # SMS reports are not kept per bulk: only WhatsApp's feed the broadcast
    assert not bulk_reports(StateStore(str(state)), scope(), None).root.exists()


def test_a_connection_whose_base_url_names_no_account_is_refused_not_an_error(connections, client, state):
    connections["bad_host"] = ConnectionInfo(
        "infobip", "ftp://not a host", KEY, {"webhook_secret": SECRET, "state_uri": str(state)}
    )
    answer = client.post(url(conn_id="bad_host") + f"?secret={SECRET}", json=WHATSAPP_DLR)
    assert answer.status_code == 403
    assert not state.exists() or not any(state.rglob("push-*.json"))
