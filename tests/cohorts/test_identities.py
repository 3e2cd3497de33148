"""Email and phone normalisation: examples and properties (hypothesis)."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat

from infobip_provider.cohorts import email_or_phone, normalize_email, normalize_phone

REGIONS = ("US", "GB", "DE", "HR", "IN", "BR")
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ------------------------------------------------------------------------------------------------ email


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(" Ana@X.COM ", "ana@x.com", id="trim-and-lower"),
        pytest.param("ana.horvat+news@mail.example.com", "ana.horvat+news@mail.example.com", id="plus-tag"),
        pytest.param("O'Brien@Example.IE", "o'brien@example.ie", id="apostrophe"),
        pytest.param("a@b.co.uk", "a@b.co.uk", id="multi-label"),
        pytest.param("user@xn--80ak6aa92e.xn--p1ai", "user@xn--80ak6aa92e.xn--p1ai", id="punycode"),
        pytest.param("\tana@example.com\n", "ana@example.com", id="tabs-newlines"),
        pytest.param("ana@example", None, id="no-tld"),
        pytest.param("ana@example.c", None, id="one-letter-tld"),
        pytest.param("ana@@example.com", None, id="double-at"),
        pytest.param("ana.@example.com", None, id="dot-before-at"),
        pytest.param("a..b@example.com", None, id="double-dot"),
        pytest.param("ana horvat@example.com", None, id="space-inside"),
        pytest.param("ana@-example.com", None, id="label-starts-with-hyphen"),
        pytest.param("ana@example-.com", None, id="label-ends-with-hyphen"),
        pytest.param("ana@example.com.", None, id="trailing-dot"),
        pytest.param("žana@example.com", None, id="non-ascii-local"),
        pytest.param("john.smith(at)example.com", None, id="obfuscated"),
        pytest.param("x" * 65 + "@example.com", None, id="local-part-too-long"),
        pytest.param("x" * 64 + "@example.com", "x" * 64 + "@example.com", id="local-part-64"),
        pytest.param(
            "a@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 63 + "." + "e" * 60 + ".com", None, id="over-254"
        ),
        pytest.param("", None, id="empty"),
        pytest.param("   ", None, id="blank"),
        pytest.param(None, None, id="none"),
        pytest.param(12, None, id="not-text"),
    ],
)
def test_normalize_email(raw, expected):
    assert normalize_email(raw) == expected


@PROPERTY
@given(st.emails())
def test_valid_addresses_are_accepted_and_lowercased(address):
    assume(len(address) <= 254)
    result = normalize_email(address)
    assert result == address.lower()


@PROPERTY
@given(st.emails(), st.sampled_from(["", " ", "  ", "\t"]), st.sampled_from(["", " ", "\n"]), st.booleans())
def test_whitespace_and_case_variants_normalise_alike(address, before, after, upper):
    assume(len(address) <= 254)
    variant = before + (address.upper() if upper else address.title()) + after
    assert normalize_email(variant) == normalize_email(address)


@PROPERTY
@given(st.text(max_size=80))
def test_email_result_is_idempotent_and_canonical(text):
    result = normalize_email(text)
    if result is not None:
        assert normalize_email(result) == result
        assert result == result.strip().lower()
        assert result.count("@") == 1
        assert len(result) <= 254
        assert result.isascii()


@PROPERTY
@given(st.text(alphabet=st.characters(blacklist_characters="@"), max_size=60))
def test_text_without_at_sign_is_never_an_email(text):
    assert normalize_email(text) is None


# ------------------------------------------------------------------------------------------------ phone


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        pytest.param("(202) 555-0143", "US", "12025550143", id="us-national-brackets"),
        pytest.param("(415) 555-2671", "US", "14155552671", id="us-national"),
        pytest.param("+1 415-555-2671", "US", "14155552671", id="us-international"),
        pytest.param("1-415-555-2671", "US", "14155552671", id="us-with-trunk-1"),
        pytest.param("011 44 20 7946 0958", "US", "442079460958", id="us-idd-011"),
        pytest.param("020 7946 0958", "GB", "442079460958", id="gb-national"),
        pytest.param("+44 (0)20 7946 0958", "US", "442079460958", id="gb-with-(0)"),
        pytest.param("0049 30 901820", "DE", "4930901820", id="de-idd-00"),
        pytest.param("030 901820", "DE", "4930901820", id="de-national"),
        pytest.param("+385 91 234 5678", "US", "385912345678", id="hr-international"),
        pytest.param("091 234 5678", "HR", "385912345678", id="hr-national"),
        pytest.param("+91 98765 43210", "US", "919876543210", id="in-international"),
        pytest.param("(11) 91234-5678", "BR", "5511912345678", id="br-national"),
        pytest.param("030 901820", "US", None, id="national-with-wrong-region"),
        pytest.param("4930901820", None, None, id="national-without-region"),
        pytest.param("+4930901820", None, "4930901820", id="international-without-region"),
        pytest.param("12345", "US", None, id="too-short"),
        pytest.param("n/a", "US", None, id="not-a-number"),
        pytest.param("", "US", None, id="empty"),
        pytest.param(None, "US", None, id="none"),
        pytest.param(14155552671, "US", "14155552671", id="an-integer"),
        pytest.param("+1 415 555 2671 ext. 12", "US", "14155552671", id="extension-dropped"),
    ],
)
def test_normalize_phone(raw, region, expected):
    assert normalize_phone(raw, region) == expected


def test_unknown_region_is_refused():
    with pytest.raises(ValueError, match="unknown phone region 'XX'"):
        normalize_phone("+14155552671", "XX")


def test_email_or_phone_prefers_the_email():
    assert email_or_phone("ana@example.com", "385912345678") == "ana@example.com"
    assert email_or_phone(None, "385912345678") == "385912345678"
    assert email_or_phone(None, None) is None


@st.composite
def valid_numbers(draw):
    """A valid number of one of the demo countries: the region's example mobile with new last digits."""
    region = draw(st.sampled_from(REGIONS))
    example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
    nsn = phonenumbers.national_significant_number(example)
    tail = draw(st.integers(min_value=0, max_value=9999))
    candidate = phonenumbers.parse(f"{nsn[:-4]}{tail:04d}", region)
    assume(phonenumbers.is_valid_number(candidate))
    return region, candidate


def _spellings(region: str, number: phonenumbers.PhoneNumber) -> list[tuple[str, str]]:
    """The ways people write the same number, each with the region it must be read with."""
    e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    international = phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL)
    national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    other = "DE" if region != "DE" else "US"
    return [
        (e164, other),
        (international, other),
        (international.replace(" ", "-"), other),
        (international.replace(" ", "."), other),
        (phonenumbers.format_number(number, PhoneNumberFormat.RFC3966), other),
        (national, region),
        (f"  {national}  ", region),
        # digits with the country code but no '+' are only unambiguous where national numbers have one
        # length (NANPA); elsewhere phonenumbers may read them as a longer national number
        *([(e164[1:], region)] if region == "US" else []),
    ]


@PROPERTY
@given(valid_numbers())
def test_every_spelling_of_a_valid_number_gives_the_same_e164_digits(drawn):
    region, number = drawn
    expected = phonenumbers.format_number(number, PhoneNumberFormat.E164)[1:]
    for spelling, read_with in _spellings(region, number):
        assert normalize_phone(spelling, read_with) == expected, spelling


@PROPERTY
@given(st.text(alphabet="0123456789 +-()./", max_size=20), st.sampled_from(REGIONS))
def test_phone_result_is_digits_and_idempotent(text, region):
    result = normalize_phone(text, region)
    if result is not None:
        assert result.isdigit()
        assert result[0] != "0"
        assert 3 <= len(result) <= 20
        for any_region in (*REGIONS, None):  # E.164 reads the same from anywhere
            assert normalize_phone("+" + result, any_region) == result
