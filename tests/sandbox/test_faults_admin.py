"""Fault injection and the admin endpoints (state, journal, counters, reset, save), in process."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from infobip_provider.sandbox import SandboxConfig, create_app
from infobip_provider.sandbox.endpoints import fingerprint
from tests.sandbox.conftest import API_KEY, Api

LISTS = "/saas/amplitude/1/lists"
SEND_BODY = {
    "messages": [{"destinations": [{"to": "41793026727", "messageId": "m-1"}], "content": {"text": "x"}}]
}


def new_list(api: Api) -> int:
    return api.post(LISTS, json={"name": "L"}).json()["listId"]


def members(api: Api) -> list[str]:
    return api.admin("GET", "/state")["lists"][0]["members"]


def fault(api: Api, endpoint: str, kind: str, count: int = 1, delay: float | None = None) -> list[dict]:
    return api.admin(
        "POST", "/faults", json={"endpoint": endpoint, "kind": kind, "count": count, "delay": delay}
    )["faults"]


# ---- faults -------------------------------------------------------------------------------------
def test_error_500_fails_the_next_n_requests_without_change(api: Api) -> None:
    list_id = new_list(api)
    fault(api, "lists.add", "error_500", count=2)
    path = f"{LISTS}/{list_id}/add"
    answers = [api.post(path, json={"userIds": [f"u{i}@x.com"]}) for i in range(3)]
    assert [a.status_code for a in answers] == [500, 500, 200]
    assert answers[0].json()["requestError"]["serviceException"]["messageId"] == "GENERAL_ERROR"
    assert members(api) == ["u2@x.com"]
    outcomes = [
        e["outcome"] for e in api.admin("GET", "/journal", params={"endpoint": "lists.add"})["entries"]
    ]
    assert outcomes == ["fault:error_500", "fault:error_500", "ok"]


@pytest.mark.parametrize(
    ("endpoint", "method", "path", "body", "check"),
    [
        ("sms.send", "POST", "/sms/3/messages", SEND_BODY, lambda b: b["errorCode"] == "E429"),
        (
            "people.upsert",
            "PATCH",
            "/people/3/persons/upsert",
            {"persons": [{"externalId": "e"}]},
            lambda b: b["requestError"]["serviceException"]["messageId"] == "TOO_MANY_REQUESTS",
        ),
        (
            "lists.create",
            "POST",
            LISTS,
            {"name": "x"},
            lambda b: b["requestError"]["serviceException"]["messageId"] == "TOO_MANY_REQUESTS",
        ),
    ],
)
def test_error_429_uses_the_endpoint_shape_and_changes_nothing(
    api: Api, endpoint, method, path, body, check
) -> None:
    fault(api, endpoint, "error_429")
    response = api.call(method, path, json=body)
    assert response.status_code == 429
    assert check(response.json())
    state = api.admin("GET", "/state")
    assert state["messages"] == state["people"] == state["lists"] == []
    row = api.admin("GET", "/counters")[endpoint]
    assert (row["429s"], row["cooldown_429s"], row["faults"]) == (1, 0, 1)


def test_error_500_on_upsert_and_sms_use_their_shapes(api: Api) -> None:
    fault(api, "people.upsert", "error_500")
    fault(api, "sms.send", "error_500")
    upsert = api.patch("/people/3/persons/upsert", json={"persons": [{"externalId": "e"}]}).json()
    assert upsert["requestError"]["serviceException"]["messageId"] == "GENERAL_ERROR"  # legacy but for 400s
    assert api.post("/sms/3/messages", json=SEND_BODY).json()["errorCode"] == "E500"


def test_commit_then_500_makes_the_change_and_loses_the_answer(api: Api) -> None:
    list_id = new_list(api)
    fault(api, "lists.add", "commit_then_500")
    response = api.post(f"{LISTS}/{list_id}/add", json={"userIds": ["ana@x.com"]})
    assert response.status_code == 500
    assert members(api) == ["ana@x.com"]
    entry = api.admin("GET", "/journal", params={"endpoint": "lists.add"})["entries"][-1]
    assert (entry["status"], entry["outcome"], entry["committed_status"]) == (
        500,
        "fault:commit_then_500",
        200,
    )


def test_commit_then_500_on_send_stores_the_sms(api: Api) -> None:
    fault(api, "sms.send", "commit_then_500")
    assert api.post("/sms/3/messages", json=SEND_BODY).status_code == 500
    logs = api.get("/sms/3/logs", params={"messageId": "m-1"}).json()["results"]
    assert [m["messageId"] for m in logs] == ["m-1"]  # a client reconciles against the logs


def test_slow_answers_normally_after_the_delay(api: Api) -> None:
    fault(api, "account.balance", "slow", delay=0.15)
    started = time.perf_counter()
    response = api.get("/account/1/balance")
    took = time.perf_counter() - started
    assert response.status_code == 200 and response.json()["balance"] == 47.79
    assert took >= 0.15
    fast_started = time.perf_counter()
    api.get("/account/1/balance")
    assert time.perf_counter() - fast_started < took
    entry = api.admin("GET", "/journal", params={"endpoint": "account.balance"})["entries"][0]
    assert (entry["status"], entry["outcome"]) == (200, "fault:slow")
    assert entry["duration"] >= 0.15


def test_a_cooldown_rejection_does_not_consume_a_fault(make_api) -> None:
    api = make_api(cooldown_scale=0.01)
    fault(api, "lists.create", "error_500")
    assert api.post(LISTS, json={"name": "x"}).status_code == 500
    fault(api, "lists.create", "error_500")
    assert api.post(LISTS, json={"name": "x"}).status_code == 429  # too early: judged before faults
    api.clock.advance(0.02)
    assert api.post(LISTS, json={"name": "x"}).status_code == 500


def test_faults_queue_in_order_and_can_be_listed_and_cleared(api: Api) -> None:
    fault(api, "sms.preview", "error_429")
    pending = fault(api, "sms.preview", "error_500", count=2)
    assert [(f["kind"], f["count"]) for f in pending] == [("error_429", 1), ("error_500", 2)]
    statuses = [api.post("/sms/1/preview", json={"text": "x"}).status_code for _ in range(2)]
    assert statuses == [429, 500]
    assert api.admin("GET", "/faults")["faults"] == [
        {"endpoint": "sms.preview", "kind": "error_500", "count": 1, "delay": None}
    ]
    assert api.post("/sms/1/preview", json={"text": "x"}, auth=None).status_code == 401  # no fault consumed
    api.admin("DELETE", "/faults")
    assert api.post("/sms/1/preview", json={"text": "x"}).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"endpoint": "lists.nope", "kind": "error_500"},
        {"endpoint": "lists.add", "kind": "explode"},
        {"endpoint": "lists.add", "kind": "slow", "count": 0},
        {"endpoint": "lists.add", "kind": "slow", "delay": -1},
        {"kind": "slow"},
    ],
)
def test_bad_fault_requests_are_refused(api: Api, body: dict) -> None:
    response = api.client.post("/_sandbox/faults", json=body)
    assert response.status_code == 400
    assert api.admin("GET", "/faults")["faults"] == []


# ---- journal, counters, reset, info -----------------------------------------------------------------
def test_journal_records_requests_in_arrival_order_without_the_key(api: Api) -> None:
    api.get("/account/1/balance")
    api.clock.advance(0.000123)
    api.post(LISTS, json={"name": "L"})
    api.get("/account/1/balance", auth={"Authorization": "App wrong"})
    entries = api.admin("GET", "/journal")["entries"]
    assert [(e["method"], e["path"], e["endpoint"], e["status"]) for e in entries] == [
        ("GET", "/account/1/balance", "account.balance", 200),
        ("POST", LISTS, "lists.create", 200),
        ("GET", "/account/1/balance", "account.balance", 401),
    ]
    assert entries[1]["arrival"] - entries[0]["arrival"] == pytest.approx(0.000123, abs=1e-6)
    assert entries[0]["key"] == fingerprint(API_KEY)
    assert entries[2]["outcome"] == "unauthorized"
    assert "body" not in entries[0]
    text = json.dumps(api.admin("GET", "/journal", params={"bodies": "true"}))
    assert API_KEY not in text and "wrong" not in text


def test_journal_bodies_and_filters(api: Api) -> None:
    api.post(LISTS, json={"name": "L"})
    api.get("/account/1/balance")
    with_bodies = api.admin("GET", "/journal", params={"bodies": "true"})["entries"]
    assert with_bodies[0]["body"] == {"name": "L"}
    assert with_bodies[1]["body"] is None
    since = api.admin("GET", "/journal", params={"since": with_bodies[0]["seq"]})["entries"]
    assert [e["endpoint"] for e in since] == ["account.balance"]
    assert len(api.admin("GET", "/journal", params={"limit": 1})["entries"]) == 1


def test_counters_by_endpoint_and_status(api: Api) -> None:
    api.post(LISTS, json={"name": "L"})
    api.post(LISTS, json={})
    api.post(LISTS, json={"name": "L"}, auth=None)
    api.get("/nowhere")
    counters = api.admin("GET", "/counters")
    assert counters["lists.create"] == {
        "requests": 3,
        "429s": 0,
        "cooldown_429s": 0,
        "faults": 0,
        "by_status": {"200": 1, "400": 1, "401": 1},
    }
    assert counters["lists.add"]["requests"] == 0
    assert counters["unmatched"]["by_status"] == {"404": 1}


def test_reset_wipes_everything(make_api) -> None:
    api = make_api(cooldown_scale=0.01)
    api.post(LISTS, json={"name": "L"})
    fault(api, "lists.create", "error_500")
    api.admin("POST", "/reset")
    assert api.admin("GET", "/state")["lists"] == []
    assert api.admin("GET", "/journal")["entries"] == []
    assert api.admin("GET", "/counters")["lists.create"]["requests"] == 0
    assert api.admin("GET", "/faults")["faults"] == []
    assert api.post(LISTS, json={"name": "L"}).status_code == 200  # no fault, no cooldown left


def test_info_shows_scaled_intervals(make_api) -> None:
    info = make_api(cooldown_scale=0.5).admin("GET", "/info")
    assert info["endpoints"]["lists.add"]["scaled_interval"] == 5.0
    assert info["endpoints"]["people.create"]["scope"] == "account"


# ---- persistence ------------------------------------------------------------------------------------
def populate(api: Api) -> None:
    list_id = new_list(api)
    api.post(f"{LISTS}/{list_id}/add", json={"userIds": ["ana@x.com"]})
    api.post(
        "/people/2/persons",
        json={
            "firstName": "Ana",
            "tags": ["VIP"],
            "contactInformation": {"email": [{"address": "ana@x.com"}]},
        },
    )
    api.post("/sms/3/messages", json=SEND_BODY)


def test_state_survives_a_restart_through_the_file(make_api, tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    first = make_api(state_file=str(state_file))
    populate(first)
    assert first.admin("POST", "/save")["saved"] == str(state_file)
    second = make_api(state_file=str(state_file))
    state = second.admin("GET", "/state")
    assert state["lists"][0]["members"] == ["ana@x.com"]
    assert state["people"][0]["tags"] == ["VIP"]
    assert state["messages"][0]["status"]["groupName"] == "DELIVERED"
    assert (
        second.get("/people/2/persons", params={"identifier": "ana@x.com", "type": "EMAIL"}).status_code
        == 200
    )
    assert new_list(second) == state["lists"][0]["listId"] + 1  # ids are not reused


def test_shutdown_saves_the_state(clock, tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    config = SandboxConfig(
        api_keys=[API_KEY], cooldown_scale=0, state_file=str(state_file), clock=clock, save_interval=60
    )
    with TestClient(create_app(config)) as client:
        client.post(LISTS, json={"name": "kept"}, headers={"Authorization": f"App {API_KEY}"})
        assert not state_file.exists()  # the autosave has not run yet
    assert json.loads(state_file.read_text())["lists"][0]["name"] == "kept"


def test_autosave_writes_changes_in_the_background(make_api, tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    api = make_api(state_file=str(state_file), save_interval=0.02)
    api.post(LISTS, json={"name": "auto"})
    deadline = time.monotonic() + 3
    while not state_file.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert json.loads(state_file.read_text())["lists"][0]["name"] == "auto"
    assert not list(tmp_path.glob("*.tmp"))  # atomic write leaves no temporary file


def test_save_without_state_file_answers_none(api: Api) -> None:
    assert api.admin("POST", "/save") == {"saved": None}


def test_a_corrupt_state_file_is_refused(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    state_file.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="not a sandbox state file"):
        create_app(SandboxConfig(api_keys=[API_KEY], state_file=str(state_file)))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"api_keys": []}, "API key"),
        ({"cooldown_scale": -1}, "cooldown_scale"),
        ({"delivery_delay": -1}, "delivery"),
    ],
)
def test_config_validation(overrides: dict, message: str) -> None:
    settings = {"api_keys": [API_KEY], **overrides}
    with pytest.raises(ValueError, match=message):
        SandboxConfig(**settings)


def test_journal_keeps_bodies_of_the_newest_requests_only(make_api) -> None:
    api = make_api(journal_bodies=2)
    for name in ("a", "b", "c"):
        api.post(LISTS, json={"name": name})
    entries = api.admin("GET", "/journal", params={"bodies": "1"})["entries"]
    assert [e["body"] for e in entries] == [None, {"name": "b"}, {"name": "c"}]


def test_journal_drops_the_oldest_entries(make_api) -> None:
    api = make_api(journal_size=2)
    for _ in range(3):
        api.get("/account/1/balance")
    assert [e["seq"] for e in api.admin("GET", "/journal")["entries"]] == [2, 3]


def test_oversized_body_is_413_and_keeps_the_fault(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from infobip_provider.sandbox import app as app_module

    monkeypatch.setattr(app_module, "MAX_BODY", 10)
    fault(api, "lists.create", "error_500")
    assert api.post(LISTS, json={"name": "far too long a name"}).status_code == 413
    assert api.post(LISTS, json={"n": 1}).status_code == 500
