"""InfobipHook against a faked Infobip (requests_mock): auth, URLs, errors, retries, secrets."""

from __future__ import annotations

import logging

import pytest
import requests

from infobip_provider.cooldown import MemoryGate
from infobip_provider.errors import (
    InfobipAuthError,
    InfobipConfigError,
    InfobipListNotFoundError,
    InfobipNotFoundError,
    InfobipRateLimitError,
    InfobipServerError,
    InfobipTransportError,
    InfobipValidationError,
)
from infobip_provider.hooks.infobip import InfobipHook, RetryPolicy, parse_base_url
from tests.conftest import infobip_conn_env

KEY = "s3cr3t-test-key-0123456789abcdef"
BASE = "https://abc123.api.infobip.com"

LEGACY_400 = {
    "requestError": {
        "serviceException": {
            "messageId": "BAD_REQUEST",
            "text": "Bad request",
            "validationErrors": {"name": ["property not found or blank"]},
        }
    }
}
LEGACY_401 = {
    "requestError": {"serviceException": {"messageId": "UNAUTHORIZED", "text": "Invalid login details"}}
}
LEGACY_429 = {
    "requestError": {"serviceException": {"messageId": "TOO_MANY_REQUESTS", "text": "Too many requests"}}
}
NEW_400 = {
    "errorCode": "E400",
    "description": "Request cannot be processed.",
    "action": "Check the syntax",
    "violations": [{"property": "messages[0].sender", "violation": "must not be blank"}],
    "resources": [],
}
NEW_429 = {"errorCode": "E429", "description": "Too many requests", "violations": [], "resources": []}
V3_400 = {
    "code": 400104,
    "message": "Invalid request",
    "details": [{"property": "persons", "message": "too many"}],
}
TAG_NOT_FOUND = {"statusCode": "TAG_NOT_FOUND", "message": 'Tag with id "87881" does not exist'}


class Recorder:
    """Sleep and gate stand-ins that record instead of waiting."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


@pytest.fixture
def hook(monkeypatch):
    infobip_conn_env(
        monkeypatch, "infobip_test", host="abc123.api.infobip.com", password=KEY, cooldown_backend="memory"
    )
    recorder = Recorder()
    h = InfobipHook(
        "infobip_test", retry_policy=RetryPolicy(max_attempts=3, max_rate_limited=2), sleep=recorder.sleep
    )
    clock = [0.0]  # cooldown waits are the gate's own tests: here they pass in no time

    def skip(seconds: float) -> None:
        clock[0] += seconds

    h.__dict__["gate"] = MemoryGate(clock=lambda: clock[0], sleep=skip)
    h.recorder = recorder  # type: ignore[attr-defined]
    return h


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        pytest.param("abc.api.infobip.com", "https://abc.api.infobip.com", id="no-scheme"),
        pytest.param(
            "https://abc.api.infobip.com/", "https://abc.api.infobip.com", id="https-trailing-slash"
        ),
        pytest.param("http://127.0.0.1:8765", "http://127.0.0.1:8765", id="http-loopback"),
        pytest.param("http://localhost:8765", "http://localhost:8765", id="http-localhost"),
        pytest.param("  api.infobip.com  ", "https://api.infobip.com", id="whitespace"),
    ],
)
def test_base_url_forms(host, expected):
    assert parse_base_url(host) == expected


@pytest.mark.parametrize(
    ("host", "fragment"),
    [
        pytest.param("http://abc.api.infobip.com", "Refusing plain http", id="http-remote"),
        pytest.param("", "no host", id="empty"),
        pytest.param("ftp://abc.api.infobip.com", "not an http(s) URL", id="ftp"),
    ],
)
def test_bad_base_urls_are_refused_clearly(host, fragment):
    with pytest.raises(InfobipConfigError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        parse_base_url(host)


def test_api_key_argument_is_refused():
    with pytest.raises(InfobipConfigError, match="password"):
        InfobipHook("infobip_test", api_key=KEY)


def test_missing_key_is_a_clear_error(monkeypatch):
    infobip_conn_env(monkeypatch, "nokey", host=BASE, password="")
    with pytest.raises(InfobipConfigError, match="no API key"):
        InfobipHook("nokey").get_balance()


def test_bad_extras_are_clear_errors(monkeypatch):
    infobip_conn_env(monkeypatch, "badx", host=BASE, password=KEY, cooldown_backend="carrier-pigeon")
    with pytest.raises(InfobipConfigError, match="cooldown_backend"):
        InfobipHook("badx").get_balance()
    infobip_conn_env(monkeypatch, "bads", host=BASE, password=KEY, cooldown_scale="fast")
    with pytest.raises(InfobipConfigError, match="cooldown_scale"):
        InfobipHook("bads").get_balance()


def test_auth_user_agent_and_url(hook, requests_mock):
    requests_mock.post(f"{BASE}/saas/amplitude/1/lists", json={"listId": 2568})
    assert hook.create_list("VIP") == 2568
    sent = requests_mock.last_request
    assert sent.headers["Authorization"] == f"App {KEY}"
    assert sent.headers["User-Agent"].startswith("airflow-provider-infobip/")
    assert "apache-airflow/3." in sent.headers["User-Agent"]
    assert sent.json() == {"name": "VIP"}
    assert hook.calls == {"lists.create": 1}


def test_list_add_and_remove_bodies(hook, requests_mock):
    answer = {
        "modifiedCount": 0,
        "createdCount": 2,
        "errors": {"count": 1, "failed": {"VALIDATION_ERROR": ["bad"]}},
    }
    requests_mock.post(f"{BASE}/saas/amplitude/1/lists/7/add", json=answer)
    requests_mock.post(f"{BASE}/saas/amplitude/1/lists/7/remove", content=b"")
    assert hook.list_add(7, ["a@x.com", "b@x.com", "bad"]) == answer
    assert requests_mock.last_request.json() == {"userIds": ["a@x.com", "b@x.com", "bad"]}
    assert hook.list_remove(7, ["a@x.com"]) == {}


def test_bodies_are_compact_utf8_json_encoded_before_the_slot(hook, requests_mock):
    requests_mock.post(f"{BASE}/saas/amplitude/1/lists", json={"listId": 1})
    hook.create_list("Čakovec VIP")
    sent = requests_mock.last_request
    assert sent.headers["Content-Type"] == "application/json"
    assert sent.body == '{"name":"Čakovec VIP"}'.encode()


def test_a_body_json_cannot_carry_fails_clearly_before_any_request(hook, requests_mock):
    adapter = requests_mock.patch(f"{BASE}/people/3/persons/upsert", json={})
    with pytest.raises(InfobipConfigError, match="cannot be sent as JSON"):
        hook.upsert_people([{"customAttributes": {"lifetimeValue": float("nan")}}])
    assert adapter.call_count == 0
    assert hook.calls == {}  # no slot spent either


def test_batches_over_1000_are_refused_before_sending(hook, requests_mock):
    adapter = requests_mock.post(f"{BASE}/saas/amplitude/1/lists/7/add", json={})
    with pytest.raises(InfobipConfigError, match="1 to 1000"):
        hook.list_add(7, [f"u{i}@x.com" for i in range(1001)])
    assert adapter.call_count == 0


@pytest.mark.parametrize(
    ("status", "body", "error", "message_id"),
    [
        pytest.param(400, LEGACY_400, InfobipValidationError, "BAD_REQUEST", id="legacy-400"),
        pytest.param(401, LEGACY_401, InfobipAuthError, "UNAUTHORIZED", id="legacy-401"),
        pytest.param(400, NEW_400, InfobipValidationError, "E400", id="new-400"),
        pytest.param(400, V3_400, InfobipValidationError, "400104", id="v3-400"),
        pytest.param(400, TAG_NOT_FOUND, InfobipListNotFoundError, "TAG_NOT_FOUND", id="tag-not-found"),
        pytest.param(403, NEW_400 | {"errorCode": "E403"}, InfobipAuthError, "E403", id="403"),
        pytest.param(405, LEGACY_400, InfobipValidationError, "BAD_REQUEST", id="405-read-only"),
    ],
)
def test_error_shapes_map_to_types_and_are_not_retried(hook, requests_mock, status, body, error, message_id):
    adapter = requests_mock.post(f"{BASE}/saas/amplitude/1/lists/7/add", status_code=status, json=body)
    with pytest.raises(error) as info:
        hook.list_add(7, ["a@x.com"])
    assert info.value.status == status
    assert info.value.message_id == message_id
    assert info.value.body == body
    assert adapter.call_count == 1


def test_validation_errors_are_carried(hook, requests_mock):
    requests_mock.post(f"{BASE}/saas/amplitude/1/lists", status_code=400, json=LEGACY_400)
    with pytest.raises(InfobipValidationError) as info:
        hook.create_list("")
    assert info.value.validation_errors == {"name": ["property not found or blank"]}
    assert "property not found or blank" in str(info.value)
    requests_mock.post(f"{BASE}/sms/3/messages", status_code=400, json=NEW_400)
    with pytest.raises(InfobipValidationError) as info:
        hook.send_sms({"messages": []})
    assert info.value.validation_errors == {"messages[0].sender": ["must not be blank"]}


def test_auth_errors_stop_airflow_retries(hook, requests_mock):
    from airflow.sdk.exceptions import AirflowFailException

    requests_mock.get(f"{BASE}/account/1/balance", status_code=401, json=LEGACY_401)
    with pytest.raises(AirflowFailException):
        hook.get_balance()


def test_5xx_is_retried_with_backoff_for_idempotent_calls(hook, requests_mock):
    adapter = requests_mock.post(
        f"{BASE}/saas/amplitude/1/lists/7/add",
        [
            {"status_code": 502, "text": "bad gateway"},
            {"status_code": 500, "json": {}},
            {"json": {"createdCount": 1}},
        ],
    )
    assert hook.list_add(7, ["a@x.com"])["createdCount"] == 1
    assert adapter.call_count == 3
    assert len(hook.recorder.sleeps) == 2
    assert hook.recorder.sleeps[1] >= hook.retry_policy.base  # second backoff is at least the first ceiling


def test_5xx_gives_up_after_max_attempts(hook, requests_mock):
    adapter = requests_mock.get(f"{BASE}/people/2/tags/VIP", status_code=503, json={})
    with pytest.raises(InfobipServerError):
        hook.get_tag("VIP")
    assert adapter.call_count == 3


def test_sms_send_is_never_repeated_after_a_5xx(hook, requests_mock):
    adapter = requests_mock.post(f"{BASE}/sms/3/messages", status_code=500, json={"errorCode": "E500"})
    with pytest.raises(InfobipServerError):
        hook.send_sms({"messages": [{"destinations": [{"to": "41793026727"}], "content": {"text": "hi"}}]})
    assert adapter.call_count == 1


def test_sms_send_read_timeout_is_not_repeated_and_says_it_may_have_left(hook, requests_mock):
    adapter = requests_mock.post(f"{BASE}/sms/3/messages", exc=requests.ReadTimeout("slow"))
    with pytest.raises(InfobipTransportError) as info:
        hook.send_sms({"messages": []})
    assert info.value.sent is True
    assert adapter.call_count == 1


def test_sms_send_connect_timeout_is_retried(hook, requests_mock):
    adapter = requests_mock.post(
        f"{BASE}/sms/3/messages", [{"exc": requests.ConnectTimeout("no route")}, {"json": {"bulkId": "b"}}]
    )
    assert hook.send_sms({"messages": []}) == {"bulkId": "b"}
    assert adapter.call_count == 2


@pytest.fixture
def logs(caplog, capsys):
    """Everything logged during a test, whichever way Airflow's logging routes it."""

    def text() -> str:
        captured = capsys.readouterr()
        return caplog.text + captured.out + captured.err

    return text


def test_429_pushes_the_gate_and_retries_without_an_airflow_retry(hook, requests_mock, caplog, logs):
    adapter = requests_mock.post(
        f"{BASE}/saas/amplitude/1/lists/7/add",
        [
            {"status_code": 429, "json": LEGACY_429, "headers": {"Retry-After": "3"}},
            {"json": {"createdCount": 1}},
        ],
    )
    pushed: list[tuple[str, float]] = []
    original = hook.gate.push_back
    hook.gate.push_back = lambda bucket, delay: (pushed.append((bucket, delay)), original(bucket, delay))  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING):
        assert hook.list_add(7, ["a@x.com"])["createdCount"] == 1
    assert adapter.call_count == 2
    assert pushed == [(hook.bucket("lists.add"), 3.0)]
    text = logs()
    assert "429" in text and "3.00s" in text


def test_429_without_retry_after_waits_one_interval(hook, requests_mock):
    requests_mock.post(
        f"{BASE}/sms/3/messages", [{"status_code": 429, "json": NEW_429}, {"json": {"bulkId": "b"}}]
    )
    pushed: list[float] = []
    hook.gate.push_back = lambda bucket, delay: pushed.append(delay)  # type: ignore[method-assign]
    assert hook.send_sms({"messages": []}) == {"bulkId": "b"}  # a 429 means nothing was sent: safe to resend
    # sms.send is unpaced: the push is the retry policy's backoff, not a zero interval
    assert len(pushed) == 1
    assert hook.retry_policy.base / 2 <= pushed[0] <= hook.retry_policy.base


@pytest.mark.parametrize("header", ["inf", "nan", "-inf"])
def test_a_retry_after_that_is_no_number_of_seconds_is_ignored(hook, requests_mock, header):
    requests_mock.post(
        f"{BASE}/saas/amplitude/1/lists/7/add",
        [{"status_code": 429, "json": LEGACY_429, "headers": {"Retry-After": header}}, {"json": {}}],
    )
    pushed: list[float] = []
    hook.gate.push_back = lambda bucket, delay: pushed.append(delay)  # type: ignore[method-assign]
    hook.list_add(7, ["a@x.com"])
    assert len(pushed) == 1 and 0 < pushed[0] < 60  # the interval or the backoff, never an endless wait


def test_a_retry_after_longer_than_a_task_should_sleep_fails_the_try(hook, requests_mock):
    adapter = requests_mock.post(
        f"{BASE}/saas/amplitude/1/lists/7/add",
        status_code=429,
        json=LEGACY_429,
        headers={"Retry-After": "86400"},
    )
    pushed: list[float] = []
    hook.gate.push_back = lambda bucket, delay: pushed.append(delay)  # type: ignore[method-assign]
    with pytest.raises(InfobipRateLimitError):
        hook.list_add(7, ["a@x.com"])
    assert adapter.call_count == 1
    assert pushed == []  # the gate is not poisoned for a day: the next try starts afresh


def test_a_body_with_a_lone_surrogate_fails_clearly_before_any_request(hook, requests_mock):
    adapter = requests_mock.post(f"{BASE}/saas/amplitude/1/lists", json={"listId": 1})
    with pytest.raises(InfobipConfigError, match="cannot be sent as JSON"):
        hook.create_list("broken \ud800 name")
    assert adapter.call_count == 0


def test_429_gives_up_after_bound(hook, requests_mock):
    adapter = requests_mock.get(f"{BASE}/account/1/balance", status_code=429, json=LEGACY_429)
    with pytest.raises(InfobipRateLimitError):
        hook.get_balance()
    assert adapter.call_count == 3  # first try + max_rate_limited (2)


def test_every_request_reserves_a_gate_slot_with_the_scaled_interval(monkeypatch, requests_mock):
    infobip_conn_env(
        monkeypatch, "scaled", host=BASE, password=KEY, cooldown_scale=2, cooldown_backend="memory"
    )
    hook = InfobipHook("scaled")
    reserved: list[tuple[str, float]] = []

    class SpyGate(MemoryGate):
        def reserve(self, bucket, interval):
            reserved.append((bucket, interval))
            return 0.0

    hook.__dict__["gate"] = SpyGate()
    requests_mock.post(f"{BASE}/saas/amplitude/1/lists/1/add", json={})
    requests_mock.post(f"{BASE}/saas/amplitude/1/lists/1/remove", json={})
    hook.list_add(1, ["a@x.com"])
    hook.list_remove(1, ["a@x.com"])
    assert [i for _, i in reserved] == [20.0, 10.0]
    assert reserved[0][0].endswith(":lists.add") and reserved[1][0].endswith(":lists.remove")
    assert KEY not in reserved[0][0]


def test_people_and_tag_calls(hook, requests_mock):
    requests_mock.get(f"{BASE}/people/2/persons", status_code=404, json={})
    assert hook.get_person("nobody@x.com") is None
    requests_mock.patch(
        f"{BASE}/people/3/persons/upsert",
        status_code=207,
        json={"results": [{"index": 0, "id": 1, "status": "CREATED"}]},
    )
    assert hook.upsert_people([{"contactInformation": []}])["results"][0]["status"] == "CREATED"
    requests_mock.patch(f"{BASE}/people/2/tags/VIP%20list/persons", json={})
    hook.tag_people("VIP list", [("EMAIL", "a@x.com")])
    assert requests_mock.last_request.json() == {
        "people": [{"query": {"type": "EMAIL", "identifier": "a@x.com"}}]
    }
    requests_mock.get(f"{BASE}/people/2/tags/VIP", status_code=404, json=LEGACY_400)
    assert hook.get_tag("VIP") is None


def test_people_pages_until_a_short_page(hook, requests_mock):
    pages = [{"persons": [{"id": i} for i in range(2)]}, {"persons": [{"id": 2}]}]
    adapter = requests_mock.get(f"{BASE}/people/2/persons", [{"json": p} for p in pages])
    people = list(hook.iter_people(filter={"#contains": {"tags": "VIP"}}, order_by="modifiedAt:asc", limit=2))
    assert [p["id"] for p in people] == [0, 1, 2]
    assert adapter.call_count == 2
    assert adapter.request_history[1].qs["page"] == ["2"]


def test_sms_logs_ask_for_cursor_paging_and_follow_it(hook, requests_mock):
    adapter = requests_mock.get(
        f"{BASE}/sms/3/logs",
        [
            {"json": {"results": [{"messageId": "m1"}], "cursor": {"limit": 1000, "nextCursor": "c2"}}},
            {"json": {"results": [{"messageId": "m2"}], "cursor": {"limit": 1000}}},
        ],
    )
    logs = hook.sms_logs(bulk_id="b1", message_ids=["m1", "m2"])
    assert [r["messageId"] for r in logs] == ["m1", "m2"]
    first, second = adapter.request_history
    assert first.qs["messageid"] == ["m1", "m2"]
    assert first.qs["usecursor"] == ["true"] and "cursor" not in first.qs  # paging is asked for at once
    assert second.qs["usecursor"] == ["true"] and second.qs["cursor"] == ["c2"]


def test_sms_reports_are_asked_again_while_a_page_comes_back_full(hook, requests_mock):
    adapter = requests_mock.get(
        f"{BASE}/sms/3/reports",
        [
            {"json": {"results": [{"messageId": "m1", "to": "41"}, {"messageId": "m2", "to": "42"}]}},
            {"json": {"results": [{"messageId": "m3", "to": "43"}]}},
        ],
    )
    reports = hook.sms_reports(bulk_id="b1", limit=2)
    assert [r["to"] for r in reports] == ["41", "42", "43"]
    assert adapter.call_count == 2 and adapter.request_history[0].qs["bulkid"] == ["b1"]


FORBIDDEN = {"requestError": {"serviceException": {"messageId": "FORBIDDEN", "text": "Forbidden"}}}
NEW_401 = {
    "errorCode": "E401",
    "description": "Unauthorized access.",
    "action": "",
    "violations": [],
    "resources": [],
}
NEW_403 = {
    "errorCode": "E403",
    "description": "Forbidden access.",
    "action": "",
    "violations": [],
    "resources": [],
}


def _answers(requests_mock, people, sms, balance):
    """Fake the three access-check reads; each is ``(status, body)``, or an exception to raise."""
    for path, answer in (
        ("/people/2/persons", people),
        ("/sms/3/logs", sms),
        ("/account/1/balance", balance),
    ):
        if isinstance(answer, Exception):
            requests_mock.get(BASE + path, exc=answer)
        else:
            requests_mock.get(BASE + path, status_code=answer[0], json=answer[1])


OK_PEOPLE = (200, {"persons": [], "limit": 1, "page": 1})
OK_SMS = (200, {"results": []})
OK_BALANCE = (200, {"balance": 47.79, "currency": "EUR"})


def test_connection_test_with_every_scope_reads_each_product_once(hook, requests_mock):
    _answers(requests_mock, OK_PEOPLE, OK_SMS, OK_BALANCE)
    ok, message = hook.test_connection()
    assert ok, message
    assert "opens every product the flows use" in message and "Scopes to add" not in message
    rows = {line.split()[0]: line for line in message.splitlines()[1:]}
    for product, path in (
        ("People", "/people/2/persons"),
        ("SMS", "/sms/3/logs"),
        ("balance", "/account/1/balance"),
    ):
        assert path in rows[product] and rows[product].rstrip().endswith("ok")
    assert "not checked" in rows["lists"]
    assert [r.qs.get("limit") for r in requests_mock.request_history[:2]] == [["1"], ["1"]]
    assert hook.calls == {"people.list": 1, "sms.logs": 1, "account.balance": 1}  # paced through the gate


def test_connection_test_403_on_the_balance_only_succeeds_and_names_the_optional_scope(hook, requests_mock):
    _answers(requests_mock, OK_PEOPLE, OK_SMS, (403, FORBIDDEN))
    ok, message = hook.test_connection()
    assert ok, message
    assert "opens every product the flows use" in message
    assert "missing scope (403)" in message
    assert message.splitlines()[-1] == "Scopes to add: account-management:manage (balance, optional)"


def test_connection_test_names_the_products_and_scopes_a_key_lacks(hook, requests_mock):
    _answers(requests_mock, OK_PEOPLE, (403, NEW_403), (403, FORBIDDEN))
    ok, message = hook.test_connection()
    assert ok, message
    assert message.splitlines()[0].endswith("the API key lacks scopes for SMS.")
    assert "sms:message:send, sms:logs:read (SMS)" in message
    assert "account-management:manage (balance, optional)" in message


@pytest.mark.parametrize(
    ("people", "sms", "balance", "expected"),
    [
        pytest.param(
            (401, LEGACY_401), (401, NEW_401), (401, LEGACY_401),
            "Infobip refused the API key (401): check the API key", id="wrong-key",
        ),
        pytest.param(
            (404, {}), (404, {}), (404, {}),
            f"{BASE} answered 404: the Base URL is not an Infobip API URL", id="not-infobip",
        ),
        pytest.param(
            requests.ConnectionError("refused"), OK_SMS, OK_BALANCE,
            f"Cannot reach Infobip at {BASE}: check the Base URL", id="unreachable",
        ),
        pytest.param(
            (503, {}), (503, {}), (401, LEGACY_401), "Infobip answered with errors", id="errors",
        ),
    ],
)  # fmt: skip
def test_connection_test_failures_say_what_to_fix(hook, requests_mock, people, sms, balance, expected):
    _answers(requests_mock, people, sms, balance)
    ok, message = hook.test_connection()
    assert not ok
    assert message.startswith(expected), message
    assert "password" not in message and "host" not in message and KEY not in message


def test_connection_test_says_which_products_could_not_be_checked(hook, requests_mock):
    _answers(requests_mock, OK_PEOPLE, (500, NEW_403), (403, FORBIDDEN))
    ok, message = hook.test_connection()
    assert ok, message
    assert message.splitlines()[0].endswith(": SMS could not be checked.")
    assert "error (500)" in message


def test_connection_test_stops_at_an_unreachable_base_url(hook, requests_mock):
    _answers(requests_mock, requests.ConnectionError("refused"), OK_SMS, OK_BALANCE)
    hook.test_connection()
    assert len(requests_mock.request_history) == 1  # one try, no retries, no more checks


def test_a_403_names_the_scope_the_endpoint_needs(hook, requests_mock):
    requests_mock.post(f"{BASE}/sms/3/messages", status_code=403, json=NEW_403)
    with pytest.raises(InfobipAuthError, match="lacks a scope: add sms:message:send or sms:manage"):
        hook.send_sms({"messages": []})


def test_the_key_never_appears_in_logs_errors_or_repr(hook, requests_mock, caplog, logs):
    requests_mock.get(f"{BASE}/account/1/balance", status_code=401, json=LEGACY_401)
    requests_mock.post(
        f"{BASE}/saas/amplitude/1/lists/1/add",
        [{"status_code": 429, "json": LEGACY_429}, {"status_code": 502, "text": "x"}, {"json": {}}],
    )
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(InfobipAuthError) as info:
            hook.get_balance()
        hook.list_add(1, ["a@x.com"])
    logged = logs()
    assert "429" in logged and "InfobipServerError" in logged  # the retries were logged ...
    texts = [logged, str(info.value), repr(info.value), repr(hook), hook.bucket("lists.add")]
    assert not [t for t in texts if KEY in t]  # ... without the key
    assert "a@x.com" not in logged  # personal data is not logged


def test_not_found_person_type_is_distinct(hook, requests_mock):
    requests_mock.get(f"{BASE}/people/2/tags/X", status_code=404, json={})
    with pytest.raises(InfobipNotFoundError):
        hook._call("tags.get", "GET", "/people/2/tags/X", what="tag get", idempotent=True)


def test_a_sandbox_scale_is_refused_for_infobip_hosts(monkeypatch):
    infobip_conn_env(monkeypatch, "fastreal", host="abc.api.infobip.com", password=KEY, cooldown_scale=0.01)
    with pytest.raises(InfobipConfigError, match="faster than Infobip allows"):
        InfobipHook("fastreal").get_balance()
    infobip_conn_env(
        monkeypatch, "sandboxed", host="http://127.0.0.1:8765", password=KEY, cooldown_scale=0.01
    )
    assert InfobipHook("sandboxed").cooldown_scale == 0.01


def test_repeated_429s_back_off_longer_each_time(hook, requests_mock):
    requests_mock.get(f"{BASE}/account/1/balance", status_code=429, json=LEGACY_429)
    pushed: list[float] = []
    hook.gate.push_back = lambda bucket, delay: pushed.append(delay)  # type: ignore[method-assign]
    with pytest.raises(InfobipRateLimitError):
        hook.get_balance()
    assert len(pushed) == 2
    assert pushed[1] >= hook.retry_policy.base / 2 * 2 > pushed[0] / 2


def test_the_redis_password_is_masked(monkeypatch):
    from airflow.sdk.log import mask_secret  # noqa: F401 - the masker the hook uses

    masked: list[str] = []
    monkeypatch.setattr("airflow.sdk.log.mask_secret", lambda secret, name=None: masked.append(secret))
    infobip_conn_env(
        monkeypatch,
        "withredis",
        host=BASE,
        password=KEY,
        cooldown_redis_url="redis://:r3dis-pass@redis:6379/1",
    )
    InfobipHook("withredis").cooldown_scale  # noqa: B018 - reads the connection
    assert "r3dis-pass" in masked
    assert KEY in masked
