"""Rendered template values as the types operators need: text, flag, number, list or object.

Airflow renders templated fields to text, unless the DAG sets ``render_template_as_native_obj``,
which turns ``"2026"`` into a number, ``"true"`` into a boolean and an empty param into ``None``.
Every operator and pure module reads its arguments through these functions, so a value means the
same whichever way it was rendered. Pure: imports nothing from the operator layer.
"""

from __future__ import annotations

import ast
import json
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

__all__ = ["BadValue", "as_flag", "as_literal", "as_number", "as_text", "blank_to_none", "read_literal"]

_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off", "", "none")


class BadValue(AirflowFailException):
    """An argument cannot be read as what it must be; a retry cannot fix it."""


def as_text(value: Any) -> str | None:
    """A text argument as trimmed text, ``None`` when not given (``None``, blank, or ``"None"``, what a
    ``None`` param renders to as text). A number rendered natively is read back as its text."""
    if value is None:
        return None
    out = str(value).strip()
    return None if out in ("", "None") else out


def blank_to_none(value: Any) -> Any:
    """``None`` for ``None`` or blank text; any other value unchanged (an object stays an object)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return value


def as_flag(value: Any, name: str) -> bool:
    """A true/false argument: a boolean, or a word (true/false, yes/no, on/off, 1/0; blank is false)."""
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
        raise BadValue(f"{name} must be true or false, got {value!r}")
    return bool(value)


def as_number(value: Any, name: str, kind: type = float, minimum: float | None = None) -> Any:
    """A number argument of ``kind`` (``int`` or ``float``), ``None`` when not given."""
    if blank_to_none(value) is None:
        return None
    try:
        result = kind(value)
    except (TypeError, ValueError):
        raise BadValue(f"{name} must be a {'whole ' if kind is int else ''}number, got {value!r}") from None
    if minimum is not None and result < minimum:
        raise BadValue(f"{name} must be at least {minimum}, got {value!r}")
    return result


def read_literal(source: str) -> Any:
    """What a list or object rendered as text stands for: JSON, else a Python literal (``str()`` of it).

    :raises ValueError: the text is neither.
    """
    try:
        return json.loads(source)
    except ValueError:
        pass
    try:
        return ast.literal_eval(source)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise ValueError(f"neither JSON nor a Python literal: {source[:200]!r}") from None


def as_literal(value: Any, name: str) -> Any:
    """A list or object argument: given as itself, or as its text (JSON or a Python literal, e.g.
    ``"['+41...']"``). Blank text is ``None``; other text is returned unchanged.

    :raises BadValue: the text looks like a list or an object but is neither JSON nor a literal.
    """
    if not isinstance(value, str):
        return value
    stripped = value.strip()
    if not stripped or stripped == "None":
        return None
    if stripped[0] not in "[{(":
        return value
    try:
        return read_literal(stripped)
    except ValueError:
        raise BadValue(
            f"{name} is text that looks like a list or an object but is neither JSON nor a Python literal: "
            f"{stripped[:80]!r}"
        ) from None
