"""The sandbox's endpoint table: path, cooldown and error shape of every Infobip call it serves.

This table is the *server's* truth, written from the API contract independently of the client's
``infobip_provider.cooldown.POLICIES`` so that the sandbox can catch a wrong client table.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qs, unquote

from infobip_provider.sandbox.shapes import Shape

Scope = Literal["key", "account"]


@dataclass(frozen=True)
class EndpointSpec:
    """One endpoint as the sandbox serves it.

    :param name: the project-wide endpoint name (``"lists.add"``).
    :param method: HTTP method.
    :param template: path with ``{param}`` placeholders (one path segment each).
    :param interval: seconds between two accepted calls at cooldown scale 1; 0 means unpaced.
    :param scope: ``"key"``: counted per API key; ``"account"``: one bucket for the whole sandbox account.
    :param shape: error body shape of the endpoint's error answers (see :func:`shapes.for_shape`).
    :param mutating: whether a success changes the state (drives persistence).
    :param scopes: API-key scopes that open the endpoint (any one of them); a scoped key holding none
        gets 403.
    """

    name: str
    method: str
    template: str
    interval: float
    scope: Scope
    shape: Shape
    mutating: bool
    scopes: tuple[str, ...]

    @property
    def regex(self) -> re.Pattern[str]:
        return _compile(self.template)


def _compile(template: str) -> re.Pattern[str]:
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template))
    return re.compile(f"^{pattern}$")


def _e(
    name: str,
    method: str,
    template: str,
    interval: float,
    scope: Scope,
    shape: Shape,
    mutating: bool,
    scopes: tuple[str, ...],
) -> EndpointSpec:
    return EndpointSpec(name, method, template, interval, scope, shape, mutating, scopes)


# Key scopes, from Infobip's scope catalogue. [assumed]: the list endpoints publish no scope (a list is a
# People tag underneath, so People's); logs and reports open with the logs scope or sms:manage.
_ACCOUNT = ("account-management:manage",)
_PEOPLE = ("people:manage",)
_PEOPLE_READ = ("people:manage", "people:read")
_SMS_SEND = ("sms:message:send", "sms:manage", "message:send")
_SMS_READ = ("sms:logs:read", "sms:manage")
_SMS_MANAGE = ("sms:manage",)
_EMAIL_SEND = ("email:message:send", "email:manage", "message:send")
_EMAIL_READ = ("email:logs:read", "email:manage")  # [assumed] as SMS
_WHATSAPP_SEND = ("whatsapp:message:send", "message:send")
_BLOCKLIST = ("blocklist:manage", "account-management:manage")  # [assumed]
_EMAIL_MANAGE = ("email:manage",)


#: Every endpoint the sandbox serves, in the order used to match a request.
ENDPOINTS: tuple[EndpointSpec, ...] = (
    _e("account.balance", "GET", "/account/1/balance", 0.0, "key", "legacy", False, _ACCOUNT),
    _e("lists.create", "POST", "/saas/amplitude/1/lists", 2.0, "key", "legacy", True, _PEOPLE),
    _e("lists.add", "POST", "/saas/amplitude/1/lists/{list_id}/add", 10.0, "key", "legacy", True, _PEOPLE),
    _e(
        "lists.remove",
        "POST",
        "/saas/amplitude/1/lists/{list_id}/remove",
        5.0,
        "key",
        "legacy",
        True,
        _PEOPLE,
    ),
    # people.get and people.list share a path; people.get is the one with ?identifier=.
    _e("people.get", "GET", "/people/2/persons", 0.2, "account", "legacy", False, _PEOPLE_READ),
    _e("people.list", "GET", "/people/2/persons", 0.2, "account", "legacy", False, _PEOPLE_READ),
    _e("people.create", "POST", "/people/2/persons", 0.1, "account", "legacy", True, _PEOPLE),
    _e("people.update", "PATCH", "/people/2/persons", 0.2, "account", "legacy", True, _PEOPLE),
    _e("people.upsert", "PATCH", "/people/3/persons/upsert", 0.2, "account", "v3", True, _PEOPLE),
    _e("tags.get", "GET", "/people/2/tags/{name}", 0.2, "account", "legacy", False, _PEOPLE_READ),
    _e("tags.create", "POST", "/people/2/tags", 0.2, "account", "legacy", True, _PEOPLE),
    _e("tags.add", "PATCH", "/people/2/tags/{name}/persons", 0.2, "account", "legacy", True, _PEOPLE),
    _e("tags.remove", "DELETE", "/people/2/tags/{name}/persons", 0.2, "account", "legacy", True, _PEOPLE),
    _e("sms.send", "POST", "/sms/3/messages", 0.0, "account", "sms3", True, _SMS_SEND),
    _e("sms.logs", "GET", "/sms/3/logs", 0.5, "account", "sms3", False, _SMS_READ),
    # Reports are handed out once, so reading them changes the state.
    _e("sms.reports", "GET", "/sms/3/reports", 0.0, "account", "sms3", True, _SMS_READ),
    _e("sms.preview", "POST", "/sms/1/preview", 0.0, "account", "legacy", False, _SMS_MANAGE),
    # Inbound SMS are handed out once too. [assumed] no published limit; scopes as for reports.
    _e("sms.inbox", "GET", "/sms/1/inbox/reports", 0.0, "account", "legacy", True, _SMS_READ),
    # Email (newer error shape) and WhatsApp sends: 4,000 requests/s per account; email logs and
    # reports 120/min. WhatsApp has no logs or reports to pull (they are pushed to notifyUrl).
    _e("email.send", "POST", "/email/4/messages", 1 / 4000, "account", "sms3", True, _EMAIL_SEND),
    _e("email.logs", "GET", "/email/4/logs", 0.5, "account", "sms3", False, _EMAIL_READ),
    _e("email.reports", "GET", "/email/4/reports", 0.5, "account", "sms3", True, _EMAIL_READ),
    _e(
        "whatsapp.template",
        "POST",
        "/whatsapp/1/message/template",
        1 / 4000,
        "account",
        "legacy",
        True,
        _WHATSAPP_SEND,
    ),
    # The blocklist: one request per second on the path (POST, DELETE and GET alike); email
    # suppressions 100/s. [assumed] each method is paced on its own, as lists.add and lists.remove are.
    _e("blocklist.add", "POST", "/platform/1/blocklists", 1.0, "account", "legacy", True, _BLOCKLIST),
    _e("blocklist.remove", "DELETE", "/platform/1/blocklists", 1.0, "account", "legacy", True, _BLOCKLIST),
    _e("blocklist.get", "GET", "/platform/1/blocklists", 1.0, "account", "legacy", False, _BLOCKLIST),
    _e(
        "email.suppressions.add",
        "POST",
        "/email/1/suppressions",
        0.01,
        "account",
        "sms3",
        True,
        _EMAIL_MANAGE,
    ),
    _e(
        "email.suppressions.remove",
        "DELETE",
        "/email/1/suppressions",
        0.01,
        "account",
        "sms3",
        True,
        _EMAIL_MANAGE,
    ),
    _e(
        "email.suppressions.get",
        "GET",
        "/email/1/suppressions",
        0.01,
        "account",
        "sms3",
        False,
        _EMAIL_MANAGE,
    ),
    _e(
        "whatsapp.text",
        "POST",
        "/whatsapp/1/message/text",
        1 / 4000,
        "account",
        "legacy",
        True,
        _WHATSAPP_SEND,
    ),
)

BY_NAME: dict[str, EndpointSpec] = {spec.name: spec for spec in ENDPOINTS}
_COMPILED = [(spec, spec.regex) for spec in ENDPOINTS]


@dataclass(frozen=True)
class Match:
    spec: EndpointSpec
    params: dict[str, str]


def classify(method: str, raw_path: str, query_string: str = "") -> Match | None:
    """Which endpoint a request is for (``raw_path`` still percent-encoded), or ``None``."""
    method = method.upper()
    wants_one_person = "identifier" in parse_qs(query_string, keep_blank_values=True)
    for spec, regex in _COMPILED:
        if spec.method != method:
            continue
        found = regex.match(raw_path)
        if found is None:
            continue
        if spec.name == "people.get" and not wants_one_person:
            continue
        if spec.name == "people.list" and wants_one_person:
            continue
        return Match(spec, {k: unquote(v) for k, v in found.groupdict().items()})
    return None


def fingerprint(secret: str) -> str:
    """A short irreversible name for an API key (same formula as ``infobip_provider.cooldown``)."""
    return hashlib.sha256(("infobip-cooldown:" + secret).encode()).hexdigest()[:16]
