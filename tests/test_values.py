"""values: rendered template values read as text, flags, numbers, lists and objects."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException

from infobip_provider.values import BadValue, as_flag, as_literal, as_number, as_text, blank_to_none


@pytest.mark.parametrize(
    ("value", "expected"),
    [(None, None), ("", None), ("  ", None), ("None", None), (2026, "2026"), (0, "0"), (" VIP ", "VIP")],
)
def test_as_text(value, expected):
    assert as_text(value) == expected


def test_blank_to_none_keeps_objects():
    window = {"from": "09:00"}
    assert blank_to_none(window) is window and blank_to_none(" ") is None and blank_to_none(0) == 0


def test_as_number_reads_text_and_checks_the_minimum():
    assert as_number("4", "max_segments", int, 1) == 4 and as_number("", "x") is None
    with pytest.raises(BadValue, match="max_segments must be at least 1"):
        as_number(0, "max_segments", int, 1)
    with pytest.raises(BadValue, match="price must be a number"):
        as_number("cheap", "price")


def test_as_flag_accepts_rendered_words_and_refuses_others():
    assert as_flag("True", "dry_run") is True and as_flag("false", "dry_run") is False and as_flag(True, "x")
    with pytest.raises(AirflowFailException, match="dry_run"):
        as_flag("maybe", "dry_run")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", None),
        ("   ", None),
        ("[]", []),
        ('["+41793026727"]', ["+41793026727"]),
        ("['+41793026727', '+385912345678']", ["+41793026727", "+385912345678"]),
        ('{"from": "09:00", "to": "20:00"}', {"from": "09:00", "to": "20:00"}),
        ("{'days': ('MONDAY',), 'from': {'hour': 9}}", {"days": ("MONDAY",), "from": {"hour": 9}}),
        ("+41793026727, +385912345678", "+41793026727, +385912345678"),  # plain text stays text
    ],
)
def test_as_literal_reads_lists_and_objects_given_as_text(text, expected):
    assert as_literal(text, "x") == expected


def test_as_literal_passes_other_values_and_refuses_broken_literals():
    value = {"from": "09:00"}
    assert as_literal(value, "x") is value and as_literal(None, "x") is None
    with pytest.raises(BadValue, match=r"test_recipients .* neither JSON nor a Python literal"):
        as_literal("['+41793026727'", "test_recipients")
