"""InfobipHook: the one way this library talks to Infobip.

Every request goes through :meth:`InfobipHook._request`, which reserves a slot from the
cooldown gate, adds authentication, User-Agent and timeout, retries what is safe to retry
and maps every error answer to a typed :mod:`infobip_provider.errors` exception. Endpoint
methods are small and return plain data.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import quote, urlsplit

import requests
import urllib3
from airflow.sdk import BaseHook

from infobip_provider import __version__
from infobip_provider.cooldown import POLICIES, CooldownGate, fingerprint, make_gate
from infobip_provider.errors import (
    CooldownBackendError,
    InfobipAuthError,
    InfobipConfigError,
    InfobipError,
    InfobipNotFoundError,
    InfobipRateLimitError,
    InfobipTransportError,
    error_from_response,
)

COOLDOWN_BACKENDS = ("auto", "memory", "file", "redis")

#: The API-key scopes that open each endpoint (any one of them), from Infobip's scope catalogue; a 403
#: names them. [assumed]: the list endpoints publish no scope (a list is a People tag underneath), and
#: SMS logs and reports open with ``sms:logs:read`` or ``sms:manage``.
SCOPES: dict[str, tuple[str, ...]] = {
    "account.balance": ("account-management:manage",),
    **dict.fromkeys(("lists.create", "lists.add", "lists.remove"), ("people:manage",)),
    **dict.fromkeys(("people.get", "people.list", "tags.get"), ("people:manage", "people:read")),
    **dict.fromkeys(
        ("people.create", "people.update", "people.upsert", "tags.create", "tags.add", "tags.remove"),
        ("people:manage",),
    ),
    "sms.send": ("sms:message:send", "sms:manage"),
    "sms.logs": ("sms:logs:read", "sms:manage"),
    "sms.reports": ("sms:logs:read", "sms:manage"),
    "sms.preview": ("sms:manage",),
    "sms.inbox": ("sms:logs:read", "sms:manage"),  # [assumed] as reports
    "email.send": ("email:message:send", "email:manage", "message:send"),
    **dict.fromkeys(("email.logs", "email.reports"), ("email:logs:read", "email:manage")),  # [assumed]
    **dict.fromkeys(("whatsapp.template", "whatsapp.text"), ("whatsapp:message:send", "message:send")),
}


@dataclass(frozen=True)
class AccessCheck:
    """One cheap authenticated read the connection test makes for a product the library uses.

    :param product: the product in the user's words.
    :param endpoint: the policy name of the read (paced like any other call).
    :param path: the read's path; ``params`` its query.
    :param add: the scopes to add to a key that gets 403 here, for every flow of the product.
    :param optional: True when no flow needs the product (the balance): a 403 there is only noted.
    """

    product: str
    endpoint: str
    path: str
    params: tuple[tuple[str, Any], ...]
    add: tuple[str, ...]
    optional: bool = False


ACCESS_CHECKS: tuple[AccessCheck, ...] = (
    AccessCheck("People", "people.list", "/people/2/persons", (("limit", 1),), ("people:manage",)),
    AccessCheck("SMS", "sms.logs", "/sms/3/logs", (("limit", 1),), ("sms:message:send", "sms:logs:read")),
    AccessCheck(
        "balance", "account.balance", "/account/1/balance", (), ("account-management:manage",), optional=True
    ),
)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries inside a task.

    :param max_attempts: tries for a retryable failure (5xx, no answer) of a call safe to repeat.
    :param max_rate_limited: extra tries after 429 answers; they never spend an Airflow retry.
    :param base: first backoff in seconds; doubles each try up to ``cap``, with full jitter.
    """

    max_attempts: int = 4
    max_rate_limited: int = 6
    base: float = 0.5
    cap: float = 30.0

    def backoff(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before try ``attempt + 1`` (``attempt`` counts from 1)."""
        ceiling = min(self.cap, self.base * 2 ** (attempt - 1))
        return ceiling / 2 + rand() * ceiling / 2


def parse_base_url(host: str | None, *, allow_insecure_http: bool = False) -> str:
    """Turn the connection's host into a base URL: scheme optional (https assumed).

    Plain ``http`` is accepted only for loopback hosts (the sandbox), or for any host when the
    connection sets the extra ``allow_insecure_http`` to true (a sandbox on a private network, such
    as the docker-compose one); anything else must use https.
    """
    raw = (host or "").strip().rstrip("/")
    if not raw:
        raise InfobipConfigError(
            "The Infobip connection has no host: set it to your account's base URL, e.g. xxxxx.api.infobip.com"
        )
    if "://" not in raw:
        raw = "https://" + raw
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InfobipConfigError(f"The Infobip base URL {raw!r} is not an http(s) URL with a host name")
    if parts.scheme == "http" and not (allow_insecure_http or _is_loopback(parts.hostname)):
        raise InfobipConfigError(
            f"Refusing plain http for {parts.hostname}: the API key would travel unencrypted. "
            "Use https (only loopback hosts such as the sandbox may use http, or a host the connection "
            "explicitly allows with the extra allow_insecure_http: true)."
        )
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _is_loopback(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


def _float_extra(extras: dict[str, Any], name: str, default: float, minimum: float) -> float:
    value = extras.get(name, default)
    if value in (None, ""):
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InfobipConfigError(f"Connection extra {name!r} must be a number, got {value!r}") from None
    if number < minimum:
        raise InfobipConfigError(f"Connection extra {name!r} must be at least {minimum}, got {number}")
    return number


def _bool_extra(extras: dict[str, Any], name: str) -> bool:
    """A yes/no extra that must be set explicitly: ``true`` (JSON or text) turns it on, nothing else."""
    value = extras.get(name, False)
    if value in (None, "", False) or (isinstance(value, str) and value.strip().lower() == "false"):
        return False
    if value is True or (isinstance(value, str) and value.strip().lower() == "true"):
        return True
    raise InfobipConfigError(f"Connection extra {name!r} must be true or false, got {value!r}")


def infobip_host(base_url: str) -> bool:
    """True when ``base_url`` is one of Infobip's own hosts (not a sandbox)."""
    host = (urlsplit(base_url).hostname or "").lower()
    return host == "infobip.com" or host.endswith(".infobip.com")


def _cooldown_scale(extras: dict[str, Any], base_url: str) -> float:
    """The connection's cooldown scale; below 1 only for a sandbox, never for Infobip's own hosts."""
    scale = _float_extra(extras, "cooldown_scale", 1.0, 0.0)
    host = (urlsplit(base_url).hostname or "").lower()
    if scale < 1.0 and infobip_host(base_url):
        raise InfobipConfigError(
            f"cooldown_scale {scale} would call {host} faster than Infobip allows (429s, a blocked key). "
            "Scales below 1 are for the sandbox; set cooldown_scale to 1 (or leave it out) for a real account."
        )
    return scale


def default_state_uri() -> str:
    """Where state lives when the connection names no ``state_uri``."""
    home = os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
    return os.path.join(home, "infobip_state")


def connection_scope(host: str | None, password: str | None) -> str | None:
    """The state scope a connection's runs write under, from its fields, as
    :attr:`InfobipHook.state_scope` computes it; None when the host or key cannot make one."""
    from infobip_provider.cooldown import fingerprint
    from infobip_provider.state import state_scope

    api_key = (password or "").strip()
    if not api_key or not host:
        return None
    try:
        base_url = parse_base_url(host, allow_insecure_http=True)
    except Exception:
        return None
    return state_scope(base_url, fingerprint(api_key))


class InfobipHook(BaseHook):
    """Talk to Infobip with the API key of an ``infobip`` connection, paced by every endpoint's cooldown.

    :param infobip_conn_id: the connection: host = base URL, password = API key, extras as in
        ``get_provider_info()`` (cooldown_scale, cooldown_backend, cooldown_redis_url, state_uri, timeout ...).
    :param retry_policy: bounds of the retries inside a task.
    """

    conn_name_attr = "infobip_conn_id"
    default_conn_name = "infobip_default"
    conn_type = "infobip"
    hook_name = "Infobip"

    def __init__(
        self,
        infobip_conn_id: str = default_conn_name,
        *,
        retry_policy: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        **kwargs: Any,
    ) -> None:
        if "api_key" in kwargs:
            raise InfobipConfigError(
                "InfobipHook takes no api_key argument: put the key in the password of the "
                f"connection {infobip_conn_id!r} (Airflow masks it)"
            )
        super().__init__(**kwargs)
        self.infobip_conn_id = infobip_conn_id
        self.retry_policy = retry_policy or RetryPolicy()
        self._sleep = sleep
        #: seconds spent waiting for cooldown slots and backoffs, per endpoint name
        self.waited: dict[str, float] = {}
        #: requests sent, per endpoint name
        self.calls: dict[str, int] = {}
        self._counter_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"InfobipHook(infobip_conn_id={self.infobip_conn_id!r})"

    # ----------------------------------------------------------------- settings
    @cached_property
    def _settings(self) -> dict[str, Any]:
        conn = self.get_connection(self.infobip_conn_id)
        api_key = (conn.password or "").strip()
        if not api_key:
            raise InfobipConfigError(
                f"The connection {self.infobip_conn_id!r} has no API key: put it in the password field"
            )
        _mask(api_key)
        extras = conn.extra_dejson or {}
        redis_url = extras.get("cooldown_redis_url") or None
        _mask(urlsplit(redis_url).password if redis_url else None)
        backend = str(extras.get("cooldown_backend") or "auto").lower()
        if backend not in COOLDOWN_BACKENDS:
            raise InfobipConfigError(
                f"Connection extra cooldown_backend must be one of {', '.join(COOLDOWN_BACKENDS)}, got {backend!r}"
            )
        base_url = parse_base_url(conn.host, allow_insecure_http=_bool_extra(extras, "allow_insecure_http"))
        return {
            "base_url": base_url,
            "api_key": api_key,
            "cooldown_scale": _cooldown_scale(extras, base_url),
            "cooldown_backend": backend,
            "cooldown_redis_url": redis_url,
            "state_uri": str(extras.get("state_uri") or default_state_uri()),
            "timeout": _float_extra(extras, "timeout", 30.0, 0.1),
            "application_id": extras.get("application_id") or None,
            "entity_id": extras.get("entity_id") or None,
            "sender": extras.get("sender") or None,
            "key_scope": fingerprint(api_key),
            "account_scope": fingerprint(urlsplit(base_url).netloc.lower()),
        }

    @property
    def base_url(self) -> str:
        return self._settings["base_url"]

    @property
    def state_uri(self) -> str:
        return self._settings["state_uri"]

    @property
    def cooldown_scale(self) -> float:
        return self._settings["cooldown_scale"]

    @property
    def defaults(self) -> dict[str, str | None]:
        """The connection's message defaults: ``sender``, ``application_id``, ``entity_id``."""
        return {k: self._settings[k] for k in ("sender", "application_id", "entity_id")}

    @property
    def key_fingerprint(self) -> str:
        """A short irreversible name of the API key (for state paths and logs)."""
        return self._settings["key_scope"]

    @property
    def state_scope(self) -> str:
        """The state store folder of this connection's account (see :func:`state.state_scope`):
        the host of an account-specific base URL, else the API key's fingerprint."""
        from infobip_provider.state import state_scope

        return state_scope(self.base_url, self.key_fingerprint)

    @property
    def is_infobip_host(self) -> bool:
        """True when the base URL is one of Infobip's own hosts (not a sandbox)."""
        return infobip_host(self.base_url)

    @cached_property
    def session(self) -> requests.Session:
        """One HTTP session per hook: connection pooling across every call of a task."""
        import airflow

        session = requests.Session()
        session.headers.update(
            {
                "Authorization": f"App {self._settings['api_key']}",
                "Accept": "application/json",
                "User-Agent": f"airflow-provider-infobip/{__version__} apache-airflow/{airflow.__version__}",
            }
        )
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=0)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    @cached_property
    def gate(self) -> CooldownGate:
        """The cooldown gate the connection asks for; fails clearly when it cannot be reached."""
        s = self._settings
        state_dir = s["state_uri"]
        if "://" in state_dir:
            scheme, _, rest = state_dir.partition("://")
            # The file gate needs a local folder; an object-store state_uri uses a local one beside it.
            state_dir = rest if scheme == "file" else default_state_uri()
        return make_gate(s["cooldown_backend"], redis_url=s["cooldown_redis_url"], state_dir=state_dir)

    def interval(self, endpoint: str) -> float:
        """Seconds between two calls of ``endpoint`` for this connection (policy × cooldown_scale)."""
        return POLICIES[endpoint].interval * self.cooldown_scale

    def bucket(self, endpoint: str) -> str:
        """The gate key of ``endpoint``: an API-key or account fingerprint, never the key itself."""
        policy = POLICIES[endpoint]
        scope = self._settings["key_scope"] if policy.scope == "key" else self._settings["account_scope"]
        return f"{scope}:{endpoint}"

    # --------------------------------------------------------------- chokepoint
    def _request(
        self,
        endpoint: str,
        method: str,
        path: str,
        *,
        what: str,
        params: dict[str, Any] | list[tuple[str, Any]] | None = None,
        json_body: Any = None,
        idempotent: bool,
        max_attempts: int | None = None,
    ) -> requests.Response:
        """Send one request: reserve the cooldown slot, send, map errors, retry what is safe.

        :param endpoint: the policy name (``"lists.add"``).
        :param what: the call in the user's words, for messages.
        :param idempotent: True when repeating the call changes nothing (reads, list add/remove,
            tag add/remove, upserts). A call that is not (an SMS send) is never repeated after it may
            have reached Infobip; a 429 is repeated for every call because Infobip did nothing.
        :param max_attempts: overrides the retry policy's tries for 5xx and lost connections.
        """
        attempts = max_attempts or self.retry_policy.max_attempts
        url = self.base_url + path
        interval = self.interval(endpoint)
        bucket = self.bucket(endpoint)
        self.session  # noqa: B018  # built before the first reservation, so the slot is not spent on set-up
        # Encoded once, before the first reservation: a 1000-person body takes milliseconds to encode,
        # which would otherwise sit between the slot and the arrival (and vary with the host's load).
        body, headers = _encoded(json_body, what)
        failures = 0
        rate_limited = 0
        while True:
            waited = self.gate.reserve(bucket, interval)
            self._count(endpoint, waited, call=True)
            outcome = self._send_once(endpoint, method, url, params, body, headers, what)
            if not isinstance(outcome, InfobipError):
                return outcome
            if isinstance(outcome, InfobipRateLimitError):
                rate_limited += 1
                self._after_429(outcome, bucket, interval, rate_limited, what)
                continue
            failures += 1
            may_repeat = idempotent or (isinstance(outcome, InfobipTransportError) and not outcome.sent)
            if not (outcome.retryable and may_repeat) or failures >= attempts:
                raise outcome
            pause = self.retry_policy.backoff(failures)
            self.log.warning(
                "Infobip %s failed (%s); retry %d of %d in %.2fs",
                what,
                type(outcome).__name__,
                failures,
                attempts - 1,
                pause,
            )
            self._sleep(pause)
            self._count(endpoint, pause)

    def _send_once(
        self,
        endpoint: str,
        method: str,
        url: str,
        params: Any,
        body: bytes | None,
        headers: dict[str, str] | None,
        what: str,
    ) -> requests.Response | InfobipError:
        """One HTTP exchange: the response when it succeeded, else the typed error it means."""
        try:
            response = self.session.request(
                method, url, params=params, data=body, headers=headers, timeout=self._settings["timeout"]
            )
        except requests.RequestException as exc:
            return _transport_error(exc, what)
        if response.status_code < 400:
            return response
        return error_from_response(
            response.status_code,
            _decode(response),
            what=what,
            retry_after=_retry_after(response.headers.get("Retry-After")),
            scopes=SCOPES.get(endpoint, ()),
        )

    def _after_429(
        self, error: InfobipRateLimitError, bucket: str, interval: float, rate_limited: int, what: str
    ) -> None:
        """Push the endpoint's next slot back after a 429; raise when retrying is no longer sensible."""
        if rate_limited > self.retry_policy.max_rate_limited:
            raise error
        if error.retry_after is not None and error.retry_after > MAX_RETRY_AFTER:
            # Longer than a task should sleep (a daily quota, say): fail, and let Airflow retry.
            raise error
        delay = (
            error.retry_after
            if error.retry_after is not None
            else max(interval, self.retry_policy.backoff(rate_limited))
        )
        self.gate.push_back(bucket, delay)
        self.log.warning(
            "Infobip %s answered 429 (someone else may share this API key); cooldown pushed back %.2fs, "
            "retry %d of %d",
            what,
            delay,
            rate_limited,
            self.retry_policy.max_rate_limited,
        )

    def _count(self, endpoint: str, waited: float, *, call: bool = False) -> None:
        with self._counter_lock:  # lanes of one sync share the hook
            self.waited[endpoint] = self.waited.get(endpoint, 0.0) + waited
            if call:
                self.calls[endpoint] = self.calls.get(endpoint, 0) + 1

    def _call(self, endpoint: str, method: str, path: str, *, what: str, idempotent: bool, **kw: Any) -> Any:
        response = self._request(endpoint, method, path, what=what, idempotent=idempotent, **kw)
        return _decode(response)

    # ------------------------------------------------------------------ account
    def get_balance(self, *, max_attempts: int | None = None) -> dict[str, Any]:
        """``GET /account/1/balance`` (needs the ``account-management:manage`` scope)."""
        return self._call(
            "account.balance",
            "GET",
            "/account/1/balance",
            what="balance",
            idempotent=True,
            max_attempts=max_attempts,
        )

    def test_connection(self) -> tuple[bool, str]:
        """One cheap authenticated read per product (:data:`ACCESS_CHECKS`), each tried once.

        A wrong key (401 everywhere), an unreachable or wrong Base URL fail. A key that authenticates
        succeeds, with a table of what each product's read answered and the scopes to add for the
        reads that were refused (403). The message is logged too: ``airflow connections test`` prints
        only the message of a failure.
        """
        try:
            results = [(check, self._check_access(check)) for check in ACCESS_CHECKS]
        except InfobipTransportError as exc:
            return False, f"Cannot reach Infobip at {self.base_url}: check the Base URL ({exc})"
        except (InfobipConfigError, CooldownBackendError) as exc:
            return False, str(exc)
        outcomes = [outcome for _, outcome in results]
        if all(outcome == "refused (401)" for outcome in outcomes):
            return False, "Infobip refused the API key (401): check the API key"
        if not any(outcome in ("ok", _MISSING_SCOPE) for outcome in outcomes):
            if "not found (404)" in outcomes:
                return False, f"{self.base_url} answered 404: the Base URL is not an Infobip API URL"
            return False, "Infobip answered with errors:\n" + _access_table(results)
        missing = [check for check, outcome in results if outcome == _MISSING_SCOPE]
        needed = [c for c in missing if not c.optional]
        unchecked = [c.product for c, outcome in results if outcome not in ("ok", _MISSING_SCOPE)]
        said = []
        if needed:
            said.append(f"the API key lacks scopes for {', '.join(c.product for c in needed)}")
        if unchecked:
            said.append(f"{', '.join(unchecked)} could not be checked")
        head = (
            f"Connected to {self.base_url}: "
            + ("; ".join(said) or "the API key opens every product the flows use")
            + "."
        )
        lines = [head, _access_table(results)]
        if missing:
            lines.append(
                "Scopes to add: "
                + "; ".join(
                    f"{', '.join(c.add)} ({c.product}{', optional' if c.optional else ''})" for c in missing
                )
            )
        message = "\n".join(lines)
        (self.log.warning if needed else self.log.info)("%s", message)
        return True, message

    def _check_access(self, check: AccessCheck) -> str:
        """What one access check's read answered: ``ok``, ``missing scope (403)`` and so on."""
        try:
            response = self._request(
                check.endpoint,
                "GET",
                check.path,
                what=f"{check.product} access check",
                params=list(check.params),
                idempotent=True,
                max_attempts=1,
            )
        except InfobipAuthError as exc:
            return _MISSING_SCOPE if exc.status == 403 else "refused (401)"
        except InfobipNotFoundError:
            return "not found (404)"
        except InfobipTransportError:
            raise
        except InfobipError as exc:
            return f"error ({exc.status or 'no answer'})"
        return "ok" if isinstance(_decode(response), dict) else "not an Infobip answer"

    # -------------------------------------------------------------------- lists
    def create_list(self, name: str) -> int:
        """``POST /saas/amplitude/1/lists``: create a list and return its id. Not idempotent."""
        body = self._call(
            "lists.create",
            "POST",
            "/saas/amplitude/1/lists",
            what="list create",
            idempotent=False,
            json_body={"name": name},
        )
        return int(body["listId"])

    def list_add(self, list_id: int, user_ids: Sequence[str]) -> dict[str, Any]:
        """``POST /saas/amplitude/1/lists/{listId}/add`` with at most 1000 ids.

        :return: ``{"createdCount", "modifiedCount", "errors": {"count", "failed": {reason: [ids]}}}``.
        """
        _check_batch(user_ids, "list add")
        return (
            self._call(
                "lists.add",
                "POST",
                f"/saas/amplitude/1/lists/{int(list_id)}/add",
                what="list add",
                idempotent=True,
                json_body={"userIds": list(user_ids)},
            )
            or {}
        )

    def list_remove(self, list_id: int, user_ids: Sequence[str]) -> dict[str, Any]:
        """``POST /saas/amplitude/1/lists/{listId}/remove`` with at most 1000 ids."""
        _check_batch(user_ids, "list remove")
        return (
            self._call(
                "lists.remove",
                "POST",
                f"/saas/amplitude/1/lists/{int(list_id)}/remove",
                what="list remove",
                idempotent=True,
                json_body={"userIds": list(user_ids)},
            )
            or {}
        )

    # ------------------------------------------------------- blocklist, suppressions
    def blocklist_add(self, entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """``POST /platform/1/blocklists`` (1 request/s): ``[{"channel": "SMS", "destinations": [{"to":
        ...}]}, ...]``; duplicates are ignored, so repeating it changes nothing."""
        return (
            self._call(
                "blocklist.add",
                "POST",
                "/platform/1/blocklists",
                what="blocklist add",
                idempotent=True,
                json_body={"blocklist": list(entries)},
            )
            or {}
        )

    def blocklist_remove(self, entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """``DELETE /platform/1/blocklists`` (1 request/s) with the entries as :meth:`blocklist_add`
        takes them. [assumed] the DELETE body is the POST's."""
        return (
            self._call(
                "blocklist.remove",
                "DELETE",
                "/platform/1/blocklists",
                what="blocklist remove",
                idempotent=True,
                json_body={"blocklist": list(entries)},
            )
            or {}
        )

    def email_suppressions_add(self, suppressions: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """``POST /email/1/suppressions`` (100 requests/s): ``[{"domainName", "emailAddress": [...],
        "type": BOUNCE|COMPLAINT|UNSUBSCRIBE}]``."""
        return (
            self._call(
                "email.suppressions.add",
                "POST",
                "/email/1/suppressions",
                what="email suppressions add",
                idempotent=True,
                json_body={"suppressions": list(suppressions)},
            )
            or {}
        )

    def email_suppressions_remove(self, suppressions: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """``DELETE /email/1/suppressions`` with the body :meth:`email_suppressions_add` takes."""
        return (
            self._call(
                "email.suppressions.remove",
                "DELETE",
                "/email/1/suppressions",
                what="email suppressions remove",
                idempotent=True,
                json_body={"suppressions": list(suppressions)},
            )
            or {}
        )

    # ------------------------------------------------------------------- people
    def get_person(self, identifier: str, identifier_type: str = "EMAIL") -> dict[str, Any] | None:
        """``GET /people/2/persons?identifier=&type=``; ``None`` when there is no such person."""
        try:
            return self._call(
                "people.get",
                "GET",
                "/people/2/persons",
                what="person get",
                idempotent=True,
                params={"identifier": identifier, "type": identifier_type},
            )
        except InfobipNotFoundError:
            return None

    def iter_people(
        self, *, filter: dict[str, Any] | None = None, order_by: str | None = None, limit: int = 1000
    ) -> Iterator[dict[str, Any]]:
        """Every person matching ``filter``, page by page (``GET /people/2/persons``)."""
        page = 1
        while True:
            params: dict[str, Any] = {"limit": limit, "page": page}
            if filter is not None:
                params["filter"] = json.dumps(filter, separators=(",", ":"))
            if order_by:
                params["orderBy"] = order_by
            body = (
                self._call(
                    "people.list",
                    "GET",
                    "/people/2/persons",
                    what="people list",
                    idempotent=True,
                    params=params,
                )
                or {}
            )
            persons = body.get("persons") or []
            yield from persons
            if len(persons) < limit:
                return
            page += 1

    def create_person(self, person: dict[str, Any]) -> dict[str, Any]:
        """``POST /people/2/persons``. Not idempotent (a repeat may fail as a duplicate)."""
        return self._call(
            "people.create",
            "POST",
            "/people/2/persons",
            what="person create",
            idempotent=False,
            json_body=person,
        )

    def update_person(self, identifier: str, identifier_type: str, person: dict[str, Any]) -> dict[str, Any]:
        """``PATCH /people/2/persons``: partial update; omitted fields are kept, tags appended."""
        return self._call(
            "people.update",
            "PATCH",
            "/people/2/persons",
            what="person update",
            idempotent=True,
            params={"identifier": identifier, "type": identifier_type},
            json_body=person,
        )

    def upsert_people(self, persons: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """``PATCH /people/3/persons/upsert`` with 1..1000 people; answers per index (207).

        :return: ``{"results": [{"index", "id", "status"}], "errors": [{"index", "code", "message"}]}``.
        """
        _check_batch(persons, "people upsert")
        return (
            self._call(
                "people.upsert",
                "PATCH",
                "/people/3/persons/upsert",
                what="people upsert",
                idempotent=True,
                json_body={"persons": list(persons)},
            )
            or {}
        )

    def get_tag(self, name: str) -> dict[str, Any] | None:
        """``GET /people/2/tags/{name}``; ``None`` when the tag does not exist."""
        try:
            return self._call(
                "tags.get", "GET", f"/people/2/tags/{_seg(name)}", what="tag get", idempotent=True
            )
        except InfobipNotFoundError:
            return None

    def create_tag(self, name: str) -> dict[str, Any]:
        """``POST /people/2/tags``."""
        if not name or len(name) > 256:
            raise InfobipConfigError("A tag name must have 1 to 256 characters")
        return self._call(
            "tags.create",
            "POST",
            "/people/2/tags",
            what="tag create",
            idempotent=False,
            json_body={"name": name},
        )

    def tag_people(self, name: str, people: Sequence[tuple[str, str]]) -> dict[str, Any]:
        """``PATCH /people/2/tags/{name}/persons``: add the tag to ≤1000 ``(type, identifier)`` people."""
        return self._tag_call("tags.add", "PATCH", name, people, "tag add")

    def untag_people(self, name: str, people: Sequence[tuple[str, str]]) -> dict[str, Any]:
        """``DELETE /people/2/tags/{name}/persons``: remove the tag; the people stay."""
        return self._tag_call("tags.remove", "DELETE", name, people, "tag remove")

    def _tag_call(
        self, endpoint: str, method: str, name: str, people: Sequence[tuple[str, str]], what: str
    ) -> dict[str, Any]:
        _check_batch(people, what)
        body = {"people": [{"query": {"type": t, "identifier": i}} for t, i in people]}
        return (
            self._call(
                endpoint,
                method,
                f"/people/2/tags/{_seg(name)}/persons",
                what=what,
                idempotent=True,
                json_body=body,
            )
            or {}
        )

    # ---------------------------------------------------------------------- sms
    def send_sms(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /sms/3/messages``. Never repeated after it may have reached Infobip."""
        return self._call(
            "sms.send", "POST", "/sms/3/messages", what="SMS send", idempotent=False, json_body=body
        )

    def sms_logs(
        self, *, bulk_id: str | None = None, message_ids: Sequence[str] = (), limit: int = 1000
    ) -> list[dict[str, Any]]:
        """``GET /sms/3/logs`` (last 48 h) filtered by bulk and message ids, every page.

        Infobip pages logs only when asked with ``useCursor=true``; each answer's ``cursor.nextCursor``
        then names the next page, until it is absent. Items name the recipient ``destination``.
        """
        return self._cursor_pages(
            "sms.logs", "/sms/3/logs", "SMS logs", _filters(bulk_id, message_ids, limit)
        )

    def sms_reports(self, *, bulk_id: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """``GET /sms/3/reports``: delivery reports, each handed out once, so asked again while a full page
        comes back. Items name the recipient ``to`` (not ``destination`` as logs do)."""
        results: list[dict[str, Any]] = []
        while True:
            body = self._call(
                "sms.reports",
                "GET",
                "/sms/3/reports",
                what="SMS reports",
                idempotent=True,
                params=_filters(bulk_id, (), limit),
            )
            page = (body or {}).get("results") or []
            results.extend(page)
            if len(page) < limit:
                return results

    def sms_preview(self, text: str, transliteration: str = "NONE") -> dict[str, Any]:
        """``POST /sms/1/preview``: how Infobip would split ``text``."""
        return self._call(
            "sms.preview",
            "POST",
            "/sms/1/preview",
            what="SMS preview",
            idempotent=True,
            json_body={"text": text, "transliteration": transliteration},
        )

    # -------------------------------------------------------------------- email
    def send_email(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /email/4/messages`` (a JSON body; multipart is the older ``/email/3/send``). Never
        repeated after it may have reached Infobip."""
        return self._call(
            "email.send", "POST", "/email/4/messages", what="email send", idempotent=False, json_body=body
        )

    def email_logs(
        self, *, bulk_id: str | None = None, message_ids: Sequence[str] = (), limit: int = 1000
    ) -> list[dict[str, Any]]:
        """``GET /email/4/logs`` filtered by bulk and message ids, every page (``useCursor=true``, then
        ``cursor.nextCursor`` until it is absent), as the SMS logs."""
        return self._cursor_pages(
            "email.logs", "/email/4/logs", "email logs", _filters(bulk_id, message_ids, limit)
        )

    def _cursor_pages(self, endpoint: str, path: str, what: str, filters: list[Any]) -> list[dict[str, Any]]:
        """Every page of a logs endpoint: asked with ``useCursor=true``, then ``cursor.nextCursor`` of
        each answer until it is absent (Infobip pages logs only when asked so)."""
        base = [*filters, ("useCursor", "true")]
        results: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            params = base + ([("cursor", cursor)] if cursor else [])
            body = self._call(endpoint, "GET", path, what=what, idempotent=True, params=params)
            results.extend((body or {}).get("results") or [])
            cursor = ((body or {}).get("cursor") or {}).get("nextCursor")
            if not cursor:
                return results

    def email_reports_page(self, *, bulk_id: str | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """One page of ``GET /email/4/reports`` (each report handed out once: never repeated)."""
        body = self._call(
            "email.reports",
            "GET",
            "/email/4/reports",
            what="email reports",
            idempotent=False,
            params=_filters(bulk_id, (), limit),
        )
        return list((body or {}).get("results") or [])

    # ----------------------------------------------------------------- whatsapp
    def send_whatsapp_template(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /whatsapp/1/message/template``. Never repeated after it may have reached Infobip, and
        WhatsApp has no logs to ask what it did."""
        return self._call(
            "whatsapp.template",
            "POST",
            "/whatsapp/1/message/template",
            what="WhatsApp template send",
            idempotent=False,
            json_body=body,
        )

    def send_whatsapp_text(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /whatsapp/1/message/text``: one message per request (inside the 24-hour window)."""
        return self._call(
            "whatsapp.text",
            "POST",
            "/whatsapp/1/message/text",
            what="WhatsApp text send",
            idempotent=False,
            json_body=body,
        )

    # ----------------------------------------------------------- return path
    def people_page(
        self,
        *,
        filter: dict[str, Any] | None = None,
        order_by: str | None = None,
        limit: int = 1000,
        page: int = 1,
    ) -> PeoplePage:
        """One page of ``GET /people/2/persons`` (``filter`` as JSON, ``orderBy`` such as
        ``modifiedAt:asc,id:asc``), with the time Infobip answered (its ``Date`` header).

        [assumed] ``orderBy`` takes several ``field:direction`` pairs separated by commas, ``filter``
        compares ``id`` like any other top-level field, and ``Date`` comes from the clock that stamps
        ``modifiedAt``; the People export's keyset paging (:mod:`infobip_provider.exports`) relies on it.
        """
        params: dict[str, Any] = {"limit": limit, "page": page}
        if filter is not None:
            params["filter"] = json.dumps(filter, separators=(",", ":"))
        if order_by:
            params["orderBy"] = order_by
        response = self._request(
            "people.list", "GET", "/people/2/persons", what="people list", idempotent=True, params=params
        )
        body = _decode(response)
        persons = (body.get("persons") if isinstance(body, dict) else None) or []
        return PeoplePage(list(persons), _people_time(response.headers.get("Date")))

    def sms_reports_page(self, *, limit: int = 1000) -> list[dict[str, Any]]:
        """One page of ``GET /sms/3/reports``. Infobip hands each report out **once**, so an answer lost
        on the way is lost for good: never repeated here (a failure after the request may have reached
        Infobip raises, and the caller reconciles against the SMS logs)."""
        body = self._call(
            "sms.reports",
            "GET",
            "/sms/3/reports",
            what="SMS reports",
            idempotent=False,
            params=[("limit", limit)],
        )
        return list((body or {}).get("results") or [])

    def sms_inbox_page(self, *, limit: int = 1000) -> list[dict[str, Any]]:
        """One page of ``GET /sms/1/inbox/reports`` (inbound SMS, each handed out once; never repeated)."""
        body = self._call(
            "sms.inbox",
            "GET",
            "/sms/1/inbox/reports",
            what="SMS inbox",
            idempotent=False,
            params=[("limit", limit)],
        )
        return list((body or {}).get("results") or [])


@dataclass(frozen=True)
class PeoplePage:
    """One page of People.

    :param persons: the persons as Infobip answered them (v2 shape).
    :param server_time: when Infobip answered, as a People timestamp (``yyyy-MM-ddTHH:mm:ss`` UTC),
        ``None`` when the answer carried no usable ``Date`` header.
    """

    persons: list[dict[str, Any]]
    server_time: str | None


def _people_time(date_header: str | None) -> str | None:
    """An HTTP ``Date`` header as a People timestamp (UTC, seconds, no zone)."""
    if not date_header:
        return None
    from datetime import UTC
    from email.utils import parsedate_to_datetime

    try:
        moment = parsedate_to_datetime(date_header)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%dT%H:%M:%S")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")


_MISSING_SCOPE = "missing scope (403)"


def _access_table(results: Sequence[tuple[AccessCheck, str]]) -> str:
    """The connection test's table: product, endpoint checked, result; lists have no read to check."""
    rows = [("product", "endpoint checked", "result")]
    rows += [(c.product, f"GET {c.path}", outcome) for c, outcome in results]
    rows.append(("lists", "none", "not checked: Infobip has no read for lists"))
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    return "\n".join(f"{a:<{widths[0]}}  {b:<{widths[1]}}  {c}" for a, b, c in rows)


def _mask(secret: str | None) -> None:
    """Have Airflow's log masker hide ``secret`` in every log line of this process."""
    if secret:
        from airflow.sdk.log import mask_secret

        mask_secret(secret)


def _filters(bulk_id: str | None, message_ids: Sequence[str], limit: int) -> list[tuple[str, Any]]:
    """The query of a logs or reports read; ``messageId`` repeats, once per id."""
    params: list[tuple[str, Any]] = [("limit", limit)]
    if bulk_id:
        params.append(("bulkId", bulk_id))
    params.extend(("messageId", m) for m in message_ids)
    return params


def _seg(value: str) -> str:
    return quote(value, safe="")


def _check_batch(items: Sequence[Any], what: str) -> None:
    if not 1 <= len(items) <= 1000:
        raise InfobipConfigError(f"Infobip {what} takes 1 to 1000 items per request, got {len(items)}")


_JSON_HEADERS = {"Content-Type": "application/json"}


def _encoded(json_body: Any, what: str) -> tuple[bytes | None, dict[str, str] | None]:
    """The request body as compact UTF-8 JSON bytes, with its content type (``None`` for no body)."""
    if json_body is None:
        return None, None
    try:
        body = json.dumps(json_body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode(
            "utf-8"
        )
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError (a lone surrogate) is a ValueError too
        # A NaN, a broken string or an object JSON cannot carry: a bug upstream, never worth a request.
        raise InfobipConfigError(f"Infobip {what}: the request body cannot be sent as JSON ({exc})") from exc
    return body, _JSON_HEADERS


def _decode(response: requests.Response) -> Any:
    if not response.content:
        return {}
    try:
        return response.json()
    except ValueError:
        return response.text


#: The longest Retry-After (seconds) the hook waits out inside a task; a longer one fails the try.
MAX_RETRY_AFTER = 900.0


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (seconds or an HTTP date); ``None`` when absent or unusable."""
    if not value:
        return None
    try:
        seconds = float(value)
        return max(0.0, seconds) if math.isfinite(seconds) else None
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def _never_left(exc: requests.RequestException) -> bool:
    """True when the request provably never reached the server (no connection was made)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    if isinstance(exc, requests.ConnectionError) and not isinstance(exc, requests.Timeout):
        reason = getattr(exc.args[0], "reason", None) if exc.args else None
        return isinstance(reason, urllib3.exceptions.NewConnectionError)
    return False


def _transport_error(exc: requests.RequestException, what: str) -> InfobipTransportError:
    # Only a failure to connect proves the request never left; a read timeout or a reset may
    # come after Infobip acted on it.
    never_left = _never_left(exc)
    if never_left:
        kind = "could not connect"
    elif isinstance(exc, requests.Timeout):
        kind = "timed out waiting for the answer"
    else:
        kind = "lost the connection"
    return InfobipTransportError(f"Infobip {what}: {kind} ({type(exc).__name__})", sent=not never_left)
