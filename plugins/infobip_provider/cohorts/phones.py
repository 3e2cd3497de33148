"""Phone numbers to Infobip's form (E.164 digits without ``+``), exactly as ``phonenumbers`` reads them, fast.

``phonenumbers.parse`` + ``is_valid_number`` costs 25-40 µs a number, most of it Python call overhead
around a handful of regular expressions. A cohort of a million rows repeats the same numbers, and
writes them with spaces, dashes, dots and brackets that ``phonenumbers`` ignores anyway, so
:class:`PhoneNormalizer`:

1. caches every raw value it has seen;
2. reduces a raw value made only of ASCII digits, one leading ``+`` and the separators
   `` ()./-`` to a *parse key* (digits with the ``+`` kept), so ``(202) 555-0143`` and
   ``202.555.0143`` are normalised once;
3. reads a parse key with a straight-line port of ``phonenumbers.parse`` for the two shapes such a key
   can have (``+<digits>`` and national ``<digits>``): country code, IDD, national prefix and
   carrier-code stripping, length rules, all from the library's own metadata;
4. validates with one precompiled regular expression per (numbering plan, length) that is the union of
   the plan's number-type patterns, which is what ``is_valid_number`` checks one pattern at a time.

Anything unusual (letters, extensions, other scripts' digits, an IDD such as ``011``/``00``, a
missing default region ...) takes the reference path, :func:`reference_normalize_phone`, which is the
plain library call. Tests assert that both paths agree on generated inputs and on every example number
of every region in every format.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import phonenumbers
from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, PhoneMetadata, PhoneNumberFormat

__all__ = ["PhoneNormalizer", "known_region", "reference_normalize_phone"]

# phonenumbers' limits (phonenumberutil._MIN_LENGTH_FOR_NSN etc.); inputs near them take the reference path.
_MIN_NSN = 2
_MAX_NSN = 17
_MAX_INPUT = 250
_NON_GEO = "001"

# _test_number_length results we need to tell apart (phonenumbers.ValidationResult).
_POSSIBLE, _LOCAL_ONLY, _TOO_SHORT, _INVALID_LENGTH, _TOO_LONG = range(5)
_REJECTED_LENGTHS = frozenset({_TOO_SHORT, _LOCAL_ONLY, _INVALID_LENGTH})

_TYPE_DESCS = (
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
    "fixed_line",
    "mobile",
)

# The separators a parse key drops (phonenumbers ignores them too).
_SEPARATORS = str.maketrans("", "", " ()./-")


_MISS = object()
_CC_STRINGS = frozenset(str(cc) for cc in COUNTRY_CODE_TO_REGION_CODE)


class _Fallback(Exception):
    """The fast path cannot be sure; use the reference path."""


def reference_normalize_phone(value: str, region: str | None) -> str | None:
    """The plain library call: parse, ``is_valid_number``, E.164 without ``+``; ``None`` when invalid."""
    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)[1:]


def known_region(region: str | None) -> str | None:
    """Return ``region`` upper-cased when ``phonenumbers`` has metadata for it (``None`` passes through).

    :raises ValueError: for an unknown region code.
    """
    if region is None:
        return None
    code = str(region).strip().upper()
    if PhoneMetadata.metadata_for_region(code) is None:
        raise ValueError(f"unknown phone region {region!r}: use an ISO 3166-1 alpha-2 code such as 'US'")
    return code


def _compile(pattern: str | None) -> re.Pattern[str] | None:
    return re.compile(pattern) if pattern else None


class _Plan:
    """One numbering plan (a ``PhoneMetadata``), precompiled for the checks parse and validation make."""

    def __init__(self, metadata: Any) -> None:
        self.country_code: int = metadata.country_code
        self.cc_str = str(metadata.country_code)
        general = metadata.general_desc
        self.general = _compile(general.national_number_pattern if general else None)
        self.general_lengths: tuple[int, ...] = tuple(general.possible_length or ()) if general else ()
        self._general_length_set = frozenset(self.general_lengths)
        self.local_lengths = frozenset(general.possible_length_local_only or ()) if general else frozenset()
        self.prefix = _compile(metadata.national_prefix_for_parsing)
        self.transform: str | None = metadata.national_prefix_transform_rule or None
        self.idd = _compile(metadata.international_prefix)
        self.leading_digits = _compile(metadata.leading_digits)
        self._types: list[tuple[frozenset[int], str]] = []
        for name in _TYPE_DESCS:
            desc = getattr(metadata, name, None)
            if desc is not None and desc.national_number_pattern:
                self._types.append((frozenset(desc.possible_length or ()), desc.national_number_pattern))
        self._valid_by_length: dict[int, re.Pattern[str] | None] = {}

    def general_match(self, number: str) -> bool:
        """``_match_national_number(number, general_desc)``: the pattern only, no length check."""
        return self.general is not None and self.general.fullmatch(number) is not None

    def length_result(self, number: str) -> int:
        """``_test_number_length(number, metadata)`` for an unknown number type."""
        lengths = self.general_lengths
        if not lengths:
            raise _Fallback
        if lengths[0] == -1:
            return _INVALID_LENGTH
        actual = len(number)
        if actual in self.local_lengths:
            return _LOCAL_ONLY
        if lengths[0] == actual:
            return _POSSIBLE
        if lengths[0] > actual:
            return _TOO_SHORT
        if lengths[-1] < actual:
            return _TOO_LONG
        return _POSSIBLE if actual in lengths[1:] else _INVALID_LENGTH

    def strip_national_prefix(self, number: str) -> str:
        """``_maybe_strip_national_prefix_carrier_code(number, metadata)[1]``."""
        if not number or self.prefix is None:
            return number
        match = self.prefix.match(number)
        if match is None:
            return number
        viable = self.general_match(number)
        groups = match.groups()
        if self.transform is None or groups[-1:] == (None,):
            stripped = number[match.end() :]
        elif groups:
            stripped = self.prefix.sub(self.transform, number, count=1)
        else:  # a transform rule without groups: phonenumbers itself would fail here
            raise _Fallback
        if viable and not self.general_match(stripped):
            return number
        return stripped

    def is_valid(self, nsn: str) -> bool:
        """``_number_type_helper(nsn, metadata) != UNKNOWN`` with one regex for all number types."""
        length = len(nsn)
        if length in self._valid_by_length:
            union = self._valid_by_length[length]
        else:
            union = self._compile_valid(length)
        return union is not None and union.fullmatch(nsn) is not None

    def _compile_valid(self, length: int) -> re.Pattern[str] | None:
        """One regex: the general pattern (as a lookahead) and any number type valid at this length."""
        patterns = [p for lengths, p in self._types if not lengths or length in lengths]
        union: re.Pattern[str] | None = None
        general_ok = not self.general_lengths or length in self._general_length_set
        if patterns and general_ok and self.general is not None:
            alternatives = "|".join(f"(?:{p})" for p in patterns)
            union = re.compile(rf"(?=(?:{self.general.pattern})\Z)(?:{alternatives})")
        self._valid_by_length[length] = union
        return union


class _Plans:
    """Compiled plans by region code and by country calling code (shared, built lazily)."""

    def __init__(self) -> None:
        self._by_region: dict[str, _Plan | None] = {}
        self._by_cc: dict[int, _Plan | None] = {}
        self._candidates: dict[int, tuple[_Plan, ...]] = {}

    def region(self, region: str) -> _Plan | None:
        cached = self._by_region.get(region, _MISS)
        if cached is not _MISS:
            return cached  # type: ignore[return-value]
        metadata = PhoneMetadata.metadata_for_region(region)
        plan = _Plan(metadata) if metadata is not None else None
        self._by_region[region] = plan
        return plan

    def main(self, cc: int) -> _Plan | None:
        """The plan ``parse`` uses for calling code ``cc``: its main region's, or the non-geographic one."""
        cached = self._by_cc.get(cc, _MISS)
        if cached is not _MISS:
            return cached  # type: ignore[return-value]
        regions = COUNTRY_CODE_TO_REGION_CODE.get(cc)
        plan: _Plan | None = None
        if regions:
            if regions[0] == _NON_GEO:
                metadata = PhoneMetadata.metadata_for_nongeo_region(cc)
                plan = _Plan(metadata) if metadata is not None else None
            else:
                plan = self.region(regions[0])
        self._by_cc[cc] = plan
        return plan

    def candidates(self, cc: int) -> tuple[_Plan, ...]:
        """The geographic plans sharing calling code ``cc``, in phonenumbers' order (+1 has 25)."""
        cached = self._candidates.get(cc)
        if cached is None:
            regions = COUNTRY_CODE_TO_REGION_CODE.get(cc) or ()
            plans = (self.region(r) for r in regions if r != _NON_GEO)
            cached = tuple(p for p in plans if p is not None)
            self._candidates[cc] = cached
        return cached

    def is_valid(self, cc: int, nsn: str) -> bool:
        """``is_valid_number`` for a parsed (country code, national significant number)."""
        regions = COUNTRY_CODE_TO_REGION_CODE.get(cc)
        if not regions:
            return False
        if len(regions) == 1:
            plan = self.main(cc)
            return plan is not None and plan.is_valid(nsn)
        for plan in self.candidates(cc):  # _region_code_for_number_from_list, then is_valid_number_for_region
            if plan.leading_digits is not None:
                if plan.leading_digits.match(nsn):
                    return plan.is_valid(nsn)
            elif plan.is_valid(nsn):
                return True
        return False


_PLANS = _Plans()


def _extract_country_code(digits: str) -> tuple[int, str]:
    """``_extract_country_code``: the first 1-3 digits that are a known calling code."""
    if not digits or digits[0] == "0":
        return 0, digits
    for size in (1, 2, 3):
        if size > len(digits):
            break
        if digits[:size] in _CC_STRINGS:
            return int(digits[:size]), digits[size:]
    return 0, digits


class PhoneNormalizer:
    """Normalise raw phone values to E.164 digits without ``+`` (``None`` when not a valid number).

    Results equal :func:`reference_normalize_phone` for every input; each distinct raw value and each
    distinct number is worked out once per instance.

    :param default_region: ISO 3166-1 alpha-2 region used to read national numbers (``None``: only
        international numbers are accepted).
    :param max_cache: the caches are emptied when they reach this many entries (bounds memory).
    """

    def __init__(self, default_region: str | None = "US", *, max_cache: int = 2_000_000) -> None:
        self.region = known_region(default_region)
        self.max_cache = max_cache
        self._plan = _PLANS.region(self.region) if self.region else None
        self._by_raw: dict[str, str | None] = {}
        self._by_key: dict[str, str | None] = {}
        self.reference_calls = 0  # how often the fast path had to defer (tests and benchmarks read it)

    def __call__(self, value: Any) -> str | None:
        if value is None or not isinstance(value, str):
            if value is None or value != value:  # None or NaN
                return None
            value = str(value)
        result = self._by_raw.get(value, _MISS)
        if result is not _MISS:
            return result  # type: ignore[return-value]
        result = self._normalize_raw(value)
        if len(self._by_raw) >= self.max_cache:
            self._by_raw.clear()
        self._by_raw[value] = result
        return result

    def normalize_many(self, values: Iterable[Any]) -> list[str | None]:
        """Normalise many values (typically a column's distinct values); cached ones cost a dict lookup."""
        values = list(values)
        cache = self._by_raw
        get = cache.get
        out = [get(v, _MISS) if isinstance(v, str) else _MISS for v in values]
        for i in [i for i, r in enumerate(out) if r is _MISS]:
            value = values[i]
            if not isinstance(value, str):
                out[i] = self(value)
                continue
            if len(cache) >= self.max_cache:
                cache.clear()
            out[i] = cache[value] = self._normalize_raw(value)
        return out  # type: ignore[return-value]

    def _normalize_raw(self, raw: str) -> str | None:
        text = raw.strip()
        if not text:
            return None
        if len(raw) > _MAX_INPUT:
            return self._reference(raw)
        key = text.translate(_SEPARATORS)
        plus = key[:1] == "+"
        body = key[1:] if plus else key
        # the fast path takes ASCII digits, simple separators and one leading '+' only
        if (plus and text[0] != "+") or not (body.isascii() and body.isdigit()):
            return self._reference(raw)
        if len(body) < 3:  # phonenumbers' viability rule depends on the punctuation here
            return self._reference(raw)
        result = self._by_key.get(key, _MISS)
        if result is not _MISS:
            return result  # type: ignore[return-value]
        try:
            result = self._fast(key)
        except _Fallback:
            result = self._reference(key)
        if len(self._by_key) >= self.max_cache:
            self._by_key.clear()
        self._by_key[key] = result
        return result

    def _reference(self, value: str) -> str | None:
        self.reference_calls += 1
        return reference_normalize_phone(value, self.region)

    def _fast(self, key: str) -> str | None:
        """Port of ``phonenumbers.parse`` + ``is_valid_number`` for ``+<digits>`` and ``<digits>`` keys."""
        if key[0] == "+":
            digits = key[1:]
            if len(digits) <= _MIN_NSN:
                raise _Fallback
            cc, nsn = _extract_country_code(digits)
            if cc == 0:
                raise _Fallback
            plan = _PLANS.main(cc)
        else:
            plan = self._plan
            if plan is None:
                raise _Fallback
            if plan.idd is not None and plan.idd.match(key):
                raise _Fallback  # dialled with the international prefix (011, 00 ...)
            cc, nsn = plan.country_code, key
            if key.startswith(plan.cc_str):  # e.g. 1 202 555 0143 in the US
                potential = plan.strip_national_prefix(key[len(plan.cc_str) :])
                if (not plan.general_match(key) and plan.general_match(potential)) or plan.length_result(
                    key
                ) == _TOO_LONG:
                    nsn = potential
                    plan = _PLANS.main(cc)
        if plan is None:
            raise _Fallback
        if len(nsn) < _MIN_NSN:
            return None
        candidate = plan.strip_national_prefix(nsn)
        if plan.length_result(candidate) not in _REJECTED_LENGTHS:
            nsn = candidate
        if not _MIN_NSN <= len(nsn) <= _MAX_NSN:
            return None
        return f"{cc}{nsn}" if _PLANS.is_valid(cc, nsn) else None
