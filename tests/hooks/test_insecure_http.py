"""Plain http to a non-loopback host (the docker-compose sandbox) only with ``allow_insecure_http: true``."""

from __future__ import annotations

import pytest

from infobip_provider.errors import InfobipConfigError
from infobip_provider.hooks.infobip import InfobipHook, parse_base_url
from tests.conftest import infobip_conn_env

KEY = "s3cr3t-test-key-0123456789abcdef"
COMPOSE_SANDBOX = "http://infobip-sandbox:8765"


def test_parse_base_url_refuses_remote_http_by_default() -> None:
    with pytest.raises(InfobipConfigError, match="Refusing plain http for infobip-sandbox"):
        parse_base_url(COMPOSE_SANDBOX)


def test_parse_base_url_accepts_remote_http_when_allowed() -> None:
    assert parse_base_url(COMPOSE_SANDBOX, allow_insecure_http=True) == COMPOSE_SANDBOX


def test_allowing_http_does_not_change_https_or_schemeless_hosts() -> None:
    assert parse_base_url("abc.api.infobip.com", allow_insecure_http=True) == "https://abc.api.infobip.com"
    with pytest.raises(InfobipConfigError, match="not an http"):
        parse_base_url("ftp://abc.api.infobip.com", allow_insecure_http=True)


@pytest.mark.parametrize(
    ("extra", "allowed"),
    [
        pytest.param({}, False, id="absent"),
        pytest.param({"allow_insecure_http": False}, False, id="json-false"),
        pytest.param({"allow_insecure_http": "false"}, False, id="text-false"),
        pytest.param({"allow_insecure_http": ""}, False, id="empty"),
        pytest.param({"allow_insecure_http": True}, True, id="json-true"),
        pytest.param({"allow_insecure_http": " True "}, True, id="text-true"),
    ],
)
def test_hook_reads_the_extra(monkeypatch: pytest.MonkeyPatch, extra: dict, allowed: bool) -> None:
    infobip_conn_env(monkeypatch, "infobip_http", host=COMPOSE_SANDBOX, password=KEY, **extra)
    hook = InfobipHook("infobip_http")
    if allowed:
        assert hook.base_url == COMPOSE_SANDBOX
    else:
        with pytest.raises(InfobipConfigError, match="allow_insecure_http"):
            _ = hook.base_url


@pytest.mark.parametrize("value", ["yes", 1, "on", ["true"]])
def test_only_an_explicit_true_counts(monkeypatch: pytest.MonkeyPatch, value: object) -> None:
    infobip_conn_env(
        monkeypatch, "infobip_http", host=COMPOSE_SANDBOX, password=KEY, allow_insecure_http=value
    )
    with pytest.raises(InfobipConfigError, match="must be true or false"):
        _ = InfobipHook("infobip_http").base_url


def test_the_error_never_shows_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    infobip_conn_env(monkeypatch, "infobip_http", host=COMPOSE_SANDBOX, password=KEY)
    with pytest.raises(InfobipConfigError) as caught:
        _ = InfobipHook("infobip_http").base_url
    assert KEY not in str(caught.value)
