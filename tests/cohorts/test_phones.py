"""The fast phone path must agree with the plain ``phonenumbers`` call on every input."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberFormat

from infobip_provider.cohorts.phones import PhoneNormalizer, known_region, reference_normalize_phone

ALL_REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
FORMATS = (
    PhoneNumberFormat.E164,
    PhoneNumberFormat.INTERNATIONAL,
    PhoneNumberFormat.NATIONAL,
    PhoneNumberFormat.RFC3966,
)
TYPES = [v for k, v in vars(phonenumbers.PhoneNumberType).items() if k.isupper() and isinstance(v, int)]


def _example_spellings():
    for region in ALL_REGIONS:
        for number_type in TYPES:
            number = phonenumbers.example_number_for_type(region, number_type)
            if number is None:
                continue
            for fmt in FORMATS:
                text = phonenumbers.format_number(number, fmt)
                yield text, region
                yield "".join(ch for ch in text if ch.isdigit()), region
                yield text, "US"


EXAMPLES = sorted(set(_example_spellings()))


def test_agrees_with_phonenumbers_on_every_example_number_in_every_format():
    normalizers: dict[str, PhoneNormalizer] = {}
    disagreements = []
    for text, region in EXAMPLES:
        normalizer = normalizers.setdefault(region, PhoneNormalizer(region))
        fast, reference = normalizer(text), reference_normalize_phone(text, region)
        if fast != reference:
            disagreements.append((text, region, fast, reference))
    assert len(EXAMPLES) > 10_000
    assert disagreements == []
    # the fast path did the work: only shapes it does not handle (tel:, IDD, letters) were deferred
    assert sum(n.reference_calls for n in normalizers.values()) < len(EXAMPLES) / 2


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.text(alphabet="0123456789", min_size=1, max_size=18).flatmap(
        lambda digits: st.sampled_from([digits, "+" + digits, "00" + digits, "011" + digits, "0" + digits])
    ),
    st.sampled_from([*ALL_REGIONS, "US", "US", "GB", "DE", "HR", "IN", "BR"]),
)
def test_agrees_with_phonenumbers_on_digit_strings(text, region):
    assert PhoneNormalizer(region)(text) == reference_normalize_phone(text, region)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.text(alphabet="0123456789 +-()./x#;:t", max_size=24),
    st.sampled_from(["US", "GB", "DE", "HR", "IN", "BR"]),
)
def test_agrees_with_phonenumbers_on_punctuated_text(text, region):
    assert PhoneNormalizer(region)(text) == reference_normalize_phone(text, region)


def test_without_a_default_region_only_international_numbers_pass():
    normalizer = PhoneNormalizer(None)
    assert normalizer("+385 91 234 5678") == "385912345678"
    assert normalizer("091 234 5678") is None


def test_each_distinct_number_is_parsed_once():
    normalizer = PhoneNormalizer("US")
    spellings = ["(415) 555-2671", "415-555-2671", "415.555.2671", "415 555 2671", "4155552671"]
    assert {normalizer(s) for s in spellings * 3} == {"14155552671"}
    assert len(normalizer._by_key) == 1  # one parse key for all spellings
    assert len(normalizer._by_raw) == len(spellings)


def test_caches_are_bounded():
    normalizer = PhoneNormalizer("US", max_cache=10)
    for n in range(100):
        normalizer(f"+1 415 555 {n:04d}")
    assert len(normalizer._by_raw) <= 10
    assert len(normalizer._by_key) <= 10


@pytest.mark.parametrize(("region", "expected"), [("us", "US"), (" hr ", "HR"), (None, None)])
def test_known_region(region, expected):
    assert known_region(region) == expected


def test_known_region_refuses_unknown_codes():
    with pytest.raises(ValueError, match="ISO 3166-1"):
        known_region("USA")


def test_normalize_many_matches_one_by_one_and_stays_bounded():
    values = [text for text, region in EXAMPLES if region == "US"][:3000]
    values += [None, float("nan"), 14155552671, "", "  ", *values[:50]]  # repeats and non-text
    normalizer = PhoneNormalizer("US", max_cache=500)
    expected = [PhoneNormalizer("US")(v) for v in values]
    assert normalizer.normalize_many(values) == expected
    assert normalizer.normalize_many(values) == expected  # the second pass is served from the cache
    assert len(normalizer._by_raw) <= 500
