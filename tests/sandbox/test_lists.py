"""Contract tests: account balance, auth and the Amplitude-style list endpoints."""

from __future__ import annotations

import pytest

from tests.sandbox.conftest import Api

LISTS = "/saas/amplitude/1/lists"
UNAUTHORIZED = {
    "requestError": {"serviceException": {"messageId": "UNAUTHORIZED", "text": "Invalid login details"}}
}


def new_list(api: Api, name: str = "Churn risk") -> int:
    response = api.post(LISTS, json={"name": name})
    assert response.status_code == 200
    return response.json()["listId"]


def test_balance_answers_configured_amount(make_api) -> None:
    api = make_api(balance=12.5, currency="USD")
    response = api.get("/account/1/balance")
    assert response.status_code == 200
    assert response.json() == {"balance": 12.5, "currency": "USD"}


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="missing"),
        pytest.param({"Authorization": "App wrong"}, id="wrong-key"),
        pytest.param({"Authorization": "Basic dGVzdC1rZXk="}, id="other-scheme"),
        pytest.param({"Authorization": "App "}, id="empty-key"),
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/account/1/balance"),
        ("POST", LISTS),
        ("GET", "/sms/3/logs"),
        ("PATCH", "/people/3/persons/upsert"),
    ],
)
def test_bad_auth_gets_401_in_the_endpoint_shape(api: Api, headers, method: str, path: str) -> None:
    response = api.call(method, path, auth=headers, json={"name": "x"})
    assert response.status_code == 401
    if path.startswith("/sms/3/"):
        assert response.json() == {
            "errorCode": "E401",
            "description": "Unauthorized access.",
            "action": "Check the API key.",
            "violations": [],
            "resources": [],
        }
    else:  # legacy everywhere else, the People v3 upsert included
        assert response.json() == UNAUTHORIZED


def test_second_key_is_accepted_and_scheme_is_case_insensitive(api: Api) -> None:
    assert api.get("/account/1/balance", auth={"Authorization": "app other-key"}).status_code == 200


def test_create_list_returns_new_ids(api: Api) -> None:
    first, second = new_list(api, "a"), new_list(api, "a")
    assert first != second
    state = api.admin("GET", "/state")
    assert [(lst["listId"], lst["name"]) for lst in state["lists"]] == [(first, "a"), (second, "a")]


@pytest.mark.parametrize(
    "body", [{}, {"name": ""}, {"name": "   "}, {"name": 3}, {"nom": "x"}, ["x"]], ids=lambda b: repr(b)
)
def test_create_list_without_name_is_legacy_400(api: Api, body) -> None:
    response = api.post(LISTS, json=body)
    assert response.status_code == 400
    assert response.json() == {
        "requestError": {
            "serviceException": {
                "messageId": "BAD_REQUEST",
                "text": "Bad request",
                "validationErrors": {"name": ["property not found or blank"]},
            }
        }
    }


def test_create_list_with_malformed_json_is_400(api: Api) -> None:
    response = api.post(LISTS, content=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["requestError"]["serviceException"]["messageId"] == "BAD_REQUEST"


def test_add_counts_created_modified_and_reports_invalid_emails(api: Api) -> None:
    list_id = new_list(api)
    first = api.post(f"{LISTS}/{list_id}/add", json={"userIds": ["ana@x.com", "bo@x.com"]})
    assert first.json() == {"modifiedCount": 0, "createdCount": 2}
    second = api.post(
        f"{LISTS}/{list_id}/add",
        json={"userIds": ["Ana@X.com", "cy@x.com", "invalid_mail.com", "a b@x.com", 7]},
    )
    assert second.status_code == 200
    assert second.json() == {
        "modifiedCount": 1,
        "createdCount": 1,
        "errors": {"count": 3, "failed": {"VALIDATION_ERROR": ["invalid_mail.com", "a b@x.com", "7"]}},
    }
    members = api.admin("GET", "/state")["lists"][0]["members"]
    assert members == ["ana@x.com", "bo@x.com", "cy@x.com"]


def test_remove_answers_empty_body_and_removes_members(api: Api) -> None:
    list_id = new_list(api)
    api.post(f"{LISTS}/{list_id}/add", json={"userIds": ["ana@x.com", "bo@x.com"]})
    response = api.post(f"{LISTS}/{list_id}/remove", json={"userIds": ["ANA@x.com", "nobody@x.com", "junk"]})
    assert response.status_code == 200
    assert response.content == b""
    assert api.admin("GET", "/state")["lists"][0]["members"] == ["bo@x.com"]


@pytest.mark.parametrize("action", ["add", "remove"])
@pytest.mark.parametrize("list_id", ["87881", "abc"])
def test_unknown_list_is_tag_not_found(api: Api, action: str, list_id: str) -> None:
    response = api.post(f"{LISTS}/{list_id}/{action}", json={"userIds": ["ana@x.com"]})
    assert response.status_code == 400
    assert response.json() == {
        "statusCode": "TAG_NOT_FOUND",
        "message": f'Tag with id "{list_id}" does not exist',
    }


@pytest.mark.parametrize("action", ["add", "remove"])
@pytest.mark.parametrize(
    "user_ids",
    [
        pytest.param([], id="empty"),
        pytest.param("a@x.com", id="not-a-list"),
        pytest.param(None, id="missing"),
    ],
)
def test_add_remove_need_a_list_of_ids(api: Api, action: str, user_ids) -> None:
    list_id = new_list(api)
    body = {} if user_ids is None else {"userIds": user_ids}
    response = api.post(f"{LISTS}/{list_id}/{action}", json=body)
    assert response.status_code == 400
    assert "userIds" in response.json()["requestError"]["serviceException"]["validationErrors"]


@pytest.mark.parametrize("action", ["add", "remove"])
def test_at_most_1000_ids_per_request(api: Api, action: str) -> None:
    list_id = new_list(api)
    ids = [f"u{i}@x.com" for i in range(1001)]
    too_many = api.post(f"{LISTS}/{list_id}/{action}", json={"userIds": ids})
    assert too_many.status_code == 400
    assert api.post(f"{LISTS}/{list_id}/{action}", json={"userIds": ids[:1000]}).status_code == 200


def test_unknown_path_is_legacy_404(api: Api) -> None:
    response = api.get("/saas/amplitude/1/nothing")
    assert response.status_code == 404
    assert response.json()["requestError"]["serviceException"]["messageId"] == "NOT_FOUND"
