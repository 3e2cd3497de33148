"""Contract tests: People v2 (get, list, create, PATCH), v3 upsert and tags."""

from __future__ import annotations

import json

import pytest

from tests.sandbox.conftest import Api

PERSONS = "/people/2/persons"
UPSERT = "/people/3/persons/upsert"


def person(email: str | None = None, phone: str | None = None, **fields) -> dict:
    contact: dict = {}
    if email:
        contact["email"] = [{"address": email}]
    if phone:
        contact["phone"] = [{"number": phone}]
    return {**fields, "contactInformation": contact} if contact else fields


def v3_person(email: str | None = None, phone: str | None = None, **fields) -> dict:
    contact = [{"type": "EMAIL", "identifier": email}] if email else []
    contact += [{"type": "PHONE", "identifier": phone}] if phone else []
    return {**fields, "contactInformation": contact} if contact else fields


def create(api: Api, body: dict) -> dict:
    response = api.post(PERSONS, json=body)
    assert response.status_code == 200, response.text
    return response.json()


def validation_errors(response) -> dict:
    return response.json()["requestError"]["serviceException"]["validationErrors"]


# ---- create / get -------------------------------------------------------------------------------
def test_create_normalises_and_stamps(api: Api) -> None:
    created = create(api, person("Ana@X.com", "+41793026727", firstName="Ana", tags=["VIP"]))
    assert created["contactInformation"] == {
        "email": [{"address": "ana@x.com"}],
        "phone": [{"number": "41793026727"}],
    }
    assert created["type"] == "CUSTOMER"
    assert created["createdAt"] == created["modifiedAt"] == "2027-01-15T08:00:00"
    assert api.get("/people/2/tags/VIP").status_code == 200  # tag created on the fly


@pytest.mark.parametrize(
    ("id_type", "identifier"),
    [("EMAIL", "ANA@x.com"), ("PHONE", "+41793026727"), ("EXTERNAL_ID", "crm-1"), ("ID", "1")],
)
def test_get_one_by_each_identifier_type(api: Api, id_type: str, identifier: str) -> None:
    created = create(api, person("ana@x.com", "41793026727", externalId="crm-1"))
    response = api.get(PERSONS, params={"identifier": identifier, "type": id_type})
    assert response.status_code == 200
    assert response.json() == created


def test_get_missing_person_is_404_and_bad_type_is_400(api: Api) -> None:
    missing = api.get(PERSONS, params={"identifier": "no@x.com", "type": "EMAIL"})
    assert missing.status_code == 404
    assert missing.json()["requestError"]["serviceException"]["messageId"] == "NOT_FOUND"
    bad = api.get(PERSONS, params={"identifier": "no@x.com", "type": "MAIL"})
    assert bad.status_code == 400
    assert "type" in validation_errors(bad)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"firstName": "Ana"}, "contactInformation", id="no-identifier"),
        pytest.param(person("not-an-email"), "contactInformation.email", id="bad-email"),
        pytest.param(person(phone="12ab"), "contactInformation.phone", id="bad-phone"),
        pytest.param(person("a@x.com", firstName="x" * 256), "firstName", id="long-first-name"),
        pytest.param(person("a@x.com", middleName="x" * 51), "middleName", id="long-middle-name"),
        pytest.param(person("a@x.com", externalId="x" * 257), "externalId", id="long-external-id"),
        pytest.param(person("a@x.com", country="x" * 51), "country", id="long-country"),
        pytest.param(person("a@x.com", city="x" * 51), "city", id="long-city"),
        pytest.param(person("a@x.com", profilePicture="x" * 2084), "profilePicture", id="long-picture"),
        pytest.param(person("a@x.com", nickName="Ana"), "nickName", id="nick-name-is-v3-only"),
        pytest.param(person("a@x.com", gender="OTHER"), "gender", id="gender"),
        pytest.param(person("a@x.com", type="VIP"), "type", id="type"),
        pytest.param(person("a@x.com", birthDate="1990-02-30"), "birthDate", id="birth-date"),
        pytest.param(person("a@x.com", preferredLanguage="english"), "preferredLanguage", id="language"),
        pytest.param(person("a@x.com", tags=["x" * 257]), "tags", id="long-tag"),
        pytest.param(
            person("a@x.com", customAttributes={"note": "x" * 4097}), "customAttributes.note", id="attr"
        ),
        pytest.param(person("a@x.com", first_name="Ana"), "first_name", id="unknown-field"),
    ],
)
def test_create_validation_errors_name_the_field(api: Api, body: dict, field: str) -> None:
    response = api.post(PERSONS, json=body)
    assert response.status_code == 400
    assert field in validation_errors(response)
    assert api.admin("GET", "/state")["people"] == []


def test_create_accepts_limits_exactly(api: Api) -> None:
    body = person(
        "a@x.com",
        externalId="x" * 256,
        firstName="f" * 255,
        middleName="m" * 50,
        country="c" * 50,
        city="c" * 50,
        profilePicture="https://x.com/" + "p" * 2069,
        preferredLanguage="pt-BR",
        birthDate="1990-02-28",
        customAttributes={"note": "n" * 4096},
        tags=["t" * 256],
        id=99,
        origin="whatever",
    )
    created = create(api, body)
    assert created["id"] != 99  # read-only fields are ignored
    assert created["origin"] == "API"


def test_create_conflicting_identifier_is_409(api: Api) -> None:
    create(api, person("ana@x.com"))
    response = api.post(PERSONS, json=person("ANA@x.com", firstName="Other"))
    assert response.status_code == 409
    assert response.json()["requestError"]["serviceException"]["messageId"] == "CONFLICT"


# ---- PATCH --------------------------------------------------------------------------------------
def test_patch_keeps_omitted_fields_appends_tags_and_touches_modified_at(api: Api) -> None:
    create(
        api, person("ana@x.com", firstName="Ana", lastName="Lee", tags=["A"], customAttributes={"plan": "x"})
    )
    api.clock.advance(61)
    response = api.patch(
        PERSONS,
        params={"identifier": "ana@x.com", "type": "EMAIL"},
        json={"lastName": "Ng", "tags": ["B"], "customAttributes": {"score": 3}, "firstName": None},
    )
    assert response.status_code == 200
    updated = response.json()
    assert (updated["firstName"], updated["lastName"]) == ("Ana", "Ng")
    assert updated["tags"] == ["A", "B"]
    assert updated["customAttributes"] == {"plan": "x", "score": 3}
    assert updated["modifiedAt"] == "2027-01-15T08:01:01"
    assert updated["createdAt"] == "2027-01-15T08:00:00"


def test_patch_without_change_keeps_modified_at(api: Api) -> None:
    create(api, person("ana@x.com", firstName="Ana"))
    api.clock.advance(5)
    response = api.patch(
        PERSONS, params={"identifier": "ana@x.com", "type": "EMAIL"}, json={"firstName": "Ana"}
    )
    assert response.json()["modifiedAt"] == "2027-01-15T08:00:00"


def test_patch_errors(api: Api) -> None:
    create(api, person("ana@x.com"))
    create(api, person("bo@x.com"))
    where = {"identifier": "ana@x.com", "type": "EMAIL"}
    assert api.patch(PERSONS, params={"identifier": "zz@x.com", "type": "EMAIL"}, json={}).status_code == 404
    assert api.patch(PERSONS, params=where, json={"gender": "X"}).status_code == 400
    assert api.patch(PERSONS, params=where, json=person("bo@x.com")).status_code == 409


# ---- list ---------------------------------------------------------------------------------------
@pytest.fixture
def crowd(api: Api) -> Api:
    """Four people created one minute apart."""
    rows = [
        person("ana@x.com", firstName="Ana", tags=["VIP", "EU"], customAttributes={"score": 10}),
        person("bob@y.org", firstName="Bob", tags=["EU"], customAttributes={"score": 3}),
        person(phone="41790000001", firstName="Cy", tags=[]),
        person("dee@x.com", externalId="crm-4", firstName="Dee", tags=["VIP"]),
    ]
    for row in rows:
        create(api, row)
        api.clock.advance(60)
    return api


def listed(api: Api, **params) -> list[str]:
    if "filter" in params:
        params["filter"] = json.dumps(params["filter"])
    response = api.get(PERSONS, params=params)
    assert response.status_code == 200, response.text
    return [p["firstName"] for p in response.json()["persons"]]


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"#contains": {"tags": "VIP"}}, ["Ana", "Dee"]),
        ({"#contains": {"tags": "VI"}}, []),  # tags match whole names
        ({"#notContain": {"tags": "VIP"}}, ["Bob", "Cy"]),
        ({"#contains": {"firstName": "e"}}, ["Dee"]),
        ({"#eq": {"firstName": "Bob"}}, ["Bob"]),
        ({"#ne": {"firstName": "Bob"}}, ["Ana", "Cy", "Dee"]),
        ({"#startsWith": {"email": "bo"}}, ["Bob"]),
        ({"#endsWith": {"email": "@x.com"}}, ["Ana", "Dee"]),
        ({"#eq": {"phone": "41790000001"}}, ["Cy"]),
        ({"#eq": {"externalId": "crm-4"}}, ["Dee"]),
        ({"#gt": {"modifiedAt": "2027-01-15T08:01:00"}}, ["Cy", "Dee"]),
        ({"#gte": {"modifiedAt": "2027-01-15T08:01:00"}}, ["Bob", "Cy", "Dee"]),
        ({"#lt": {"createdAt": "2027-01-15T08:01:00"}}, ["Ana"]),
        ({"#lte": {"createdAt": "2027-01-15T08:01:00"}}, ["Ana", "Bob"]),
        ({"#gt": {"score": 5}}, ["Ana"]),
        ({"#gte": {"customAttributes.score": 3}}, ["Ana", "Bob"]),
        ({"#and": [{"#contains": {"tags": "EU"}}, {"#gt": {"modifiedAt": "2027-01-15T08:00:30"}}]}, ["Bob"]),
        ({"#or": [{"#eq": {"firstName": "Cy"}}, {"#contains": {"tags": "VIP"}}]}, ["Ana", "Cy", "Dee"]),
    ],
    ids=lambda v: json.dumps(v) if isinstance(v, dict) else None,
)
def test_list_filter_operators(crowd: Api, flt: dict, expected: list[str]) -> None:
    assert listed(crowd, filter=flt) == expected


def test_list_pages_and_orders(crowd: Api) -> None:
    assert listed(crowd, limit=2, page=1) == ["Ana", "Bob"]
    assert listed(crowd, limit=2, page=2) == ["Cy", "Dee"]
    assert listed(crowd, limit=2, page=3) == []
    assert listed(crowd, orderBy="modifiedAt:desc") == ["Dee", "Cy", "Bob", "Ana"]
    assert listed(crowd, orderBy="firstName:asc") == ["Ana", "Bob", "Cy", "Dee"]
    answer = crowd.get(PERSONS, params={"limit": 3, "page": 2}).json()
    assert (answer["limit"], answer["page"], len(answer["persons"])) == (3, 2, 1)
    assert crowd.get(PERSONS).json()["limit"] == 20


def test_incremental_sync_sees_only_later_changes(crowd: Api) -> None:
    crowd.clock.advance(60)
    crowd.patch(PERSONS, params={"identifier": "bob@y.org", "type": "EMAIL"}, json={"lastName": "Changed"})
    flt = {"#gt": {"modifiedAt": "2027-01-15T08:03:30"}}
    assert listed(crowd, filter=flt, orderBy="modifiedAt:asc") == ["Bob"]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 1001},
        {"limit": 0},
        {"limit": "x"},
        {"page": 0},
        {"filter": "{broken"},
        {"filter": json.dumps({"#like": {"firstName": "A"}})},
        {"filter": json.dumps({"#and": []})},
        {"filter": json.dumps({"#eq": {"firstName": ["A"]}})},
        {"orderBy": "modifiedAt:sideways"},
    ],
    ids=lambda p: json.dumps(p),
)
def test_list_rejects_bad_parameters(crowd: Api, params: dict) -> None:
    response = crowd.get(PERSONS, params=params)
    assert response.status_code == 400
    assert validation_errors(response)


def test_list_limit_1000_is_allowed(crowd: Api) -> None:
    assert len(listed(crowd, limit=1000)) == 4


# ---- upsert v3 ----------------------------------------------------------------------------------
def test_upsert_creates_updates_and_reports_per_index(api: Api) -> None:
    create(api, person("ana@x.com", firstName="Ana", tags=["OLD"]))
    create(api, person(phone="41790000002", firstName="Phone"))
    create(api, person(externalId="crm-9", firstName="Ext"))
    api.clock.advance(120)
    batch = [
        v3_person("ANA@x.com", lastName="Lee", tags=["NEW"]),  # match by email: UPDATED, tags appended
        v3_person(phone="+41790000002", firstName="Phone"),  # match by phone, nothing new
        v3_person(externalId="crm-9", firstName="Ext2"),  # match by external id
        v3_person("new@x.com", firstName="New", type="LEAD"),  # CREATED
        v3_person("bad-email"),  # invalid
        {"firstName": "Nobody"},  # no identifier
        v3_person("ana@x.com", phone="41790000002"),  # identifiers of two different people
    ]
    response = api.patch(UPSERT, json={"persons": batch})
    assert response.status_code == 207
    answer = response.json()
    statuses = {r["index"]: r["status"] for r in answer["results"]}
    assert statuses == {0: "UPDATED", 1: "NOT_MODIFIED", 2: "UPDATED", 3: "CREATED"}
    assert [(e["index"], e["code"]) for e in answer["errors"]] == [(4, 400105), (5, 400105), (6, 400106)]
    assert all(e["details"] and "property" in e["details"][0] for e in answer["errors"])
    ana = api.get(PERSONS, params={"identifier": "ana@x.com", "type": "EMAIL"}).json()
    assert ana["tags"] == ["OLD", "NEW"]
    assert (ana["firstName"], ana["lastName"], ana["modifiedAt"]) == ("Ana", "Lee", "2027-01-15T08:02:00")
    new = api.get(PERSONS, params={"identifier": "new@x.com", "type": "EMAIL"}).json()
    assert (new["id"], new["type"]) == (answer["results"][3]["id"], "LEAD")


@pytest.mark.parametrize("language", ["en", "en-GB", "en-gb", "EN-gb"])
def test_preferred_language_is_case_insensitive(api: Api, language: str) -> None:
    assert create(api, person("a@x.com", preferredLanguage=language))["preferredLanguage"] == language
    response = api.patch(UPSERT, json={"persons": [v3_person("b@x.com", preferredLanguage=language)]})
    assert response.json()["errors"] == []


def test_upsert_takes_nick_name_as_a_standard_field_of_at_most_50(api: Api) -> None:
    batch = [v3_person("a@x.com", nickName="n" * 50), v3_person("b@x.com", nickName="n" * 51)]
    answer = api.patch(UPSERT, json={"persons": batch}).json()
    assert [r["index"] for r in answer["results"]] == [0]
    assert [(e["index"], e["details"][0]["property"]) for e in answer["errors"]] == [(1, "nickName")]
    stored = api.get(PERSONS, params={"identifier": "a@x.com", "type": "EMAIL"}).json()
    assert stored["nickName"] == "n" * 50 and stored["customAttributes"] == {}


@pytest.mark.parametrize(
    "body",
    [{"persons": []}, {"persons": [v3_person(f"p{i}@x.com") for i in range(1001)]}, {}, {"persons": "x"}],
    ids=["empty", "1001", "missing", "not-a-list"],
)
def test_upsert_batch_size_is_v3_400(api: Api, body: dict) -> None:
    response = api.patch(UPSERT, json=body)
    assert response.status_code == 400
    answer = response.json()
    assert answer["code"] == 400104
    assert answer["details"][0]["property"] == "persons"


def test_upsert_accepts_1000(api: Api) -> None:
    response = api.patch(UPSERT, json={"persons": [v3_person(f"p{i}@x.com") for i in range(1000)]})
    assert response.status_code == 207
    assert len(response.json()["results"]) == 1000


# ---- tags ---------------------------------------------------------------------------------------
def test_tag_create_get_and_errors(api: Api) -> None:
    created = api.post("/people/2/tags", json={"name": "VIP clients"})
    assert created.status_code == 200
    body = created.json()
    assert set(body) == {"id", "name", "createdAt", "modifiedAt"}
    assert api.get("/people/2/tags/VIP%20clients").json() == body
    assert api.post("/people/2/tags", json={"name": "VIP clients"}).status_code == 409
    assert api.get("/people/2/tags/unknown").status_code == 404
    assert api.post("/people/2/tags", json={"name": "x" * 257}).status_code == 400
    assert api.post("/people/2/tags", json={"name": "x" * 256}).status_code == 200
    assert api.post("/people/2/tags", json={}).status_code == 400


def test_tag_names_with_slashes_round_trip(api: Api) -> None:
    assert api.post("/people/2/tags", json={"name": "a/b"}).status_code == 200
    assert api.get("/people/2/tags/a%2Fb").json()["name"] == "a/b"


def _queries(*pairs: tuple[str, str]) -> dict:
    return {"people": [{"query": {"type": t, "identifier": i}} for t, i in pairs]}


def test_tag_add_and_remove_for_many_people(api: Api) -> None:
    create(api, person("ana@x.com"))
    create(api, person(phone="41790000003"))
    api.post("/people/2/tags", json={"name": "Churn"})
    path = "/people/2/tags/Churn/persons"
    added = api.patch(
        path, json=_queries(("EMAIL", "ana@x.com"), ("PHONE", "41790000003"), ("EMAIL", "ghost@x.com"))
    )
    assert added.status_code == 200
    tagged = {p["id"] for p in api.admin("GET", "/state")["people"] if "Churn" in p["tags"]}
    assert len(tagged) == 2
    removed = api.delete(path, json=_queries(("EMAIL", "ana@x.com")))
    assert removed.status_code == 200
    people = api.admin("GET", "/state")["people"]
    assert [("Churn" in p["tags"]) for p in people] == [False, True]
    assert len(people) == 2  # removing a tag never deletes a person


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
def test_tag_membership_errors(api: Api, method: str) -> None:
    assert (
        api.call(method, "/people/2/tags/Nope/persons", json=_queries(("EMAIL", "a@x.com"))).status_code
        == 404
    )
    api.post("/people/2/tags", json={"name": "T"})
    path = "/people/2/tags/T/persons"
    assert api.call(method, path, json={"people": []}).status_code == 400
    too_many = {"people": [{"query": {"type": "EMAIL", "identifier": f"{i}@x.com"}} for i in range(1001)]}
    assert api.call(method, path, json=too_many).status_code == 400
    assert api.call(method, path, json=_queries(("MAIL", "a@x.com"))).status_code == 400
    assert api.call(method, path, json={"people": too_many["people"][:1000]}).status_code == 200
