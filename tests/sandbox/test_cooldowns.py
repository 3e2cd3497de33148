"""Cooldown enforcement at the scaled intervals, judged at arrival, on a fake clock."""

from __future__ import annotations

import pytest

from infobip_provider import cooldown as client_cooldown
from infobip_provider.sandbox.cooldowns import TOLERANCE, CooldownLedger
from infobip_provider.sandbox.endpoints import BY_NAME, ENDPOINTS, classify, fingerprint
from tests.sandbox.conftest import OTHER_AUTH, Api

SCALE = 0.01
LEGACY_429 = {
    "requestError": {"serviceException": {"messageId": "TOO_MANY_REQUESTS", "text": "Too many requests"}}
}

#: Infobip's published intervals at scale 1, written out independently of the code.
CONTRACT = {
    "lists.create": (2.0, "key"),
    "lists.add": (10.0, "key"),
    "lists.remove": (5.0, "key"),
    "people.create": (0.1, "account"),
    "people.get": (0.2, "account"),
    "people.list": (0.2, "account"),
    "people.update": (0.2, "account"),
    "people.upsert": (0.2, "account"),
    "tags.get": (0.2, "account"),
    "tags.create": (0.2, "account"),
    "tags.add": (0.2, "account"),
    "tags.remove": (0.2, "account"),
    "sms.logs": (0.5, "account"),
    "email.send": (1 / 4000, "account"),
    "email.logs": (0.5, "account"),
    "email.reports": (0.5, "account"),
    "whatsapp.template": (1 / 4000, "account"),
    "whatsapp.text": (1 / 4000, "account"),
    "blocklist.add": (1.0, "account"),
    "blocklist.remove": (1.0, "account"),
    "blocklist.get": (1.0, "account"),
    "email.suppressions.add": (0.01, "account"),
    "email.suppressions.remove": (0.01, "account"),
    "email.suppressions.get": (0.01, "account"),
}

#: endpoint -> (method, path, JSON body) of a request that reaches it.
REQUESTS = {
    "lists.create": ("POST", "/saas/amplitude/1/lists", {"name": "x"}),
    "lists.add": ("POST", "/saas/amplitude/1/lists/1/add", {"userIds": ["a@x.com"]}),
    "lists.remove": ("POST", "/saas/amplitude/1/lists/1/remove", {"userIds": ["a@x.com"]}),
    "people.create": (
        "POST",
        "/people/2/persons",
        {"contactInformation": {"email": [{"address": "a@x.com"}]}},
    ),
    "people.get": ("GET", "/people/2/persons?identifier=a@x.com&type=EMAIL", None),
    "people.list": ("GET", "/people/2/persons?limit=5", None),
    "people.update": ("PATCH", "/people/2/persons?identifier=a@x.com&type=EMAIL", {"firstName": "A"}),
    "people.upsert": ("PATCH", "/people/3/persons/upsert", {"persons": [{"externalId": "e"}]}),
    "tags.get": ("GET", "/people/2/tags/T", None),
    "tags.create": ("POST", "/people/2/tags", {"name": "T"}),
    "tags.add": (
        "PATCH",
        "/people/2/tags/T/persons",
        {"people": [{"query": {"type": "ID", "identifier": "1"}}]},
    ),
    "tags.remove": (
        "DELETE",
        "/people/2/tags/T/persons",
        {"people": [{"query": {"type": "ID", "identifier": "1"}}]},
    ),
    "sms.logs": ("GET", "/sms/3/logs", None),
    "sms.send": (
        "POST",
        "/sms/3/messages",
        {"messages": [{"destinations": [{"to": "41793026727"}], "content": {"text": "x"}}]},
    ),
    "sms.reports": ("GET", "/sms/3/reports", None),
    "sms.preview": ("POST", "/sms/1/preview", {"text": "x"}),
    "account.balance": ("GET", "/account/1/balance", None),
    "sms.inbox": ("GET", "/sms/1/inbox/reports", None),
    "email.send": (
        "POST",
        "/email/4/messages",
        {
            "messages": [
                {
                    "sender": "a@acme.example",
                    "destinations": [{"to": [{"destination": "b@x.example"}]}],
                    "content": {"subject": "s", "text": "t"},
                }
            ]
        },
    ),
    "email.logs": ("GET", "/email/4/logs", None),
    "email.reports": ("GET", "/email/4/reports", None),
    "whatsapp.template": (
        "POST",
        "/whatsapp/1/message/template",
        {
            "messages": [
                {
                    "from": "447860099299",
                    "to": "41793026727",
                    "content": {
                        "templateName": "t",
                        "templateData": {"body": {"placeholders": ["x"]}},
                        "language": "en",
                    },
                }
            ]
        },
    ),
    "whatsapp.text": (
        "POST",
        "/whatsapp/1/message/text",
        {"from": "447860099299", "to": "41793026727", "content": {"text": "x"}},
    ),
    "blocklist.add": (
        "POST",
        "/platform/1/blocklists",
        {"blocklist": [{"channel": "SMS", "destinations": [{"to": "41793026727"}]}]},
    ),
    "blocklist.remove": (
        "DELETE",
        "/platform/1/blocklists",
        {"blocklist": [{"channel": "SMS", "destinations": [{"to": "41793026727"}]}]},
    ),
    "blocklist.get": ("GET", "/platform/1/blocklists", None),
    "email.suppressions.add": (
        "POST",
        "/email/1/suppressions",
        {"suppressions": [{"domainName": "x.com", "type": "BOUNCE", "emailAddress": ["a@x.com"]}]},
    ),
    "email.suppressions.remove": (
        "DELETE",
        "/email/1/suppressions",
        {"suppressions": [{"domainName": "x.com", "type": "BOUNCE", "emailAddress": ["a@x.com"]}]},
    ),
    "email.suppressions.get": ("GET", "/email/1/suppressions", None),
}


def hit(api: Api, endpoint: str, auth: dict[str, str] | None = None):
    method, path, body = REQUESTS[endpoint]
    kwargs = {"json": body} if body is not None else {}
    if auth is not None:
        kwargs["auth"] = auth
    return api.call(method, path, **kwargs)


def test_table_matches_the_contract() -> None:
    paced = {spec.name: (spec.interval, spec.scope) for spec in ENDPOINTS if spec.interval > 0}
    assert paced == CONTRACT


def test_every_endpoint_has_a_request_that_reaches_it() -> None:
    for name, (method, path, _) in REQUESTS.items():
        raw, _, query = path.partition("?")
        match = classify(method, raw, query)
        assert match is not None and match.spec.name == name
    assert set(REQUESTS) == set(BY_NAME)


def test_client_policies_never_pace_faster_than_the_server() -> None:
    """Cross-check with the library's table: a client slower than the server is safe, faster is a bug."""
    for spec in ENDPOINTS:
        policy = client_cooldown.POLICIES[spec.name]
        assert policy.interval >= spec.interval, spec.name


def test_fingerprint_matches_the_library() -> None:
    assert fingerprint("some-key") == client_cooldown.fingerprint("some-key")


@pytest.mark.parametrize("endpoint", sorted(CONTRACT))
def test_just_too_early_is_429_and_just_in_time_is_accepted(make_api, endpoint: str) -> None:
    api = make_api(cooldown_scale=SCALE)
    interval = CONTRACT[endpoint][0] * SCALE
    first = hit(api, endpoint)
    assert first.status_code != 429
    api.clock.advance(TOLERANCE * interval - 1e-5)  # ten microseconds too early
    early = hit(api, endpoint)
    assert early.status_code == 429
    if BY_NAME[endpoint].shape == "sms3":
        assert early.json()["errorCode"] == "E429"
    else:  # the People v3 upsert answers only its 400s in its own shape
        assert early.json() == LEGACY_429
    api.clock.advance(1e-5)  # exactly 98 % of the interval after the first (the rejected one does not count)
    assert hit(api, endpoint).status_code != 429
    counters = api.admin("GET", "/counters")[endpoint]
    assert (counters["requests"], counters["429s"], counters["cooldown_429s"]) == (3, 1, 1)


@pytest.mark.parametrize("endpoint", ["lists.create", "lists.add", "lists.remove"])
def test_list_cooldowns_are_per_api_key(make_api, endpoint: str) -> None:
    api = make_api(cooldown_scale=SCALE)
    assert hit(api, endpoint).status_code != 429
    assert hit(api, endpoint, auth=OTHER_AUTH).status_code != 429
    assert hit(api, endpoint).status_code == 429


@pytest.mark.parametrize("endpoint", ["people.create", "people.upsert", "tags.add", "sms.logs"])
def test_account_cooldowns_are_shared_by_every_key(make_api, endpoint: str) -> None:
    api = make_api(cooldown_scale=SCALE)
    assert hit(api, endpoint).status_code != 429
    assert hit(api, endpoint, auth=OTHER_AUTH).status_code == 429


def test_endpoints_run_side_by_side(make_api) -> None:
    api = make_api(cooldown_scale=SCALE)
    for endpoint in ("lists.add", "lists.remove", "lists.create", "people.upsert", "tags.add", "tags.remove"):
        assert hit(api, endpoint).status_code != 429, endpoint


@pytest.mark.parametrize("endpoint", ["sms.send", "sms.reports", "sms.preview", "account.balance"])
def test_unpaced_endpoints_never_429(make_api, endpoint: str) -> None:
    api = make_api(cooldown_scale=1.0)
    assert [hit(api, endpoint).status_code == 429 for _ in range(5)] == [False] * 5


def test_scale_zero_turns_pacing_off(make_api) -> None:
    api = make_api(cooldown_scale=0.0)
    assert {hit(api, "lists.add").status_code for _ in range(3)} == {400}  # TAG_NOT_FOUND, never 429


def test_unauthorised_requests_do_not_move_the_window(make_api) -> None:
    api = make_api(cooldown_scale=SCALE)
    assert hit(api, "lists.create", auth={"Authorization": "App nope"}).status_code == 401
    assert hit(api, "lists.create").status_code == 200


def test_journal_shows_arrival_elapsed_and_interval(make_api) -> None:
    api = make_api(cooldown_scale=SCALE)
    start = api.clock.now
    hit(api, "lists.add")
    api.clock.advance(0.05)
    hit(api, "lists.add")
    first, second = api.admin("GET", "/journal", params={"endpoint": "lists.add"})["entries"]
    assert (first["arrival"], second["arrival"]) == (start, start + 0.05)
    assert first["cooldown"] == {"interval": pytest.approx(0.1), "elapsed": None}
    assert second["cooldown"]["elapsed"] == pytest.approx(0.05)
    assert (second["status"], second["outcome"]) == (429, "cooldown")


class TestLedger:
    def test_rejected_arrivals_do_not_move_the_window(self) -> None:
        ledger = CooldownLedger(scale=1.0)
        assert ledger.admit("k", "lists.add", 10.0, 100.0).accepted
        assert not ledger.admit("k", "lists.add", 10.0, 109.0).accepted
        verdict = ledger.admit("k", "lists.add", 10.0, 109.8)
        assert verdict.accepted and verdict.elapsed == pytest.approx(9.8)
        assert not ledger.admit("k", "lists.add", 10.0, 119.0).accepted

    def test_out_of_order_arrival_is_rejected(self) -> None:
        ledger = CooldownLedger(scale=1.0)
        assert ledger.admit("k", "e", 1.0, 100.0).accepted
        assert not ledger.admit("k", "e", 1.0, 99.0).accepted

    def test_reset_forgets_windows(self) -> None:
        ledger = CooldownLedger(scale=1.0)
        ledger.admit("k", "e", 1.0, 100.0)
        ledger.reset()
        assert ledger.admit("k", "e", 1.0, 100.1).accepted
