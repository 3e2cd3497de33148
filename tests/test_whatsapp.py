"""The pure WhatsApp parts: options, placeholders in order, empty values, batching and bodies."""

from __future__ import annotations

import pytest

from infobip_provider.whatsapp import (
    WhatsAppChannel,
    WhatsAppConfigError,
    WhatsAppOptions,
    WhatsAppRecipient,
    build_template_body,
    build_text_body,
    parse_placeholders,
    plan_batches,
    template_values,
)


def options(**kwargs) -> WhatsAppOptions:
    kwargs.setdefault("sender", "+447860099299")
    if kwargs.get("mode") != "text":
        kwargs.setdefault("template_name", "order_update")
        kwargs.setdefault("language", "en")
    return WhatsAppOptions.from_args(**kwargs)


def test_template_body_has_every_field_of_the_contract():
    opts = options(
        header={"type": "TEXT", "placeholder": "Spring"},
        buttons="[{'type': 'URL', 'parameter': 'spring'}]",
        notify_url="https://hooks.example/wa",
        callback_data="cb",
        track_clicks=True,
        entity_id="ent",
        application_id="app",
        failover_sender="InfoSMS",
        failover_text="Hi {{first_name}}",
    )
    body = build_template_body(
        [WhatsAppRecipient("m1", "41793026727", ("Ana", "A-17"), failover_text="Hi Ana")], opts, "bulk-1"
    )
    assert body == {
        "messages": [
            {
                "from": "447860099299",
                "to": "41793026727",
                "messageId": "m1",
                "content": {
                    "templateName": "order_update",
                    "templateData": {
                        "body": {"placeholders": ["Ana", "A-17"]},
                        "header": {"type": "TEXT", "placeholder": "Spring"},
                        "buttons": [{"type": "URL", "parameter": "spring"}],
                    },
                    "language": "en",
                },
                "callbackData": "cb",
                "notifyUrl": "https://hooks.example/wa",
                "urlOptions": {"trackClicks": True, "shortenUrl": True},
                "entityId": "ent",
                "applicationId": "app",
                "smsFailover": {"from": "InfoSMS", "text": "Hi Ana"},
            }
        ],
        "bulkId": "bulk-1",
    }
    assert opts.columns == ("first_name",) and opts.send_endpoint == "whatsapp.template"


def test_text_body_is_one_message():
    opts = options(mode="text", text="Hi {{first_name}}")
    assert build_text_body(WhatsAppRecipient("m", "4179", text="Hi Ana"), opts) == {
        "from": "447860099299",
        "to": "4179",
        "messageId": "m",
        "content": {"text": "Hi Ana", "previewUrl": False},
    }
    recipients = [WhatsAppRecipient(str(i), "4179") for i in range(3)]
    assert [len(b) for b in plan_batches(recipients, 1000, "text")] == [1, 1, 1]
    assert [len(b) for b in plan_batches(recipients, 2, "template")] == [2, 1]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"template_name": "Order Update"}, "template_name", id="name"),
        pytest.param({"language": None}, "language", id="language"),
        pytest.param({"sender": "Acme"}, "sender", id="sender"),
        pytest.param({"mode": "voice"}, "mode", id="mode"),
        pytest.param({"failover_sender": "InfoSMS"}, "failover", id="half-failover"),
        pytest.param({"notify_url": "ftp://x"}, "notify_url", id="notify-url"),
        pytest.param({"header": "[1]"}, "header", id="header-not-object"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(WhatsAppConfigError, match=match):
        options(**kwargs)


def test_placeholders_in_order_and_an_empty_one_is_a_reason():
    values = {"first_name": ["Ana", "", None, "Bo"], "order": ["A-1", "A-2", "A-3", " "]}
    out, reasons = template_values(["first_name", "order"], values, 4)
    assert out == [("Ana", "A-1"), None, None, None]
    assert reasons == [
        None,
        "empty placeholder {{1}} (first_name)",
        "empty placeholder {{1}} (first_name)",
        "empty placeholder {{2}} (order)",
    ]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param(None, [], id="none"),
        pytest.param(["a", " b "], ["a", "b"], id="list"),
        pytest.param('["a", "b"]', ["a", "b"], id="json"),
        pytest.param("a, b", ["a", "b"], id="commas"),
    ],
)
def test_parse_placeholders(given, expected):
    assert parse_placeholders(given) == expected


def test_the_channel_has_no_logs():
    channel = WhatsAppChannel(object(), options())
    assert channel.has_logs is False and list(channel.lookup("b", ["m"])) == []
