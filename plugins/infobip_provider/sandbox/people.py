"""People rules: validate a Person body (v2 or v3 upsert form) and merge it into a stored person.

Stored persons use the v2 answer shape. Emails are kept lower-cased, phones as digits without
``+``. A partial update sets the fields it carries, appends tags, merges custom attributes and adds
contacts; a ``null`` value counts as "not given" (it never clears data). Read-only fields (``id``,
``createdAt``, ``modifiedAt``, ``origin``) in a request are ignored, unknown fields are refused.
"""

from __future__ import annotations

import copy
import re
from datetime import date
from typing import Any

EMAIL_RE = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
PHONE_RE = re.compile(r"^\+?[0-9]{5,15}$")
LANGUAGE_RE = re.compile(r"^[a-z]{2}(-[a-z]{2})?$", re.IGNORECASE)  # en, en-GB, en-gb
ID_TYPES = ("ID", "EXTERNAL_ID", "EMAIL", "PHONE")

_TEXT_LIMITS = {
    "externalId": 256,
    "firstName": 255,
    "lastName": 255,
    "middleName": 50,
    "address": 256,
    "city": 50,
    "country": 50,
    "profilePicture": 2083,
}
#: Text fields only the v3 upsert knows.
_V3_TEXT_LIMITS = {"nickName": 50}
_ENUMS = {"type": ("CUSTOMER", "LEAD"), "gender": ("MALE", "FEMALE")}
READ_ONLY = ("id", "createdAt", "modifiedAt", "origin")
KNOWN = (
    *_TEXT_LIMITS,
    *_V3_TEXT_LIMITS,
    *_ENUMS,
    "birthDate",
    "preferredLanguage",
    "tags",
    "customAttributes",
    "contactInformation",
    *READ_ONLY,
)
TAG_MAX = 256
ATTRIBUTE_VALUE_MAX = 4096

Problems = dict[str, list[str]]


def is_email(value: Any) -> bool:
    return isinstance(value, str) and len(value) <= 254 and EMAIL_RE.match(value) is not None


def normalise_phone(value: Any) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not PHONE_RE.match(value.strip()):
        return None
    return value.strip().lstrip("+")


def _add(problems: Problems, field: str, message: str) -> None:
    problems.setdefault(field, []).append(message)


def v3_contacts_to_v2(contacts: Any, problems: Problems) -> dict[str, Any] | None:
    """The v3 list ``[{"type":"EMAIL","identifier":...}]`` in the v2 ``{"email":[...],"phone":[...]}`` form."""
    if contacts is None:
        return None
    if not isinstance(contacts, list):
        _add(problems, "contactInformation", "must be a list of {type, identifier}")
        return None
    out: dict[str, list[dict[str, Any]]] = {"email": [], "phone": []}
    for i, item in enumerate(contacts):
        kind = item.get("type") if isinstance(item, dict) else None
        identifier = item.get("identifier") if isinstance(item, dict) else None
        if kind == "EMAIL":
            out["email"].append({"address": identifier})
        elif kind == "PHONE":
            out["phone"].append({"number": identifier})
        else:
            _add(problems, f"contactInformation[{i}].type", "must be EMAIL or PHONE")
    return out


def _contacts(value: Any, problems: Problems) -> dict[str, list[dict[str, Any]]] | None:
    if not isinstance(value, dict):
        _add(problems, "contactInformation", "must be an object")
        return None
    out: dict[str, list[dict[str, Any]]] = {"email": [], "phone": []}
    for item in value.get("email") or []:
        address = item.get("address") if isinstance(item, dict) else None
        if not isinstance(address, str) or not is_email(address):
            _add(problems, "contactInformation.email", f"invalid email address: {address!r}")
        elif address.lower() not in [e["address"] for e in out["email"]]:
            out["email"].append({"address": address.lower()})
    for item in value.get("phone") or []:
        number = normalise_phone(item.get("number") if isinstance(item, dict) else None)
        if number is None:
            _add(problems, "contactInformation.phone", "invalid phone number (E.164 digits expected)")
        elif number not in [p["number"] for p in out["phone"]]:
            out["phone"].append({"number": number})
    return out


def parse_person(body: Any, *, v3: bool = False) -> tuple[dict[str, Any], Problems]:
    """The fields ``body`` sets (validated, normalised) and the problems found, by field."""
    problems: Problems = {}
    if not isinstance(body, dict):
        return {}, {"person": ["must be a JSON object"]}
    out: dict[str, Any] = {}
    limits = {**_TEXT_LIMITS, **_V3_TEXT_LIMITS} if v3 else _TEXT_LIMITS
    for field, value in body.items():
        if field not in KNOWN or (field in _V3_TEXT_LIMITS and not v3):
            _add(problems, field, "unknown property")
        elif value is None or field in READ_ONLY:
            continue
        elif field in limits:
            if not isinstance(value, str):
                _add(problems, field, "must be a string")
            elif len(value) > limits[field]:
                _add(problems, field, f"size must be between 0 and {limits[field]}")
            else:
                out[field] = value
        elif field in _ENUMS:
            if value not in _ENUMS[field]:
                _add(problems, field, "must be one of " + ", ".join(_ENUMS[field]))
            else:
                out[field] = value
        elif field == "birthDate":
            try:
                date.fromisoformat(value)
                if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
                    raise ValueError(value)
                out[field] = value
            except (TypeError, ValueError):
                _add(problems, field, "must be a date yyyy-MM-dd")
        elif field == "preferredLanguage":
            if isinstance(value, str) and LANGUAGE_RE.match(value):
                out[field] = value
            else:
                _add(problems, field, "must look like xx or xx-YY (any case)")
        elif field == "tags":
            if not isinstance(value, list) or not all(
                isinstance(t, str) and 0 < len(t) <= TAG_MAX for t in value
            ):
                _add(problems, field, f"must be a list of tag names of 1 to {TAG_MAX} characters")
            else:
                out[field] = list(dict.fromkeys(value))
        elif field == "customAttributes":
            attributes = _custom_attributes(value, problems)
            if attributes is not None:
                out[field] = attributes
        else:  # contactInformation
            if v3:
                value = v3_contacts_to_v2(value, problems)
                if value is None:
                    continue
            contacts = _contacts(value, problems)
            if contacts is not None:
                out[field] = contacts
    return out, problems


def _custom_attributes(value: Any, problems: Problems) -> dict[str, Any] | None:
    if not isinstance(value, dict):
        _add(problems, "customAttributes", "must be an object")
        return None
    out: dict[str, Any] = {}
    for name, item in value.items():
        if item is None:
            continue
        if isinstance(item, dict | list):
            _add(problems, f"customAttributes.{name}", "must be a single value")
        elif isinstance(item, str) and len(item) > ATTRIBUTE_VALUE_MAX:
            _add(problems, f"customAttributes.{name}", f"size must be between 0 and {ATTRIBUTE_VALUE_MAX}")
        else:
            out[name] = item
    return out


def has_identifier(person: dict[str, Any]) -> bool:
    contact = person.get("contactInformation", {})
    return bool(person.get("externalId") or contact.get("email") or contact.get("phone"))


def new_person(person_id: int, fields: dict[str, Any], stamp: str) -> dict[str, Any]:
    person: dict[str, Any] = {
        "id": person_id,
        "type": "CUSTOMER",
        "tags": [],
        "customAttributes": {},
        "contactInformation": {"email": [], "phone": []},
    }
    merge(person, fields)
    person.update({"createdAt": stamp, "modifiedAt": stamp, "origin": "API"})
    return person


def merge(person: dict[str, Any], fields: dict[str, Any]) -> bool:
    """Apply a partial update in place; ``True`` when something changed."""
    before = copy.deepcopy(person)
    for field, value in fields.items():
        if field == "tags":
            person["tags"] = list(dict.fromkeys([*person.get("tags", []), *value]))
        elif field == "customAttributes":
            person["customAttributes"] = {**person.get("customAttributes", {}), **value}
        elif field == "contactInformation":
            contact = person.setdefault("contactInformation", {"email": [], "phone": []})
            for kind, key in (("email", "address"), ("phone", "number")):
                known = {item[key] for item in contact.setdefault(kind, [])}
                contact[kind].extend(item for item in value.get(kind, []) if item[key] not in known)
        else:
            person[field] = value
    return person != before
