"""What the return-path transfers share: their state folder, their Asset and argument checks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

#: The state store kind of the return path's folders (watermarks, landed pages).
EXPORTS = "exports"


def asset_uri(account: str, *parts: str) -> str:
    """``infobip://<account>/<parts...>``: the Asset a transfer's output stands for; ``account`` is the
    connection's state scope (the account host, or the API key's fingerprint for a sandbox)."""
    return "infobip://" + "/".join((account, *parts))


def emit_asset(context: Any, alias: str, uri: str, extra: dict[str, Any]) -> None:
    """Add an event for the Asset ``uri`` to the task's Asset alias ``alias`` (when the task has it):
    DAGs scheduled on ``Asset(uri)`` run after it."""
    from airflow.sdk import Asset, AssetAlias

    events = context.get("outlet_events") if hasattr(context, "get") else None
    if events is None:
        return
    events[AssetAlias(alias)].add(Asset(uri), extra=extra)


def text_list(value: Any, name: str) -> list[str]:
    """A list of texts given as a list, a comma-separated text or JSON text; empty for nothing."""
    from infobip_provider.values import read_literal

    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        if text in ("", "None", "[]"):
            return []
        if text.startswith("["):
            try:
                value = read_literal(text)
            except ValueError as exc:
                raise AirflowFailException(f"{name}: {exc}") from None
        else:
            return [part.strip() for part in text.split(",") if part.strip()]
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise AirflowFailException(f"{name} must be a list of texts, got {value!r}")
    return [str(item).strip() for item in value if item is not None and str(item).strip()]


def positive_int(value: Any, name: str, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise AirflowFailException(f"{name} must be a whole number, got {value!r}") from None
    if not 1 <= number <= high:
        raise AirflowFailException(f"{name} must be between 1 and {high}, got {number}")
    return number
