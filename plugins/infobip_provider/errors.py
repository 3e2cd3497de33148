"""Typed errors for every way an Infobip call can fail.

Infobip answers errors in four body shapes (see the API contract): the legacy
``requestError.serviceException`` shape, the newer ``errorCode``/``violations`` shape of
``/sms/3``, the People v3 ``code``/``details`` shape and the list endpoints' ``statusCode`` shape.
:func:`error_from_response` turns any of them into one of the classes below, so callers
decide on types, never on strings. Errors a retry cannot fix also derive from
``AirflowFailException`` so that Airflow does not spend task retries on them.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException


class InfobipError(AirflowException):
    """An Infobip call failed.

    :param message: a sentence for the task log; never contains the API key.
    :param status: the HTTP status, or ``None`` when no answer arrived.
    :param message_id: Infobip's machine-readable code (``BAD_REQUEST``, ``E429``, ``TAG_NOT_FOUND`` ...).
    :param text: Infobip's human-readable text.
    :param validation_errors: field name -> list of problems, from any of the error shapes.
    :param body: the decoded answer body (dict) or its text.
    """

    retryable = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        message_id: str | None = None,
        text: str | None = None,
        validation_errors: dict[str, list[str]] | None = None,
        body: Any = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message_id = message_id
        self.text = text
        self.validation_errors = validation_errors or {}
        self.body = body

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, message_id={self.message_id!r}, text={self.text!r})"


class InfobipConfigError(AirflowFailException):
    """The connection or an argument is unusable (bad base URL, missing key, bad option)."""


class InfobipAuthError(InfobipError, AirflowFailException):
    """401/403: the API key is wrong, revoked or lacks a scope. Retrying cannot help."""


class InfobipValidationError(InfobipError, AirflowFailException):
    """400/405/409/other 4xx: Infobip refused the request as sent. Retrying cannot help."""


class InfobipNotFoundError(InfobipError):
    """404: the person, tag or resource does not exist."""


class InfobipListNotFoundError(InfobipError):
    """``TAG_NOT_FOUND`` from a list endpoint: the list was deleted in Infobip."""


class InfobipRateLimitError(InfobipError):
    """429: a cooldown was broken (someone else shares the key). Carries ``Retry-After`` when sent."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class InfobipServerError(InfobipError):
    """5xx: Infobip failed. Safe to retry only for calls whose repeat changes nothing."""

    retryable = True


class InfobipTransportError(InfobipError):
    """No answer: connection refused, DNS failure, TLS error or timeout.

    :param sent: True when the request may have reached Infobip (a read timeout), so a
        non-idempotent call may have taken effect.
    """

    retryable = True

    def __init__(self, message: str, *, sent: bool, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.sent = sent


class CooldownBackendError(AirflowException):
    """The configured cooldown gate backend cannot be reached; we never fall back silently."""


def _as_str_list(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def parse_error_body(body: Any) -> tuple[str | None, str | None, dict[str, list[str]]]:
    """Return ``(message_id, text, validation_errors)`` from any of Infobip's error shapes."""
    if not isinstance(body, dict):
        return None, (body.strip()[:500] or None) if isinstance(body, str) else None, {}
    if isinstance(body.get("requestError"), dict):  # legacy
        exc = (
            body["requestError"].get("serviceException") or body["requestError"].get("policyException") or {}
        )
        raw = exc.get("validationErrors") or {}
        legacy: dict[str, list[str]] = (
            {str(k): _as_str_list(v) for k, v in raw.items()} if isinstance(raw, dict) else {}
        )
        return exc.get("messageId"), exc.get("text"), legacy
    if "errorCode" in body:  # newer (/sms/3 ...)
        errors: dict[str, list[str]] = {}
        for violation in body.get("violations") or []:
            errors.setdefault(str(violation.get("property", "")), []).append(
                str(violation.get("violation", ""))
            )
        return str(body["errorCode"]), body.get("description"), errors
    if "statusCode" in body:  # list add/remove
        return str(body["statusCode"]), body.get("message"), {}
    if "code" in body and "message" in body:  # People v3
        details: dict[str, list[str]] = {}
        for detail in body.get("details") or []:
            details.setdefault(str(detail.get("property", "")), []).append(str(detail.get("message", "")))
        return str(body["code"]), body.get("message"), details
    return None, None, {}


def error_from_response(
    status: int,
    body: Any,
    *,
    what: str,
    retry_after: float | None = None,
    scopes: tuple[str, ...] = (),
) -> InfobipError:
    """Map an HTTP error answer to the matching :class:`InfobipError` subclass.

    :param what: the call in the user's words (``"list add"``), used in the message.
    :param scopes: the API-key scopes that open the endpoint, named in a 403's message.
    """
    message_id, text, validation_errors = parse_error_body(body)
    detail = f"{message_id}: {text}" if message_id and text else (message_id or text or "no details")
    if validation_errors:
        detail += " (" + "; ".join(f"{k}: {', '.join(v)}" for k, v in validation_errors.items()) + ")"
    kwargs: dict[str, Any] = {
        "status": status,
        "message_id": message_id,
        "text": text,
        "validation_errors": validation_errors,
        "body": body,
    }
    if message_id == "TAG_NOT_FOUND":
        return InfobipListNotFoundError(f"Infobip {what}: the list no longer exists ({detail})", **kwargs)
    if status == 429:
        return InfobipRateLimitError(
            f"Infobip {what}: 429 too many requests ({detail})", retry_after=retry_after, **kwargs
        )
    if status == 401:
        return InfobipAuthError(f"Infobip {what}: 401 {detail}; check the connection's API key", **kwargs)
    if status == 403:
        needed = f": add {' or '.join(scopes)} to it" if scopes else ""
        return InfobipAuthError(f"Infobip {what}: 403 {detail}; the API key lacks a scope{needed}", **kwargs)
    if status == 404:
        return InfobipNotFoundError(f"Infobip {what}: 404 not found ({detail})", **kwargs)
    if status >= 500:
        return InfobipServerError(f"Infobip {what}: server error {status} ({detail})", **kwargs)
    return InfobipValidationError(f"Infobip {what}: {status} {detail}", **kwargs)
