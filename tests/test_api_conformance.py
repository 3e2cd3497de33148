"""The hook and the sandbox against Infobip's published shapes.

SMS bodies and answers (errors included) are checked with the official ``infobip-api-python-client``
models, generated from Infobip's OpenAPI definitions. Their ``from_dict`` refuses a wrong type or a
missing required field but ignores unknown keys, so :func:`conform` also walks the body and refuses
any key the model does not declare (a report's ``destination``, a log's ``callbackData``). People and
list shapes, which the client does not cover, are checked against hand-written expectations taken
from ``infobip-api.md``. The hook runs against a sandbox process; the request bodies it sent are
read back from the sandbox's journal.
"""

from __future__ import annotations

import json
import re
import time
import types
import typing
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest
import requests
from infobip_api_client import models
from pydantic import BaseModel, ValidationError

from infobip_provider.engines.broadcast import message_id
from infobip_provider.hooks.infobip import InfobipHook, RetryPolicy
from infobip_provider.people import build_people, parse_field_map
from infobip_provider.sandbox.testing import SandboxProcess
from infobip_provider.sms import SmsOptions, build_body

pytestmark = pytest.mark.sandbox

KEY = "conformance-key-6b1f0e"
SCOPELESS_KEY = "conformance-scopeless-key-2a9c"
PEOPLE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")  # yyyy-MM-ddTHH:mm:ss, no zone


# ------------------------------------------------------------------------------- strict model check
def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The client model classes an annotation names (through Optional, List, Dict, Annotated)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found += _models_in(arg)
    return found


def _is_list(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        return any(_is_list(a) for a in typing.get_args(annotation))
    return origin is list


def undeclared(model: type[BaseModel], data: Any, path: str = "$") -> list[str]:
    """Keys of ``data`` (recursively) that ``model`` does not declare."""
    if not isinstance(data, dict):
        return []
    if "actual_instance" in model.model_fields:  # a oneOf wrapper: the best fitting candidate decides
        candidates = [getattr(models, name) for name in sorted(model.model_fields["one_of_schemas"].default)]
        return min((undeclared(c, data, path) for c in candidates), key=len)
    fields = {(f.alias or name): f.annotation for name, f in model.model_fields.items()}
    problems: list[str] = []
    for key, value in data.items():
        if key not in fields:
            problems.append(f"{path}.{key} is not in {model.__name__}")
            continue
        inner = _models_in(fields[key])
        if not inner:
            continue
        items = value if _is_list(fields[key]) and isinstance(value, list) else [value]
        for i, item in enumerate(items):
            where = f"{path}.{key}[{i}]" if items is value else f"{path}.{key}"
            problems += undeclared(inner[0], item, where)
    return problems


def conform(model: type[BaseModel], data: Any) -> list[str]:
    """Why ``data`` is not a ``model`` (empty when it is): ``from_dict``'s refusal, then undeclared keys."""
    try:
        model.from_dict(data)  # type: ignore[attr-defined]
    except (ValidationError, ValueError, TypeError) as exc:
        return [f"{model.__name__}.from_dict refused it: {exc}"]
    return undeclared(model, data)


# --------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def sandbox():
    with SandboxProcess(api_key=KEY, cooldown_scale=0.01, scoped_keys={SCOPELESS_KEY: []}) as sb:
        yield sb


@pytest.fixture
def hook(sandbox, monkeypatch) -> InfobipHook:
    sandbox.reset()
    monkeypatch.setenv("AIRFLOW_CONN_INFOBIP_CONFORMANCE", sandbox.conn_json(cooldown_backend="memory"))
    return InfobipHook("infobip_conformance", retry_policy=RetryPolicy(max_attempts=1, max_rate_limited=0))


def sent(sandbox: SandboxProcess, endpoint: str) -> list[dict[str, Any]]:
    """What the sandbox received on ``endpoint``: journal entries with their request bodies."""
    return sandbox.journal(bodies=True, endpoint=endpoint)


def raw(sandbox: SandboxProcess, method: str, path: str, key: str = KEY, **kwargs: Any) -> requests.Response:
    """One request outside the hook, after the longest scaled cooldown (list add, 0.1 s) has passed."""
    time.sleep(0.11)
    return requests.request(
        method, sandbox.url(path), headers={"Authorization": f"App {key}"}, timeout=10, **kwargs
    )


# ---------------------------------------------------------------------------- the check can fail
def test_the_checks_refuse_known_bad_shapes() -> None:
    good = {"messages": [{"destinations": [{"to": "41793026727"}], "content": {"text": "Hi"}}]}
    assert conform(models.SmsRequest, good) == []
    number_as_int = {"messages": [{"destinations": [{"to": 41793026727}], "content": {"text": "Hi"}}]}
    assert "from_dict refused" in conform(models.SmsRequest, number_as_int)[0]
    assert "from_dict refused" in conform(models.SmsRequest, {"destinations": [{"to": "41793026727"}]})[0]
    assert "from_dict refused" in conform(models.ApiError, {"requestError": {"serviceException": {}}})[0]
    # from_dict alone takes unknown keys: the walk refuses them, at any depth.
    old_report = {"results": [{"messageId": "m", "destination": "41793026727"}]}
    models.SmsDeliveryResult.from_dict(old_report)
    assert conform(models.SmsDeliveryResult, old_report) == [
        "$.results[0].destination is not in SmsDeliveryReport"
    ]
    log_with_callback = {"results": [{"messageId": "m", "callbackData": "x"}], "cursor": {"limit": 1}}
    assert conform(models.SmsLogsResponse, log_with_callback) == [
        "$.results[0].callbackData is not in SmsLog"
    ]
    misplaced = {"messages": [{"destinations": [{"to": "4179"}], "content": {"text": "Hi", "flash": True}}]}
    assert conform(models.SmsRequest, misplaced) != []


# ------------------------------------------------------------------------------------------- SMS
def test_sms_bodies_and_answers_match_the_official_models(sandbox, hook) -> None:
    options = SmsOptions.from_args(
        now=datetime(2026, 3, 2, tzinfo=UTC),
        sender="InfoSMS",
        validity_period="2h",
        delivery_time_window={"days": ["mon", "fri"], "from": "09:00", "to": "20:00"},
        sending_speed_limit={"amount": 600, "timeUnit": "minute"},
        shorten_url=True,
        track_clicks=True,
        notify_url="https://hooks.example/dlr",
        intermediate_report=False,
        callback_data="campaign=spring",
        transliteration="none",
        language_code="none",
        india_dlt_principal_entity_id="1201159",
        turkey_iys_brand_code="12345",
        turkey_iys_recipient_type="tacir",
        south_korea_reseller_code=123456789,
        entity_id="ent-1",
        application_id="app-1",
        campaign_reference_id="spring-2026",
        include_sms_count=True,
    )
    numbers = ["41793026701", "41793026702", "41793026703"]
    batch = [("Hi Ana", [(n, message_id("bulk-c", n)) for n in numbers[:2]]), ("Hi Bo", [(numbers[2], message_id("bulk-c", numbers[2]))])]  # fmt: skip
    answer = hook.send_sms(build_body(batch, options, "bulk-c"))
    assert conform(models.SmsResponse, answer) == []
    (send,) = sent(sandbox, "sms.send")
    assert conform(models.SmsRequest, send["body"]) == []
    assert send["body"]["options"]["schedule"]["bulkId"] == "bulk-c"

    logs = hook.sms_logs(bulk_id="bulk-c", limit=2)  # three logs, pages of two
    assert sorted(item["destination"] for item in logs) == numbers
    assert [conform(models.SmsLog, item) for item in logs] == [[], [], []]
    queries = [entry["query"] for entry in sent(sandbox, "sms.logs")]
    assert len(queries) == 2 and all("useCursor=true" in q for q in queries)
    assert "cursor=" not in queries[0] and "cursor=" in queries[1]
    first_page = raw(
        sandbox, "GET", "/sms/3/logs", params={"bulkId": "bulk-c", "limit": 2, "useCursor": "true"}
    )
    assert conform(models.SmsLogsResponse, first_page.json()) == []
    assert first_page.json()["cursor"]["nextCursor"]

    reports = hook.sms_reports(bulk_id="bulk-c")
    assert sorted(r["to"] for r in reports) == numbers
    assert conform(models.SmsDeliveryResult, {"results": reports}) == []
    assert {r["callbackData"] for r in reports} == {"campaign=spring"}

    preview = hook.sms_preview("Grüße aus Zürich", "CENTRAL_EUROPEAN")
    assert conform(models.SmsPreviewResponse, preview) == []
    (asked,) = sent(sandbox, "sms.preview")
    assert conform(models.SmsPreviewRequest, asked["body"]) == []


def _sms3_errors(sandbox: SandboxProcess) -> dict[str, requests.Response]:
    bad_send = {"messages": [{"destinations": [{"to": "not a number"}], "content": {"text": "Hi"}}]}
    answers = {
        "400 send": raw(sandbox, "POST", "/sms/3/messages", json=bad_send),
        "400 logs": raw(sandbox, "GET", "/sms/3/logs", params={"limit": 5000}),
        "401 send": raw(sandbox, "POST", "/sms/3/messages", key="wrong-key-0000", json=bad_send),
        "401 reports": raw(sandbox, "GET", "/sms/3/reports", key="wrong-key-0000"),
        "403 logs": raw(sandbox, "GET", "/sms/3/logs", key=SCOPELESS_KEY),
    }
    sandbox.inject_fault("sms.send", "error_429")
    answers["429 send"] = raw(sandbox, "POST", "/sms/3/messages", json=bad_send)
    sandbox.inject_fault("sms.logs", "error_500")
    answers["500 logs"] = raw(sandbox, "GET", "/sms/3/logs")
    return answers


def test_sms3_errors_match_the_official_error_model(sandbox, hook) -> None:
    for name, response in _sms3_errors(sandbox).items():
        status = int(name.split()[0])
        assert response.status_code == status, name
        body = response.json()
        assert conform(models.ApiError, body) == [], name
        assert body["errorCode"] == f"E{status}", name
    violations = raw(sandbox, "POST", "/sms/3/messages", json={"messages": []}).json()["violations"]
    assert violations and all(conform(models.ApiErrorViolation, v) == [] for v in violations)


LEGACY_ERRORS = [
    pytest.param("GET", "/account/1/balance", "wrong-key-0000", None, 401, "UNAUTHORIZED", id="balance-401"),
    pytest.param("GET", "/account/1/balance", SCOPELESS_KEY, None, 403, "FORBIDDEN", id="balance-403"),
    pytest.param("POST", "/sms/1/preview", KEY, {"text": ""}, 400, "BAD_REQUEST", id="preview-400"),
    pytest.param("POST", "/saas/amplitude/1/lists", KEY, {"name": ""}, 400, "BAD_REQUEST", id="list-create-400"),
    pytest.param("POST", "/saas/amplitude/1/lists", "wrong-key-0000", {"name": "x"}, 401, "UNAUTHORIZED", id="list-create-401"),
    pytest.param("GET", "/people/2/persons", KEY, None, 400, "BAD_REQUEST", id="people-list-400"),
    pytest.param("PATCH", "/people/3/persons/upsert", "wrong-key-0000", {"persons": []}, 401, "UNAUTHORIZED", id="upsert-401"),
    pytest.param("PATCH", "/people/3/persons/upsert", SCOPELESS_KEY, {"persons": []}, 403, "FORBIDDEN", id="upsert-403"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "key", "body", "status", "message_id"), LEGACY_ERRORS)
def test_legacy_errors_match_the_official_legacy_model(
    sandbox, hook, method, path, key, body, status, message_id
):
    params = {"limit": 0} if path == "/people/2/persons" else None
    response = raw(sandbox, method, path, key=key, json=body, params=params)
    assert response.status_code == status
    assert conform(models.ApiException, response.json()) == []
    assert response.json()["requestError"]["serviceException"]["messageId"] == message_id


@pytest.mark.parametrize(("kind", "status", "message_id"), [("error_429", 429, "TOO_MANY_REQUESTS"), ("error_500", 500, "GENERAL_ERROR")])  # fmt: skip
def test_the_upsert_answers_429_and_500_in_the_legacy_shape(sandbox, hook, kind, status, message_id):
    sandbox.inject_fault("people.upsert", kind)
    response = raw(sandbox, "PATCH", "/people/3/persons/upsert", json={"persons": [{"externalId": "e"}]})
    assert response.status_code == status
    assert conform(models.ApiException, response.json()) == []
    assert response.json()["requestError"]["serviceException"]["messageId"] == message_id


# ------------------------------------------------------------------ People and lists (infobip-api.md)
#: Person v3 upsert item: the contract's fields, with their text limits (None: not a length-limited text).
V3_PERSON: dict[str, int | None] = {
    "externalId": 256, "type": None, "firstName": 255, "lastName": 255, "middleName": 50, "nickName": 50,
    "gender": None, "birthDate": None, "address": 256, "city": 50, "country": 50, "preferredLanguage": None,
    "profilePicture": 2083, "tags": None, "customAttributes": None, "contactInformation": None,
}  # fmt: skip
V2_PERSON_READ = {*V3_PERSON, "id", "createdAt", "modifiedAt", "origin"}


def check_v3_person(person: dict[str, Any]) -> None:
    assert set(person) <= set(V3_PERSON), set(person) - set(V3_PERSON)
    for field, limit in V3_PERSON.items():
        if limit is not None and field in person:
            assert isinstance(person[field], str) and len(person[field]) <= limit, field
    assert person.get("type", "CUSTOMER") in ("CUSTOMER", "LEAD")
    assert person.get("gender", "MALE") in ("MALE", "FEMALE")
    assert re.fullmatch(r"[a-z]{2}(-[A-Za-z]{2})?", person.get("preferredLanguage", "en"), re.IGNORECASE)
    contacts = person["contactInformation"]
    assert isinstance(contacts, list) and contacts
    for contact in contacts:
        assert set(contact) == {"type", "identifier"} and contact["type"] in ("EMAIL", "PHONE")
        if contact["type"] == "PHONE":
            assert re.fullmatch(r"\d{5,15}", contact["identifier"])  # E.164 digits, no +
    assert all(isinstance(v, str) and len(v) <= 4096 for v in person.get("customAttributes", {}).values())


def check_v2_person(person: dict[str, Any]) -> None:
    assert set(person) <= V2_PERSON_READ, set(person) - V2_PERSON_READ
    assert PEOPLE_TIME.match(person["createdAt"]) and PEOPLE_TIME.match(person["modifiedAt"])
    contact = person["contactInformation"]
    assert set(contact) <= {"email", "phone"}
    assert all(set(e) == {"address"} for e in contact.get("email", []))
    assert all(set(p) == {"number"} for p in contact.get("phone", []))


def test_people_bodies_and_answers_match_the_contract(sandbox, hook) -> None:
    cohort = pd.DataFrame(
        {
            "key": ["ana@x.com", "bo@x.com"],
            "email": ["ana@x.com", "bo@x.com"],
            "phone": ["41793026701", None],
            "external_id": [None, None],
            "row": [1, 2],
            "first": ["Ana", "Bo"],
            "nick": ["Annie", None],
            "town": ["Zürich", "Bern"],
            "lang": ["en-gb", "de"],
            "picture": ["https://x.example/" + "p" * 2060, None],
            "plan": ["gold", "free"],
        }
    )
    mapping = parse_field_map(
        {"first": "firstName", "nick": "nickName", "town": "city", "lang": "preferredLanguage",
         "picture": "profilePicture", "plan": "plan"}
    )  # fmt: skip
    built = build_people(cohort, mapping)
    assert built.rejects == []
    answer = hook.upsert_people([p.payload for p in built.people])
    (upsert,) = sent(sandbox, "people.upsert")
    assert upsert["status"] == 207 and set(upsert["body"]) == {"persons"}
    for person in upsert["body"]["persons"]:
        check_v3_person(person)
    assert upsert["body"]["persons"][0]["nickName"] == "Annie"  # a standard field, not a custom attribute
    assert set(answer) == {"results", "errors"} and answer["errors"] == []
    assert [(r["index"], r["status"]) for r in answer["results"]] == [(0, "CREATED"), (1, "CREATED")]
    assert all(isinstance(r["id"], int) for r in answer["results"])

    bad = hook._call("people.upsert", "PATCH", "/people/3/persons/upsert", what="t", idempotent=True,
                     json_body={"persons": [{"contactInformation": [{"type": "EMAIL", "identifier": "no"}]}]})  # fmt: skip
    (error,) = bad["errors"]
    assert set(error) == {"index", "code", "message", "details"} and isinstance(error["code"], int)
    assert all(set(d) == {"property", "message"} for d in error["details"])
    too_many = raw(sandbox, "PATCH", "/people/3/persons/upsert", json={"persons": []})
    assert too_many.status_code == 400 and set(too_many.json()) == {"code", "message", "details"}

    ana = hook.get_person("ana@x.com")
    assert ana is not None
    check_v2_person(ana)
    listed = list(hook.iter_people(limit=1))
    assert len(listed) == 2
    for person in listed:
        check_v2_person(person)
    wrapper = raw(sandbox, "GET", "/people/2/persons", params={"limit": 1, "page": 1}).json()
    assert set(wrapper) == {"persons", "limit", "page"}

    tag = hook.create_tag("VIP")
    assert set(tag) == {"id", "name", "createdAt", "modifiedAt"} and tag["name"] == "VIP"
    hook.tag_people("VIP", [("EMAIL", "ana@x.com"), ("PHONE", "41793026701")])
    hook.untag_people("VIP", [("EMAIL", "ana@x.com")])
    for entry in sent(sandbox, "tags.add") + sent(sandbox, "tags.remove"):
        people = entry["body"]["people"]
        assert set(entry["body"]) == {"people"} and 1 <= len(people) <= 1000
        assert all(set(p) == {"query"} and set(p["query"]) == {"type", "identifier"} for p in people)
    assert [e["body"] for e in sent(sandbox, "tags.create")] == [{"name": "VIP"}]


def test_list_bodies_and_answers_match_the_contract(sandbox, hook) -> None:
    list_id = hook.create_list("Spring cohort")
    assert isinstance(list_id, int)
    added = hook.list_add(list_id, ["ana@x.com", "bo@x.com", "invalid_mail.com"])
    assert set(added) <= {"modifiedCount", "createdCount", "errors"}
    assert (added["createdCount"], added["modifiedCount"]) == (2, 0)
    assert added["errors"] == {"count": 1, "failed": {"VALIDATION_ERROR": ["invalid_mail.com"]}}
    clean = hook.list_add(list_id, ["cy@x.com"])
    assert "errors" not in clean  # only when some ids failed
    assert hook.list_remove(list_id, ["bo@x.com"]) == {}
    assert [e["body"] for e in sent(sandbox, "lists.create")] == [{"name": "Spring cohort"}]
    assert [e["body"] for e in sent(sandbox, "lists.add")] == [
        {"userIds": ["ana@x.com", "bo@x.com", "invalid_mail.com"]},
        {"userIds": ["cy@x.com"]},
    ]
    assert [e["body"] for e in sent(sandbox, "lists.remove")] == [{"userIds": ["bo@x.com"]}]
    created = raw(sandbox, "POST", "/saas/amplitude/1/lists", json={"name": "Other"})
    assert set(created.json()) == {"listId"}
    gone = raw(sandbox, "POST", f"/saas/amplitude/1/lists/{list_id + 999}/add", json={"userIds": ["a@x.com"]})
    assert gone.status_code == 400
    body = gone.json()
    assert set(body) == {"statusCode", "message"} and body["statusCode"] == "TAG_NOT_FOUND"
    assert json.loads(json.dumps(body))["message"] == f'Tag with id "{list_id + 999}" does not exist'
