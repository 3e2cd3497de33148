"""The pure SMS building blocks: segments, templating, options, ids, batching, bodies, the ledger."""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infobip_provider.engines.broadcast import broadcast_bulk_id, fold_ledger, message_id
from infobip_provider.sms import (
    GSM7,
    GSM7_BASIC_CHARS,
    GSM7_EXTENSION_CHARS,
    UCS2,
    MessageTemplate,
    Recipient,
    SmsConfigError,
    SmsOptions,
    TemplateError,
    answer_statuses,
    batch_ids,
    build_body,
    check_sender,
    count_segments,
    describe_character,
    plan_batches,
    protect_tokens,
)

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


# ------------------------------------------------------------------------------------------ segments
def reference_segments(text: str) -> tuple[str, int, int]:
    """An obviously-correct (slow) GSM 03.38 counter: (encoding, length, segments)."""
    basic = set(GSM7_BASIC_CHARS)
    extension = set(GSM7_EXTENSION_CHARS)
    if not text:
        return GSM7, 0, 0
    if all(c in basic or c in extension for c in text):
        sizes, single, part, encoding = [2 if c in extension else 1 for c in text], 160, 153, GSM7
    else:
        sizes = [len(c.encode("utf-16-le")) // 2 for c in text]
        single, part, encoding = 70, 67, UCS2
    total = sum(sizes)
    if total <= single:
        return encoding, total, 1
    parts, used = 1, 0
    for size in sizes:
        if used + size > part:
            parts, used = parts + 1, 0
        used += size
    return encoding, total, parts


SEGMENT_TABLE = [
    pytest.param("", GSM7, 0, 0, (), id="empty"),
    pytest.param("Hello", GSM7, 5, 1, (), id="plain"),
    pytest.param("a" * 160, GSM7, 160, 1, (), id="gsm-160-one-part"),
    pytest.param("a" * 161, GSM7, 161, 2, (), id="gsm-161-two-parts"),
    pytest.param("a" * 306, GSM7, 306, 2, (), id="gsm-306-two-full-parts"),
    pytest.param("a" * 307, GSM7, 307, 3, (), id="gsm-307-three-parts"),
    pytest.param("€" * 80, GSM7, 160, 1, (), id="euro-80-counts-twice"),
    pytest.param("€" * 81, GSM7, 162, 2, (), id="euro-81-two-parts"),
    pytest.param("a" * 159 + "€", GSM7, 161, 2, (), id="extension-pushes-over-160"),
    pytest.param("a" * 152 + "€" + "a" * 152, GSM7, 306, 3, (), id="escape-never-split-across-parts"),
    pytest.param("{}[]~|^\\€", GSM7, 18, 1, (), id="every-extension-char"),
    pytest.param("page\fbreak", GSM7, 11, 1, (), id="form-feed-is-extension"),
    pytest.param("line\r\nbreak", GSM7, 11, 1, (), id="cr-lf"),
    pytest.param("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà", GSM7, 42, 1, (), id="gsm-basic-specials"),
    pytest.param("Façade", UCS2, 6, 1, ("ç",), id="lowercase-c-cedilla-is-not-gsm"),
    pytest.param("FAÇADE", GSM7, 6, 1, (), id="capital-c-cedilla-is-gsm"),
    pytest.param("run `ls`", UCS2, 8, 1, ("`",), id="backtick-is-not-gsm"),
    pytest.param("It’s here", UCS2, 9, 1, ("’",), id="curly-apostrophe"),
    pytest.param("Merhaba Şükrü, Iğdır", UCS2, 20, 1, ("Ş", "ğ", "ı"), id="turkish"),
    pytest.param("Привет, мир", UCS2, 11, 1, ("П", "р", "и", "в", "е", "т", "м"), id="cyrillic"),
    pytest.param("ΔΦΓΛΩ", GSM7, 5, 1, (), id="greek-capitals-in-gsm"),
    pytest.param("αβγ", UCS2, 3, 1, ("α", "β", "γ"), id="greek-lowercase"),
    pytest.param("😀", UCS2, 2, 1, ("😀",), id="emoji-two-units"),
    pytest.param("😀" * 35, UCS2, 70, 1, ("😀",), id="emoji-70-units-one-part"),
    pytest.param("😀" * 36, UCS2, 72, 2, ("😀",), id="emoji-72-units"),
    pytest.param("ş" * 70, UCS2, 70, 1, ("ş",), id="ucs2-70-one-part"),
    pytest.param("ş" * 71, UCS2, 71, 2, ("ş",), id="ucs2-71-two-parts"),
    pytest.param("ş" * 134, UCS2, 134, 2, ("ş",), id="ucs2-134-two-full-parts"),
    pytest.param("ş" * 135, UCS2, 135, 3, ("ş",), id="ucs2-135-three-parts"),
    pytest.param("a" * 66 + "😀" + "a" * 66, UCS2, 134, 3, ("😀",), id="surrogate-never-split"),
    pytest.param("a" * 160 + "😀", UCS2, 162, 3, ("😀",), id="one-emoji-makes-all-ucs2"),
    pytest.param("Hi\u00a0Ana", UCS2, 6, 1, ("\u00a0",), id="no-break-space"),
]


@pytest.mark.parametrize(("text", "encoding", "length", "segments", "ucs2"), SEGMENT_TABLE)
def test_segment_table(text, encoding, length, segments, ucs2):
    count = count_segments(text)
    assert (count.encoding, count.length, count.segments) == (encoding, length, segments)
    assert count.ucs2_characters == ucs2
    assert reference_segments(text) == (encoding, length, segments)


def test_remaining_characters_in_the_last_part():
    assert count_segments("a" * 150).remaining == 10
    assert count_segments("a" * 200).remaining == 306 - 200
    assert count_segments("ş" * 60).remaining == 10


def test_ucs2_characters_are_named_readably():
    assert describe_character("ş") == "'ş' U+015F LATIN SMALL LETTER S WITH CEDILLA"
    assert describe_character("\u00a0") == "U+00A0 NO-BREAK SPACE"  # invisible: no glyph shown


GSM_HEAVY = st.text(alphabet=st.sampled_from(list(GSM7_BASIC_CHARS + GSM7_EXTENSION_CHARS)), max_size=400)
ANY_TEXT = st.text(
    alphabet=st.one_of(
        st.sampled_from(list(GSM7_BASIC_CHARS + GSM7_EXTENSION_CHARS)), st.sampled_from(list("şç’😀Жα🇭🇷"))
    ),
    max_size=300,
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(GSM_HEAVY, ANY_TEXT))
def test_counter_agrees_with_the_reference_and_the_sandbox(text):
    from infobip_provider.sandbox.segments import count_segments as sandbox_count

    ours = count_segments(text)
    assert (ours.encoding, ours.length, ours.segments) == reference_segments(text)
    if text:  # an independent implementation (the sandbox's)
        theirs = sandbox_count(text)
        assert (ours.length, ours.segments) == (theirs.units, theirs.message_count)


# ------------------------------------------------------------------------------------------ templating
def test_template_fields_and_rendering():
    template = MessageTemplate.parse("Hi {{first_name}}, order {{ order_id }} for {{first_name}}")
    assert template.fields == ("first_name", "order_id")
    assert template.render({"first_name": "Ana", "order_id": "A-17"}) == "Hi Ana, order A-17 for Ana"
    assert template.literal == "Hi , order  for "


@pytest.mark.parametrize("missing", [None, float("nan"), ""], ids=["none", "nan", "empty"])
def test_a_missing_value_renders_empty(missing):
    template = MessageTemplate.parse("Hi {{first_name}}!")
    assert template.render({"first_name": missing}) == "Hi !"
    assert template.render({}) == "Hi !"


def test_render_columns_matches_render_row_by_row():
    template = MessageTemplate.parse("{{a}}-{{b}}:{{a}}")
    columns = {"a": ["1", None, "x"], "b": ["2", "y", None]}
    rows = [{"a": a, "b": b} for a, b in zip(columns["a"], columns["b"])]
    assert (
        template.render_columns(columns, 3) == [template.render(r) for r in rows] == ["1-2:1", "-y:", "x-:x"]
    )
    assert MessageTemplate.parse("static").render_columns({}, 2) == ["static", "static"]


def test_unknown_token_is_an_error_naming_it_with_a_suggestion():
    template = MessageTemplate.parse("Hi {{frist_name}} {{plan}} {{zzz}}")
    with pytest.raises(TemplateError) as info:
        template.check_fields(["first_name", "plan", "city"])
    message = str(info.value)
    assert "{{frist_name}} (did you mean {{first_name}}?)" in message
    assert "{{zzz}}" in message and "{{plan}}" not in message.split("Cohort columns")[0]
    template.check_fields(["frist_name", "plan", "zzz"])  # all known: no error


@pytest.mark.parametrize(
    "text",
    ["Hi {{first name}}", "Hi {{ }}", "Hi {{first_name", "Hi first_name}}", "{{a.b}}", "", "   "],
    ids=["space-in-name", "empty-token", "unclosed", "stray-close", "dotted", "empty", "blank"],
)
def test_malformed_templates_are_refused(text):
    with pytest.raises(TemplateError):
        MessageTemplate.parse(text)


def test_single_braces_are_plain_text():
    assert MessageTemplate.parse("Use {code} or [x]").render({}) == "Use {code} or [x]"


def test_protect_tokens_keeps_recipient_fields_from_jinja():
    text = "Hi {{first_name}} on {{ ds }} {{ params.x }}"
    protected = protect_tokens(text, ["ds", "params", "run_id"])
    assert protected == "Hi {% raw %}{{first_name}}{% endraw %} on {{ ds }} {{ params.x }}"
    import jinja2

    rendered = jinja2.Environment().from_string(protected).render(ds="2026-03-02", params={"x": "X"})
    assert rendered == "Hi {{first_name}} on 2026-03-02 X"


# ------------------------------------------------------------------------------------------ sender, ids
@pytest.mark.parametrize("sender", ["InfoSMS", "Acme Co", "ACME-2", "385", "41793026727", "+41793026727"])
def test_valid_senders(sender):
    assert check_sender(sender) == sender


@pytest.mark.parametrize(
    "sender",
    ["AB", "TwelveChars1", "12", "12345678901234567", "Ünïcode", "Acme!", "", None, "123 456"],
    ids=["short", "alnum-12", "num-2", "num-17", "non-ascii", "punct", "empty", "none", "num-space"],
)
def test_invalid_senders(sender):
    with pytest.raises(SmsConfigError, match="sender"):
        check_sender(sender)


def test_bulk_id_is_deterministic_unique_and_short():
    a = broadcast_bulk_id("infobip_sms_broadcast", "manual__2026-03-02T12:00:00+00:00", "broadcast")
    assert a == broadcast_bulk_id("infobip_sms_broadcast", "manual__2026-03-02T12:00:00+00:00", "broadcast")
    assert a.startswith("infobip_sms_broadcast.broadcast.manual__2026-03-02T12-00-00")
    # Runs whose ids differ only in characters the readable part cleans still differ.
    assert broadcast_bulk_id("d", "run:1", "t") != broadcast_bulk_id("d", "run+1", "t")
    assert broadcast_bulk_id("d", "r", "t") != broadcast_bulk_id("d", "r", "t", ":test")
    long = broadcast_bulk_id("d" * 250, "r" * 250, "t" * 250)
    assert len(long) <= 100 and long != broadcast_bulk_id("d" * 250, "r" * 249 + "x", "t" * 250)


def test_bulk_id_keeps_mapped_instances_apart_and_unmapped_ids_unchanged():
    plain = broadcast_bulk_id("d", "manual__1", "t")
    assert broadcast_bulk_id("d", "manual__1", "t", "", -1) == plain, "an unmapped task's id must not move"
    # What every earlier version derived, so open ledgers of unmapped tasks are still found.
    assert plain == "d.t.manual__1-" + hashlib.sha256(b"d\x1fmanual__1\x1ft\x1f").hexdigest()[:16]
    mapped = [broadcast_bulk_id("d", "manual__1", "t", "", i) for i in range(3)]
    assert len({plain, *mapped}) == 4
    assert mapped[0].startswith("d.t-0.manual__1-") and mapped[2] == broadcast_bulk_id(
        "d", "manual__1", "t", "", 2
    )
    assert broadcast_bulk_id("d", "r", "t", ":test", 1) != broadcast_bulk_id("d", "r", "t", "", 1)
    assert len(broadcast_bulk_id("d" * 250, "r" * 250, "t" * 250, "", 12345)) <= 100


def test_message_id_is_deterministic_per_bulk_and_number():
    assert message_id("b", "41793026727") == message_id("b", "41793026727")
    assert len(message_id("b", "41793026727")) == 32
    assert message_id("b", "41793026727") != message_id("b", "41793026728")
    assert message_id("b", "41793026727") != message_id("c", "41793026727")


# ------------------------------------------------------------------------------------------ options
def options(**kwargs):
    return SmsOptions.from_args(now=NOW, **kwargs)


def test_every_option_lands_where_infobip_expects_it():
    opts = options(
        sender="InfoSMS",
        validity_period="2h",
        delivery_time_window={"days": ["mon", "Friday"], "from": "09:00", "to": {"hour": 20, "minute": 30}},
        send_at="2026-03-10T09:00:00+01:00",
        sending_speed_limit={"amount": 600, "timeUnit": "hour"},
        shorten_url=True,
        track_clicks="true",
        tracking_url="https://track.example/x",
        custom_domain="go.example",
        remove_protocol=False,
        notify_url="https://hooks.example/dlr",
        intermediate_report=True,
        callback_data="campaign=spring",
        transliteration="turkish",
        language_code="tr",
        flash=False,
        india_dlt_principal_entity_id="1201159",
        india_dlt_content_template_id="1207161",
        turkey_iys_brand_code="12345",
        turkey_iys_recipient_type="tacir",
        south_korea_reseller_code=123456789,
        south_korea_title="Notice",
        entity_id="ent-1",
        application_id="app-1",
        campaign_reference_id="spring-2026",
        include_sms_count=True,
    )
    assert opts.sender == "InfoSMS"
    assert opts.message_options == {
        "platform": {"entityId": "ent-1", "applicationId": "app-1"},
        "validityPeriod": {"amount": 2, "timeUnit": "HOURS"},
        "deliveryTimeWindow": {
            "days": ["MONDAY", "FRIDAY"],
            "from": {"hour": 9, "minute": 0},
            "to": {"hour": 20, "minute": 30},
        },
        "campaignReferenceId": "spring-2026",
        "regional": {
            "indiaDlt": {"principalEntityId": "1201159", "contentTemplateId": "1207161"},
            "turkeyIys": {"recipientType": "TACIR", "brandCode": 12345},
            "southKorea": {"resellerCode": 123456789, "title": "Notice"},
        },
        "flash": False,
    }
    assert opts.content_options == {"transliteration": "TURKISH", "language": {"languageCode": "TR"}}
    assert opts.webhooks == {
        "delivery": {"url": "https://hooks.example/dlr", "intermediateReport": True},
        "contentType": "application/json",
        "callbackData": "campaign=spring",
    }
    assert opts.schedule == {
        "sendAt": "2026-03-10T08:00:00.000+0000",
        "sendingSpeedLimit": {"amount": 600, "timeUnit": "HOUR"},
    }
    assert opts.tracking == {
        "shortenUrl": True,
        "trackClicks": True,
        "removeProtocol": False,
        "trackingUrl": "https://track.example/x",
        "customDomain": "go.example",
    }
    assert opts.include_sms_count and opts.transliterated and opts.warnings == ()


def test_no_options_means_a_minimal_body():
    opts = options()
    body = build_body([("Hi", [("41793026727", "m1")])], opts, "bulk-1")
    assert body == {
        "messages": [{"destinations": [{"to": "41793026727", "messageId": "m1"}], "content": {"text": "Hi"}}],
        "options": {"schedule": {"bulkId": "bulk-1"}},
    }
    assert not opts.transliterated


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"sender": "A"}, "sender"),
        ({"delivery_time_window": {"days": ["MONDAY"], "from": "09:00", "to": "09:59"}}, "at least one hour"),
        ({"delivery_time_window": {"from": "22:00", "to": "06:00"}}, "at least one hour"),
        ({"delivery_time_window": {"days": ["Funday"]}}, "week days"),
        ({"delivery_time_window": {"from": "09:00"}}, "both from and to"),
        ({"delivery_time_window": {"from": "25:00", "to": "26:00"}}, "between 00:00 and 23:59"),
        ({"delivery_time_window": {"days": ["MONDAY"], "start": "x"}}, "unknown keys"),
        ({"send_at": NOW + timedelta(days=181)}, "180 days"),
        ({"send_at": "next tuesday"}, "ISO 8601"),
        ({"validity_period": -5}, "validity_period"),
        ({"validity_period": {"amount": 5, "timeUnit": "DAYS"}}, "validity_period"),
        ({"sending_speed_limit": {"amount": 10, "timeUnit": "SECOND"}}, "sending_speed_limit"),
        ({"turkey_iys_brand_code": 123}, "turkey_iys_recipient_type"),
        ({"turkey_iys_recipient_type": "CITIZEN"}, "BIREYSEL, TACIR"),
        ({"india_dlt_content_template_id": "1"}, "india_dlt_principal_entity_id"),
        ({"south_korea_title": "x" * 67}, "south_korea_title"),
        ({"south_korea_reseller_code": "abc"}, "whole number"),
        ({"notify_url": "hooks.example/dlr"}, "notify_url"),
        ({"callback_data": "x" * 4001}, "callback_data"),
        ({"transliteration": "KLINGON"}, "transliteration"),
        ({"language_code": "FR"}, "language_code"),
        ({"shorten_url": False, "track_clicks": True}, "need shorten_url"),
        ({"flash": "maybe"}, "flash"),
        ({"campaign_reference_id": "c" * 256}, "campaign_reference_id"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_bad_options_are_refused_at_plan_time(kwargs, problem):
    with pytest.raises(SmsConfigError, match=problem):
        options(**kwargs)


def test_every_problem_is_reported_at_once():
    with pytest.raises(SmsConfigError) as info:
        options(sender="A", language_code="FR", validity_period=0)
    assert str(info.value).startswith("3 problem(s)")


def test_soft_problems_are_warnings():
    opts = options(validity_period=timedelta(hours=72), send_at=NOW - timedelta(minutes=5))
    assert opts.message_options["validityPeriod"] == {"amount": 72, "timeUnit": "HOURS"}
    assert any("48 hours" in w for w in opts.warnings) and any("past" in w for w in opts.warnings)


def test_send_at_without_zone_is_utc_and_window_days_default_to_all():
    opts = options(send_at="2026-03-10 09:30", delivery_time_window={"from": "8", "to": "17:00"})
    assert opts.schedule["sendAt"] == "2026-03-10T09:30:00.000+0000"
    assert opts.message_options["deliveryTimeWindow"]["days"][0] == "MONDAY"
    assert len(opts.message_options["deliveryTimeWindow"]["days"]) == 7


@pytest.mark.parametrize(
    "window",
    [
        '{"days": ["MONDAY"], "from": "09:00", "to": "20:00"}',
        "{'days': ['mon'], 'from': '09:00', 'to': {'hour': 20, 'minute': 0}}",
    ],
)
def test_delivery_time_window_as_text(window):
    assert options(delivery_time_window=window).message_options["deliveryTimeWindow"] == {
        "days": ["MONDAY"],
        "from": {"hour": 9, "minute": 0},
        "to": {"hour": 20, "minute": 0},
    }


@pytest.mark.parametrize("window", ["", "  ", "{}"])
def test_empty_delivery_time_window_text_is_none(window):
    assert "deliveryTimeWindow" not in options(delivery_time_window=window).message_options


def test_broken_delivery_time_window_text_is_a_problem():
    with pytest.raises(SmsConfigError, match=r"delivery_time_window is text .* neither JSON"):
        options(delivery_time_window="{'from': '09:00'")


def test_deferral_names_the_options_that_hold_messages_back():
    assert options().deferral == () and options(validity_period=30).deferral == ()
    assert options(send_at=NOW + timedelta(hours=1)).deferral == ("send_at",)
    assert options(delivery_time_window={"from": "09:00", "to": "20:00"}).deferral == (
        "delivery_time_window",
    )
    assert options(sending_speed_limit=100, send_at=NOW + timedelta(hours=1)).deferral == (
        "send_at",
        "sending_speed_limit",
    )


def test_tracking_options_imply_shortening():
    assert options(track_clicks=True).tracking == {"trackClicks": True, "shortenUrl": True}


# ------------------------------------------------------------------------------------------ batching
def recipients(n, text=lambda i: f"Hi {i}"):
    return [Recipient(f"id{i}", f"4179{i:07d}", text(i)) for i in range(n)]


def test_identical_texts_share_one_message_with_many_destinations():
    batches = plan_batches(recipients(2500, text=lambda i: "Same for all"), 1000)
    assert [len(b) for b in batches] == [1, 1, 1]
    assert [len(b[0][1]) for b in batches] == [1000, 1000, 500]


def test_personalised_texts_go_as_many_messages_per_request():
    batches = plan_batches(recipients(2500), 1000)
    assert [len(b) for b in batches] == [1000, 1000, 500]


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=6), max_size=300),
    st.integers(min_value=1, max_value=50),
)
def test_batches_cover_everyone_once_within_the_limit(text_choice, size):
    people = [Recipient(f"id{i}", f"n{i}", f"text {t}") for i, t in enumerate(text_choice)]
    batches = plan_batches(people, size)
    ids = [mid for batch in batches for mid in batch_ids(batch)]
    assert sorted(ids) == sorted(r.message_id for r in people)
    assert all(1 <= len(batch_ids(b)) <= size for b in batches)
    assert all(len({text for text, _ in b}) == len(b) for b in batches)  # one message per text per request
    assert len(batches) == math.ceil(len(people) / size)
    texts = {r.message_id: r.text for r in people}
    assert all(texts[mid] == text for b in batches for text, dests in b for _, mid in dests)


def test_batch_size_is_bounded():
    with pytest.raises(SmsConfigError):
        plan_batches(recipients(1), 1001)


# ------------------------------------------------------------------------------------------ official model
def _subset(ours, theirs, path="body"):
    """Every key and value of ours survives the official model's round trip."""
    if isinstance(ours, dict):
        assert isinstance(theirs, dict), path
        for key, value in ours.items():
            assert key in theirs, f"{path}.{key} dropped by the official model (unknown key?)"
            _subset(value, theirs[key], f"{path}.{key}")
    elif isinstance(ours, list):
        assert isinstance(theirs, list) and len(ours) == len(theirs), path
        for i, (a, b) in enumerate(zip(ours, theirs)):
            _subset(a, b, f"{path}[{i}]")
    else:
        assert ours == theirs, f"{path}: {ours!r} != {theirs!r}"


def validate_with_official_model(body):
    """Parse with infobip-api-python-client's SmsRequest (from_dict also checks the oneOf content)."""
    from infobip_api_client.models.sms_request import SmsRequest

    model = SmsRequest.from_dict(body)
    assert model is not None and model.messages[0].content.actual_instance is not None
    dumped = json.loads(model.model_dump_json(by_alias=True, exclude_none=True))
    ours = json.loads(json.dumps(body))
    send_at = (ours.get("options") or {}).get("schedule", {}).pop("sendAt", None)
    if send_at is not None:
        theirs = datetime.fromisoformat(dumped["options"]["schedule"].pop("sendAt").replace("Z", "+00:00"))
        assert theirs == datetime.strptime(send_at, "%Y-%m-%dT%H:%M:%S.%f%z")
    for message in dumped["messages"]:  # the oneOf wrapper nests the text content
        content = message["content"]
        message["content"] = content.get("actual_instance", content)
    _subset(ours, dumped)
    return model


def test_full_body_validates_against_the_official_client_model():
    opts = options(
        sender="InfoSMS",
        validity_period=120,
        delivery_time_window={"days": ["MONDAY"], "from": "09:00", "to": "20:00"},
        send_at="2026-04-01T09:00:00Z",
        sending_speed_limit=600,
        shorten_url=True,
        track_clicks=True,
        tracking_url="https://t.example",
        custom_domain="go.example",
        remove_protocol=True,
        notify_url="https://hooks.example/dlr",
        intermediate_report=False,
        callback_data="cb",
        transliteration="CYRILLIC",
        language_code="AUTODETECT",
        flash=True,
        india_dlt_principal_entity_id="p",
        india_dlt_content_template_id="t",
        turkey_iys_brand_code=1,
        turkey_iys_recipient_type="BIREYSEL",
        south_korea_reseller_code=123456789,
        south_korea_title="t",
        entity_id="e",
        application_id="a",
        campaign_reference_id="c",
        include_sms_count=True,
    )
    batch = plan_batches(recipients(5, text=lambda i: "Shared" if i % 2 else f"Hi {i}"), 1000)[0]
    model = validate_with_official_model(build_body(batch, opts, "bulk-1"))
    assert model.options.schedule.bulk_id == "bulk-1"
    assert sum(len(m.destinations) for m in model.messages) == 5


def test_the_official_model_catches_a_broken_body():
    from pydantic import ValidationError

    body = build_body([("Hi", [("41793026727", "m1")])], options(), "b")
    body["messages"][0]["destinations"][0]["to"] = 41793026727
    with pytest.raises(ValidationError):
        validate_with_official_model(body)
    body = build_body([("Hi", [("41793026727", "m1")])], options(), "b")
    body["messages"][0]["options"] = {"validityPeriod": {"amount": 1, "timeUnit": "YEARS"}}
    with pytest.raises(ValidationError):
        validate_with_official_model(body)


# ------------------------------------------------------------------------------------------ ledger
def test_ledger_folds_intents_acks_and_reconciliations():
    records = [
        {"state": "intent", "batch": "a-1", "t": 1.0, "ids": ["m1", "m2"]},
        {"state": "ack", "batch": "a-1", "statuses": {"PENDING": 2}, "segments": 2},
        {"state": "intent", "batch": "a-2", "t": 2.0, "ids": ["m3", "m4"]},
        {"state": "reconciled", "batch": "a-2", "known": ["m3"], "statuses": {"DELIVERED": 1}},
        {"state": "intent", "batch": "a-3", "t": 3.0, "ids": ["m4"]},
        {"state": "not_sent", "batch": "a-3", "reason": "InfobipValidationError"},
        {"state": "intent", "batch": "b-1", "t": 4.0, "ids": ["m4", "m5"]},
        {"state": "ack", "batch": "zz", "statuses": {"PENDING": 9}},  # no intent: ignored
    ]
    ledger = fold_ledger(records)
    assert ledger.sent == {"m1", "m2", "m3"}
    assert ledger.open == {"b-1": (4.0, ["m4", "m5"])}
    assert ledger.statuses == Counter({"PENDING": 2, "DELIVERED": 1})
    assert (ledger.reconciled, ledger.not_sent, ledger.reported_segments) == (1, 1, 2)


def test_answer_statuses_count_groups_and_parts():
    answer = {
        "bulkId": "b",
        "messages": [
            {"messageId": "1", "status": {"groupName": "PENDING"}, "details": {"messageCount": 2}},
            {"messageId": "2", "status": {"groupName": "REJECTED"}},
        ],
    }
    statuses, segments = answer_statuses(answer)
    assert statuses == Counter({"PENDING": 1, "REJECTED": 1}) and segments == 2
