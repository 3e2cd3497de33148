"""Contract tests: SMS send, logs, reports (handed out once), preview and segment counting."""

from __future__ import annotations

import pytest

from infobip_provider.sandbox.segments import count_segments
from tests.sandbox.conftest import Api

SEND = "/sms/3/messages"


def message(*numbers: str, text: str = "Hi Ana", sender: str | None = "InfoSMS", **extra) -> dict:
    msg: dict = {"destinations": [{"to": n} for n in numbers], "content": {"text": text}, **extra}
    if sender is not None:
        msg["sender"] = sender
    return msg


def send(api: Api, *messages: dict, **options) -> dict:
    response = api.post(SEND, json={"messages": list(messages), "options": options})
    assert response.status_code == 200, response.text
    return response.json()


def violations(response) -> list[str]:
    body = response.json()
    assert body["errorCode"] == "E400"
    assert set(body) == {"errorCode", "description", "action", "violations", "resources"}
    return [v["property"] for v in body["violations"]]


def test_send_keeps_client_ids_and_answers_pending(api: Api) -> None:
    msg = {
        "sender": "InfoSMS",
        "destinations": [{"to": "+41793026727", "messageId": "m-1"}, {"to": "41793026728"}],
        "content": {"text": "Hi Ana", "transliteration": "NONE", "language": {"languageCode": "NONE"}},
        "options": {"platform": {"entityId": "e", "applicationId": "a"}, "campaignReferenceId": "c-1"},
        "webhooks": {"callbackData": "cb"},
    }
    answer = send(api, msg, schedule={"bulkId": "bulk-1"}, includeSmsCountInResponse=True)
    assert answer["bulkId"] == "bulk-1"
    first, second = answer["messages"]
    assert (first["messageId"], first["destination"]) == ("m-1", "41793026727")
    assert first["status"]["groupName"] == "PENDING" and first["status"]["name"] == "PENDING_ACCEPTED"
    assert first["details"] == {"messageCount": 1}
    assert second["messageId"] and second["messageId"] != "m-1"


def test_send_without_count_flag_has_no_details_and_generates_bulk_id(api: Api) -> None:
    answer = send(api, message("41793026727"))
    assert answer["bulkId"]
    assert "details" not in answer["messages"][0]


def test_same_body_twice_sends_twice(api: Api) -> None:
    body = message("41793026727")
    send(api, body, schedule={"bulkId": "b"})
    send(api, body, schedule={"bulkId": "b"})
    assert len(api.get("/sms/3/logs", params={"bulkId": "b"}).json()["results"]) == 2


@pytest.mark.parametrize(
    ("msg", "options", "prop"),
    [
        pytest.param(message("41793026727", sender="AB"), {}, "messages[0].sender", id="sender-short"),
        pytest.param(message("41793026727", sender="ABCDEFGHIJKL"), {}, "messages[0].sender", id="sender-12"),
        pytest.param(message("41793026727", sender="1" * 17), {}, "messages[0].sender", id="numeric-17"),
        pytest.param(message("41793026727", sender="Shop!"), {}, "messages[0].sender", id="sender-symbol"),
        pytest.param(message("41793026727", text=""), {}, "messages[0].content.text", id="no-text"),
        pytest.param(message(), {}, "messages[0].destinations", id="no-destinations"),
        pytest.param(message("12ab"), {}, "messages[0].destinations[0].to", id="bad-number"),
        pytest.param(
            {**message("41793026727"), "destinations": [{"to": "41793026727", "messageId": "x" * 201}]},
            {},
            "messages[0].destinations[0].messageId",
            id="message-id-201",
        ),
        pytest.param(
            message("41793026727"), {"schedule": {"bulkId": "b" * 101}}, "options.schedule.bulkId", id="bulk"
        ),
        pytest.param(
            message("41793026727"),
            {"schedule": {"sendAt": "2027-07-15T08:00:00.000+0000"}},
            "options.schedule.sendAt",
            id="send-at-181-days",
        ),
        pytest.param(
            message("41793026727"), {"schedule": {"sendAt": "soon"}}, "options.schedule.sendAt", id="when"
        ),
        pytest.param(
            message(
                "41793026727",
                options={
                    "deliveryTimeWindow": {
                        "days": ["MONDAY"],
                        "from": {"hour": 9},
                        "to": {"hour": 9, "minute": 59},
                    }
                },
            ),
            {},
            "messages[0].options.deliveryTimeWindow",
            id="window-59-min",
        ),
        pytest.param(
            message("41793026727", options={"deliveryTimeWindow": {"days": ["FUNDAY"]}}),
            {},
            "messages[0].options.deliveryTimeWindow.days",
            id="window-day",
        ),
        pytest.param(
            message("41793026727", options={"validityPeriod": {"amount": 0, "timeUnit": "HOURS"}}),
            {},
            "messages[0].options.validityPeriod",
            id="validity",
        ),
    ],
)
def test_send_validation_is_e400_with_violations(api: Api, msg: dict, options: dict, prop: str) -> None:
    response = api.post(SEND, json={"messages": [msg], "options": options})
    assert response.status_code == 400
    assert prop in violations(response)
    assert api.admin("GET", "/state")["messages"] == []


@pytest.mark.parametrize(
    ("sender", "window"),
    [
        (
            "InfoSMS",
            {"days": ["MONDAY", "FRIDAY"], "from": {"hour": 9, "minute": 0}, "to": {"hour": 10, "minute": 0}},
        ),
        ("Shop 24", None),
        ("385", None),
        ("+" + "1" * 16, None),
    ],
)
def test_send_accepts_boundary_values(api: Api, sender: str, window: dict | None) -> None:
    options = {"deliveryTimeWindow": window} if window else {}
    send(
        api,
        message("41793026727", sender=sender, options=options),
        schedule={"sendAt": "2027-07-14T08:00:00.000+0000"},
    )


def test_send_without_body_or_messages_is_e400(api: Api) -> None:
    assert violations(api.post(SEND)) == ["body"]
    assert violations(api.post(SEND, json={"messages": []})) == ["messages"]


def test_at_most_1000_messages_times_destinations(api: Api) -> None:
    numbers = [f"4179{i:07d}" for i in range(500)]
    too_many = api.post(SEND, json={"messages": [message(*numbers), message(*numbers, "41790000000")]})
    assert too_many.status_code == 400
    assert "messages" in violations(too_many)
    assert len(send(api, message(*numbers), message(*numbers))["messages"]) == 1000


def test_status_moves_from_pending_to_delivered_or_undeliverable(make_api) -> None:
    api = make_api(delivery_delay=30.0, undeliverable_prefixes=("999", "3859"))
    send(api, message("41793026727", "999123456", "38591000000"), schedule={"bulkId": "b"})
    pending = api.get("/sms/3/logs", params={"bulkId": "b"}).json()["results"]
    assert {r["status"]["groupName"] for r in pending} == {"PENDING"}
    assert all("doneAt" not in r for r in pending)
    assert api.get("/sms/3/reports").json()["results"] == []  # nothing final yet
    api.clock.advance(30)
    final = {r["destination"]: r for r in api.get("/sms/3/logs", params={"bulkId": "b"}).json()["results"]}
    assert final["41793026727"]["status"]["groupName"] == "DELIVERED"
    assert final["41793026727"]["error"]["groupName"] == "OK"
    assert final["999123456"]["status"]["groupName"] == "UNDELIVERABLE"
    assert final["38591000000"]["error"]["permanent"] is True
    assert final["41793026727"]["content"] == {"text": "Hi Ana"}


def test_scheduled_message_is_out_of_the_logs_until_send_at(make_api) -> None:
    api = make_api(delivery_delay=30.0)
    send(api, message("41793026727"), schedule={"bulkId": "later", "sendAt": "2027-01-15T09:00:00.000+0000"})
    send(api, message("41793026728"), schedule={"bulkId": "now"})
    assert [r["bulkId"] for r in api.get("/sms/3/logs").json()["results"]] == ["now"]
    assert api.get("/sms/3/logs", params={"bulkId": "later"}).json()["results"] == []
    api.clock.advance(3600 - 1)  # 08:59:59
    assert api.get("/sms/3/logs", params={"bulkId": "later"}).json()["results"] == []
    api.clock.advance(1)  # 09:00: it leaves, pending until delivered
    (item,) = api.get("/sms/3/logs", params={"bulkId": "later"}).json()["results"]
    assert item["status"]["groupName"] == "PENDING"
    api.clock.advance(30)
    assert api.get("/sms/3/logs").json()["results"][0]["status"]["groupName"] == "DELIVERED"


def test_logs_filter_by_bulk_and_several_message_ids_with_limit(api: Api) -> None:
    send(
        api,
        {
            "destinations": [{"to": "4179000000" + str(i), "messageId": f"m{i}"} for i in range(5)],
            "content": {"text": "x"},
        },
        schedule={"bulkId": "b1"},
    )
    send(api, message("41791111111"), schedule={"bulkId": "b2"})
    picked = api.get("/sms/3/logs", params=[("messageId", "m1"), ("messageId", "m3"), ("messageId", "zz")])
    assert sorted(r["messageId"] for r in picked.json()["results"]) == ["m1", "m3"]
    assert len(api.get("/sms/3/logs", params={"bulkId": "b1"}).json()["results"]) == 5
    unpaged = api.get("/sms/3/logs", params={"bulkId": "b1", "limit": 2}).json()
    assert len(unpaged["results"]) == 2 and "cursor" not in unpaged  # no paging unless asked for


def test_logs_page_only_with_use_cursor(api: Api) -> None:
    send(
        api,
        {
            "destinations": [{"to": f"4179000000{i}", "messageId": f"m{i}"} for i in range(5)],
            "content": {"text": "x"},
        },
        schedule={"bulkId": "b1"},
    )
    seen: list[str] = []
    params: dict[str, object] = {"bulkId": "b1", "limit": 2, "useCursor": "true"}
    pages = 0
    while True:
        page = api.get("/sms/3/logs", params=params).json()
        pages += 1
        seen += [r["messageId"] for r in page["results"]]
        assert page["cursor"]["limit"] == 2
        if "nextCursor" not in page["cursor"]:
            break
        params["cursor"] = page["cursor"]["nextCursor"]
    assert pages == 3 and sorted(seen) == [f"m{i}" for i in range(5)]
    # a cursor without useCursor=true is ignored, as Infobip does: the first page again
    again = api.get("/sms/3/logs", params={"bulkId": "b1", "limit": 2, "cursor": params["cursor"]}).json()
    assert [r["messageId"] for r in again["results"]] == seen[:2]
    bad = api.get("/sms/3/logs", params={"useCursor": "true", "cursor": "not-a-cursor"})
    assert bad.status_code == 400 and "cursor" in violations(bad)


@pytest.mark.parametrize("path", ["/sms/3/logs", "/sms/3/reports"])
@pytest.mark.parametrize("limit", [0, 1001, "many"])
def test_logs_and_reports_limit_is_1_to_1000(api: Api, path: str, limit) -> None:
    response = api.get(path, params={"limit": limit})
    assert response.status_code == 400
    assert "limit" in violations(response)


def test_logs_keep_48_hours(api: Api) -> None:
    send(api, message("41793026727"))
    api.clock.advance(48 * 3600 + 1)
    assert api.get("/sms/3/logs").json()["results"] == []


def test_reports_are_handed_out_once(api: Api) -> None:
    send(api, message("41793026727", "999000111"), schedule={"bulkId": "b"})
    send(api, message("41790000009"), schedule={"bulkId": "other"})
    first = api.get("/sms/3/reports", params={"bulkId": "b", "limit": 1}).json()["results"]
    second = api.get("/sms/3/reports", params={"bulkId": "b"}).json()["results"]
    third = api.get("/sms/3/reports", params={"bulkId": "b"}).json()["results"]
    assert len(first) == len(second) == 1 and third == []
    assert first[0]["messageId"] != second[0]["messageId"]
    item = first[0]
    assert "destination" not in item and item["to"] in ("41793026727", "999000111")
    assert {
        "messageId",
        "to",
        "sentAt",
        "doneAt",
        "messageCount",
        "price",
        "status",
        "error",
    } <= set(item)
    assert item["price"]["currency"] == "EUR"
    assert "content" not in item
    assert len(api.get("/sms/3/reports").json()["results"]) == 1  # the other bulk is still there


def test_report_carries_callback_data_and_log_items_do_not(api: Api) -> None:
    send(api, message("41793026727", webhooks={"callbackData": "row-17"}))
    (log,) = api.get("/sms/3/logs").json()["results"]
    assert "callbackData" not in log and log["destination"] == "41793026727"
    assert api.get("/sms/3/reports").json()["results"][0]["callbackData"] == "row-17"


# ---- preview and segments -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "count", "remaining"),
    [
        ("a" * 160, 1, 0),
        ("a" * 161, 2, 145),
        ("a" * 306, 2, 0),
        ("a" * 307, 3, 152),
        ("€" * 80, 1, 0),  # extension characters count twice
        ("a" * 159 + "€", 2, 145),
        ("a" * 152 + "€" + "a" * 8, 2, 143),  # the escape pair is not split: 152 | 2 + 8
        ("ç" + "a" * 69, 1, 0),  # ç is not GSM-7: UCS-2, 70 per SMS
        ("ç" + "a" * 70, 2, 63),
        ("😀" * 35, 1, 0),  # a surrogate pair counts as two units
        ("😀" * 36, 2, 61),  # a pair is not split either: 33 | 3
        ("Über déjà vu? ÄÖÑÜäöñüà", 1, 160 - 23),  # all GSM-7 basic
    ],
)
def test_segment_counting(api: Api, text: str, count: int, remaining: int) -> None:
    segments = count_segments(text)
    assert (segments.message_count, segments.characters_remaining) == (count, remaining)
    preview = api.post("/sms/1/preview", json={"text": text}).json()
    assert preview["originalText"] == text
    assert preview["previews"][0]["messageCount"] == count
    assert preview["previews"][0]["charactersRemaining"] == remaining


def test_preview_with_transliteration_adds_a_second_preview(api: Api) -> None:
    answer = api.post("/sms/1/preview", json={"text": "Çao ç ş", "transliteration": "TURKISH"}).json()
    original, folded = answer["previews"]
    assert original["configuration"] == {} and original["charactersRemaining"] == 63
    assert folded["configuration"] == {"transliteration": "TURKISH"}
    assert folded["textPreview"] == "Çao c s"
    assert folded["charactersRemaining"] == 153


@pytest.mark.parametrize("body", [{}, {"text": ""}, {"text": 5}])
def test_preview_without_text_is_legacy_400(api: Api, body: dict) -> None:
    response = api.post("/sms/1/preview", json=body)
    assert response.status_code == 400
    assert "text" in response.json()["requestError"]["serviceException"]["validationErrors"]


def test_message_count_of_a_long_send_is_in_logs(api: Api) -> None:
    send(api, message("41793026727", text="x" * 200))
    assert api.get("/sms/3/logs").json()["results"][0]["messageCount"] == 2
