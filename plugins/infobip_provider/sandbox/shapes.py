"""The error bodies Infobip answers with, one builder per shape.

* ``legacy``: ``{"requestError":{"serviceException":{...}}}`` (People v2, lists, SMS v1, account);
* ``sms3``: ``{"errorCode":"E400",...,"violations":[...]}`` (``/sms/3/*``);
* ``v3``: ``{"code":400104,"message":...,"details":[...]}`` (People v3 upsert, **400 only**: its
  401/403/429/500 answers use the legacy shape);
* the list endpoints' ``{"statusCode":"TAG_NOT_FOUND",...}``.

Handlers raise :class:`ApiError`; the app turns it into a JSON answer.
"""

from __future__ import annotations

from typing import Any, Literal

Shape = Literal["legacy", "sms3", "v3"]

_LEGACY = {
    400: ("BAD_REQUEST", "Bad request"),
    401: ("UNAUTHORIZED", "Invalid login details"),
    403: ("FORBIDDEN", "Forbidden"),
    404: ("NOT_FOUND", "Not found"),
    405: ("METHOD_NOT_ALLOWED", "Method not allowed"),
    409: ("CONFLICT", "Conflict"),
    413: ("BAD_REQUEST", "Request too large"),
    429: ("TOO_MANY_REQUESTS", "Too many requests"),
    500: ("GENERAL_ERROR", "Something went wrong. Please contact support."),
}

_SMS3 = {
    400: ("Request cannot be processed.", "Check the syntax, violations and adjust the request."),
    401: ("Unauthorized access.", "Check the API key."),
    403: ("Forbidden access.", "Check the API key's scopes."),
    404: ("Resource not found.", "Check the request URL."),
    413: ("Request too large.", "Send fewer messages per request."),
    429: ("Too many requests.", "Reduce the request rate."),
    500: ("Something went wrong.", "Try again later; contact support if it persists."),
}

_V3 = {400: (400104, "Invalid request.")}


class ApiError(Exception):
    """An error answer: HTTP status plus the exact JSON body to send."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status)
        self.status = status
        self.body = body


def legacy(
    status: int,
    message_id: str | None = None,
    text: str | None = None,
    validation_errors: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    default_id, default_text = _LEGACY.get(status, ("GENERAL_ERROR", "Error"))
    exc: dict[str, Any] = {"messageId": message_id or default_id, "text": text or default_text}
    if validation_errors:
        exc["validationErrors"] = validation_errors
    return {"requestError": {"serviceException": exc}}


def sms3(status: int, violations: list[dict[str, str]] | None = None, description: str | None = None) -> dict:
    default_description, action = _SMS3.get(status, ("Error.", "Check the request."))
    return {
        "errorCode": f"E{status}",
        "description": description or default_description,
        "action": action,
        "violations": violations or [],
        "resources": [],
    }


def v3(status: int, details: list[dict[str, str]] | None = None, message: str | None = None) -> dict:
    code, default_message = _V3.get(status, (status * 1000, "Error."))
    return {"code": code, "message": message or default_message, "details": details or []}


def for_shape(shape: Shape, status: int, problems: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """One error body in ``shape``; ``problems`` maps a property to its complaints."""
    problems = problems or {}
    if shape == "sms3":
        return sms3(status, [{"property": p, "violation": m} for p, ms in problems.items() for m in ms])
    if shape == "v3" and status == 400:
        return v3(status, [{"property": p, "message": m} for p, ms in problems.items() for m in ms])
    return legacy(status, validation_errors=problems or None)


def bad_request(shape: Shape, problems: dict[str, list[str]]) -> ApiError:
    return ApiError(400, for_shape(shape, 400, problems))


def tag_not_found(list_id: str) -> ApiError:
    return ApiError(
        400, {"statusCode": "TAG_NOT_FOUND", "message": f'Tag with id "{list_id}" does not exist'}
    )


def forbidden(shape: Shape, scopes: tuple[str, ...]) -> dict[str, Any]:
    """The 403 a key gets on an endpoint none of whose ``scopes`` it holds."""
    text = "Forbidden: the API key lacks a scope this endpoint needs (" + " or ".join(scopes) + ")"
    if shape == "sms3":
        return sms3(403, description=text)
    return legacy(403, text=text)
