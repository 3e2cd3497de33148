"""The People list ``filter`` language: JSON conditions such as
``{"#and":[{"#contains":{"tags":"VIP"}},{"#gt":{"modifiedAt":"2026-01-01T00:00:00"}}]}``.

:func:`compile_filter` validates a filter once and returns a predicate over stored persons.
Fields: any top-level person field (``modifiedAt``, ``firstName`` ...), ``tags``, ``email`` and
``phone`` (the contact lists), dotted paths (``customAttributes.plan``) and, as a shorthand, a
custom attribute's bare name. On a list field (tags, emails, phones) ``#contains`` means "has an
element equal to"; on a text field it means "has the substring". Timestamps compare as text, which
orders correctly in the ``yyyy-MM-ddTHH:mm:ss`` format.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Predicate = Callable[[dict[str, Any]], bool]

COMPARISONS = (
    "#eq",
    "#ne",
    "#contains",
    "#notContain",
    "#startsWith",
    "#endsWith",
    "#gt",
    "#gte",
    "#lt",
    "#lte",
)
LOGICAL = ("#and", "#or")
_LIST_FIELDS = {"tags", "email", "phone", "contactInformation.email", "contactInformation.phone"}


class FilterError(ValueError):
    """The filter is not valid JSON filter syntax."""


def _resolve(person: dict[str, Any], field: str) -> Any:
    if field in ("email", "contactInformation.email"):
        return [e.get("address") for e in person.get("contactInformation", {}).get("email", [])]
    if field in ("phone", "contactInformation.phone"):
        return [p.get("number") for p in person.get("contactInformation", {}).get("phone", [])]
    if field in person:
        return person[field]
    if "." in field:
        value: Any = person
        for part in field.split("."):
            if not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
        return value
    return person.get("customAttributes", {}).get(field)


def _candidates(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return [v for v in value if v is not None]
    return [value]


def _comparable(a: Any, b: Any) -> bool:
    numeric = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    if isinstance(a, numeric) and isinstance(b, numeric):
        return True
    return isinstance(a, str) and isinstance(b, str)


def _ordered(op: str) -> Callable[[Any, Any], bool]:
    if op == "#gt":
        return lambda v, t: v > t
    if op == "#gte":
        return lambda v, t: v >= t
    if op == "#lt":
        return lambda v, t: v < t
    return lambda v, t: v <= t


def _comparison(op: str, field: str, target: Any) -> Predicate:
    if isinstance(target, dict | list):
        raise FilterError(f"{op} on {field!r} needs a single value")
    is_list = field in _LIST_FIELDS

    def values(person: dict[str, Any]) -> list[Any]:
        return _candidates(_resolve(person, field))

    if op in ("#eq", "#ne"):
        negate = op == "#ne"
        return lambda p: negate != any(_comparable(v, target) and v == target for v in values(p))
    if op in ("#contains", "#notContain"):
        negate = op == "#notContain"

        def contains(person: dict[str, Any]) -> bool:
            for v in values(person):
                if isinstance(v, list) or is_list:
                    if v == target:
                        return True
                elif isinstance(v, str) and isinstance(target, str) and target in v:
                    return True
            return False

        return lambda p: negate != contains(p)
    if op in ("#startsWith", "#endsWith"):
        if not isinstance(target, str):
            raise FilterError(f"{op} on {field!r} needs a text value")
        if op == "#startsWith":
            return lambda p: any(isinstance(v, str) and v.startswith(target) for v in values(p))
        return lambda p: any(isinstance(v, str) and v.endswith(target) for v in values(p))
    compare = _ordered(op)
    return lambda p: any(_comparable(v, target) and compare(v, target) for v in values(p))


def _logical(op: str, children: list[Predicate]) -> Predicate:
    if op == "#and":
        return lambda p: all(c(p) for c in children)
    return lambda p: any(c(p) for c in children)


def compile_filter(spec: Any) -> Predicate:
    """Validate ``spec`` (decoded JSON) and return the predicate it describes."""
    if not isinstance(spec, dict) or not spec:
        raise FilterError("a filter is a non-empty JSON object")
    parts: list[Predicate] = []
    for op, arg in spec.items():
        if op in LOGICAL:
            if not isinstance(arg, list) or not arg:
                raise FilterError(f"{op} needs a non-empty list of conditions")
            parts.append(_logical(op, [compile_filter(child) for child in arg]))
        elif op in COMPARISONS:
            if not isinstance(arg, dict) or not arg:
                raise FilterError(f"{op} needs an object of field: value")
            parts.extend(_comparison(op, str(field), target) for field, target in arg.items())
        else:
            raise FilterError(f"unknown filter operator {op!r}")
    return lambda p: all(part(p) for part in parts)
