"""The pure email parts: options, sender, placeholders, batching and bodies."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from infobip_provider.email import (
    EmailConfigError,
    EmailOptions,
    EmailRecipient,
    build_body,
    check_sender,
    effective_placeholders,
    fill,
    parse_placeholders,
    placeholder_json,
    plan_batches,
    render_preview,
    tokens,
)

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def options(**kwargs) -> EmailOptions:
    kwargs.setdefault("sender", "Acme <no-reply@acme.example>")
    if "template_id" not in kwargs:
        kwargs.setdefault("subject", "Hi {{first_name}}")
        kwargs.setdefault("html", "<p>{{plan}}</p>")
    return EmailOptions.from_args(now=NOW, **kwargs)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param("Acme <no-reply@acme.example>", "Acme <no-reply@acme.example>", id="name-and-address"),
        pytest.param("  no-reply@acme.example ", "no-reply@acme.example", id="address"),
        pytest.param("<a@b.example>", "a@b.example", id="angle-only"),
    ],
)
def test_sender(given, expected):
    assert check_sender(given) == expected


@pytest.mark.parametrize("bad", ["Acme", "Acme <nobody>", "a@b", ""])
def test_bad_sender(bad):
    with pytest.raises(EmailConfigError, match="sender"):
        check_sender(bad)


def test_every_option_in_infobip_shape():
    opts = options(
        reply_to="Help@Acme.example",
        send_at="2026-03-03T09:00:00Z",
        validity_period="24h",
        delivery_time_window={"days": ["MON"], "from": "09:00", "to": "17:00"},
        track_opens=True,
        track_clicks="false",
        tracking_url="https://t.example/x",
        notify_url="https://hooks.example/dlr",
        intermediate_report=True,
        callback_data="cb",
        campaign_reference_id="spring",
        entity_id="ent",
        application_id="app",
    )
    body = build_body([EmailRecipient("m1", "a@x.example", '{"plan":"pro"}')], opts, "bulk-1")
    assert body == {
        "messages": [
            {
                "sender": "Acme <no-reply@acme.example>",
                "destinations": [
                    {
                        "to": [
                            {
                                "destination": "a@x.example",
                                "messageId": "m1",
                                "placeholders": '{"plan":"pro"}',
                            }
                        ],
                        "replyTo": "help@acme.example",
                    }
                ],
                "content": {"subject": "Hi {{first_name}}", "html": "<p>{{plan}}</p>"},
                "options": {
                    "platform": {"entityId": "ent", "applicationId": "app"},
                    "validityPeriod": {"amount": 24, "timeUnit": "HOURS"},
                    "deliveryTimeWindow": {
                        "days": ["MONDAY"],
                        "from": {"hour": 9, "minute": 0},
                        "to": {"hour": 17, "minute": 0},
                    },
                    "campaignReferenceId": "spring",
                },
                "webhooks": {
                    "delivery": {"url": "https://hooks.example/dlr", "intermediateReport": True},
                    "contentType": "application/json",
                    "callbackData": "cb",
                },
            }
        ],
        "options": {
            "schedule": {"bulkId": "bulk-1", "sendAt": "2026-03-03T09:00:00.000+0000"},
            "tracking": {"trackOpens": True, "trackClicks": False, "trackingUrl": "https://t.example/x"},
        },
    }
    assert opts.deferral == ("send_at", "delivery_time_window")


def test_every_problem_is_listed_at_once():
    with pytest.raises(EmailConfigError, match="4 problem") as err:
        EmailOptions.from_args(now=NOW, subject="x" * 1001, text="t", notify_url="ftp://x", send_at="soon")
    assert "subject" in str(err.value) and "notify_url" in str(err.value) and "send_at" in str(err.value)


def test_a_template_needs_no_sender_and_names_no_tokens():
    opts = EmailOptions.from_args(now=NOW, template_id="42")
    assert opts.content == {"templateId": "42"} and opts.sender is None and opts.inline_tokens == ()
    assert build_body([EmailRecipient("m", "a@x.example")], opts, "b")["messages"][0] == {
        "destinations": [{"to": [{"destination": "a@x.example", "messageId": "m"}]}],
        "content": {"templateId": "42"},
    }


def test_placeholders_from_inline_tokens_and_the_mapping():
    opts = options(text="{{ first_name }} {{#if x}} {{ds.x}}")
    assert tokens(opts.content["text"]) == ("first_name",)
    assert effective_placeholders({"plan": "tier"}, opts) == {"first_name": "first_name", "plan": "tier"}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param(None, {}, id="none"),
        pytest.param("", {}, id="blank"),
        pytest.param('{"name": "first_name"}', {"name": "first_name"}, id="json-text"),
        pytest.param("{'name': 'first_name'}", {"name": "first_name"}, id="literal-text"),
        pytest.param({"name": " first_name "}, {"name": "first_name"}, id="object"),
    ],
)
def test_parse_placeholders(given, expected):
    assert parse_placeholders(given) == expected


@pytest.mark.parametrize("bad", [["a"], {"bad name": "x"}, {"name": ""}, "{broken"])
def test_bad_placeholders(bad):
    with pytest.raises(EmailConfigError):
        parse_placeholders(bad)


def test_placeholder_json_is_a_string_with_empty_text_for_missing_values():
    text = placeholder_json({"a": "Ana €", "b": None, "c": float("nan"), "d": 3})
    assert isinstance(text, str) and json.loads(text) == {"a": "Ana €", "b": "", "c": "", "d": "3"}


def test_batches_keep_order_and_size():
    recipients = [EmailRecipient(str(i), f"{i}@x.example") for i in range(25)]
    assert [len(b) for b in plan_batches(recipients, 10)] == [10, 10, 5]
    assert [r.message_id for b in plan_batches(recipients, 10) for r in b] == [str(i) for i in range(25)]
    with pytest.raises(EmailConfigError):
        plan_batches(recipients, 1001)


def test_preview_fills_the_inline_content():
    opts = options()
    preview = render_preview(EmailRecipient("m", "a@x.example", '{"first_name":"Ana","plan":"pro"}'), opts)
    assert preview == {
        "to": "a@x.example",
        "placeholders": {"first_name": "Ana", "plan": "pro"},
        "subject": "Hi Ana",
        "html": "<p>pro</p>",
    }
    assert fill("{{a}} {{b}}", {"a": 1}) == "1 {{b}}"
