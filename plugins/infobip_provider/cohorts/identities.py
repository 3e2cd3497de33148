"""The identities Infobip matches people on: email addresses and phone numbers, normalised.

- Email: trimmed, lower-cased, then a syntax check (one compiled regex, no DNS): a dot-atom local
  part of at most 64 characters, a domain of LDH labels with a letter TLD (or an ``xn--`` IDN TLD),
  at most 254 characters in all. ASCII only; quoted local parts and IP-literal domains are refused
  (no marketing platform accepts them).
- Phone: E.164 digits without ``+`` (Infobip's form), valid per ``phonenumbers``, national numbers
  read with a default region. See :mod:`infobip_provider.cohorts.phones` for how this is fast.

Infobip's People matching rule is "email first, phone as fallback": :func:`email_or_phone` applies it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from infobip_provider.cohorts.phones import PhoneNormalizer

__all__ = ["EMAIL_PATTERN", "email_or_phone", "normalize_email", "normalize_phone", "phone_normalizer"]

_ATEXT = r"[a-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_TLD = r"(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})"
EMAIL_PATTERN = re.compile(rf"(?=[^@]{{1,64}}@){_ATEXT}+(?:\.{_ATEXT}+)*@(?:{_LABEL}\.)+{_TLD}")
"""The syntax an address must have after trimming and lower-casing (``fullmatch``)."""

_MAX_EMAIL = 254


def normalize_email(value: Any) -> str | None:
    """Return the trimmed, lower-cased address, or ``None`` when it is missing or not a sound address.

    >>> normalize_email(" Ana@X.COM ")
    'ana@x.com'
    """
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    if not text or len(text) > _MAX_EMAIL or EMAIL_PATTERN.fullmatch(text) is None:
        return None
    return text


@lru_cache(maxsize=32)
def phone_normalizer(default_region: str | None = "US") -> PhoneNormalizer:
    """A shared, caching :class:`PhoneNormalizer` for ``default_region``."""
    return PhoneNormalizer(default_region, max_cache=200_000)


def normalize_phone(value: Any, default_region: str | None = "US") -> str | None:
    """Return the number as E.164 digits without ``+`` (``"12025550143"``), or ``None`` when not valid.

    :param default_region: ISO 3166-1 alpha-2 region for national numbers (``None``: international only).
    :raises ValueError: for an unknown region code.

    >>> normalize_phone("(202) 555-0143", "US")
    '12025550143'
    """
    return phone_normalizer(default_region.upper() if isinstance(default_region, str) else default_region)(
        value
    )


def email_or_phone(email: str | None, phone: str | None) -> str | None:
    """Infobip's matching rule on normalised identities: the email when there is one, else the phone."""
    return email if email is not None else phone
