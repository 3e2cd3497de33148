"""The return path's pure part: bounce classes, opt-out words, People rows and keyset filters."""

from __future__ import annotations

import json

import pytest

from infobip_provider.outcomes import (
    PERSON_COLUMNS,
    PeopleCursor,
    attribute_columns,
    email_bounce_class,
    message_timestamp,
    opt_out_word,
    opt_out_words,
    people_filter,
    person_row,
    report_row,
    sms_bounce_class,
)
from infobip_provider.sandbox.people_filter import compile_filter

DELIVERED = {"groupId": 3, "groupName": "DELIVERED"}
UNDELIVERABLE = {"groupId": 2, "groupName": "UNDELIVERABLE"}
EXPIRED = {"groupId": 4, "groupName": "EXPIRED"}
REJECTED = {"groupId": 5, "groupName": "REJECTED"}
PENDING = {"groupId": 1, "groupName": "PENDING"}
OK = {"groupId": 0, "groupName": "OK", "permanent": False}


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        pytest.param(DELIVERED, OK, "delivered", id="delivered"),
        pytest.param(PENDING, OK, "pending", id="pending"),
        pytest.param(None, None, "pending", id="no-status"),
        pytest.param(REJECTED, OK, "dropped", id="rejected-is-dropped"),
        pytest.param(
            UNDELIVERABLE, {"groupName": "HANDSET_ERRORS", "permanent": True}, "hard_bounce", id="hard"
        ),
        pytest.param(
            UNDELIVERABLE, {"groupName": "HANDSET_ERRORS", "permanent": False}, "soft_bounce", id="soft"
        ),
        pytest.param(
            EXPIRED, {"groupName": "HANDSET_ERRORS", "permanent": False}, "soft_bounce", id="expired"
        ),
        pytest.param(
            UNDELIVERABLE, {"groupName": "USER_ERRORS", "permanent": True}, "hard_bounce", id="user"
        ),
    ],
)
def test_sms_bounce_class_follows_error_permanent(status, error, expected):
    assert sms_bounce_class(status, error) == expected


@pytest.mark.parametrize(
    ("group", "name", "expected"),
    [
        ("DROPPED", "EC_SPAM_DETECTED", "spam_bounce"),
        ("DROPPED", "EC_SUPPRESSED_SPAM_COMPLAINT", "spam_bounce"),
        ("DROPPED", "EC_SUPPRESSED_BOUNCE", "spam_bounce"),
        ("DROPPED", "EC_ANYTHING_ELSE", "dropped"),
        ("HANDSET_ERRORS", "EC_WHATEVER", "hard_bounce"),
        ("BOUNCED", "EC_SENDER_IP_BLACKLISTED", "spam_bounce"),
        ("BOUNCED", "EC_BLOCKED_AS_SPAM", "spam_bounce"),
        ("BOUNCED", "EC_SPAM_REVERTED", "spam_bounce"),
        ("BOUNCED", "EC_RECIPIENT_INBOX_FULL", "soft_bounce"),
        ("BOUNCED", "EC_SOFT_BOUNCE", "soft_bounce"),
        ("BOUNCED", "EC_OTHER", "hard_bounce"),
        ("USER_ERRORS", "EC_X", "hard_bounce"),
        ("OPERATOR_ERRORS", "EC_Y", "hard_bounce"),
    ],
)
def test_email_bounce_class_is_synerise_mapping(group, name, expected):
    assert email_bounce_class(UNDELIVERABLE, {"groupName": group, "name": name}) == expected


def test_email_without_error_uses_status():
    assert email_bounce_class(DELIVERED, OK) == "delivered"
    assert email_bounce_class(PENDING, OK) == "pending"


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        pytest.param({"keyword": "STOP", "text": "STOP"}, "STOP", id="keyword"),
        pytest.param({"keyword": "", "text": "stop."}, "STOP", id="first-word-any-case"),
        pytest.param({"text": "Unsubscribe me please"}, "UNSUBSCRIBE", id="first-of-several"),
        pytest.param({"text": "  quit"}, "QUIT", id="leading-space"),
        pytest.param({"text": "please stop"}, None, id="not-first-word"),
        pytest.param({"keyword": "PROMO", "text": "PROMO stop"}, None, id="other-keyword"),
        pytest.param({"text": "Arrêt"}, "ARRÊT", id="configured-word"),
        pytest.param({"text": ""}, None, id="empty"),
    ],
)
def test_opt_out_word(item, expected):
    assert opt_out_word(item, opt_out_words(["arrêt"])) == expected


def test_person_row_flattens_a_person():
    person = {
        "id": 7,
        "externalId": "c-7",
        "type": "CUSTOMER",
        "firstName": "Ana",
        "tags": ["VIP", "Beta"],
        "customAttributes": {"plan": "pro", "score": 3},
        "contactInformation": {"email": [{"address": "a@x.com"}], "phone": [{"number": "41790000007"}]},
        "createdAt": "2026-01-01T10:00:00",
        "modifiedAt": "2026-01-02T11:00:00",
    }
    columns = attribute_columns({"plan": "plan_name"})
    row = dict(
        zip([c for c, _ in PERSON_COLUMNS] + ["plan_name"], person_row(person, "now", columns), strict=True)
    )
    assert row["id"] == 7 and row["external_id"] == "c-7" and row["first_name"] == "Ana"
    assert json.loads(row["emails"]) == ["a@x.com"] and json.loads(row["phones"]) == ["41790000007"]
    assert json.loads(row["tags"]) == ["VIP", "Beta"]
    assert json.loads(row["custom_attributes"]) == {"plan": "pro", "score": 3}
    assert row["modified_at"] == "2026-01-02 11:00:00" and row["plan_name"] == "pro"
    assert row["last_name"] is None


@pytest.mark.parametrize("bad", [["id"], {"plan": "drop table"}, ["a", "A"]])
def test_attribute_columns_refuse_bad_names(bad):
    with pytest.raises(ValueError, match="custom attribute column"):
        attribute_columns(bad)


def _people():
    people = []
    for i in range(1, 13):
        people.append({"id": i, "modifiedAt": f"2026-01-01T00:00:0{i % 3}", "tags": ["VIP"] if i % 2 else []})
    return people


def test_keyset_filter_walks_ties_without_gaps_or_repeats():
    people = _people()
    seen: list[int] = []
    cursor = None
    while True:
        predicate = compile_filter(people_filter([], cursor)) if cursor else (lambda p: True)
        page = sorted((p for p in people if predicate(p)), key=lambda p: (p["modifiedAt"], p["id"]))[:2]
        if not page:
            break
        seen.extend(p["id"] for p in page)
        cursor = PeopleCursor(page[-1]["modifiedAt"], page[-1]["id"])
    assert sorted(seen) == list(range(1, 13)) and len(seen) == 12


def test_filter_with_tags_and_an_unsettled_cursor():
    spec = people_filter(["VIP", "Beta"], PeopleCursor("2026-01-01T00:00:01", None))
    predicate = compile_filter(spec)
    chosen = {p["id"] for p in _people() if predicate(p)}
    assert chosen == {i for i in range(1, 13) if i % 2 and i % 3 >= 1}
    assert people_filter([], None) is None


def test_cursor_settles_only_after_infobip_passed_its_second():
    cursor = PeopleCursor("2026-01-01T00:00:05", 42)
    assert cursor.settled("2026-01-01T00:00:06") == cursor
    assert cursor.settled("2026-01-01T00:00:05") == PeopleCursor("2026-01-01T00:00:05", None)
    assert cursor.settled(None).person_id is None


def test_report_row_from_a_log_item_and_timestamps():
    item = {
        "messageId": "m1",
        "destination": "41790000001",
        "status": UNDELIVERABLE,
        "error": {"groupName": "HANDSET_ERRORS", "name": "EC_UNKNOWN_SUBSCRIBER", "permanent": True},
        "sentAt": "2026-11-23T09:00:00.120+0100",
        "price": {"pricePerMessage": 0.01, "currency": "EUR"},
    }
    row = report_row("sms", item, source="logs", collected_at="now")
    assert row[:4] == ("sms", "m1", None, "41790000001")
    assert row[5] == "2026-11-23 08:00:00.120"
    assert row[11] is True and row[12] == "hard_bounce" and row[17] == "logs"
    assert message_timestamp("nonsense") is None
